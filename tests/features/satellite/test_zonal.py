"""Zonal NDVI/EVI statistics: exact answers on hand-built rasters, and agreement field by
field with rasterstats (same centre-of-pixel rule) on simulated and real scenes."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import rasterio
import rasterstats
import shapely
from affine import Affine
from pyproj import CRS, Transformer
from rasterio.warp import transform_geom

from features.boundaries import read_field_boundaries
from features.satellite.scenes import Scene, SceneBands
from features.satellite.zonal import FieldSet, zonal_stats
from tests.factories import make_scene, make_vrt

UTM36S = "EPSG:32736"
ORIGIN = Affine(10, 0, 500_000, 0, -10, 9_900_000)


def _scene_file(path, red, nir, mask, *, crs=UTM36S, transform=ORIGIN):
    """A 4-band uint16 scene (red, nir, blue, mask) from reflectance arrays."""
    blue = np.full_like(red, 0.05)
    bands = np.stack([red, nir, blue]).clip(0, 6) * 10_000
    stack = np.concatenate([np.round(bands).astype("uint16"), mask[None].astype("uint16")])
    return make_scene(path, stack, crs=crs, transform=transform, nodata=0)


def _bands(path) -> SceneBands:
    return SceneBands(
        path=path, red_band=1, nir_band=2, blue_band=3, mask_band=4,
        mask_clear_values=(1,), nodata=0, reflectance_scale=1e-4,
    )  # fmt: skip


def _box(col0, row0, col1, row1, t=ORIGIN):
    """Polygon over pixel columns [col0, col1) and rows [row0, row1) of grid `t`."""
    x0, y0 = t @ (col0, row0)
    x1, y1 = t @ (col1, row1)
    return shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def _peer(path: str, bands: SceneBands, geoms_scene_crs: list[dict]) -> list[dict]:
    """rasterstats on an NDVI raster computed here, independently of the project's code."""
    with rasterio.open(path) as ds:
        raw = ds.read().astype(np.float64)
        transform = ds.transform
    red = raw[bands.red_band - 1] * bands.reflectance_scale
    nir = raw[bands.nir_band - 1] * bands.reflectance_scale
    valid = (raw[bands.red_band - 1] != 0) & (raw[bands.nir_band - 1] != 0)
    if bands.mask_band:
        valid &= np.isin(raw[bands.mask_band - 1], bands.mask_clear_values)
    valid &= (red > 0) & (nir > 0) & (red <= 1.5) & (nir <= 1.5)
    with np.errstate(divide="ignore", invalid="ignore"):
        ndvi = np.where(valid, (nir - red) / (nir + red), -999.0)
    with warnings.catch_warnings():  # rasterstats still multiplies affines with `*`
        warnings.filterwarnings("ignore", "Use `@` matmul", PendingDeprecationWarning)
        return rasterstats.zonal_stats(
            geoms_scene_crs, ndvi, affine=transform, nodata=-999.0, stats=["count", "mean"],
            all_touched=False,
        )  # fmt: skip


def _assert_agrees(ours: pd.DataFrame, fields: FieldSet, peer: list[dict]) -> None:
    by_id = ours.set_index("field_id")
    compared = 0
    for field_id, stats in zip(fields.field_ids, peer, strict=True):
        if field_id not in by_id.index:
            assert stats["count"] == 0, f"{field_id}: peer found pixels we did not look at"
            continue
        row = by_id.loc[field_id]
        assert row["valid_pixels"] == stats["count"], field_id
        if stats["count"]:
            assert row["ndvi_mean"] == pytest.approx(stats["mean"], abs=1e-6), field_id
            compared += 1
        else:
            assert np.isnan(row["ndvi_mean"]), field_id
    assert compared > 0


