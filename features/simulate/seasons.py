"""Growing seasons: county droughts, and per field the planting, cultivation and harvest.

A drought strikes a county-season with a fixed probability; its onset falls 30-60 days
after the county's planting date and it shows in NDVI from then on. Each field is sown,
partly sown or abandoned by its farmer, and its yield follows skill, soil, drought and an
idiosyncratic shock that is half visible in canopy greenness and half not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.simulate.calendar import day_of_year, season_year
from features.simulate.params import CROPS_BY_NAME, WorldParams
from features.simulate.population import Population, sigmoid

DROUGHT_ONSET_DAYS = (30, 60)  # after the county's planting date


def build_county_seasons(
    params: WorldParams, population: Population, rng: np.random.Generator
) -> pd.DataFrame:
    """One row per county and season: planting date, drought severity and onset."""
    rows = []
    for s in range(params.seasons + 1):  # +1: the season the next contracts are for
        year = season_year(params, s)
        for county in population.counties.itertuples():
            planting = day_of_year(year, params.planting_doy + county.planting_offset_days)
            drought = rng.random() < params.drought_probability
            severity = rng.uniform(0.3, 0.8) if drought else 0.0
            onset = planting + pd.Timedelta(days=float(rng.uniform(*DROUGHT_ONSET_DAYS)))
            rows.append((county.county, s, planting, severity, onset))
    return pd.DataFrame(
        rows, columns=["county", "season", "planting_at", "drought_severity", "drought_onset_at"]
    )


def build_field_seasons(
    params: WorldParams,
    population: Population,
    county_seasons: pd.DataFrame,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """One row per field and season (loan seasons and the next): what was sown and yielded."""
    fields = population.fields
    farmers = population.farmers.set_index("farmer_id")
    diligence = farmers.diligence.reindex(fields.farmer_id).to_numpy()
    skill = farmers.skill.reindex(fields.farmer_id).to_numpy()
    frames = []
    for s in range(params.seasons + 1):
        cs = county_seasons[county_seasons.season == s].set_index("county")
        n = len(fields)
        planting = cs.planting_at.reindex(fields.county).to_numpy()
        late_days = np.round(rng.normal(0, 5, n) + 14 * sigmoid(-1.5 * diligence))
        abandoned = rng.random(n) < sigmoid(params.abandon_logit - 1.1 * diligence)
        fraction = np.clip(0.82 + 0.08 * diligence + 0.07 * rng.standard_normal(n), 0.35, 1.0)
        severity = cs.drought_severity.reindex(fields.county).to_numpy()
        eps = params.yield_noise * rng.standard_normal(n)
        drought_loss = severity * rng.uniform(0.7, 1.0, n)
        productivity = np.exp(0.18 * skill + fields.soil_quality.to_numpy())
        yield_ratio = productivity * (1 - drought_loss) * np.exp(eps - params.yield_noise**2 / 2)
        cultivated_ha = np.where(abandoned, 0.0, fields.area_ha.to_numpy() * fraction)
        crop_yield = fields.crop.map({k: c.yield_kg_ha for k, c in CROPS_BY_NAME.items()})
        frames.append(
            pd.DataFrame(
                {
                    "field_id": fields.field_id.to_numpy(),
                    "season": s,
                    "planted_at": pd.DatetimeIndex(planting) + pd.to_timedelta(late_days, unit="D"),
                    "abandoned": abandoned,
                    "cultivated_fraction": np.where(abandoned, 0.0, fraction),
                    "cultivated_ha": cultivated_ha,
                    "productivity": productivity,
                    "yield_shock": eps,
                    "drought_loss": drought_loss,
                    # canopy vigour: productivity, drought and half the idiosyncratic shock
                    "canopy_vigour": np.clip(np.sqrt(productivity) * np.exp(eps / 2), 0.3, 1.25),
                    "production_kg": cultivated_ha * crop_yield.to_numpy() * yield_ratio,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
