"""Where fields lie: strips of smallholder plots laid out in each county's UTM zone.

Plots sit side by side in rows separated by paths, as smallholder land does; each county
gets one raster grid (its scene footprint) that covers all its fields. Boundaries are
published in WGS 84 longitude/latitude, so every scene needs them reprojected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from affine import Affine
from pyproj import Transformer
from rasterio.features import rasterize
from shapely import Polygon

ROW_GAP_M = 8.0
PLOT_GAP_M = 5.0
MARGIN_M = 60.0
PACKING = 0.75  # share of the tile covered by plots


@dataclass
class CountyGrid:
    """A county's raster grid and each pixel's field (0 = no field)."""

    county: str
    epsg: int
    transform: Affine
    width: int
    height: int
    field_index: np.ndarray  # int32 (height, width): 1-based row in the fields frame


def _layout_county(
    area_ha: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, float, float]:
    """Place plots left to right in rows; return corners (n, 4, 2) and the tile size."""
    total_m2 = float(area_ha.sum() * 10_000)
    row_length = max(400.0, np.sqrt(total_m2 / PACKING))
    corners = np.zeros((len(area_ha), 4, 2))
    x, y = 0.0, 0.0
    row_height = rng.uniform(60, 110)
    for i, a in enumerate(area_ha):
        width = a * 10_000 / row_height
        if x > 0 and x + width > row_length:
            x, y = 0.0, y + row_height + ROW_GAP_M
            row_height = rng.uniform(60, 110)
            width = a * 10_000 / row_height
        if rng.random() < 0.1:  # fallow strip or homestead between plots
            x += rng.uniform(15, 50)
        jitter = rng.uniform(-2, 2, (4, 2))
        corners[i] = (
            np.array([[x, y], [x + width, y], [x + width, y + row_height], [x, y + row_height]])
            + jitter
        )
        x += width + PLOT_GAP_M
    return corners, row_length, y + row_height


def _to_wgs84(corners_utm: np.ndarray, epsg: int) -> np.ndarray:
    to_lonlat = Transformer.from_crs(epsg, 4326, always_xy=True)
    lon, lat = to_lonlat.transform(corners_utm[..., 0].ravel(), corners_utm[..., 1].ravel())
    return np.stack([lon, lat], axis=-1).reshape(corners_utm.shape)


def lay_out_fields(
    fields: pd.DataFrame, counties: pd.DataFrame, pixel_size_m: float, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, CountyGrid]]:
    """Lay out every field; return WGS 84 corners (n, 4, 2) and one grid per county.

    Field geometry uses the true area; the declared area is what the farmer claims.
    """
    corners_lonlat = np.zeros((len(fields), 4, 2))
    grids: dict[str, CountyGrid] = {}
    to_utm_cache: dict[int, Transformer] = {}
    for county in counties.itertuples():
        rows = np.flatnonzero(fields.county.to_numpy() == county.county)
        local, length, height = _layout_county(fields.area_ha.to_numpy()[rows], rng)
        to_utm = to_utm_cache.setdefault(
            county.epsg, Transformer.from_crs(4326, county.epsg, always_xy=True)
        )
        cx, cy = to_utm.transform(county.lon, county.lat)
        x0 = np.floor((cx - length / 2 - MARGIN_M) / pixel_size_m) * pixel_size_m
        y0 = np.floor((cy - height / 2 - MARGIN_M) / pixel_size_m) * pixel_size_m
        utm = local + np.array([x0 + MARGIN_M, y0 + MARGIN_M])
        corners_lonlat[rows] = _to_wgs84(utm, county.epsg)
        width = int(np.ceil((length + 2 * MARGIN_M) / pixel_size_m))
        n_rows = int(np.ceil((height + 2 * MARGIN_M) / pixel_size_m))
        transform = Affine(pixel_size_m, 0, x0, 0, -pixel_size_m, y0 + n_rows * pixel_size_m)
        shapes = ((Polygon(c), int(r) + 1) for r, c in zip(rows, utm, strict=True))
        index = (
            rasterize(shapes, out_shape=(n_rows, width), transform=transform, fill=0, dtype="int32")
            if len(rows)
            else np.zeros((n_rows, width), "int32")
        )
        grids[county.county] = CountyGrid(
            county.county, int(county.epsg), transform, width, n_rows, index
        )
    return corners_lonlat, grids


def write_fields_geojson(path: Path, fields: pd.DataFrame, corners_lonlat: np.ndarray) -> None:
    """Write the declared fields as an RFC 7946 GeoJSON FeatureCollection (WGS 84)."""
    features = []
    for row, corners in zip(fields.itertuples(), np.round(corners_lonlat, 7), strict=True):
        ring = [*corners.tolist(), corners[0].tolist()]
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "field_id": row.field_id,
                    "farmer_id": row.farmer_id,
                    "crop": row.crop,
                    "declared_area_ha": row.declared_area_ha,
                },
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        )
    path.write_text(
        json.dumps({"type": "FeatureCollection", "features": features}, separators=(",", ":"))
    )
