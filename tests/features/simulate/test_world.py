"""The simulated world: reproducible, realistic rates, readable scenes, crop seasons in NDVI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from pyproj import Transformer
from rasterio.features import geometry_mask
from shapely import Polygon

from features.simulate.params import CROPS_BY_NAME
from features.simulate.world import simulate_world
from features.tables import TABLES
from tests.factories import TINY

DOCS = Path(__file__).resolve().parents[3] / "docs" / "simulation.md"
PUBLIC_TABLES = [t.name for t in TABLES if t.name != "fields"]


def _read_tables(world: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(world / f"{name}.parquet") for name in PUBLIC_TABLES}


def test_same_seed_gives_identical_tables_and_another_seed_does_not(tiny_world, tmp_path):
    again = tmp_path / "again"
    other = tmp_path / "other"
    simulate_world(TINY, again, progress=False)
    simulate_world(type(TINY)(**{**TINY.__dict__, "seed": TINY.seed + 1}), other, progress=False)

    first, second, third = _read_tables(tiny_world), _read_tables(again), _read_tables(other)

    for name in PUBLIC_TABLES:
        pd.testing.assert_frame_equal(first[name], second[name], obj=name)
    assert (tiny_world / "fields.geojson").read_text() == (again / "fields.geojson").read_text()
    assert not first["loans"].equals(third["loans"])


def test_switching_imagery_off_changes_no_table(tiny_world, tmp_path):
    tables_only = tmp_path / "tables_only"
    params = type(TINY)(**{**TINY.__dict__, "imagery_counties": 0})
    simulate_world(params, tables_only, progress=False)

    for name in PUBLIC_TABLES:
        if name != "scenes":
            pd.testing.assert_frame_equal(
                _read_tables(tiny_world)[name], _read_tables(tables_only)[name], obj=name
            )
    assert len(pd.read_parquet(tables_only / "scenes.parquet")) == 0


@pytest.mark.slow
def test_default_world_default_rate_and_oracle_auc_are_recorded(default_world):
    out, summary = default_world
    loans = pd.read_parquet(out / "loans.parquet")
    recorded = json.loads((out / "world.json").read_text())["summary"]
    documented = re.search(r"oracle AUC[^0-9]*([0-9]+\.[0-9]+)", DOCS.read_text())

    assert 0.04 <= loans.defaulted.mean() <= 0.15
    assert summary.default_rate == pytest.approx(loans.defaulted.mean(), rel=1e-12)
    assert recorded["oracle_auc"] == pytest.approx(summary.oracle_auc, rel=1e-12)
    assert 0.6 < summary.oracle_auc < 0.95
    assert documented, f"{DOCS} must record the default world's oracle AUC"
    assert float(documented.group(1)) == pytest.approx(summary.oracle_auc, abs=5e-4)


def test_scenes_open_with_plain_rasterio_and_describe_themselves(tiny_world):
    scenes = pd.read_parquet(tiny_world / "scenes.parquet")
    crs_seen = set()
    for rel in scenes.path:
        with rasterio.open(tiny_world / rel) as ds:
            crs_seen.add(ds.crs.to_epsg())
            assert ds.crs.is_projected
            assert ds.descriptions == ("red", "nir", "blue", "cloud_mask")
            assert ds.nodata == 0
            assert ds.profile["tiled"] and ds.compression is not None
    assert crs_seen == {32736, 32737}  # the two counties straddle a UTM zone boundary


def _field_ndvi_series(world: Path, field_id: str, county: str, year: int) -> pd.Series:
    """Mean NDVI of a field's clear pixels per scene of one season (computed apart from us)."""
    collection = json.loads((world / "fields.geojson").read_text())
    ring = next(
        f["geometry"]["coordinates"][0]
        for f in collection["features"]
        if f["properties"]["field_id"] == field_id
    )
    scenes = pd.read_parquet(world / "scenes.parquet")
    scenes = scenes[scenes.path.str.contains(f"/{county.lower()}/")]
    scenes = scenes[scenes.acquired_at.dt.year == year]
    values = {}
    for scene in scenes.itertuples():
        with rasterio.open(world / scene.path) as ds:
            to_scene = Transformer.from_crs(4326, ds.crs, always_xy=True)
            polygon = shapely.transform(
                Polygon(ring), lambda xy, t=to_scene: np.column_stack(t.transform(*xy.T))
            )
            inside = ~geometry_mask([polygon], ds.shape, ds.transform)
            red, nir, mask = (ds.read(b).astype(float) for b in (1, 2, 4))
        clear = inside & (mask == 1)
        if clear.sum() >= 0.5 * inside.sum():
            ndvi = (nir - red) / (nir + red)
            values[scene.acquired_at] = ndvi[clear].mean()
    return pd.Series(values).sort_index()


def test_ndvi_over_a_cultivated_field_follows_the_crop_season(tiny_world):
    truth = pd.read_parquet(tiny_world / "_truth" / "field_seasons.parquet")
    fields = pd.read_parquet(tiny_world / "_truth" / "fields.parquet").set_index("field_id")
    good = truth[
        (truth.season == 1)
        & ~truth.abandoned
        & (truth.cultivated_fraction > 0.85)
        & (truth.drought_loss == 0)
        & truth.field_id.map(fields.area_ha > 0.8)
    ].iloc[0]
    field = fields.loc[good.field_id]
    length = CROPS_BY_NAME[field.crop].season_days

    series = _field_ndvi_series(tiny_world, good.field_id, field.county, good.planted_at.year)
    days = (series.index - good.planted_at).days

    before_planting = series[days < 0]
    assert len(before_planting) >= 2 and before_planting.max() < 0.35
    assert series.max() > 0.55
    peak_day = days[np.argmax(series.to_numpy())]
    assert 0.35 * length <= peak_day <= 0.95 * length
