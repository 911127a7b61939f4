"""Satellite features of each application, from the index time series of its fields.

Season metrics come from the last growing season that ended before as-of; recent
features from observations in the 30 and 60 days before it. The fields looked at are
the applicant's fields of the contracted crop, or all their fields when there is none.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.asof import DAY_NS, before, check_applications, to_ns, visible
from features.contracts import applicant_contracts
from features.registry import output_columns
from features.satellite.seasons import GrowingSeason, field_season_metrics, good_observations

NAT_NS = np.iinfo(np.int64).min  # a missing instant, as `to_ns` gives it
RECENT_DAYS = 30
CLEAR_OBS_DAYS = 60
SAME_PHASE_MIN_AGE_DAYS = 300  # "earlier seasons" are at least this old


def _last_season(as_of: pd.Series, season: GrowingSeason) -> pd.Series:
    """Year of the last growing season that ended before each as-of time."""
    years = pd.Series(pd.DatetimeIndex(as_of).year, index=as_of.index)
    ended = before(season.end_of(years), as_of)
    return years.where(ended, years - 1)


def _weighted(frame: pd.DataFrame, value: str, weight: str = "declared_area_ha") -> pd.Series:
    ok = frame[value].notna()
    w = frame[weight].where(ok, 0.0)
    num = (frame[value].fillna(0.0) * w).groupby(frame["application_id"]).sum()
    den = w.groupby(frame["application_id"]).sum()
    return (num / den).where(den > 0)


def _fields_used(apps: pd.DataFrame, fields: pd.DataFrame) -> pd.DataFrame:
    """Application x field rows of the fields each application looks at."""
    af = apps[["application_id", "farmer_id", "as_of", "crop"]].merge(
        fields, on="farmer_id", suffixes=("_contract", "")
    )
    same_crop = af["crop"] == af["crop_contract"]
    has_crop = same_crop.groupby(af["application_id"]).transform("any")
    return af[same_crop | ~has_crop].reset_index(drop=True)


def _season_features(
    used: pd.DataFrame,
    field_seasons: pd.DataFrame,
    county_peaks: pd.DataFrame,
    season: GrowingSeason,
) -> pd.DataFrame:
    """Last-season metrics per application (area-weighted over its fields)."""
    used = used.assign(season=_last_season(used["as_of"], season).to_numpy())
    fs = used.merge(field_seasons, on=["field_id", "season"], how="inner")
    fs = fs[before(fs["season_end"], fs["as_of"])]
    fs = fs.merge(county_peaks, on=["county", "crop", "season"], how="left")
    fs = fs.assign(
        anomaly_county=fs["peak_ndvi"] - fs["county_peak_ndvi"],
        production_kg=fs["yield_kg_ha"] * fs["cultivated_ha"],
        declared_seen=fs["declared_area_ha"],
    )
    by_app = fs.groupby("application_id")
    same_crop = fs[fs["crop"] == fs["crop_contract"]].groupby("application_id")
    return pd.DataFrame(
        {
            "sat_last_peak_ndvi": _weighted(fs, "peak_ndvi"),
            "sat_last_integral_ndvi": _weighted(fs, "integral_ndvi"),
            "sat_last_greenup_doy": _weighted(fs, "greenup_doy"),
            "sat_last_anomaly_own": _weighted(fs, "anomaly_own"),
            "sat_last_anomaly_county": _weighted(fs, "anomaly_county"),
            "sat_last_cultivated_ratio": by_app["cultivated_ha"].sum()
            / by_app["declared_seen"].sum(),
            "sat_last_yield_kg_ha": _weighted(fs, "yield_kg_ha"),
            "production_kg": same_crop["production_kg"].sum(),
        }
    )


def _recent_features(used: pd.DataFrame, series: pd.DataFrame) -> pd.DataFrame:
    """Clear observations in the last 60 days and NDVI now against earlier years."""
    arrived = ["recorded_at"] * ("recorded_at" in series)  # of a training matrix by arrival
    obs = good_observations(series)[["field_id", "acquired_at", "ndvi_mean", *arrived]]
    seen = visible(obs, used, time_col="acquired_at", key="field_id")
    age_days = pd.Series((to_ns(seen["as_of"]) - to_ns(seen["acquired_at"])) / DAY_NS)
    phase = np.mod(
        pd.DatetimeIndex(seen["as_of"]).day_of_year
        - pd.DatetimeIndex(seen["acquired_at"]).day_of_year,
        365,
    )
    app = seen["application_id"]
    fields_per_app = used.groupby("application_id").size()
    clear = (age_days <= CLEAR_OBS_DAYS).groupby(app).sum()
    now = seen["ndvi_mean"].where(age_days <= RECENT_DAYS).groupby(app).mean()
    past_mask = (age_days >= SAME_PHASE_MIN_AGE_DAYS) & (phase > 0) & (phase <= RECENT_DAYS)
    past = seen["ndvi_mean"].where(past_mask).groupby(app).mean()
    return pd.DataFrame(
        {
            "sat_clear_obs_60d": (clear / fields_per_app).reindex(fields_per_app.index).fillna(0.0),
            "sat_recent_anomaly_own": now - past,
        }
    )


def build_satellite_features(
    series: pd.DataFrame,
    applications: pd.DataFrame,
    *,
    fields: pd.DataFrame,
    contracts: pd.DataFrame,
    farmers: pd.DataFrame,
    coop_areas: pd.DataFrame,
    county_peaks: pd.DataFrame,
    season: GrowingSeason | None = None,
    field_seasons: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Satellite features of each application.

    Requires:
        series: the per-field index time series of the applicants' fields
            (`build_index_series`).
        fields: field_id, farmer_id, crop, declared_area_ha, polygon_ha, county.
        contracts, farmers, coop_areas: as for `build_contract_features` (the contracted
            crop and quantity).
        county_peaks: `county_crop_peaks` over all fields (the neighbours' reference).
        field_seasons: `field_season_metrics` over these or more fields (of the same
            season), if already computed; otherwise it is computed here.
        applications: application_id, farmer_id, as_of, contract_id (may be missing).
    Returns:
        One row per application, in input order: application_id, the `satellite`
        features of the registry, then its dq_* flags.
    As of:
        Season metrics only from seasons ended before as_of, recent metrics only from
        scenes acquired before as_of.
    """
    check_applications(applications)
    season = season or GrowingSeason()
    apps = applicant_contracts(
        contracts, applications, farmers=farmers, fields=fields, coop_areas=coop_areas
    )
    apps = apps.assign(crop=apps["crop"].where(apps["signed"]))
    used = _fields_used(apps, fields)
    field_ids = used["field_id"].unique()
    series = series[series["field_id"].isin(field_ids)]
    if field_seasons is None:
        field_seasons = field_season_metrics(
            series, fields[fields["field_id"].isin(field_ids)], season=season
        )
    else:
        field_seasons = field_seasons[field_seasons["field_id"].isin(field_ids)]
    last = _season_features(used, field_seasons, county_peaks, season)
    recent = _recent_features(used, series)
    table = pd.concat([last, recent], axis=1).reindex(apps["application_id"])
    contracted = apps.set_index("application_id")["contracted_kg"].where(apps["signed"].to_numpy())
    with np.errstate(divide="ignore", invalid="ignore"):
        table["sat_production_over_contracted"] = table["production_kg"] / contracted
    has_fields = apps["application_id"].isin(used["application_id"]).to_numpy()
    flags = {
        "dq_no_fields": ~has_fields,
        "dq_no_last_season": table["sat_last_peak_ndvi"].isna().to_numpy(),
        "dq_no_recent_scene": ~(table["sat_clear_obs_60d"].fillna(0.0).to_numpy() > 0),
    }
    out = pd.DataFrame({"application_id": apps["application_id"].to_numpy()})
    for name in output_columns("satellite"):
        out[name] = flags[name] if name in flags else table[name].to_numpy(dtype=float)
    return out


