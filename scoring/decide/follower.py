"""A worker following its store's arrival log and its clock: a commit reaches decisions
without a restart, and under the wall clock the features move with the time.

A thread looks every 0.05 s whether a table's commit directory changed (`CommitWatch`, a
few stat calls), and then, or at least every `follow_log_seconds`, reads the versions of
the log's tables (`ArrivalLog.versions`, about 5 ms), read together with
the instant and compared with those the data were read at (`ServiceState.log_versions`, so
no commit falls between the first load and the first poll). When one moved, it loads the
store again from the data it had, live (only the rows the commits added read, what is
built from a table that did not move kept, the index series completed for new scenes and
fields, the snapshot rows of the farmers the commits touched built again) and swaps it in
with one assignment. Requests in flight keep the data they started with; the next batch
decides from the new. A load that fails leaves the data as they were and is tried again
at the next poll.

Under `clock = "now"` every decision of a worker is made as of the instant its farmer's
snapshot row was built, so all of them are answered from the snapshot instead of each
building its own features. That instant is taken while no batch is being appended
(`ArrivalLog.settled`), and the load reads only the rows recorded before it: a decision's
features are exactly `features build --as-of` that instant. When nothing arrives, the
snapshot is built again as of the clock every `refresh_seconds`.

Building the touched rows is most of a commit's cost (0.5 s of 0.7 s after 1,000 orders on
the demo world). With several workers, `serve` runs one follower for the host
(`follow_and_publish`, its own process), which builds them and publishes the snapshot
(scoring/decide/shared_snapshot.py); each worker's follower then only reads what the
commits added, at the versions and instant the snapshot names, and takes its rows.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from features.arrival_log import ArrivalLog, Versions
from scoring.config import Settings
from scoring.decide.data import FeatureSource
from scoring.decide.prepared import PREPARE_EVERY_S, write_prepared
from scoring.decide.shared_snapshot import (
    Stamp,
    moved_back,
    publish,
    read_published,
    stamp_of,
)
from scoring.decide.state import ServiceState, load_source, settled_read
from scoring.runtime import STARTUP_FAILURE

log = logging.getLogger(__name__)
PUBLISHED_POLL_S = 0.05


def caught_up(
    settings: Settings,
    log_: ArrivalLog | None,
    source: FeatureSource,
    seen: Versions,
    refresh_seconds: float,
) -> tuple[FeatureSource, Versions] | None:
    """`source` loaded again if the log moved since the versions `seen`, or its snapshot
    built again as of now if it is `refresh_seconds` old; None if neither."""
    instant, now = settled_read(settings, log_)
    if now != seen:
        return FeatureSource.load(
            settings.data_dir, live=True, as_of=instant, reuse=source, versions=now
        ), now
    if instant is not None and _age_seconds(source, instant) >= refresh_seconds:
        return source.rebuilt_at(instant), now
    return None


class CommitWatch:
    """Whether the log may have moved since the last look: its tables' commit directories'
    stamps (`ArrivalLog.commit_stamp`, a few stat calls), so a follower can look every
    0.05 s; and, whatever the stamps say, at least every `every` seconds (two commits in
    one tick of the directory clock, the wall clock's refresh)."""

    def __init__(self, log_: ArrivalLog | None, every: float) -> None:
        self.log = log_
        self.every = every
        self.stamp: tuple[int | None, ...] | None = None
        self.looked = float("-inf")
        self._stamp: tuple[int | None, ...] | None = None
        self._now = self.looked

    def moved(self) -> bool:
        """Whether to read the versions now; `look_done` once they were read and loaded (a
        look that failed is made again at the next poll). Without a log (a directory of
        files under the wall clock), only every `every` seconds."""
        self._stamp = self.log.commit_stamp() if self.log is not None else None
        self._now = time.monotonic()
        fresh = self._now - self.looked < self.every
        return not (fresh and self._stamp == self.stamp)

    def look_done(self) -> None:
        self.stamp, self.looked = self._stamp, self._now


def taken_published(
    directory: Path, settings: Settings, source: FeatureSource, seen: Versions
) -> tuple[FeatureSource, Versions] | None:
    """`source` brought to the snapshot the host's follower last published in `directory`
    (the tables read at its versions and instant, its rows taken as they are); None if
    that snapshot is of an older state of the log than `seen`."""
    published = read_published(directory)
    if published is None or moved_back(published.versions, seen):
        return None
    if published.versions == seen:  # the clock moved, the data did not
        return replace(source, snapshot=published.snapshot), seen
    loaded = FeatureSource.load(
        settings.data_dir,
        live=True,
        as_of=published.recorded_before,
        reuse=source,
        versions=published.versions,
        snapshot=published.snapshot,
    )
    return loaded, published.versions


class LogFollower:
    """Keeps `state.source` current with the arrival log of `state.settings.data_dir` and,
    under the wall clock, with the time."""

    def __init__(
        self, state: ServiceState, *, poll_seconds: float, refresh_seconds: float | None = None
    ) -> None:
        self.state = state
        present = ArrivalLog.present(state.settings.data_dir)
        self.log = ArrivalLog(state.settings.data_dir) if present else None
        self.poll_seconds = poll_seconds
        self.refresh_seconds = (
            state.settings.refresh_features_seconds if refresh_seconds is None else refresh_seconds
        )
        self.seen = state.log_versions  # read with the data, so no commit falls between
        self.live_dir = state.settings.live_dir
        self.taken: Stamp | None = None  # the published snapshot last looked at
        self.watch = CommitWatch(self.log, poll_seconds)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def catch_up(self) -> bool:
        """Load the store again if the log moved since the data were loaded, or build the
        snapshot again as of now if it is `refresh_seconds` old; beside a host's follower,
        take the snapshot it published since. True if the data changed."""
        started = time.perf_counter()
        settings = self.state.settings
        if self.live_dir is not None:
            stamp = stamp_of(self.live_dir)
            if stamp is None or stamp == self.taken:
                return False
            got = taken_published(self.live_dir, settings, self.state.source, self.seen)
            self.taken = stamp  # a load that failed is tried again at the next poll
        else:
            if not self.watch.moved():
                return False
            got = caught_up(settings, self.log, self.state.source, self.seen, self.refresh_seconds)
            self.watch.look_done()
        if got is None:
            return False
        source, now = got
        if now != self.seen:
            self.state.metrics.data_reloads.inc()
        self.state.source = source  # one assignment: a batch reads it once
        self.seen = now
        self.state.publish_data()
        log.info("features as of %s in %.2f s (log versions %s)",
                 self.state.as_of().isoformat(), time.perf_counter() - started, now)  # fmt: skip
        return True

    def _run(self) -> None:
        # a look is a few stat calls (the published file's, or the commit directories'):
        # look often, and read the log's versions only when they moved
        poll = min(self.poll_seconds, PUBLISHED_POLL_S)
        while not self._stop.wait(poll):
            try:
                self.catch_up()
            except Exception:  # a half-arrived scene file, a failing disk: try again later
                log.warning("could not load the store again; keeping the data as they were",
                            exc_info=True)  # fmt: skip

    def start(self) -> None:
        """Follow the log on a thread of its own."""
        self._thread = threading.Thread(target=self._run, daemon=True, name="log-follower")
        self._thread.start()

    def stop(self) -> None:
        """Stop following (the app's shutdown)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


def _age_seconds(source: FeatureSource, instant: pd.Timestamp) -> float:
    """How old the snapshot's oldest row is (a commit builds again only its farmers')."""
    if source.snapshot is None or not len(source.snapshot.instants):
        return float("inf")
    oldest = pd.Timestamp(int(source.snapshot.instants.min()), tz="UTC")
    return float((instant - oldest).total_seconds())


class _Preparer:
    """Prepares the data for a worker started again (scoring/decide/prepared.py) on a
    thread of its own, one state at a time, so the follower goes on publishing meanwhile
    (11.5 s at 100,000 farmers; pickling holds the GIL, so its commits are built more
    slowly then). The data a follower holds are never changed in place:
    each commit makes new frames, so a state being written stays as it was."""

    def __init__(self, directory: Path, settings: Settings) -> None:
        self.directory, self.settings = directory, settings
        self.started = float("-inf")
        self._thread: threading.Thread | None = None

    def due(self) -> bool:
        idle = self._thread is None or not self._thread.is_alive()
        return idle and time.monotonic() - self.started >= PREPARE_EVERY_S

    def start(self, source: FeatureSource, seen: Versions) -> None:
        self.started = time.monotonic()
        self._thread = threading.Thread(
            target=self._write, args=(source, seen), daemon=True, name="prepare"
        )
        self._thread.start()

    def _write(self, source: FeatureSource, seen: Versions) -> None:
        started = time.perf_counter()
        try:
            write_prepared(self.directory, self.settings.data_dir, source, seen)
        except Exception:  # a full disk: a worker started again reads the store instead
            log.warning("could not prepare the data for the workers", exc_info=True)
        else:
            log.info("prepared the data for the workers in %.2f s", time.perf_counter() - started)


def follow_and_publish(settings: Settings) -> None:
    """The host's follower (its own process, beside `serve`'s workers): load the store,
    publish every farmer's snapshot in `settings.live_dir`, and publish it again at each
    commit and refresh, until the process is stopped. With nothing to follow (a directory
    of files decided as of its data) it publishes once.

    Exits with STARTUP_FAILURE when the store cannot be loaded at start."""
    directory = settings.live_dir
    if directory is None:
        raise ValueError("the host's follower needs AGRICREDIT_LIVE_DIR")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    try:
        source, seen = load_source(settings.model_copy(update={"live_dir": None}))
    except Exception:
        log.exception("the host's follower could not load %s", settings.data_dir)
        raise SystemExit(STARTUP_FAILURE) from None
    publish(directory, source, seen)
    present = ArrivalLog.present(settings.data_dir)
    preparer = _Preparer(directory, settings) if present else None
    if preparer is not None:
        preparer.start(source, seen)
    if settings.follow_log_seconds <= 0 or not (present or settings.clock == "now"):
        stop.wait()
        return
    log_ = ArrivalLog(settings.data_dir) if present else None
    watch = CommitWatch(log_, settings.follow_log_seconds)
    while not stop.wait(min(settings.follow_log_seconds, PUBLISHED_POLL_S)):
        if not watch.moved():
            continue
        try:
            got = caught_up(settings, log_, source, seen, settings.refresh_features_seconds)
            watch.look_done()
        except Exception:  # a half-arrived scene file, a failing disk: try again later
            log.warning("could not load the store again; keeping the data as they were",
                        exc_info=True)  # fmt: skip
            continue
        if got is not None:
            source, seen = got
            publish(directory, source, seen)
            if preparer is not None and preparer.due():
                preparer.start(source, seen)
