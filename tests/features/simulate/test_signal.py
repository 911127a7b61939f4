"""Each data source of the default world separates defaulters on its own.

The measures here are deliberately crude and computed apart from the product's feature
pipelines, so they show the signal is in the data, not in any one implementation.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from pyproj import Transformer
from rasterio.features import rasterize

from features.simulate.metrics import roc_auc
from tests.factories import world_contracts

MIN_AUC = 0.55


def _best_auc(defaulted: pd.Series, measures: dict[str, pd.Series]) -> tuple[str, float]:
    """The measure that best separates defaulters, in either direction."""
    aucs = {}
    for name, values in measures.items():
        auc = roc_auc(defaulted.to_numpy(), values.fillna(values.median()).to_numpy())
        aucs[name] = max(auc, 1 - auc)
    best = max(aucs, key=aucs.get)
    return best, aucs[best]


def _order_measures(world: Path, loans: pd.DataFrame) -> dict[str, pd.Series]:
    orders = pd.read_parquet(world / "orders.parquet")
    joined = loans[["loan_id", "farmer_id", "applied_at"]].merge(orders, on="farmer_id")
    window = joined[
        (joined.placed_at < joined.applied_at)
        & (joined.placed_at >= joined.applied_at - pd.Timedelta(days=365))
    ]
    by_loan = window.groupby("loan_id")
    volume = by_loan.amount_minor.sum().reindex(loans.loan_id).fillna(0)
    refund = by_loan.status.apply(lambda s: (s != "completed").mean()).reindex(loans.loan_id)
    return {
        "sales_365d": volume.set_axis(loans.index),
        "not_completed_share": refund.set_axis(loans.index),
    }


def _contract_measures(world: Path, loans: pd.DataFrame) -> dict[str, pd.Series]:
    contracts = world_contracts(world).set_index("contract_id")
    buyers = pd.read_parquet(world / "buyers.parquet").set_index("buyer_id")
    farmers = pd.read_parquet(world / "farmers.parquet").set_index("farmer_id")
    fields = pd.DataFrame(
        [f["properties"] for f in json.loads((world / "fields.geojson").read_text())["features"]]
    )
    c = contracts.reindex(loans.contract_id).reset_index()
    area = fields.groupby(["farmer_id", "crop"]).declared_area_ha.sum()
    own = area.reindex(pd.MultiIndex.from_arrays([loans.farmer_id, c.crop])).to_numpy()
    fields["coop_id"] = fields.farmer_id.map(farmers.coop_id)
    coop_area = fields.groupby(["coop_id", "crop"]).declared_area_ha.sum()
    party = np.where(
        c.party_type == "coop",
        coop_area.reindex(pd.MultiIndex.from_arrays([c.coop_id, c.crop])).to_numpy(),
        own,
    )
    share_value = c.quantity_kg * c.price_per_kg_minor * own / party
    grade = c.buyer_id.map(buyers.grade).map({"A": 0, "B": 1, "C": 2, "D": 3}).astype(float)
    return {
        "buyer_grade": grade.set_axis(loans.index),
        "amount_over_receivable": (loans.amount_minor / share_value.set_axis(loans.index)),
    }


def _field_peak_ndvi(world: Path, year: int) -> pd.Series:
    """Per field, the highest clear-sky mean NDVI over one season's scenes."""
    collection = json.loads((world / "fields.geojson").read_text())
    ids = [f["properties"]["field_id"] for f in collection["features"]]
    rings = [np.array(f["geometry"]["coordinates"][0]) for f in collection["features"]]
    scenes = pd.read_parquet(world / "scenes.parquet")
    scenes = scenes[scenes.acquired_at.dt.year == year]
    peak = np.full(len(ids) + 1, np.nan)
    index_cache: dict[str, np.ndarray] = {}
    for scene in scenes.itertuples():
        with rasterio.open(world / scene.path) as ds:
            county = Path(scene.path).parent.name
            if county not in index_cache:
                to_scene = Transformer.from_crs(4326, ds.crs, always_xy=True)
                shapes = (
                    (shapely.Polygon(np.column_stack(to_scene.transform(*r.T))), i + 1)
                    for i, r in enumerate(rings)
                )
                index_cache[county] = rasterize(
                    shapes, out_shape=ds.shape, transform=ds.transform, dtype="int32"
                )
            red, nir, mask = (ds.read(b).astype(float) for b in (1, 2, 4))
        idx = index_cache[county]
        clear = (mask == 1) & (idx > 0)
        with np.errstate(invalid="ignore", divide="ignore"):  # fill pixels are 0/0
            ndvi = (nir - red) / (nir + red)
        n = np.bincount(idx[clear], minlength=len(peak))
        total = np.bincount(idx[clear], weights=ndvi[clear], minlength=len(peak))
        all_px = np.bincount(idx[idx > 0], minlength=len(peak))
        mean = np.where(n >= 0.8 * np.maximum(all_px, 1), total / np.maximum(n, 1), np.nan)
        peak = np.fmax(peak, mean)
    return pd.Series(peak[1:], index=ids)


def _satellite_measures(world: Path, loans: pd.DataFrame) -> dict[str, pd.Series]:
    fields = json.loads((world / "fields.geojson").read_text())["features"]
    owner = pd.Series({f["properties"]["field_id"]: f["properties"]["farmer_id"] for f in fields})
    out = pd.Series(np.nan, index=loans.index)
    for year in sorted(loans.applied_at.dt.year.unique())[1:]:
        peak = _field_peak_ndvi(world, year - 1).groupby(owner).mean()
        this_year = loans.applied_at.dt.year == year
        out[this_year] = loans.farmer_id[this_year].map(peak)
    return {"last_season_peak_ndvi": out}


@pytest.mark.slow
def test_each_source_alone_separates_defaulters(default_world):
    world, _ = default_world
    loans = pd.read_parquet(world / "loans.parquet")
    later = loans[loans.applied_at.dt.year > loans.applied_at.dt.year.min()].reset_index(drop=True)

    results = {
        "orders": _best_auc(loans.defaulted, _order_measures(world, loans)),
        "contracts": _best_auc(loans.defaulted, _contract_measures(world, loans)),
        "satellite": _best_auc(later.defaulted, _satellite_measures(world, later)),
    }

    print({source: f"{name} AUC {auc:.3f}" for source, (name, auc) in results.items()})
    weak = {source: r for source, r in results.items() if r[1] <= MIN_AUC}
    assert weak == {}