# an observation's age is compared in float days: stop a millisecond before each bound
_AGE_MARGIN_NS = 10**6
_AGE_BOUNDS_DAYS = (0, RECENT_DAYS, CLEAR_OBS_DAYS, SAME_PHASE_MIN_AGE_DAYS)


def satellite_unchanged_until(
    series: pd.DataFrame, applications: pd.DataFrame, *, fields: pd.DataFrame,
    contracts: pd.DataFrame,
) -> np.ndarray:  # fmt: skip
    """For each application, an instant (ns) after its as_of before which its satellite
    features stay what they are at as_of, while the inputs stay the same: they move with
    the time only when a day begins (UTC: a day of the year, a season's end), the
    application's contract is signed, or an observation of one of the farmer's fields
    is acquired or turns 30, 60 or 300 days old. Any of the farmer's fields and any
    observation count, so the instant may come early, never late.

    Requires the inputs of `build_satellite_features`; applications with farmer_id, as_of
    and contract_id (may be missing), one per farmer (as `snapshot_applications` makes).
    """
    if applications["farmer_id"].duplicated().any():
        raise ValueError("satellite_unchanged_until takes one application per farmer")
    as_of = to_ns(applications["as_of"])
    # times are compared as `x < t`, so what happens at x shows from just after it: each
    # instant below is the first at or after as_of, and one equal to as_of leaves nothing
    until = -(-as_of // DAY_NS) * DAY_NS  # the next midnight
    signed = np.full(len(as_of), NAT_NS)
    if "contract_id" in applications:
        by_id = contracts.drop_duplicates("contract_id").set_index("contract_id")["signed_at"]
        signed = to_ns(by_id.reindex(applications["contract_id"].to_numpy()))
    until = np.where((signed != NAT_NS) & (signed >= as_of), np.minimum(until, signed), until)
    # by integer codes and no sort: a follower asks this at every commit, of all its
    # farmers' observations
    farmer_of_field, farmer_ids = pd.factorize(fields["farmer_id"].astype(str).to_numpy())
    field_at = pd.Index(fields["field_id"]).get_indexer(series["field_id"])
    known = field_at >= 0
    acquired = to_ns(series["acquired_at"])[known]
    owners = farmer_of_field[field_at[known]]
    asked = pd.Index(farmer_ids).get_indexer(applications["farmer_id"].astype(str).to_numpy())
    cut = np.full(len(farmer_ids) + 1, np.iinfo(np.int64).max)  # each farmer's as_of
    cut[asked] = as_of  # a farmer not asked for (-1) lands in the extra last slot
    first = np.full(len(farmer_ids), np.iinfo(np.int64).max)
    for days in _AGE_BOUNDS_DAYS:
        bound = acquired + days * DAY_NS - (_AGE_MARGIN_NS if days else 0)
        ahead = bound >= cut[owners]
        np.minimum.at(first, owners[ahead], bound[ahead])
    found = np.where(asked >= 0, first[np.maximum(asked, 0)], np.iinfo(np.int64).max)
    return np.minimum(until, found)
