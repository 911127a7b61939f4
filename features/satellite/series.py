"""The per-field index time series: zonal statistics of every field in every scene."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pyproj import Geod
from tqdm import tqdm

from features.boundaries import FieldBoundaries
from features.satellite.scenes import Scene, SceneBands
from features.satellite.zonal import STAT_COLUMNS, FieldSet, zonal_stats

SERIES_COLUMNS = ("field_id", "scene_id", "acquired_at", *STAT_COLUMNS)
_GEOD = Geod(ellps="WGS84")


def field_set(boundaries: FieldBoundaries) -> FieldSet:
    """The readable polygons of a boundaries file as a FieldSet keyed by field_id."""
    keep = [g is not None for g in boundaries.geometry]
    ids = boundaries.properties["field_id"].to_numpy()[keep]
    readable = [g for g in boundaries.geometry if g is not None]
    geoms = np.empty(len(readable), dtype=object)  # an array of geometries, never unpacked
    geoms[:] = readable
    return FieldSet(ids, geoms, boundaries.crs)


def polygon_areas_ha(fields: FieldSet) -> pd.Series:
    """Geodesic area of each polygon in hectares, by field_id (independent of any CRS)."""
    lonlat, _ = fields.in_crs("EPSG:4326")
    areas = [abs(_GEOD.geometry_area_perimeter(g)[0]) / 10_000 for g in lonlat]
    return pd.Series(areas, index=pd.Index(fields.field_ids, name="field_id"), name="polygon_ha")


def build_index_series(
    data_dir: Path | str,
    scenes: pd.DataFrame,
    fields: FieldSet,
    *,
    progress: bool = False,
) -> pd.DataFrame:
    """Zonal NDVI/EVI statistics of every field in every scene, sorted by field and time.

    Each scene is opened once; polygons are reprojected once per scene CRS.
    """
    data_dir = Path(data_dir)
    frames = []
    rows = scenes.sort_values(["acquired_at", "scene_id"])
    for _, row in tqdm(
        rows.iterrows(),
        total=len(rows),
        desc="zonal statistics",
        unit="scene",
        disable=not progress,
    ):
        with Scene(SceneBands.from_row(data_dir, row)) as scene:
            stats = zonal_stats(scene, fields)
        if len(stats):
            frames.append(stats.assign(scene_id=row["scene_id"], acquired_at=row["acquired_at"]))
    if not frames:
        return pd.DataFrame(columns=list(SERIES_COLUMNS))
    series = pd.concat(frames, ignore_index=True)[list(SERIES_COLUMNS)]
    return series.sort_values(["field_id", "acquired_at", "scene_id"], ignore_index=True)
