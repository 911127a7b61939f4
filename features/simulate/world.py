"""Build a whole simulated world and write it as a data directory a deployment would load.

Steps draw from independent random streams spawned from the seed, so a world is fully
reproducible and, e.g., switching imagery off leaves every table unchanged.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from features.simulate.arrivals import contract_versions, recorded_at
from features.simulate.calendar import extracted_at
from features.simulate.contracts import ContractBook, build_contracts
from features.simulate.extraction import known_at
from features.simulate.geography import CountyGrid, lay_out_fields, write_fields_geojson
from features.simulate.ids import id_width, make_ids
from features.simulate.imagery import (
    iter_county_scenes,
    scene_dates,
    scene_row,
    write_scene,
)
from features.simulate.loans import LoanBook, build_loans
from features.simulate.markets import (
    Markets,
    build_buyers,
    build_prices,
    build_suppliers,
)
from features.simulate.metrics import roc_auc
from features.simulate.orders import build_orders
from features.simulate.params import WorldParams
from features.simulate.population import Population, build_population
from features.simulate.seasons import build_county_seasons, build_field_seasons
from features.store import atomic_directory, write_table
from features.tables import FIELDS_FILE, get_table
from features.versions import latest_versions

log = logging.getLogger(__name__)

TRUTH_DIR = "_truth"
STREAMS = (
    "population",
    "geography",
    "markets",
    "seasons",
    "contracts",
    "loans",
    "orders",
    "imagery",
    "arrivals",  # last: the streams before it draw exactly as they did without it
)


@dataclass(frozen=True)
class WorldSummary:
    """Headline figures of a simulated world."""

    out: str
    farmers: int
    fields: int
    orders: int
    contracts: int
    loans: int
    scenes: int
    default_rate: float
    oracle_auc: float
    extracted_at: str


@dataclass
class _World:
    population: Population
    markets: Markets
    county_seasons: pd.DataFrame
    field_seasons: pd.DataFrame
    book: ContractBook
    loans: LoanBook
    orders: pd.DataFrame
    corners: np.ndarray
    grids: dict[str, CountyGrid]


def _draw(params: WorldParams, rngs: dict[str, np.random.Generator], bar: tqdm) -> _World:
    def step(name: str) -> None:
        bar.set_postfix_str(name)
        bar.update(1)

    population = build_population(params, rngs["population"])
    step("population")
    corners, grids = lay_out_fields(
        population.fields, population.counties, params.pixel_size_m, rngs["geography"]
    )
    step("field boundaries")
    prices, shocks = build_prices(params, rngs["markets"])
    markets = Markets(
        prices,
        shocks,
        build_buyers(params, rngs["markets"]),
        build_suppliers(population.counties, rngs["markets"]),
    )
    step("markets")
    county_seasons = build_county_seasons(params, population, rngs["seasons"])
    field_seasons = build_field_seasons(params, population, county_seasons, rngs["seasons"])
    step("seasons")
    book = build_contracts(
        params, population, markets, county_seasons, field_seasons, rngs["contracts"]
    )
    step("contracts")
    loans = build_loans(params, population, book, field_seasons, county_seasons, rngs["loans"])
    step("loans")
    orders = build_orders(params, population, field_seasons, rngs["orders"])
    step("orders")
    return _World(
        population, markets, county_seasons, field_seasons, book, loans, orders, corners, grids
    )


def _write_tables(
    world: _World, out: Path, rng: np.random.Generator, extracted: pd.Timestamp
) -> dict[str, pd.DataFrame]:
    """Write the public tables as known at `extracted` and the truth; the tables written."""
    pop = world.population
    tables = {
        "coops": pop.coops,
        "farmers": pop.farmers,
        "orders": world.orders,
        "buyers": world.markets.buyers,
        "contracts": world.book.contracts,
        "market_prices": world.markets.prices,
        "suppliers": world.markets.suppliers,
        "loans": world.loans.loans,
        "repayments": world.loans.repayments,
    }
    written = {}
    for name, frame in tables.items():
        if name == "contracts":
            frame = contract_versions(frame, rng)
        elif (arrived := recorded_at(name, frame, rng)) is not None:
            frame = frame.assign(recorded_at=arrived)
        known, spec = known_at(name, frame, extracted), get_table(name)
        write_table(known, spec, out / f"{name}.parquet")
        written[name] = latest_versions(name, spec.key, known)  # each fact as it stands
    write_fields_geojson(out / FIELDS_FILE, pop.fields, world.corners)
    truth = out / TRUTH_DIR
    truth.mkdir()
    pop.farmers.to_parquet(truth / "farmers.parquet")
    pop.fields.to_parquet(truth / "fields.parquet")
    world.markets.buyers.to_parquet(truth / "buyers.parquet")
    world.markets.harvest_shocks.to_parquet(truth / "harvest_shocks.parquet")
    world.county_seasons.to_parquet(truth / "county_seasons.parquet")
    world.field_seasons.to_parquet(truth / "field_seasons.parquet")
    world.book.parties.to_parquet(truth / "contract_parties.parquet")
    world.loans.loans.to_parquet(truth / "loans.parquet")
    return written


def _write_scenes(
    params: WorldParams, world: _World, out: Path, rngs: dict[str, np.random.Generator],
    bar: tqdm,
) -> pd.DataFrame:  # fmt: skip
    rng = rngs["imagery"]
    rows = []
    counties = world.population.counties
    for number, county in enumerate(counties.itertuples()):
        if not county.imaged:
            continue
        scenes = iter_county_scenes(
            params,
            world.grids[county.county],
            number,
            world.population.fields,
            world.field_seasons,
            world.county_seasons,
            rng,
        )
        for when, bands in scenes:
            rel = f"scenes/{county.county.lower()}/{county.county}_{when:%Y%m%d}.tif"
            write_scene(out / rel, bands, world.grids[county.county], when)
            rows.append(scene_row("", when, rel))
            bar.update(1)
    frame = pd.DataFrame(rows, columns=list(scene_row("", pd.Timestamp(0, tz="UTC"), "")))
    frame = frame.sort_values(["acquired_at", "path"], ignore_index=True)
    frame["scene_id"] = make_ids("S2SIM-", np.arange(len(frame)), id_width(len(frame)))
    frame["recorded_at"] = recorded_at("scenes", frame, rngs["arrivals"])
    known = known_at("scenes", frame, extracted_at(params))
    for path in frame["path"][~frame["scene_id"].isin(known["scene_id"])]:
        (out / path).unlink()  # acquired, but delivered after the extraction
    write_table(known, get_table("scenes"), out / "scenes.parquet")
    return known


def simulate_world(params: WorldParams, out: Path | str, *, progress: bool = True) -> WorldSummary:
    """Simulate a world from `params` and write it to `out` (replaced atomically).

    Returns:
        Counts, the loan default rate and the oracle AUC (true_pd against outcomes).
    """
    out = Path(out)
    rngs = dict(
        zip(
            STREAMS,
            (
                np.random.default_rng(s)
                for s in np.random.SeedSequence(params.seed).spawn(len(STREAMS))
            ),
            strict=True,
        )
    )
    n_scenes = sum(len(scene_dates(params, i)) for i in range(params.imaged_counties))
    with tqdm(
        total=7 + 1 + n_scenes,
        desc="simulating world",
        unit="step",
        disable=not progress,
        leave=False,
    ) as bar:
        world = _draw(params, rngs, bar)
        with atomic_directory(out) as staging:
            written = _write_tables(world, staging, rngs["arrivals"], extracted_at(params))
            bar.set_postfix_str("tables written")
            bar.update(1)
            bar.set_postfix_str("scenes")
            scenes = _write_scenes(params, world, staging, rngs, bar)
            counts = {name: len(frame) for name, frame in written.items()}
            summary = _summarise(params, world, out, counts | {"scenes": len(scenes)})
            described = {
                "params": asdict(params),
                "summary": asdict(summary),
                "example_application": example_application(written),
            }
            (staging / "world.json").write_text(json.dumps(described, indent=2, default=str))
    log.info("simulated world at %s: %s", out, summary)
    return summary


def example_application(tables: dict[str, pd.DataFrame]) -> dict[str, object] | None:
    """An application a lender could send at the extraction: a farmer with an active
    contract of their own from a buyer of grade A-C, no loan left unpaid and a year of
    sales behind them, asking for seed and fertiliser from approved suppliers of their
    county (the demo prints it). None when no contract is active then."""
    contracts, loans = tables["contracts"], tables["loans"]
    active = contracts[(contracts.status == "active") & (contracts.party_type == "farmer")]
    if active.empty:
        return None
    grade = active.buyer_id.map(tables["buyers"].set_index("buyer_id").grade)
    paid = loans.loan_id.map(tables["repayments"].groupby("loan_id").amount_minor.sum())
    owing = set(loans.farmer_id[paid.fillna(0) < loans.amount_minor])
    orders = tables["orders"]
    sold = orders[orders.placed_at >= orders.placed_at.max() - pd.Timedelta(days=365)]
    sales = active.farmer_id.map(sold.farmer_id.value_counts()).fillna(0)
    good = active[(grade != "D") & ~active.farmer_id.isin(owing) & (sales >= 24)]
    contract = (good if len(good) else active).sort_values(["farmer_id", "contract_id"]).iloc[0]
    farmers = tables["farmers"].set_index("farmer_id")
    approved = tables["suppliers"][tables["suppliers"].approved]
    local = approved[approved.county == farmers.county[contract.farmer_id]]

    def supplier(category: str) -> str:
        of = local[local.category == category]
        of = of if len(of) else approved[approved.category == category]
        return str((of if len(of) else approved).supplier_id.iloc[0])

    value = contract.quantity_kg * contract.price_per_kg_minor
    asked = int(max(min(1_500_000, value * 0.3) // 100_000, 1) * 100_000)
    seed = asked * 3 // 5
    return {
        "farmer_id": str(contract.farmer_id),
        "contract_id": str(contract.contract_id),
        "requested_minor": asked,
        "inputs": [
            {"supplier_id": supplier("seed"), "item": f"{contract.crop} seed",
             "amount_minor": seed},
            {"supplier_id": supplier("fertiliser"), "item": "NPK fertiliser",
             "amount_minor": asked - seed},
        ],
    }  # fmt: skip


def _summarise(
    params: WorldParams, world: _World, out: Path, written: dict[str, int]
) -> WorldSummary:
    loans = world.loans.loans  # the default rate and the oracle: outcomes as they turn out
    return WorldSummary(
        out=str(out),
        farmers=len(world.population.farmers),
        fields=len(world.population.fields),
        orders=written["orders"],
        contracts=written["contracts"],
        loans=written["loans"],
        scenes=written["scenes"],
        default_rate=float(loans.defaulted.mean()),
        oracle_auc=roc_auc(loans.defaulted.to_numpy(), loans.true_pd.to_numpy()),
        extracted_at=extracted_at(params).isoformat(),
    )
