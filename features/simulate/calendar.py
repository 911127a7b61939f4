"""The simulated calendar: seasons, the extraction date and day-of-year helpers."""

from __future__ import annotations

import pandas as pd

from features.simulate.params import WorldParams


def season_year(params: WorldParams, season: int) -> int:
    """Calendar year of season `season` (0-based)."""
    return params.first_year + season


def day_of_year(year: int, doy: float | int) -> pd.Timestamp:
    """UTC midnight of day-of-year `doy` (1-based) in `year`."""
    return pd.Timestamp(f"{year}-01-01", tz="UTC") + pd.Timedelta(days=float(doy) - 1)


def history_start(params: WorldParams) -> pd.Timestamp:
    """First day of the order history: one year before the first season."""
    return pd.Timestamp(f"{params.first_year - 1}-01-01", tz="UTC")


def extracted_at(params: WorldParams) -> pd.Timestamp:
    """When the data were extracted: end of February after the last loan season.

    Late enough for every loan of the last season to be 90 days past due or repaid, and
    early enough that next season's contracts are signed but not delivered.
    """
    return pd.Timestamp(f"{params.first_year + params.seasons}-02-28", tz="UTC")
