"""The farmers' snapshot rows, built once per host and read by each of its workers.

Building again the rows of the farmers a commit touched is most of what following the log
costs a worker (0.5 s of 0.7 s after a batch of 1,000 orders on the demo world), and every
worker of a host would build the same rows on the same cores that answer requests. So
`serve` runs one process that follows the log and builds them (`follow_and_publish` in
scoring/decide/follower.py) and publishes them here; each worker reads only the rows the
commits added to the tables and takes the snapshot from the file. The file names the log
versions and the instant its rows were built from: a worker reads the tables at exactly
those, so its tables and the rows agree as if it had built the rows itself.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.arrival_log import Versions
from scoring.decide.data import FeatureSource, Snapshot, SnapshotRow

PUBLISHED_FILE = "snapshot.npz"
# a published file's (inode, mtime in ns): a new one at each publish (were a coarse clock and
# a reused inode to repeat one, that snapshot is taken with the next)
Stamp = tuple[int, int]


@dataclass(frozen=True)
class Published:
    """A snapshot as a host's follower built it, and the data it was built from."""

    snapshot: Snapshot
    versions: Versions  # of the arrival log
    recorded_before: pd.Timestamp | None  # the instant the tables were read as of


def publish(directory: Path, source: FeatureSource, versions: Versions) -> None:
    """Write `source`'s snapshot, with the versions and instant it was read at, for the
    host's workers (whole or not at all: written aside, then renamed over the last)."""
    snapshot = source.snapshot
    if snapshot is None:
        return
    farmers = sorted(snapshot.rows, key=lambda f: snapshot.rows[f].row)
    at = [snapshot.rows[f].row for f in farmers]
    recorded = source.log_tables.recorded_before if source.log_tables is not None else None
    meta = {
        "as_of": snapshot.as_of.isoformat(),
        "versions": list(versions),
        "recorded_before": None if recorded is None else recorded.isoformat(),
    }
    directory.mkdir(parents=True, exist_ok=True)
    handle, aside = tempfile.mkstemp(dir=directory, prefix=".snapshot-", suffix=".npz")
    with os.fdopen(handle, "wb") as out:
        np.savez(
            out,
            values=snapshot.values[at],
            instants=snapshot.instants[at],
            farmers=np.array(farmers, dtype=str),
            contracts=np.array([snapshot.rows[f].contract_id for f in farmers], dtype=str),
            meta=np.array(json.dumps(meta)),
        )
    os.replace(aside, directory / PUBLISHED_FILE)


def stamp_of(directory: Path) -> Stamp | None:
    """The published file's stamp, None while none is published."""
    try:
        stat = (directory / PUBLISHED_FILE).stat()
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_mtime_ns)


def read_published(directory: Path) -> Published | None:
    """The snapshot last published in `directory`, None while none is."""
    try:
        with np.load(directory / PUBLISHED_FILE, allow_pickle=False) as saved:
            values, instants = saved["values"], saved["instants"]
            farmers, contracts = saved["farmers"], saved["contracts"]
            meta = json.loads(str(saved["meta"]))
    except FileNotFoundError:
        return None
    rows = {
        str(f): SnapshotRow(i, str(c))
        for i, (f, c) in enumerate(zip(farmers, contracts, strict=True))
    }
    recorded = meta["recorded_before"]
    return Published(
        snapshot=Snapshot(pd.Timestamp(meta["as_of"]), values, rows, instants),
        versions=tuple(meta["versions"]),
        recorded_before=None if recorded is None else pd.Timestamp(recorded),
    )


def moved_back(published: Versions, seen: Versions) -> bool:
    """Whether a published snapshot is of an older state of the log than `seen` (a worker
    that started, or caught up, after it was published)."""
    return any((p if p is not None else -1) < (s if s is not None else -1)
               for p, s in zip(published, seen, strict=True))  # fmt: skip
