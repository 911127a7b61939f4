"""E-commerce orders the farmer sells through the platform's shop.

Monthly order counts follow wealth, skill, a personal trend and the harvest calendar, and
fall after a drought. Refunds, cancellations, ratings and repeat customers follow
diligence. Farmers without a shop have no orders at all: a thin file, not an error.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.simulate.calendar import extracted_at, history_start
from features.simulate.ids import id_width, make_ids
from features.simulate.params import CROPS_BY_NAME, WorldParams
from features.simulate.population import Population, sigmoid

SIDE_PRODUCE = {"vegetables": 6_000, "fruit": 8_000, "eggs": 25_000, "milk": 6_500}
HARVEST_MONTHS = {7: 1.5, 8: 1.7, 9: 1.5, 10: 1.2}


def _farmer_months(
    params: WorldParams,
    population: Population,
    field_seasons: pd.DataFrame,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Expected orders per shop-owning farmer and month."""
    farmers = population.farmers[population.farmers.has_shop].reset_index(drop=True)
    months = pd.date_range(history_start(params), extracted_at(params), freq="MS")
    n_f, n_m = len(farmers), len(months)
    fm = pd.DataFrame(
        {
            "farmer": np.repeat(np.arange(n_f), n_m),
            "month": np.tile(months, n_f),
        }
    )
    f = farmers.iloc[fm.farmer]
    years = (fm.month - months[0]).dt.days.to_numpy() / 365
    trend = np.repeat(0.12 * farmers.skill.to_numpy() + 0.1 * rng.standard_normal(n_f), n_m)
    rate = np.exp(0.9 + 0.45 * f.wealth.to_numpy() + 0.25 * f.skill.to_numpy() + trend * years)
    rate *= fm.month.dt.month.map(HARVEST_MONTHS).fillna(1.0).to_numpy()
    # after a bad harvest there is less to sell until the next one
    harvest = field_seasons.merge(population.fields[["field_id", "farmer_id"]], on="field_id")
    drought = harvest.groupby(["farmer_id", "season"]).drought_loss.mean()
    season_of_month = (
        fm.month.dt.year - params.first_year - (fm.month.dt.month < 7).astype(int)
    ).to_numpy()
    loss = drought.reindex(
        pd.MultiIndex.from_arrays([f.farmer_id.to_numpy(), season_of_month])
    ).fillna(0.0)
    rate *= 1 - 0.6 * loss.to_numpy()
    next_month = fm.month + pd.offsets.MonthBegin(1)
    rate *= (next_month > pd.DatetimeIndex(f.shop_opened_at)).to_numpy()
    return fm.assign(
        rate=rate,
        farmer_id=f.farmer_id.to_numpy(),
        shop_opened_at=f.shop_opened_at.to_numpy(),
        diligence=f.diligence.to_numpy(),
        wealth=f.wealth.to_numpy(),
    )


def _customers(
    farmer: np.ndarray, repeat_share: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Customer number within each farmer: repeat customers reuse an earlier number."""
    n = len(farmer)
    first = np.r_[True, farmer[1:] != farmer[:-1]]
    is_new = first | (rng.random(n) >= repeat_share)
    new_count = np.cumsum(is_new)
    start = np.maximum.accumulate(np.where(first, new_count - 1, 0))
    seen = new_count - start  # customers met so far, this one included
    pick = np.floor(rng.random(n) * np.maximum(seen - 1, 1)).astype(np.int64)
    return np.where(is_new, seen - 1, pick)


def build_orders(
    params: WorldParams,
    population: Population,
    field_seasons: pd.DataFrame,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Every order of every shop, sorted by time of placement."""
    fm = _farmer_months(params, population, field_seasons, rng)
    counts = rng.poisson(fm.rate.to_numpy())
    rows = np.repeat(np.arange(len(fm)), counts)
    n = len(rows)
    o = (
        fm[["month", "farmer", "farmer_id", "shop_opened_at", "wealth", "diligence"]]
        .iloc[rows]
        .reset_index(drop=True)
    )
    o["farmer_id"] = o.farmer_id.astype("category")
    days_in_month = o.month.dt.days_in_month.to_numpy()
    placed = o.month + pd.to_timedelta(rng.random(n) * days_in_month * 86_400, unit="s")
    keep = (placed >= o.shop_opened_at) & (placed < extracted_at(params))
    o, placed = o[keep].reset_index(drop=True), placed[keep].reset_index(drop=True)
    rows, n = rows[keep.to_numpy()], int(keep.sum())
    main = population.fields[population.fields.is_main].set_index("farmer_id").crop
    main_crop = o.farmer_id.map(main).to_numpy()
    side = rng.choice(list(SIDE_PRODUCE), n)
    category = np.where(rng.random(n) < 0.65, main_crop, side)
    unit_price = pd.Series(category).map(
        {**{k: c.price_per_kg_minor for k, c in CROPS_BY_NAME.items()}, **SIDE_PRODUCE}
    )
    quantity = (
        np.round(np.exp(np.log(30) + 0.3 * o.wealth.to_numpy() + 0.6 * rng.standard_normal(n)), 1)
        + 0.5
    )
    amount = np.round(quantity * unit_price.to_numpy() * rng.uniform(1.0, 1.3, n)).astype("int64")
    dil = o.diligence.to_numpy()
    u = rng.random(n)
    refunded = u < sigmoid(-3.4 - 0.7 * dil)
    cancelled = ~refunded & (u < sigmoid(-3.4 - 0.7 * dil) + sigmoid(-3.0 - 0.5 * dil))
    status = np.where(refunded, "refunded", np.where(cancelled, "cancelled", "completed"))
    stars = np.clip(
        np.round(4.2 + 0.45 * dil + 0.7 * rng.standard_normal(n) - 1.5 * refunded), 1, 5
    )
    rated = ~cancelled & (rng.random(n) < 0.6)
    orders = pd.DataFrame(
        {
            "farmer_id": o.farmer_id.to_numpy(),
            "placed_at": placed.dt.floor("s"),
            "category": pd.Categorical(category),
            "quantity_kg": quantity,
            "amount_minor": amount,
            "status": pd.Categorical(status),
            "rating": np.where(rated, stars, np.nan),
            "_farmer": o.farmer.to_numpy(),
        }
    ).sort_values(["_farmer", "placed_at"], kind="stable", ignore_index=True)
    customer = _customers(
        orders._farmer.to_numpy(), sigmoid(-0.3 + 0.9 * fm.diligence.to_numpy()[rows]), rng
    )
    orders["customer_id"] = make_ids("U", orders._farmer.to_numpy() * 10_000 + customer, 10)
    orders = orders.drop(columns="_farmer").sort_values(
        "placed_at", kind="stable", ignore_index=True
    )
    orders.insert(0, "order_id", make_ids("O", np.arange(len(orders)), id_width(len(orders))))
    return orders
