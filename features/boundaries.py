"""Field boundaries: read polygons with their CRS from GeoJSON, GeoPackage or a zipped
shapefile (pyogrio/GDAL), checking each geometry and reporting problems per feature.

Geometries are returned in the file's own CRS; reprojection happens where they meet a
raster (the satellite zonal statistics), never here.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import pyogrio.raw
import shapely
from pyproj import CRS
from shapely.errors import GEOSException
from shapely.validation import explain_validity

from features.problems import Problem

_POLYGONAL = ("Polygon", "MultiPolygon")


@dataclass
class FieldBoundaries:
    """Polygons read from one file: attribute columns, geometries and their CRS."""

    properties: pd.DataFrame
    geometry: list[shapely.Geometry | None]
    crs: CRS
    problems: list[Problem] = field(default_factory=list)


def _gdal_path(path: Path) -> str:
    if path.suffix.lower() == ".zip":
        return f"/vsizip/{path}"
    return str(path)


def _parse(
    wkb: bytes | None, name: str, row: int
) -> tuple[shapely.Geometry | None, Problem | None]:
    if wkb is None:
        return None, Problem(
            name, "feature has no geometry; draw the field's polygon", row=row, column="geometry"
        )
    try:
        geom = shapely.from_wkb(wkb)
    except GEOSException as exc:
        if "closed" in str(exc):
            return None, Problem(
                name,
                "polygon ring is not closed: repeat the first position as the last one",
                row=row,
                column="geometry",
            )
        return None, Problem(name, f"geometry cannot be read ({exc})", row=row, column="geometry")
    if geom.geom_type not in _POLYGONAL:
        return None, Problem(
            name,
            f"expected a Polygon or MultiPolygon; got {geom.geom_type}",
            row=row,
            column="geometry",
        )
    if not geom.is_valid:
        return geom, Problem(
            name,
            f"polygon is invalid ({explain_validity(geom)}); fix "
            "self-intersections, e.g. with shapely.make_valid",
            row=row,
            column="geometry",
        )
    return geom, None


def read_field_boundaries(path: Path | str) -> FieldBoundaries:
    """Read field polygons from `path`; every unreadable feature becomes a Problem.

    Args:
        path: a GeoJSON, GeoPackage, shapefile or zip holding one shapefile. A GeoJSON
            without a `crs` member is WGS 84 longitude/latitude (RFC 7946).

    Returns:
        The attribute table, one geometry per row (None where unreadable) and the CRS.
    """
    path = Path(path)
    name = path.name
    try:
        with warnings.catch_warnings():
            # GDAL warns about unclosed rings; they are reported per feature below.
            warnings.simplefilter("ignore", RuntimeWarning)
            meta, _, wkbs, values = pyogrio.raw.read(_gdal_path(path))
    except Exception as exc:  # every unreadable file is reported, never raised
        return FieldBoundaries(
            pd.DataFrame(),
            [],
            CRS.from_epsg(4326),
            [Problem(name, f"cannot be read as vector data ({exc}); export the fields as GeoJSON")],
        )
    if wkbs is None:
        return FieldBoundaries(
            pd.DataFrame(),
            [],
            CRS.from_epsg(4326),
            [Problem(name, "holds no geometries; export the field polygons as GeoJSON")],
        )
    crs = CRS.from_user_input(meta["crs"]) if meta.get("crs") else CRS.from_epsg(4326)
    properties = pd.DataFrame(dict(zip(meta["fields"], values, strict=True)))
    geometries: list[shapely.Geometry | None] = []
    problems: list[Problem] = []
    for i, wkb in enumerate(wkbs):
        geom, problem = _parse(wkb, name, i + 1)
        geometries.append(geom)
        if problem is not None:
            problems.append(problem)
    return FieldBoundaries(properties, geometries, crs, problems)


def feed_field_boundaries(rows: list[dict[str, Any]], source: str) -> FieldBoundaries:
    """Field rows as a platform feed sends them, each with its polygon as a GeoJSON
    geometry in WGS 84 longitude/latitude (RFC 7946) under `geometry`: read as a GeoJSON
    file of those features is, with the same checks and problems by row (`source` names
    the batch in them)."""
    problems: list[Problem] = []
    features = []
    for i, row in enumerate(rows):
        geometry = row.get("geometry")
        if geometry is not None and not (isinstance(geometry, dict) and "type" in geometry):
            problems.append(
                Problem(
                    source,
                    'geometry must be a GeoJSON geometry object, e.g. {"type": "Polygon", '
                    '"coordinates": [[[lon, lat], ...]]}, in WGS 84',
                    row=i + 1,
                    column="geometry",
                )
            )
            geometry = None
        properties = {k: v for k, v in row.items() if k != "geometry"}
        features.append({"type": "Feature", "properties": properties, "geometry": geometry})
    with tempfile.TemporaryDirectory(prefix="feed-fields-") as tmp:
        path = Path(tmp) / "fields.geojson"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
        read = read_field_boundaries(path)
    flagged = {p.row for p in problems}
    problems += [replace(p, file=source) for p in read.problems if p.row not in flagged]
    return FieldBoundaries(read.properties, read.geometry, read.crs, problems)
