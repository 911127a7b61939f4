"""The simulated calendar: seasons, the extraction date and day-of-year helpers."""

from __future__ import annotations

from typing import Protocol

import pandas as pd


class WorldParams(Protocol):
    """What of the world's parameters the calendar reads (features/simulate/params.py)."""

    @property
    def first_year(self) -> int: ...
    @property
    def seasons(self) -> int: ...
    @property
    def extracted_on(self) -> str | None: ...
    @property
    def signing_opens_doy(self) -> int: ...


def season_year(params: WorldParams, season: int) -> int:
    """Calendar year of season `season` (0-based)."""
    return params.first_year + season


def day_of_year(year: int, doy: float | int) -> pd.Timestamp:
    """UTC midnight of day-of-year `doy` (1-based) in `year`."""
    return pd.Timestamp(f"{year}-01-01", tz="UTC") + pd.Timedelta(days=float(doy) - 1)


def history_start(params: WorldParams) -> pd.Timestamp:
    """First day of the order history: one year before the first season."""
    return pd.Timestamp(f"{params.first_year - 1}-01-01", tz="UTC")


FORWARD_SIGNING_DOY = -60  # a world ending at an instant signs from 1 November before ...
FORWARD_SIGNING_DAYS = 100  # ... over a hundred days, to 8 February


def signing_opens(params: WorldParams, year: int) -> pd.Timestamp:
    """When the contracts of the season of `year` start to be signed: day-of-year
    `signing_opens_doy` of that year, counting back into the year before from 0."""
    return _opening(year, params.signing_opens_doy)


def _opening(year: int, doy: int) -> pd.Timestamp:
    return pd.Timestamp(f"{year}-01-01", tz="UTC") + pd.Timedelta(days=doy - 1)


def natural_extraction(params: WorldParams) -> pd.Timestamp:
    """End of February after the last loan season: late enough for every loan of it to be
    90 days past due or repaid, and early enough that next season's contracts are signed
    but not delivered."""
    return pd.Timestamp(f"{params.first_year + params.seasons}-02-28", tz="UTC")


def extracted_at(params: WorldParams) -> pd.Timestamp:
    """When the data were extracted: `params.extracted_on`, else the natural extraction.

    Nothing that happened or arrived at or after it is in the world.
    """
    if params.extracted_on is not None:
        return pd.Timestamp(params.extracted_on)
    return natural_extraction(params)


def first_year_ending(when: pd.Timestamp, seasons: int, signing_opens_doy: int) -> int:
    """The first season's year of a world of `seasons` loan seasons extracted at `when`: its
    next season is the one whose contracts are being signed, or are next to be, at `when`."""
    return when.year + int(when >= _opening(when.year + 1, signing_opens_doy)) - seasons


def extraction_window(params: WorldParams) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The instants a world of these seasons may be extracted at: from the opening of its
    next season's signing to the opening of the one after."""
    next_year = params.first_year + params.seasons
    return signing_opens(params, next_year), signing_opens(params, next_year + 1)
