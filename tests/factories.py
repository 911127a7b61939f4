"""Small builders of test inputs with overrides."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine


def copy_world(src: Path, dst: Path) -> Path:
    """Copy a data directory (scenes hard-linked where possible) for a test to break."""
    shutil.copytree(src, dst, copy_function=_link_or_copy)
    return dst


def _link_or_copy(src: str, dst: str) -> None:
    try:
        Path(dst).hardlink_to(src)
    except OSError:
        shutil.copy2(src, dst)


def make_scene(
    path: Path,
    array: np.ndarray,
    *,
    crs: str | None = "EPSG:32736",
    nodata: float | None = 0,
    transform: Affine | None = None,
    descriptions: tuple[str, ...] = (),
) -> Path:
    """Write `array` (bands, rows, cols) as a GeoTIFF; crs=None writes one without a CRS."""
    bands = array if array.ndim == 3 else array[None]
    profile = {
        "driver": "GTiff",
        "width": bands.shape[2],
        "height": bands.shape[1],
        "count": bands.shape[0],
        "dtype": bands.dtype.name,
        "transform": transform or Affine(10, 0, 500_000, 0, -10, 9_900_000),
        "nodata": nodata,
    }
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(bands)
        for i, name in enumerate(descriptions, start=1):
            ds.set_band_description(i, name)
    return path


def make_vrt(path: Path, *bands: Path) -> Path:
    """A VRT stacking single-band files into one multi-band scene (what gdalbuildvrt does)."""
    with rasterio.open(bands[0]) as ds:
        width, height, crs, t = ds.width, ds.height, ds.crs.to_wkt(), ds.transform
    xml = "".join(
        f'<VRTRasterBand dataType="UInt16" band="{i}"><SimpleSource>'
        f'<SourceFilename relativeToVRT="0">{src}</SourceFilename>'
        f"<SourceBand>1</SourceBand></SimpleSource></VRTRasterBand>"
        for i, src in enumerate(bands, start=1)
    )
    path.write_text(
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}"><SRS>{crs}</SRS>'
        f"<GeoTransform>{t.c}, {t.a}, {t.b}, {t.f}, {t.d}, {t.e}</GeoTransform>{xml}</VRTDataset>"
    )
    return path


async def decide_request(batcher, body, key, idempotency_key: str | None) -> dict:
    """A ScoreRequest through the batcher as the score route sends it."""
    return await batcher.decide(
        body.to_application(), request=body.model_dump(), key=key, idempotency_key=idempotency_key
    )
