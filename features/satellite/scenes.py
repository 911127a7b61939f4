"""Scenes: check that each scene's raster opens, is georeferenced and matches its row.

Rasterio (GDAL) reads GeoTIFFs and VRTs; a VRT is how two single-band files (a real
Sentinel-2 B04 and B08) become one scene.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import rasterio
from rasterio.errors import RasterioError

from features.problems import Problem

ROLE_COLUMNS = ("red_band", "nir_band", "blue_band", "mask_band")


def _read_every_block(ds: rasterio.DatasetReader) -> None:
    # A truncated GeoTIFF opens fine; only reading its blocks shows the damage.
    for _, window in ds.block_windows(1):
        ds.read(window=window)


def check_scene_file(
    data_dir: Path, scene: pd.Series, *, table_file: str, row: int
) -> list[Problem]:
    """Check one scene's raster against its row in the scenes table."""
    rel = str(scene["path"])
    path = data_dir / rel
    if not path.exists():
        return [
            Problem(
                table_file, f"raster {rel} does not exist under {data_dir}", row=row, column="path"
            )
        ]
    try:
        with rasterio.open(path) as ds:
            problems = _check_open_dataset(ds, scene, rel, table_file, row)
            _read_every_block(ds)
    except RasterioError as exc:
        return [
            Problem(rel, f"raster is truncated or corrupt ({exc}); export it again", column="path")
        ]
    return problems


def _check_open_dataset(
    ds: rasterio.DatasetReader, scene: pd.Series, rel: str, table_file: str, row: int
) -> list[Problem]:
    problems: list[Problem] = []
    if ds.crs is None:
        problems.append(
            Problem(rel, "raster has no CRS; re-export it with its CRS (e.g. UTM EPSG:32736)")
        )
    if ds.transform.is_identity:
        problems.append(Problem(rel, "raster has no geotransform; re-export it georeferenced"))
    for role in ROLE_COLUMNS:
        band = scene[role]
        if pd.notna(band) and int(band) > ds.count:
            problems.append(
                Problem(
                    table_file,
                    f"{role} is {int(band)} but {rel} has only {ds.count} band(s)",
                    row=row,
                    column=role,
                )
            )
    if ds.nodata is None and pd.isna(scene["nodata"]):
        problems.append(
            Problem(
                table_file,
                f"{rel} declares no nodata value and the row "
                "gives none; set the nodata column (0 for Sentinel-2 and "
                "Landsat fill)",
                row=row,
                column="nodata",
            )
        )
    return problems


def check_scene_files(data_dir: Path, scenes: pd.DataFrame, table_file: str) -> list[Problem]:
    """Open and fully read every scene raster; report each problem by file and row."""
    problems: list[Problem] = []
    for i, scene in scenes.reset_index(drop=True).iterrows():
        problems += check_scene_file(data_dir, scene, table_file=table_file, row=int(i) + 1)
    return problems