def test_hand_built_scene_gives_exact_counts_means_and_cover(tmp_path):
    red = np.full((10, 10), 0.1)
    nir = np.full((10, 10), 0.25)
    nir[:, :5] = 0.5  # left half greener
    mask = np.ones((10, 10))
    mask[0:2, 0:2] = 2  # cloud in the top-left corner
    path = _scene_file(tmp_path / "s.tif", red, nir, mask)
    fields = FieldSet(
        np.array(["green", "cloudy", "edge"]),
        [_box(1, 2, 5, 6), _box(0, 0, 3, 3), _box(8, 4, 12, 6)],  # edge: 2 of 4 columns outside
        CRS.from_user_input(UTM36S),
    )

    with Scene(_bands(path)) as scene:
        z = zonal_stats(scene, fields).set_index("field_id")

    assert z.loc["green", ["field_pixels", "valid_pixels"]].tolist() == [16, 16]
    assert z.loc["green", "ndvi_mean"] == pytest.approx((0.5 - 0.1) / (0.5 + 0.1), abs=1e-6)
    assert z.loc["green", "green_fraction"] == 1.0
    assert z.loc["cloudy", ["field_pixels", "valid_pixels"]].tolist() == [9, 5]
    assert z.loc["cloudy", "cover_fraction"] == pytest.approx(5 / 9)
    assert z.loc["edge", ["field_pixels", "valid_pixels"]].tolist() == [8, 4]
    assert z.loc["edge", "ndvi_mean"] == pytest.approx(0.15 / 0.35, abs=1e-6)
    assert z.loc["edge", "green_fraction"] == 0.0


def test_fully_clouded_field_has_pixels_but_no_valid_ones(tmp_path):
    mask = np.full((6, 6), 2)
    path = _scene_file(tmp_path / "s.tif", np.full((6, 6), 0.1), np.full((6, 6), 0.4), mask)
    fields = FieldSet(np.array(["f"]), [_box(1, 1, 4, 4)], CRS.from_user_input(UTM36S))

    with Scene(_bands(path)) as scene:
        z = zonal_stats(scene, fields)

    assert z[["field_pixels", "valid_pixels", "cover_fraction"]].iloc[0].tolist() == [9, 0, 0.0]
    assert z[["ndvi_mean", "evi_mean", "green_fraction"]].isna().all(axis=None)


def test_fields_away_from_the_scene_get_no_row(tmp_path):
    path = _scene_file(
        tmp_path / "s.tif", np.full((5, 5), 0.1), np.full((5, 5), 0.4), np.ones((5, 5))
    )
    fields = FieldSet(np.array(["far"]), [_box(100, 100, 104, 104)], CRS.from_user_input(UTM36S))

    with Scene(_bands(path)) as scene:
        assert zonal_stats(scene, fields).empty


def _random_scene(path, rng, shape, *, crs=UTM36S, transform=ORIGIN):
    red = rng.uniform(0.02, 0.2, shape)
    nir = rng.uniform(0.1, 0.6, shape)
    mask = np.where(rng.random(shape) < 0.25, 2, 1)
    red[rng.random(shape) < 0.05] = 0  # fill pixels
    return _scene_file(path, red, nir, mask, crs=crs, transform=transform)


def test_polygons_crossing_the_edge_and_overlapping_agree_with_rasterstats(tmp_path):
    rng = np.random.default_rng(3)
    path = _random_scene(tmp_path / "s.tif", rng, (60, 80))
    polys = []
    for _ in range(40):  # random triangles and boxes, many past the edges, many overlapping
        c, r = rng.uniform(-8, 88), rng.uniform(-8, 68)
        w, h = rng.uniform(2, 15, 2)
        if rng.random() < 0.5:
            polys.append(_box(c, r, c + w, r + h))
        else:
            polys.append(
                shapely.Polygon([ORIGIN @ (c, r), ORIGIN @ (c + w, r), ORIGIN @ (c, r + h)])
            )
    fields = FieldSet(np.array([f"f{i}" for i in range(40)]), polys, CRS.from_user_input(UTM36S))
    assert len(fields.layers) > 1  # the draw did produce overlaps

    with Scene(_bands(path)) as scene:
        ours = zonal_stats(scene, fields)
    peer = _peer(str(path), _bands(path), [shapely.geometry.mapping(p) for p in polys])

    _assert_agrees(ours, fields, peer)


