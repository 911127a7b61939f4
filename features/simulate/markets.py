"""Markets: weekly crop prices with a harvest-price shock, buyers and input suppliers.

The harvest-price shock of a crop and season is drawn once; it builds up from mid-season
to harvest, so at application time it is still unknown — the root of side-selling risk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.simulate.calendar import day_of_year, extracted_at, history_start
from features.simulate.ids import id_width, make_ids
from features.simulate.params import CROP_PARAMS, WorldParams

SHOCK_START_DOY = 130  # 10 May: the harvest price starts to move
HARVEST_DOY = 206  # 25 July
SHOCK_FADES_DOY = 41 + 365  # 10 February next year


@dataclass
class Markets:
    """Market prices (with the seasonal shocks behind them), buyers and suppliers."""

    prices: pd.DataFrame  # crop, observed_at, price_per_kg_minor
    harvest_shocks: pd.DataFrame  # crop, season, shock (log)
    buyers: pd.DataFrame  # buyer_id, name, grade, registered_at + latent reliability
    suppliers: pd.DataFrame


def shock_ramp(doy_since_season_start: np.ndarray) -> np.ndarray:
    """How much of a season's harvest-price shock is in the price on that day of its year."""
    d = doy_since_season_start
    up = np.clip((d - SHOCK_START_DOY) / (HARVEST_DOY - SHOCK_START_DOY), 0, 1)
    down = np.clip((SHOCK_FADES_DOY - d) / (SHOCK_FADES_DOY - HARVEST_DOY), 0, 1)
    return up * down


def seasonal_log_price(day_of_year: np.ndarray) -> np.ndarray:
    """Log-price swing over the year: dear before harvest, cheap after."""
    return 0.10 * np.cos(2 * np.pi * (day_of_year - 130) / 365)


def price_factor(params: WorldParams, shocks: np.ndarray, when: pd.DatetimeIndex) -> np.ndarray:
    """Multiplier on the long-run price at `when` for one crop (shocks: one per season)."""
    doy = when.day_of_year.to_numpy(dtype=float)
    seasonal = seasonal_log_price(doy)
    factor = seasonal.copy()
    for s, shock in enumerate(shocks):
        start = day_of_year(params.first_year + s, 1)
        since = (when - start).days.to_numpy(dtype=float) + 1
        factor += shock * shock_ramp(since)
    return np.exp(factor)


def build_prices(
    params: WorldParams, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Weekly wholesale prices per crop and the harvest shocks behind them."""
    weeks = pd.date_range(history_start(params), extracted_at(params), freq="7D")
    n_shock_seasons = params.seasons + 1
    frames, shocks = [], []
    for crop in CROP_PARAMS:
        shock = params.harvest_price_sd * rng.standard_normal(n_shock_seasons)
        noise = np.exp(0.02 * rng.standard_normal(len(weeks)))
        price = crop.price_per_kg_minor * price_factor(params, shock, weeks) * noise
        frames.append(
            pd.DataFrame(
                {
                    "crop": crop.name,
                    "observed_at": weeks,
                    "price_per_kg_minor": np.round(price).astype("int64"),
                }
            )
        )
        shocks.append(
            pd.DataFrame({"crop": crop.name, "season": np.arange(n_shock_seasons), "shock": shock})
        )
    return pd.concat(frames, ignore_index=True), pd.concat(shocks, ignore_index=True)


def build_buyers(params: WorldParams, rng: np.random.Generator) -> pd.DataFrame:
    """Buyers with a latent probability of paying and a grade that only hints at it."""
    n = max(6, round(params.farmers * params.buyers_per_farmer))
    shaky = rng.random(n) < params.shaky_buyer_share
    reliability = np.where(shaky, rng.uniform(0.60, 0.85, n), rng.uniform(0.965, 0.995, n))
    signal = np.log(reliability / (1 - reliability)) + 0.7 * rng.standard_normal(n)
    grade = np.array(["D", "C", "B", "A"])[
        np.searchsorted(np.quantile(signal, [0.2, 0.45, 0.7]), signal)
    ]
    return pd.DataFrame(
        {
            "buyer_id": make_ids("B", np.arange(n), id_width(n)),
            "name": [f"Buyer {i + 1} Ltd" for i in range(n)],
            "grade": grade,
            "registered_at": pd.Timestamp(f"{params.first_year - 2}-01-01", tz="UTC"),
            "reliability": reliability,
            "generosity": rng.uniform(0.85, 1.12, n),  # contract price / market price
        }
    )


def build_suppliers(counties: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Input suppliers per county and category; most are approved."""
    categories = ["seed", "fertiliser", "crop_protection", "tools"]
    rows = [(county, cat) for county in counties.county for cat in categories for _ in range(2)]
    n = len(rows)
    approved = rng.random(n) < 0.85
    return pd.DataFrame(
        {
            "supplier_id": make_ids("S", np.arange(n), id_width(n)),
            "name": [
                f"{county} {cat.replace('_', ' ').title()} Supplies {i % 2 + 1}"
                for i, (county, cat) in enumerate(rows)
            ],
            "county": [r[0] for r in rows],
            "category": [r[1] for r in rows],
            "approved": approved,
            "approved_at": pd.Series(pd.Timestamp("2020-01-15", tz="UTC"), index=range(n)).where(
                approved
            ),
        }
    )
