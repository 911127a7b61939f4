"""Per field and growing season: peak, integral, green-up, cultivated area and yield.

A growing season is a window of the year (`GrowingSeason`); an observation counts when
enough of the field is clear (`MIN_COVER`). A season's metrics are known once it has
ended, so `asof.before(season_end, as_of)` is what makes them visible to an application.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

MIN_COVER = 0.5  # share of the field's pixels clear for an observation to count
MIN_VALID_PIXELS = 3


@dataclass(frozen=True)
class CropAgronomy:
    """What a typical smallholder field of a crop looks like and yields in a normal season."""

    peak_ndvi: float
    yield_kg_ha: float


# Typical East-African smallholder values; a deployment calibrates them to its own harvests.
CROP_AGRONOMY: dict[str, CropAgronomy] = {
    "maize": CropAgronomy(peak_ndvi=0.80, yield_kg_ha=3_000),
    "beans": CropAgronomy(peak_ndvi=0.72, yield_kg_ha=1_000),
    "potato": CropAgronomy(peak_ndvi=0.78, yield_kg_ha=12_000),
    "sorghum": CropAgronomy(peak_ndvi=0.70, yield_kg_ha=2_000),
}
BARE_NDVI = 0.15  # NDVI of bare soil: no crop, no yield


@dataclass(frozen=True)
class GrowingSeason:
    """The growing season as a window of each year, from start to end (month, day)."""

    start: tuple[int, int] = (2, 1)
    end: tuple[int, int] = (9, 1)

    def __post_init__(self) -> None:
        if self.start >= self.end:
            raise ValueError(
                f"season start {self.start} must come before its end {self.end} within a year"
            )

    def label(self, times: pd.Series) -> pd.Series:
        """Season (its year) of each timestamp; missing outside every season."""
        t = pd.DatetimeIndex(times)
        md = t.month * 100 + t.day
        inside = (md >= self.start[0] * 100 + self.start[1]) & (
            md < self.end[0] * 100 + self.end[1]
        )
        return pd.Series(np.where(inside, t.year, -1), index=times.index).replace(-1, pd.NA)

    def end_of(self, years: pd.Series) -> pd.Series:
        """End timestamp (UTC) of each season year."""
        m, d = self.end
        return pd.to_datetime(
            years.astype("int64").astype(str) + f"-{m:02d}-{d:02d}", utc=True
        ).set_axis(years.index)

    def latest_in_season(self, at: pd.Timestamp) -> pd.Timestamp:
        """`at` when it falls in a growing season, else the end of the last one before it:
        the instant up to which imagery could have been expected."""
        year = at.year
        end = pd.Timestamp(year=year, month=self.end[0], day=self.end[1], tz="UTC")
        start = pd.Timestamp(year=year, month=self.start[0], day=self.start[1], tz="UTC")
        if start <= at < end:
            return at
        return end if at >= end else end - pd.DateOffset(years=1)

    def start_of(self, years: pd.Series) -> pd.Series:
        """Start timestamp (UTC) of each season year."""
        m, d = self.start
        return pd.to_datetime(
            years.astype("int64").astype(str) + f"-{m:02d}-{d:02d}", utc=True
        ).set_axis(years.index)


def good_observations(series: pd.DataFrame) -> pd.DataFrame:
    """Observations clear enough to describe the field."""
    ok = (series["cover_fraction"] >= MIN_COVER) & (series["valid_pixels"] >= MIN_VALID_PIXELS)
    return series[ok & series["ndvi_mean"].notna()]


def field_season_metrics(
    series: pd.DataFrame, fields: pd.DataFrame, *, season: GrowingSeason | None = None
) -> pd.DataFrame:
    """One row per field and season with at least one good observation.

    Requires:
        series: the index time series (field_id, acquired_at, ndvi_mean, green_fraction,
            cover_fraction, valid_pixels).
        fields: field_id, crop, declared_area_ha, polygon_ha.
    Returns:
        field_id, season, season_end, observations, peak_ndvi, baseline_ndvi,
        integral_ndvi (NDVI-days above baseline), greenup_doy, cultivated_ha,
        cultivated_ratio (over declared area), yield_kg_ha and anomaly_own (peak minus
        the mean peak of the field's earlier seasons).
    """
    season = season or GrowingSeason()
    obs = good_observations(series)
    obs = obs.assign(season=season.label(obs["acquired_at"])).dropna(subset=["season"])
    obs = obs.sort_values(["field_id", "season", "acquired_at"], ignore_index=True)
    columns = [
        "field_id", "season", "season_end", "observations", "peak_ndvi", "baseline_ndvi",
        "integral_ndvi", "greenup_doy", "cultivated_ha", "cultivated_ratio", "yield_kg_ha",
        "anomaly_own",
    ]  # fmt: skip
    if obs.empty:
        return pd.DataFrame(columns=columns)
    key = obs["field_id"].astype(str) + "/" + obs["season"].astype(str)
    group = pd.factorize(key)[0]
    days = (
        pd.DatetimeIndex(obs["acquired_at"]) - pd.Timestamp("1970-01-01", tz="UTC")
    ).total_seconds().to_numpy() / 86_400
    y = obs["ndvi_mean"].to_numpy(dtype=float)
    g = pd.Series(y).groupby(group)
    peak = g.transform("max").to_numpy()
    base = g.transform("min").to_numpy()
    same = np.r_[False, group[1:] == group[:-1]]  # row continues the previous row's group
    prev_y, prev_d = np.r_[np.nan, y[:-1]], np.r_[np.nan, days[:-1]]
    area = np.where(same, 0.5 * ((y - base) + (prev_y - base)) * (days - prev_d), 0.0)
    half = base + 0.5 * (peak - base)
    crossed = y >= half
    first_cross = crossed & ~(pd.Series(crossed).groupby(group).cumsum().to_numpy() > 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(same & (prev_y < half), (half - prev_y) / (y - prev_y), 1.0)
    cross_day = np.where(same & (prev_y < half), prev_d + frac * (days - prev_d), days)
    year_start = pd.to_datetime(obs["season"].astype("int64").astype(str) + "-01-01", utc=True)
    start_day = (
        pd.DatetimeIndex(year_start) - pd.Timestamp("1970-01-01", tz="UTC")
    ).total_seconds().to_numpy() / 86_400
    frame = pd.DataFrame(
        {
            "group": group,
            "field_id": obs["field_id"].to_numpy(),
            "season": obs["season"].astype("int64").to_numpy(),
            "area": area,
            "greenup": np.where(first_cross, cross_day - start_day + 1, np.nan),
            "peak": peak,
            "base": base,
            "green": obs["green_fraction"].to_numpy(dtype=float),
        }
    )
    m = frame.groupby("group").agg(
        field_id=("field_id", "first"),
        season=("season", "first"),
        observations=("peak", "size"),
        peak_ndvi=("peak", "first"),
        baseline_ndvi=("base", "first"),
        integral_ndvi=("area", "sum"),
        greenup_doy=("greenup", "max"),
        green_fraction=("green", "max"),
    )
    info = fields.set_index("field_id").reindex(m["field_id"])
    m["season_end"] = season.end_of(m["season"]).to_numpy()
    m["cultivated_ha"] = m["green_fraction"].to_numpy() * info["polygon_ha"].to_numpy(dtype=float)
    m["cultivated_ratio"] = m["cultivated_ha"] / info["declared_area_ha"].to_numpy(dtype=float)
    agronomy = info["crop"].map(CROP_AGRONOMY)
    ref_peak = agronomy.map(lambda a: a.peak_ndvi, na_action="ignore").to_numpy(dtype=float)
    ref_yield = agronomy.map(lambda a: a.yield_kg_ha, na_action="ignore").to_numpy(dtype=float)
    vigour = np.clip((m["peak_ndvi"].to_numpy() - BARE_NDVI) / (ref_peak - BARE_NDVI), 0, 1.5)
    m["yield_kg_ha"] = ref_yield * vigour
    m = m.sort_values(["field_id", "season"], ignore_index=True)
    earlier = m.groupby("field_id")["peak_ndvi"]
    past_mean = (earlier.cumsum() - m["peak_ndvi"]) / earlier.cumcount().replace(0, np.nan)
    m["anomaly_own"] = m["peak_ndvi"] - past_mean
    return m[columns]


def county_crop_peaks(field_seasons: pd.DataFrame, fields: pd.DataFrame) -> pd.DataFrame:
    """Median peak NDVI of each county, crop and season: the neighbours' reference.

    Requires fields with field_id, county and crop. Built once over all fields, then
    handed to the application pipeline as a reference table.
    """
    fs = field_seasons.merge(fields[["field_id", "county", "crop"]], on="field_id")
    return fs.groupby(["county", "crop", "season"], as_index=False).agg(
        county_peak_ndvi=("peak_ndvi", "median"), county_fields=("peak_ndvi", "size")
    )
