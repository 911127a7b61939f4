"""Point in time: the only place the rule "nothing observed at or after as-of" is written.

An observation stamped `t` is visible to an application with as-of time `as_of` exactly
when `t < as_of`. Every pipeline cuts its inputs through `visible`, `before` or
`EventIndex`, so the rule has one spelling and one test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

APPLICATION_COLUMNS = ("application_id", "farmer_id", "as_of")
DAY_NS = 86_400 * 10**9


def to_ns(values: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """UTC nanoseconds since the epoch as int64 (NaT becomes the int64 minimum)."""
    return pd.DatetimeIndex(values).as_unit("ns").asi8


def instant_ns(as_of: pd.Timestamp | str) -> int:
    """One timezone-aware instant as UTC nanoseconds; a naive time is refused."""
    t = pd.Timestamp(as_of)
    if t.tzinfo is None:
        raise ValueError(f"as_of {as_of!r} has no timezone; write it as e.g. 2026-02-28T00:00Z")
    return int(t.tz_convert("UTC").as_unit("ns").value)


def check_applications(applications: pd.DataFrame) -> None:
    """Raise a ValueError naming what is wrong with an applications frame."""
    missing = [c for c in APPLICATION_COLUMNS if c not in applications.columns]
    if missing:
        raise ValueError(
            f"applications lack column(s) {', '.join(missing)}; each row needs "
            "application_id, farmer_id and a timezone-aware as_of"
        )
    as_of = applications["as_of"]
    if not isinstance(as_of.dtype, pd.DatetimeTZDtype):
        raise ValueError(
            f"applications.as_of must be timezone-aware timestamps; got {as_of.dtype}. "
            "Convert with pd.to_datetime(..., utc=True)"
        )
    if as_of.isna().any():
        row = int(np.flatnonzero(as_of.isna().to_numpy())[0]) + 1
        raise ValueError(f"applications.as_of is empty in row {row}; every row needs a time")
    if applications["application_id"].duplicated().any():
        dup = applications["application_id"][applications["application_id"].duplicated()].iloc[0]
        raise ValueError(f"applications.application_id {dup!r} occurs more than once")


def before(times: pd.Series | np.ndarray, as_of: pd.Series | np.ndarray | int) -> np.ndarray:
    """Element-wise visibility: True where `times` is known at `as_of` (missing: False).

    Arrays are UTC nanoseconds (`to_ns`); a single int is one as-of instant for all.
    """
    t = np.asarray(times if isinstance(times, np.ndarray) else to_ns(times))
    a = as_of if isinstance(as_of, (int, np.integer, np.ndarray)) else to_ns(as_of)
    nat = np.iinfo(np.int64).min
    return (t != nat) & (t < a)


def visible(
    table: pd.DataFrame, applications: pd.DataFrame, *, time_col: str, key: str = "farmer_id"
) -> pd.DataFrame:
    """Rows of `table` joined to each application on `key`, kept only when seen before as-of.

    The result has the application's `application_id` and `as_of` and the table's columns.
    """
    apps = applications[["application_id", key, "as_of"]]
    joined = apps.merge(table, on=key, how="inner")
    return joined[before(joined[time_col], joined["as_of"])].reset_index(drop=True)


@dataclass(frozen=True)
class EventIndex:
    """Events sorted by (entity, time) so "how many before t" is one binary search.

    Times are replaced by their rank among the distinct event times: `t < cut` exactly when
    rank(t) < (distinct event times below cut), so comparisons stay exact to the nanosecond
    while entity and time pack into one sortable int64.
    Prefix sums over `weights` then give any window's totals by two lookups.
    """

    order: np.ndarray  # positions of the events in the caller's frame, sorted
    keys: np.ndarray  # sorted packed (entity code, time rank)
    times: np.ndarray  # sorted times in ns
    entity_codes: dict[str, int]
    distinct_times: np.ndarray

    @classmethod
    def build(
        cls,
        entities: np.ndarray,
        times_ns: np.ndarray,
        tiebreak: np.ndarray,
    ) -> EventIndex:
        """Index events of `entities` at `times_ns`; ties in time are ordered by `tiebreak`."""
        codes, uniques = pd.factorize(entities, sort=True)
        order = np.lexsort((tiebreak, times_ns, codes))
        distinct_times = np.unique(times_ns)
        ranks = np.searchsorted(distinct_times, times_ns[order])
        keys = (codes[order].astype(np.int64) << 32) | ranks
        entity_codes = {str(u): i for i, u in enumerate(uniques)}
        return cls(order, keys, times_ns[order], entity_codes, distinct_times)

    def code_of(self, entities: pd.Series) -> np.ndarray:
        """Entity codes of query rows; -1 where the entity has no event."""
        return entities.map(self.entity_codes).fillna(-1).to_numpy(dtype=np.int64)

    def count_before(self, codes: np.ndarray, cut_ns: np.ndarray) -> np.ndarray:
        """Sorted position of the first event of each entity at or after its cut time.

        Subtracting the result for two cut times gives the events in the window between;
        an entity without events gets 0 everywhere, so its windows are empty.
        """
        rank = np.searchsorted(self.distinct_times, cut_ns, side="left")
        pos = np.searchsorted(self.keys, (np.maximum(codes, 0) << 32) | rank, side="left")
        return np.where(codes >= 0, pos, 0)

    def first_of(self, codes: np.ndarray) -> np.ndarray:
        """Sorted position of each entity's first event (0 for an entity without events)."""
        pos = np.searchsorted(self.keys, np.maximum(codes, 0) << 32, side="left")
        return np.where(codes >= 0, pos, 0)


def prefix_sums(values: np.ndarray) -> np.ndarray:
    """Integer prefix sums with a leading zero row: window total = p[hi] - p[lo], exactly."""
    values = np.asarray(values, dtype=np.int64)
    shape = (1, *values.shape[1:])
    return np.concatenate([np.zeros(shape, dtype=np.int64), np.cumsum(values, axis=0)])
