"""Field boundaries and scenes from real public files (../shared/data/real)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pyproj import Geod

from features.boundaries import read_field_boundaries
from features.satellite.scenes import check_scene_file
from tests.factories import make_vrt

GEOD = Geod(ellps="WGS84")


def _median_area_ha(geometries) -> float:
    return float(np.median([abs(GEOD.geometry_area_perimeter(g)[0]) / 10_000 for g in geometries]))


@pytest.mark.parametrize(
    ("name", "count", "low_ha", "high_ha"),
    [("rw_rwanda_2021.geojson", 30, 1.0, 4.0), ("india_10k.zip", 100, 0.2, 0.8)],
    ids=["rwanda_geojson", "india_zipped_shapefile"],  # documented medians: 2 ha, 0.41 ha
)
def test_real_boundaries_read_with_their_crs_and_plausible_areas(
    real_data, name, count, low_ha, high_ha
):
    fields = read_field_boundaries(real_data / "fields" / name)

    assert fields.problems == []
    assert fields.crs.to_epsg() == 4326
    assert len(fields.geometry) == count
    assert low_ha < _median_area_ha(fields.geometry) < high_ha


def test_a_file_that_is_not_vector_data_is_a_problem_not_a_crash(real_data):
    fields = read_field_boundaries(real_data / "credit" / "germancredit.csv")

    assert fields.geometry == []
    assert [p.file for p in fields.problems] == ["germancredit.csv"]
    assert "holds no geometries" in fields.problems[0].message


@pytest.mark.parametrize("nodata", [None, 0.0], ids=["nodata_missing", "nodata_given"])
def test_real_sentinel2_bands_make_one_scene_and_missing_nodata_is_named(
    real_data, tmp_path, nodata
):
    scenes = real_data / "scenes"
    make_vrt(
        tmp_path / "s2.vrt",
        scenes / "S2_19UDP_20170729_B04_900m.tif",
        scenes / "S2_19UDP_20170729_B08_900m.tif",
    )
    row = pd.Series(
        {
            "path": "s2.vrt",
            "red_band": 1,
            "nir_band": 2,
            "blue_band": pd.NA,
            "mask_band": pd.NA,
            "nodata": nodata if nodata is not None else pd.NA,
        }
    )

    problems = check_scene_file(tmp_path, row, table_file="scenes.csv", row=1)

    if nodata is None:
        assert [(p.column, "declares no nodata" in p.message) for p in problems] == [
            ("nodata", True)
        ]
    else:
        assert problems == []


def test_band_beyond_the_file_is_named(real_data, tmp_path):
    scenes = real_data / "scenes"
    make_vrt(
        tmp_path / "l8.vrt",
        scenes / "LC08_016037_20170813_B4_900m.tif",
        scenes / "LC08_016037_20170813_B5_900m.tif",
    )
    row = pd.Series(
        {
            "path": "l8.vrt",
            "red_band": 1,
            "nir_band": 3,
            "blue_band": pd.NA,
            "mask_band": pd.NA,
            "nodata": 0.0,
        }
    )

    problems = check_scene_file(tmp_path, row, table_file="scenes.csv", row=7)

    assert [(p.row, p.column) for p in problems] == [(7, "nir_band")]
    assert "has only 2 band(s)" in problems[0].message
