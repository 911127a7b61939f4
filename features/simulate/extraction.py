"""What of the simulated world is known at its extraction instant.

The simulator draws every season to its end; a world extracted before some of it happened
(`WorldParams.ending`, e.g. the demo's world ending now) keeps only what had happened and
arrived by then: a contract still in delivery is active, a buyer who has not paid yet has
no payment, a loan not yet 90 days past due has not defaulted, and a row that arrives
after the extraction (a late scene, a backfilled order) is not there.
"""

from __future__ import annotations

import pandas as pd

from features.history import DEFAULT_DPD
from features.store import RECORDED_AT

CLOSING = ("delivered_kg", "closed_at", "payment_due_at", "paid_at", "paid_minor")


def _contracts(frame: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
    frame = frame[frame["signed_at"] < at].copy()
    open_ = ~(frame["closed_at"] < at)  # NaT compares False: never closed is open
    frame.loc[open_ & (frame["status"] == "closed"), "status"] = "active"
    for column in CLOSING:
        if column in frame:
            frame[column] = frame[column].mask(open_)
    unpaid = ~(frame["paid_at"] < at)
    frame["paid_at"] = frame["paid_at"].mask(unpaid)
    frame["paid_minor"] = frame["paid_minor"].mask(unpaid)
    return frame


def known_at(table: str, frame: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
    """The rows of a public table as known at `at`, with the status they had then."""
    if table == "contracts":
        frame = _contracts(frame, at)
    elif table == "loans":  # the outcome reached by `at`; its eventual one stays in truth
        frame = frame.assign(defaulted=frame["days_past_due"] >= DEFAULT_DPD)
    if RECORDED_AT in frame:
        frame = frame[frame[RECORDED_AT] < at]
    return frame.reset_index(drop=True)
