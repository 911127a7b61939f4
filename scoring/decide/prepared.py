"""A worker's data as the host's follower prepared them, so a worker started again (one
that died, one added) does not read, type and index the whole store.

Reading the log's tables, typing them and finding each farmer's rows is most of a worker's
start: 23 s of it at 100,000 farmers (16 M orders) beside a host follower that had
published the snapshot. The follower holds exactly those data, so it writes them
(`write_prepared`, at its start and then every PREPARE_EVERY_S while the log moves):
pickled, every array's data (numpy's and Arrow's) out of band in one file that a worker
maps into memory rather than reads. A worker takes them as the data loaded before and
brings them to the published snapshot's versions and instant the way a follower does
after a commit (`FeatureSource.load(reuse=...)`: only the rows committed since are read).

The files are the host's own, in the directory `serve` made for its workers (mode 0700) or
the one its operator named in AGRICREDIT_LIVE_DIR; nothing else is ever unpickled.
"""

from __future__ import annotations

import io
import logging
import mmap
import os
import pickle
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from features.arrival_log import Versions
from scoring.decide.data import FeatureSource

log = logging.getLogger(__name__)

PREPARED_FILE = "prepared.pkl"
BUFFERS_PREFIX = "prepared-"
ALIGN = 64  # each buffer starts at a multiple of it, as numpy and Arrow like their data
PREPARE_EVERY_S = 600.0  # what a worker started again reads on top: the commits since


@dataclass(frozen=True)
class Prepared:
    """A worker's data, without the snapshot, and the log versions they were read at."""

    source: FeatureSource
    versions: Versions


class _PackedArrays:
    """A dict of 1-D arrays of one dtype (each farmer's rows, each field's scenes) as one
    array and the lengths: 76,000 small arrays unpickled one by one took 1.1 s."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.keys = list(arrays)
        self.lengths = np.array([len(a) for a in arrays.values()], dtype=np.int64)
        self.flat = np.concatenate(list(arrays.values()))

    def unpacked(self) -> dict[str, np.ndarray]:
        ends = np.cumsum(self.lengths)
        # views into the mapped array: nothing is copied
        parts = np.split(self.flat, ends[:-1]) if len(ends) else []
        return dict(zip(self.keys, parts, strict=True))

    @staticmethod
    def packable(value: object) -> bool:
        if not isinstance(value, dict) or not value:
            return False
        arrays = list(value.values())
        if not all(isinstance(a, np.ndarray) and a.ndim == 1 for a in arrays):
            return False
        return len({a.dtype for a in arrays}) == 1 and all(isinstance(k, str) for k in value)


def _packed(source: FeatureSource) -> FeatureSource:
    # stand-ins for the dicts, in the pickle only (`_unpacked` puts the dicts back)
    changes: dict[str, Any] = {
        f.name: _PackedArrays(getattr(source, f.name))
        for f in fields(source)
        if _PackedArrays.packable(getattr(source, f.name))
    }
    return replace(source, snapshot=None, **changes)


def _unpacked(source: FeatureSource) -> FeatureSource:
    changes = {
        f.name: getattr(source, f.name).unpacked()
        for f in fields(source)
        if isinstance(getattr(source, f.name), _PackedArrays)
    }
    return replace(source, **changes)


def _datetimes(values: np.ndarray, dtype: str) -> np.ndarray:
    return values.view(dtype)


def _geometries(wkb: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    shapes: np.ndarray = shapely.from_wkb(wkb)
    return shapes.reshape(shape)


class _Pickler(pickle.Pickler):
    """Protocol 5: every array's data is handed over apart from the pickle (out of band),
    datetimes' too (numpy keeps those in band: 256 MB of the 16 M orders' times), and an
    array of shapes as one array of WKB (each shape made alone took 1.1 s of 139,399)."""

    def __init__(self, out: io.BytesIO, buffer_callback: Callable[[pickle.PickleBuffer], None]):
        super().__init__(out, protocol=5, buffer_callback=buffer_callback)

    def reducer_override(self, obj: Any) -> Any:
        if not isinstance(obj, np.ndarray):
            return NotImplemented
        if obj.dtype.kind in "mM" and obj.flags.c_contiguous:
            return _datetimes, (obj.view(np.int64), obj.dtype.str)
        if obj.dtype == object and obj.size and shapely.is_geometry(obj).all():
            return _geometries, (shapely.to_wkb(obj.ravel()), obj.shape)
        return NotImplemented


def write_prepared(
    directory: Path, data_dir: Path, source: FeatureSource, versions: Versions
) -> None:
    """Write `source` (its snapshot left out: that is published on its own) and the log
    versions it holds, whole or not at all; the files of the state written before are
    removed (a worker reading them keeps its mapping)."""
    directory.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(6)
    name = f"{BUFFERS_PREFIX}{token}.buffers"
    buffers: list[pickle.PickleBuffer] = []
    state = (_packed(source), versions, str(data_dir.resolve()))
    body = io.BytesIO()
    _Pickler(body, buffers.append).dump(state)
    handle, aside = tempfile.mkstemp(dir=directory, prefix=".prepared-", suffix=".pkl")
    try:
        spans = []
        with open(directory / name, "wb") as out:
            at = 0
            for buffer in buffers:
                raw = buffer.raw()
                out.write(b"\0" * (-at % ALIGN))
                at += -at % ALIGN
                out.write(raw)
                spans.append((at, raw.nbytes))
                at += raw.nbytes
        with os.fdopen(handle, "wb") as out:  # a header naming the buffers, then the body
            pickle.dump({"buffers": name, "spans": spans}, out, protocol=5)
            out.write(body.getbuffer())
        os.replace(aside, directory / PREPARED_FILE)
    except BaseException:
        Path(aside).unlink(missing_ok=True)
        (directory / name).unlink(missing_ok=True)
        raise
    for old in directory.glob(f"{BUFFERS_PREFIX}*.buffers"):
        if old.name != name:
            old.unlink(missing_ok=True)


def read_prepared(directory: Path, data_dir: Path) -> Prepared | None:
    """The data the host's follower last prepared in `directory` from the store
    `data_dir`, None if none (or if it was replaced while being read: the caller reads the
    store instead). The arrays' data are mapped from their file, copy on write: pages
    are read as they are touched and shared with the page cache until written."""
    if not (directory / PREPARED_FILE).exists():
        return None
    try:
        with open(directory / PREPARED_FILE, "rb") as f:
            saved = pickle.load(f)
            body = f.read()
        with open(directory / saved["buffers"], "rb") as f:
            size = os.fstat(f.fileno()).st_size
            mapped = (
                memoryview(mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY)) if size else b""
            )
        buffers = [mapped[at : at + n] for at, n in saved["spans"]]
        source, versions, of = pickle.loads(body, buffers=buffers)
    except FileNotFoundError:
        return None
    except Exception:  # a state of another build of the code: reading the store is exact
        log.warning("could not read the prepared data in %s; reading the store", directory,
                    exc_info=True)  # fmt: skip
        return None
    if of != str(data_dir.resolve()):
        return None
    return Prepared(_unpacked(source), tuple(versions))