@pytest.mark.parametrize("which", [0, 1, -1], ids=["first", "second_county", "last"])
def test_simulated_scene_agrees_with_rasterstats_for_wgs84_polygons(tiny_world, which):
    scenes = pd.read_parquet(tiny_world / "scenes.parquet")
    row = scenes.iloc[which]
    bands = SceneBands.from_row(tiny_world, row)
    boundaries = read_field_boundaries(tiny_world / "fields.geojson")
    fields = FieldSet(
        boundaries.properties["field_id"].to_numpy(), boundaries.geometry, boundaries.crs
    )

    with Scene(bands) as scene:
        ours = zonal_stats(scene, fields)
        crs = scene.crs
    moved = [
        transform_geom("EPSG:4326", crs, shapely.geometry.mapping(g)) for g in boundaries.geometry
    ]
    peer = _peer(str(bands.path), bands, moved)

    _assert_agrees(ours, fields, peer)
    assert (ours["cover_fraction"] < 1).any()  # some fields lie under cloud or fill


def test_real_sentinel2_scene_with_polygons_drawn_in_lon_lat(real_data, tmp_path):
    scenes = real_data / "scenes"
    vrt = make_vrt(
        tmp_path / "s2.vrt",
        scenes / "S2_19UDP_20170729_B04_900m.tif",
        scenes / "S2_19UDP_20170729_B08_900m.tif",
    )
    bands = SceneBands(path=vrt, red_band=1, nir_band=2, nodata=0, reflectance_scale=1e-4)
    rng = np.random.default_rng(5)
    lon, lat = rng.uniform(-70.5, -68.8, 30), rng.uniform(47.7, 48.8, 30)  # some past the tile
    polys = [shapely.box(x, y, x + 0.1, y + 0.07) for x, y in zip(lon, lat, strict=True)]
    fields = FieldSet(np.array([f"p{i}" for i in range(30)]), polys, CRS.from_epsg(4326))

    with Scene(bands) as scene:
        ours = zonal_stats(scene, fields)
        crs = scene.crs
    moved = [transform_geom("EPSG:4326", crs, shapely.geometry.mapping(p)) for p in polys]

    _assert_agrees(ours, fields, _peer(str(vrt), bands, moved))
    assert (ours["valid_pixels"] < ours["field_pixels"]).any()  # the tile's fill is not data


@pytest.mark.parametrize("epsg", [32736, 32735], ids=["own_utm_zone", "neighbour_zone"])
def test_real_rwanda_fields_on_a_scene_in_another_crs(real_data, tmp_path, epsg):
    boundaries = read_field_boundaries(real_data / "fields" / "rw_rwanda_2021.geojson")
    to_scene = Transformer.from_crs(4326, epsg, always_xy=True)
    x0, y0, x1, y1 = shapely.total_bounds(boundaries.geometry)
    xs, ys = to_scene.transform([x0, x1, x0, x1], [y0, y0, y1, y1])
    transform = Affine(10, 0, min(xs) - 200, 0, -10, max(ys) + 200)
    shape = (int((max(ys) - min(ys) + 400) / 10), int((max(xs) - min(xs) + 400) / 10))
    path = _random_scene(tmp_path / "rw.tif", np.random.default_rng(epsg), shape,
                         crs=f"EPSG:{epsg}", transform=transform)  # fmt: skip
    fields = FieldSet(
        boundaries.properties["id"].astype(str).to_numpy(), boundaries.geometry, boundaries.crs
    )

    with Scene(_bands(path)) as scene:
        ours = zonal_stats(scene, fields)
    moved = [transform_geom("EPSG:4326", f"EPSG:{epsg}", shapely.geometry.mapping(g))
             for g in boundaries.geometry]  # fmt: skip

    assert len(ours) == 30
    _assert_agrees(ours, fields, _peer(str(path), _bands(path), moved))
