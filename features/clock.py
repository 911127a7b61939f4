"""The product's clock: the wall clock, or the wall clock shifted into a past season.

Every instant the product stamps or decides by is read here: a batch's `recorded_at`, the
instant decisions are made as of under `AGRICREDIT_CLOCK=now`, the age of the data.
`AGRICREDIT_CLOCK_SHIFT_SECONDS` moves it by a fixed amount, the same in every process of
a deployment that sets it (each worker, each `data append`): a lender replays a past
season's feed through the product as if it were live (a shadow run before going live), and
the end-to-end tests decide inside a growing season whatever today's date.
"""

from __future__ import annotations

import os

import pandas as pd

from features.errors import AgricreditError

SHIFT_ENV = "AGRICREDIT_CLOCK_SHIFT_SECONDS"


class ClockError(AgricreditError):
    """The clock's shift is not a number of seconds."""


def shift() -> pd.Timedelta:
    """How far the product's clock is from the wall clock (zero unless set)."""
    text = os.environ.get(SHIFT_ENV, "").strip()
    if not text:
        return pd.Timedelta(0)
    try:
        return pd.Timedelta(seconds=float(text))
    except ValueError:
        raise ClockError(
            f"{SHIFT_ENV} must be a number of seconds (negative: into the past); got {text!r}"
        ) from None


def now() -> pd.Timestamp:
    """The product's current instant (UTC)."""
    return pd.Timestamp.now(tz="UTC") + shift()
