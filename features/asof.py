"""Point in time: the only place the rule "nothing observed at or after as-of" is written.

An observation stamped `t` is visible to an application with as-of time `as_of` exactly
when `t < as_of`. Every pipeline cuts its inputs through `visible`, `before` or
`EventIndex`, so the rule has one spelling and one test.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numba
import numpy as np
import pandas as pd
import pyarrow.compute as pc

APPLICATION_COLUMNS = ("application_id", "farmer_id", "as_of")
DAY_NS = 86_400 * 10**9


def to_ns(values: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """UTC nanoseconds since the epoch as int64 (NaT becomes the int64 minimum)."""
    return pd.DatetimeIndex(values).as_unit("ns").asi8


@lru_cache(maxsize=256)  # the service asks for the same few instants on every request
def instant_ns(as_of: pd.Timestamp | str) -> int:
    """One timezone-aware instant as UTC nanoseconds; a naive time is refused."""
    t = pd.Timestamp(as_of)
    if t.tzinfo is None:
        raise ValueError(f"as_of {as_of!r} has no timezone; write it as e.g. 2026-02-28T00:00Z")
    return int(t.tz_convert("UTC").as_unit("ns").value)


def recorded_ns(table: pd.DataFrame) -> np.ndarray:
    """When each row was recorded (UTC ns): a store's `recorded_at`; a table without it
    (a directory of files) was known from the start, the int64 minimum."""
    if "recorded_at" not in table:
        return np.full(len(table), np.iinfo(np.int64).min, dtype=np.int64)
    return to_ns(table["recorded_at"])


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
    """Rows of `table` joined to each application on `key`, kept only when seen before as-of:
    dated before it and, of a table that says when its rows arrived (`recorded_at`),
    recorded before it.

    The result has the application's `application_id` and `as_of` and the table's columns.
    """
    apps = applications[["application_id", key, "as_of"]]
    joined = apps.merge(table, on=key, how="inner")
    as_of = to_ns(joined["as_of"])
    seen = before(joined[time_col], as_of) & (recorded_ns(joined) < as_of)
    return joined[seen].reset_index(drop=True)


def encode(values: pd.Series | np.ndarray) -> tuple[np.ndarray, pd.Index]:
    """Integer codes of `values` and the distinct values they index (order of appearance).

    Arrow-backed strings go through Arrow's dictionary encoding, many times faster than
    hashing Python objects; any other values through `pd.factorize`.
    """
    array = getattr(values, "array", None)
    arrow = getattr(array, "_pa_array", None)
    if arrow is not None:
        encoded = pc.dictionary_encode(arrow.combine_chunks())
        codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        return codes, pd.Index(encoded.dictionary.to_pandas())
    codes, uniques = pd.factorize(np.asarray(values))
    return codes.astype(np.int64), pd.Index(uniques)


@numba.njit(cache=True, nogil=True)
def _first_at_or_after(
    times: np.ndarray, starts: np.ndarray, codes: np.ndarray, cuts: np.ndarray
) -> np.ndarray:
    """Per query, the position of the entity's first event with time >= cut."""
    out = np.zeros(len(codes), dtype=np.int64)
    for q in range(len(codes)):
        c = codes[q]
        if c < 0:
            continue
        lo, hi = starts[c], starts[c + 1]
        while lo < hi:  # binary search inside the entity's own events
            mid = (lo + hi) // 2
            if times[mid] < cuts[q]:
                lo = mid + 1
            else:
                hi = mid
        out[q] = lo
    return out


@numba.njit(cache=True, nogil=True)
def _group_stably(by_time: np.ndarray, codes: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Counting sort of `by_time` by entity code, keeping time order inside each entity."""
    fill = starts[:-1].copy()
    order = np.empty(len(by_time), dtype=np.int64)
    for i in by_time:
        c = codes[i]
        order[fill[c]] = i
        fill[c] += 1
    return order


@dataclass(frozen=True)
class EventIndex:
    """Events sorted by (entity, time), so "how many before t" is a binary search.

    Positions are global (into the sorted events), so prefix sums over any weights in
    sorted order give an entity's window totals as p[count_before(end)] - p[count_before(start)].
    Ties in time may come in any order: a cut never falls between equal times.
    """

    order: np.ndarray  # event positions in the caller's frame, in sorted order
    times: np.ndarray  # event times in sorted order (ns)
    starts: np.ndarray  # first sorted position of each entity code; one extra at the end
    entities: pd.Index  # entity value of each code

    @classmethod
    def build(cls, entities: pd.Series | np.ndarray, times_ns: np.ndarray) -> EventIndex:
        """Index events of `entities` at `times_ns`."""
        codes, uniques = encode(entities)
        times_ns = np.asarray(times_ns)
        by_time = np.argsort(times_ns, kind="stable")  # inputs often come nearly in time order
        counts = np.bincount(codes, minlength=len(uniques))
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        order = _group_stably(by_time, codes, starts)
        return cls(order, times_ns[order], starts, uniques)

    @property
    def sorted_codes(self) -> np.ndarray:
        """Entity code of each event in sorted order."""
        return np.repeat(np.arange(len(self.entities)), np.diff(self.starts))

    def code_of(self, entities: pd.Series | np.ndarray) -> np.ndarray:
        """Entity codes of query rows; -1 where the entity has no event."""
        return self.entities.get_indexer(pd.Index(np.asarray(entities, dtype=object))).astype(
            np.int64
        )

    def count_before(self, codes: np.ndarray, cut_ns: np.ndarray | int) -> np.ndarray:
        """Sorted position of each entity's first event at or after its cut (`t < cut` is
        before it); 0 for an entity without events, so its windows are empty."""
        cuts = np.broadcast_to(np.asarray(cut_ns, dtype=np.int64), codes.shape)
        return _first_at_or_after(self.times, self.starts, codes, np.ascontiguousarray(cuts))

    def first_of(self, codes: np.ndarray) -> np.ndarray:
        """Sorted position of each entity's first event (0 for an entity without events)."""
        return np.where(codes >= 0, self.starts[np.maximum(codes, 0)], 0)


def prefix_sums(values: np.ndarray) -> np.ndarray:
    """Integer prefix sums with a leading zero row: window total = p[hi] - p[lo], exactly."""
    values = np.asarray(values, dtype=np.int64)
    out = np.zeros((len(values) + 1, *values.shape[1:]), dtype=np.int64)
    np.cumsum(values, axis=0, out=out[1:])
    return out
