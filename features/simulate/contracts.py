"""Supply-chain contracts: who signs with which buyer, and what is delivered and paid.

Co-ops sign one contract per season for their main crop on behalf of the members who
grow it; other farmers sign alone. Buyers size contracts from declared areas. At harvest a
farmer may side-sell when the market pays more than the contract; a buyer may fail to pay.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.simulate.calendar import season_year, signing_opens
from features.simulate.ids import id_width, make_ids
from features.simulate.markets import Markets, seasonal_log_price, shock_ramp
from features.simulate.params import CROPS_BY_NAME, WorldParams
from features.simulate.population import Population, sigmoid

DELIVERY_WINDOW_DAYS = 30


@dataclass
class ContractBook:
    """Contracts (public columns plus season) and each party's share and outcome."""

    contracts: pd.DataFrame
    parties: pd.DataFrame  # one row per farmer under a contract in a season


def _market_price(markets: Markets, crop: np.ndarray, when: pd.Series) -> np.ndarray:
    prices = markets.prices.sort_values("observed_at")
    out = np.empty(len(crop))
    for name in np.unique(crop):
        sel = crop == name
        series = prices[prices.crop == name]
        idx = np.searchsorted(series.observed_at.to_numpy(), when[sel].to_numpy(), side="right")
        out[sel] = series.price_per_kg_minor.to_numpy()[np.maximum(idx - 1, 0)]
    return out


def _parties_for_season(
    params: WorldParams, population: Population, season: int, rng: np.random.Generator
) -> pd.DataFrame:
    """Farmers under contract in `season`, with the crop and declared area they offer."""
    year = season_year(params, season)
    farmers = population.farmers
    fields = population.fields
    coop_crop = population.coops.set_index("coop_id").main_crop
    main = fields[fields.is_main].set_index("farmer_id")
    crop = farmers.coop_id.map(coop_crop).fillna(farmers.farmer_id.map(main.crop))
    declared = (
        fields.assign(key=fields.farmer_id + "|" + fields.crop)
        .groupby("key")
        .declared_area_ha.sum()
    )
    area = (farmers.farmer_id + "|" + crop).map(declared).fillna(0.0)
    signing_by = signing_opens(params, year) + pd.Timedelta(days=params.signing_days)
    eligible = (farmers.registered_at < signing_by) & (area > 0)
    alone = farmers.coop_id.isna() & (rng.random(len(farmers)) < params.individual_contract_share)
    under = eligible & (farmers.coop_id.notna() | alone)
    return pd.DataFrame(
        {
            "farmer_id": farmers.farmer_id[under].to_numpy(),
            "coop_id": farmers.coop_id[under].to_numpy(),
            "county": farmers.county[under].to_numpy(),
            "crop": crop[under].to_numpy(),
            "declared_ha": area[under].to_numpy(),
            "season": season,
        }
    )


