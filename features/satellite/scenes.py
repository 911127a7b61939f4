"""Scenes: check each scene's raster against its row, and read its reflectance and mask.

Rasterio (GDAL) reads GeoTIFFs and VRTs; a VRT is how two single-band files (a real
Sentinel-2 B04 and B08) become one scene.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rasterio
import rasterio.crs
from affine import Affine
from rasterio.errors import RasterioError
from rasterio.windows import Window

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
    except RasterioError as exc:  # the row that names it, so a feed's batch knows which
        return [
            Problem(
                table_file,
                f"raster {rel} is truncated or corrupt ({exc}); export it again",
                row=row,
                column="path",
            )
        ]
    return problems


def _check_open_dataset(
    ds: rasterio.DatasetReader, scene: pd.Series, rel: str, table_file: str, row: int
) -> list[Problem]:
    problems: list[Problem] = []
    if ds.crs is None:
        problems.append(
            Problem(
                table_file,
                f"raster {rel} has no CRS; re-export it with its CRS (e.g. UTM EPSG:32736)",
                row=row,
                column="path",
            )
        )
    if ds.transform.is_identity:
        problems.append(
            Problem(
                table_file,
                f"raster {rel} has no geotransform; re-export it georeferenced",
                row=row,
                column="path",
            )
        )
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


def clear_values(text: object) -> tuple[int, ...]:
    """Parse mask_clear_values ('1' or '4,5,6'); empty when the scene has no mask."""
    if text is None or pd.isna(text):
        return ()
    return tuple(int(v) for v in str(text).split(","))


@dataclass(frozen=True)
class SceneBands:
    """How to read one scene: its file and the role of each band (from a scenes row)."""

    path: Path
    red_band: int
    nir_band: int
    blue_band: int | None = None
    mask_band: int | None = None
    mask_clear_values: tuple[int, ...] = ()
    nodata: float | None = None
    reflectance_scale: float = 1.0
    reflectance_offset: float = 0.0

    @classmethod
    def from_row(cls, data_dir: Path, row: pd.Series) -> SceneBands:
        """Band roles of a row of the scenes table; the path is relative to `data_dir`."""

        def optional_int(value: Any) -> int | None:
            return None if pd.isna(value) else int(value)

        def number(value: Any, default: float) -> float:
            return default if pd.isna(value) else float(value)

        return cls(
            path=data_dir / str(row["path"]),
            red_band=int(row["red_band"]),
            nir_band=int(row["nir_band"]),
            blue_band=optional_int(row.get("blue_band")),
            mask_band=optional_int(row.get("mask_band")),
            mask_clear_values=clear_values(row.get("mask_clear_values")),
            nodata=None if pd.isna(row.get("nodata")) else float(row["nodata"]),
            reflectance_scale=number(row.get("reflectance_scale"), 1.0),
            reflectance_offset=number(row.get("reflectance_offset"), 0.0),
        )


@dataclass
class RawBands:
    """Digital numbers of a window of a scene, as stored (scaling happens per pixel later)."""

    red: np.ndarray
    nir: np.ndarray
    blue: np.ndarray | None
    mask: np.ndarray | None


class Scene:
    """An open scene: CRS, grid and windowed reads of reflectance with its validity mask.

    Fill is the file's nodata, else the row's `nodata`, else 0 (validation insists on one);
    reads outside the raster come back as fill, so a window may run past the scene's edge.
    """

    def __init__(self, bands: SceneBands) -> None:
        self.bands = bands
        self._ds = rasterio.open(bands.path)
        nodata = self._ds.nodata if self._ds.nodata is not None else bands.nodata
        self.fill = nodata

    def __enter__(self) -> Scene:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the file."""
        self._ds.close()

    @property
    def crs(self) -> rasterio.crs.CRS:
        """The scene's CRS."""
        return self._ds.crs

    @property
    def transform(self) -> Affine:
        """Pixel-to-CRS affine transform of the whole scene."""
        return self._ds.transform

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the scene."""
        return self._ds.height, self._ds.width

    def _read(self, bands: list[int], window: Window, fill: float) -> np.ndarray:
        """Read `window`; the part past the scene's edge comes back as `fill`."""
        height, width = int(window.height), int(window.width)
        col0, row0 = int(window.col_off), int(window.row_off)
        c0, r0 = max(col0, 0), max(row0, 0)
        c1, r1 = min(col0 + width, self._ds.width), min(row0 + height, self._ds.height)
        if (c0, r0, c1, r1) == (col0, row0, col0 + width, row0 + height):
            return self._ds.read(bands, window=window)
        out = np.full((len(bands), height, width), fill, dtype=self._ds.dtypes[bands[0] - 1])
        if c1 > c0 and r1 > r0:  # padding by hand: rasterio's boundless read goes via a VRT
            inner = Window(c0, r0, c1 - c0, r1 - r0)
            out[:, r0 - row0 : r1 - row0, c0 - col0 : c1 - col0] = self._ds.read(
                bands, window=inner
            )
        return out

    def read(self, window: Window) -> RawBands:
        """Stored values of the band roles over `window` (may extend past the scene).

        Pixels past the edge read as the fill value (and mask 0), so they are never valid.
        """
        b = self.bands
        fill = 0 if self.fill is None else self.fill
        roles = [b.red_band, b.nir_band] + ([b.blue_band] if b.blue_band else [])
        with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"):  # decode compressed blocks in parallel
            raw = self._read(roles, window, fill)
            mask = self._read([b.mask_band], window, 0)[0] if b.mask_band else None
        return RawBands(red=raw[0], nir=raw[1], blue=raw[2] if b.blue_band else None, mask=mask)
