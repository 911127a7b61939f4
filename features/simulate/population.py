"""Counties, co-ops, farmers and their fields, with the latent traits that drive them.

Latent traits (skill, diligence, wealth) are standard normal; they never appear in the
input tables, only in `_truth/`, as in life a lender never sees them directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.simulate.ids import id_width, make_ids
from features.simulate.params import COUNTY_NAMES, CROP_PARAMS, WorldParams

CROP_NAMES = np.array([c.name for c in CROP_PARAMS])
CROP_SHARES = np.array([c.share for c in CROP_PARAMS])


@dataclass
class Population:
    """Counties, co-ops, farmers (with latents) and fields (with true areas)."""

    counties: pd.DataFrame
    coops: pd.DataFrame
    farmers: pd.DataFrame
    fields: pd.DataFrame


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    """Logistic function."""
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


def build_counties(params: WorldParams, rng: np.random.Generator) -> pd.DataFrame:
    """Counties strung along 35.4-36.6 E so they straddle UTM zones 36S and 37S."""
    n = params.counties
    lon = np.linspace(35.45, 36.55, n) if n > 1 else np.array([35.7])
    lat = -0.9 - 0.5 * rng.random(n)
    zone = np.where(lon < 36.0, 36, 37)
    return pd.DataFrame(
        {
            "county": list(COUNTY_NAMES[:n]),
            "lon": lon,
            "lat": lat,
            "epsg": 32700 + zone,
            "planting_offset_days": rng.integers(-7, 8, n),
            "imaged": np.arange(n) < params.imaged_counties,
        }
    )


def _registration_times(params: WorldParams, n: int, rng: np.random.Generator) -> pd.DatetimeIndex:
    start = pd.Timestamp(f"{params.first_year - 3}-01-01", tz="UTC")
    history_end = pd.Timestamp(f"{params.first_year - 1}-06-30", tz="UTC")
    sim_end = pd.Timestamp(f"{params.first_year + params.seasons - 1}-01-31", tz="UTC")
    new = rng.random(n) < params.new_farmer_share
    offset = np.where(
        new,
        (history_end - start) + (sim_end - history_end) * rng.random(n),
        (history_end - start) * rng.random(n),
    )
    return (start + pd.to_timedelta(offset)).floor("s")


def build_farmers(
    params: WorldParams, counties: pd.DataFrame, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Farmers with latent traits, county, co-op membership and a shop or not."""
    n = params.farmers
    skill = rng.standard_normal(n)
    diligence = 0.3 * skill + np.sqrt(1 - 0.09) * rng.standard_normal(n)
    wealth = rng.standard_normal(n)
    county_idx = rng.integers(0, len(counties), n)
    n_coops = max(1, round(n * params.coop_member_share / params.members_per_coop))
    coop_county = np.arange(n_coops) % len(counties)
    coop_ids = make_ids("C", np.arange(n_coops), id_width(n_coops))
    coops = pd.DataFrame(
        {
            "coop_id": coop_ids,
            "name": [
                f"{counties.county.iloc[c]} Growers Co-op {i + 1}"
                for i, c in enumerate(coop_county)
            ],
            "county": counties.county.to_numpy()[coop_county],
            "registered_at": pd.Timestamp(f"{params.first_year - 3}-01-01", tz="UTC"),
            "main_crop": rng.choice(CROP_NAMES, n_coops, p=CROP_SHARES),
        }
    )
    member = rng.random(n) < params.coop_member_share
    coop_of = np.full(n, None, dtype=object)
    for c, county_coops in coops.groupby(coop_county).groups.items():
        in_county = member & (county_idx == c)
        coop_of[in_county] = rng.choice(coops.coop_id.to_numpy()[county_coops], in_county.sum())
    registered = _registration_times(params, n, rng)
    shop = rng.random(n) < sigmoid(params.shop_share_logit + 0.6 * wealth)
    shop_delay = pd.to_timedelta(rng.exponential(120, n).round(), unit="D")
    farmers = pd.DataFrame(
        {
            "farmer_id": make_ids("F", np.arange(n), id_width(n)),
            "coop_id": coop_of,
            "county": counties.county.to_numpy()[county_idx],
            "registered_at": registered,
            "gender": rng.choice(["female", "male"], n, p=[0.46, 0.54]),
            "birth_year": rng.integers(1958, 2004, n),
            "skill": skill,
            "diligence": diligence,
            "wealth": wealth,
            "has_shop": shop,
            "shop_opened_at": registered + shop_delay,
        }
    )
    return farmers, coops


def build_fields(
    params: WorldParams, farmers: pd.DataFrame, coops: pd.DataFrame, rng: np.random.Generator
) -> pd.DataFrame:
    """Fields with true area, declared area, crop and soil quality."""
    per_farmer = 1 + np.minimum(rng.poisson(params.mean_extra_fields, len(farmers)), 2)
    owner = np.repeat(np.arange(len(farmers)), per_farmer)
    n = len(owner)
    first = np.r_[True, owner[1:] != owner[:-1]]
    f = farmers.iloc[owner]
    area = params.median_field_ha * np.exp(0.55 * rng.standard_normal(n) + 0.15 * f.wealth)
    area = np.clip(area, 0.15, 2.5)
    crop = rng.choice(CROP_NAMES, n, p=CROP_SHARES)
    main_crop = f.coop_id.map(coops.set_index("coop_id").main_crop).to_numpy()
    follows_coop = first & pd.notna(main_crop) & (rng.random(n) < 0.85)
    crop = np.where(follows_coop, main_crop, crop)
    overstate = (
        params.over_declaration * np.abs(rng.standard_normal(n)) * np.exp(-0.5 * f.diligence)
    )
    return pd.DataFrame(
        {
            "field_id": make_ids("P", np.arange(n), id_width(n)),
            "farmer_id": f.farmer_id.to_numpy(),
            "county": f.county.to_numpy(),
            "crop": crop.astype(str),
            "area_ha": area.to_numpy(),
            "declared_area_ha": np.round(area.to_numpy() * (1 + overstate.to_numpy()), 2),
            "soil_quality": 0.25 * rng.standard_normal(n),
            "is_main": first,
        }
    )


def build_population(params: WorldParams, rng: np.random.Generator) -> Population:
    """Draw counties, co-ops, farmers and fields."""
    counties = build_counties(params, rng)
    farmers, coops = build_farmers(params, counties, rng)
    fields = build_fields(params, farmers, coops, rng)
    return Population(counties, coops, farmers, fields)