def _sign(
    params: WorldParams,
    parties: pd.DataFrame,
    markets: Markets,
    county_seasons: pd.DataFrame,
    season: int,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """One contract per co-op (its members) or per lone farmer; set each party's share."""
    year = season_year(params, season)
    party_key = parties.coop_id.fillna(parties.farmer_id)
    groups = parties.assign(party_key=party_key).groupby("party_key", sort=True)
    agg = groups.agg(
        crop=("crop", "first"),
        county=("county", "first"),
        declared_ha=("declared_ha", "sum"),
        coop_id=("coop_id", "first"),
        farmer_id=("farmer_id", "first"),
    )
    n = len(agg)
    buyers = markets.buyers
    buyer = rng.integers(0, len(buyers), n)
    signed = signing_opens(params, year) + pd.to_timedelta(
        rng.uniform(0, params.signing_days, n), unit="D"
    )
    signed = pd.Series(signed.floor("h"), index=agg.index)
    yield_kg = agg.crop.map({k: c.yield_kg_ha for k, c in CROPS_BY_NAME.items()})
    quantity = np.round(agg.declared_ha * yield_kg * rng.uniform(*params.contracted_share, n))
    market = _market_price(markets, agg.crop.to_numpy(), signed)
    price = np.round(market * buyers.generosity.to_numpy()[buyer] * rng.uniform(0.97, 1.03, n))
    planting = county_seasons[county_seasons.season == season].set_index("county").planting_at
    days = agg.crop.map({k: c.season_days for k, c in CROPS_BY_NAME.items()})
    start = (
        agg.county.map(planting) + pd.to_timedelta(days + rng.uniform(5, 15, n), unit="D")
    ).dt.floor("D")
    is_coop = agg.coop_id.notna()
    return pd.DataFrame(
        {
            "party_key": agg.index,
            "buyer_id": buyers.buyer_id.to_numpy()[buyer],
            "party_type": np.where(is_coop, "coop", "farmer"),
            "farmer_id": agg.farmer_id.where(~is_coop).to_numpy(),
            "coop_id": agg.coop_id.to_numpy(),
            "crop": agg.crop.to_numpy(),
            "quantity_kg": quantity.to_numpy(),
            "price_per_kg_minor": price.astype("int64"),
            "signed_at": signed.to_numpy(),
            "delivery_start": start.to_numpy(),
            "delivery_end": (start + pd.Timedelta(days=DELIVERY_WINDOW_DAYS)).to_numpy(),
            "season": season,
            "county": agg.county.to_numpy(),
            "declared_ha": agg.declared_ha.to_numpy(),
            "buyer_reliability": buyers.reliability.to_numpy()[buyer],
        }
    )


def _deliver(
    params: WorldParams,
    parties: pd.DataFrame,
    field_seasons: pd.DataFrame,
    population: Population,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Each party's production of the contracted crop, side-selling and delivery."""
    fs = field_seasons.merge(population.fields[["field_id", "farmer_id", "crop"]], on="field_id")
    produced = fs.groupby(["farmer_id", "crop", "season"]).production_kg.sum()
    key = pd.MultiIndex.from_frame(parties[["farmer_id", "crop", "season"]])
    production = produced.reindex(key).fillna(0.0).to_numpy()
    risk = params.risk
    diligence = parties.farmer_id.map(population.farmers.set_index("farmer_id").diligence)
    p_side = sigmoid(
        risk.side_sell_intercept
        + risk.side_sell_price_gap * (parties.price_ratio.to_numpy() - 1)
        + risk.side_sell_diligence * diligence.to_numpy()
    )
    side = rng.random(len(parties)) < p_side
    kept = np.where(side, rng.uniform(0, 0.2, len(parties)), rng.uniform(0.93, 1.0, len(parties)))
    delivered = np.minimum(production, parties.share_kg.to_numpy()) * kept
    return parties.assign(
        production_kg=production, side_sold=side, delivered_kg=np.round(delivered, 1)
    )


def _close(
    contracts: pd.DataFrame, parties: pd.DataFrame, rng: np.random.Generator
) -> pd.DataFrame:
    """Close delivered contracts and draw whether (and when) the buyer paid."""
    delivered = parties.groupby("contract_id").delivered_kg.sum()
    c = contracts.set_index("contract_id")
    n = len(c)
    closed_at = (c.delivery_end + pd.to_timedelta(rng.uniform(0, 7, n), unit="D")).dt.floor("h")
    due = closed_at + pd.Timedelta(days=21)
    paid = rng.random(n) < c.buyer_reliability
    late = pd.to_timedelta(np.minimum(rng.geometric(0.25, n) - 1, 40), unit="D")
    kg = delivered.reindex(c.index).fillna(0.0)
    return c.assign(
        status="closed",
        delivered_kg=kg.round(1),
        closed_at=closed_at,
        payment_due_at=due,
        paid_at=(due + late).where(paid),
        buyer_paid=paid,
        paid_minor=pd.Series(np.round(kg * c.price_per_kg_minor), index=c.index)
        .astype("Int64")
        .where(paid),
    ).reset_index()


def build_contracts(
    params: WorldParams,
    population: Population,
    markets: Markets,
    county_seasons: pd.DataFrame,
    field_seasons: pd.DataFrame,
    rng: np.random.Generator,
) -> ContractBook:
    """Sign, deliver and settle contracts for every loan season, and sign next season's."""
    seasons_contracts, seasons_parties = [], []
    for s in range(params.seasons + 1):
        parties = _parties_for_season(params, population, s, rng)
        contracts = _sign(params, parties, markets, county_seasons, s, rng)
        parties = parties.assign(party_key=parties.coop_id.fillna(parties.farmer_id))
        parties = parties.merge(
            contracts[
                [
                    "party_key",
                    "quantity_kg",
                    "declared_ha",
                    "price_per_kg_minor",
                    "delivery_start",
                    "buyer_reliability",
                ]
            ],
            on="party_key",
            suffixes=("", "_contract"),
        )
        parties["share_kg"] = (
            parties.quantity_kg * parties.declared_ha / parties.declared_ha_contract
        )
        seasons_contracts.append(contracts)
        seasons_parties.append(parties)
    contracts = pd.concat(seasons_contracts, ignore_index=True)
    contracts.insert(
        0, "contract_id", make_ids("K", np.arange(len(contracts)), id_width(len(contracts)))
    )
    parties = pd.concat(seasons_parties, ignore_index=True).merge(
        contracts[["party_key", "season", "contract_id"]], on=["party_key", "season"]
    )
    parties = _price_ratios(parties, markets)
    done = parties.season < params.seasons
    delivered = _deliver(params, parties[done], field_seasons, population, rng)
    closed = _close(contracts[contracts.season < params.seasons], delivered, rng)
    open_ = contracts[contracts.season == params.seasons].assign(status="active")
    contracts = pd.concat([closed, open_], ignore_index=True)
    return ContractBook(contracts, pd.concat([delivered, parties[~done]], ignore_index=True))


def _price_ratios(parties: pd.DataFrame, markets: Markets) -> pd.DataFrame:
    """Harvest market price over contract price, realised and per unit of shock."""
    shocks = markets.harvest_shocks.set_index(["crop", "season"]).shock
    shock = shocks.reindex(pd.MultiIndex.from_frame(parties[["crop", "season"]])).to_numpy()
    doy = parties.delivery_start.dt.day_of_year.to_numpy(dtype=float)
    ramp = shock_ramp(doy)  # delivery falls in the contract's own season year
    crop_price = parties.crop.map({k: c.price_per_kg_minor for k, c in CROPS_BY_NAME.items()})
    expected = crop_price * np.exp(seasonal_log_price(doy))
    ratio_without_shock = expected / parties.price_per_kg_minor
    return parties.assign(
        price_ratio=ratio_without_shock * np.exp(shock * ramp),
        price_ratio_base=ratio_without_shock,
        shock_ramp=ramp,
    )
