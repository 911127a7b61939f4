"""What of the simulated world is known at its extraction instant.

The simulator draws every season to its end; a world extracted before some of it happened
(`WorldParams.ending`, e.g. the demo's world ending now) keeps only what had happened and
arrived by then: a loan not yet 90 days past due has not defaulted, and a row that arrives
after the extraction (a late scene, a backfilled order, a contract's closing or payment,
each a later version of it) is not there.
"""

from __future__ import annotations

import pandas as pd

from features.history import DEFAULT_DPD
from features.store import RECORDED_AT


def known_at(table: str, frame: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
    """The rows of a public table as known at `at`, with the status they had then."""
    if table == "loans":  # the outcome reached by `at`; its eventual one stays in truth
        frame = frame.assign(defaulted=frame["days_past_due"] >= DEFAULT_DPD)
    if RECORDED_AT in frame:
        frame = frame[frame[RECORDED_AT] < at]
    return frame.reset_index(drop=True)
