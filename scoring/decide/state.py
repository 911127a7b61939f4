"""What the running service holds: settings, data, model, policy, ledger, metrics."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from features import clock
from features.arrival_log import ArrivalLog, Versions
from scoring.config import Settings
from scoring.decide.data import FeatureSource
from scoring.decide.model_store import ModelStore
from scoring.decide.policy import Policy, load_policy
from scoring.decide.prepared import read_prepared
from scoring.decide.shared_snapshot import moved_back, read_published
from scoring.ledger.repo import Ledger
from scoring.metrics import ServiceMetrics


@dataclass
class ServiceState:
    """Everything a request handler needs, built once per worker."""

    settings: Settings
    source: FeatureSource
    models: ModelStore
    policy: Policy
    ledger: Ledger
    metrics: ServiceMetrics
    log_versions: Versions = ()  # of the arrival log, when `source` was read (none: no log)

    @classmethod
    def build(cls, settings: Settings) -> ServiceState:
        """Load everything a worker serves from: the ledger (migrated), the champion, the
        data and the policy."""
        ledger = Ledger.open(settings)
        ledger.migrate()
        store = ModelStore(settings.model_ref)
        served = store.load()
        metrics = ServiceMetrics()
        metrics.serve_model(served.name, served.version)
        source, versions = load_source(settings)
        return cls(
            settings=settings,
            source=source,
            models=store,
            policy=load_policy(settings.policy_path),
            ledger=ledger,
            metrics=metrics,
            log_versions=versions,
        )

    def publish_data(self) -> None:
        """Tell /metrics about the data decided from now: its as-of time and each input
        table's latest arrival."""
        source = self.source
        arrivals = {table: at.timestamp() for table, at in source.last_arrivals.items()}
        self.metrics.data_loaded(source.data_as_of.timestamp(), arrivals)

    def as_of(self, source: FeatureSource | None = None) -> pd.Timestamp:
        """The time decisions from `source` (default: the current data) are made as of (see
        Settings.clock): under the wall clock, the instant its snapshot was built
        (scoring/decide/follower.py)."""
        source = source or self.source
        if self.settings.clock == "now":
            snapshot = source.snapshot
            return snapshot.as_of if snapshot is not None else clock.now()
        return source.data_as_of


def settled_read(
    settings: Settings, log: ArrivalLog | None
) -> tuple[pd.Timestamp | None, Versions]:
    """The instant to decide as of (None: as of the data) and the log's versions, read
    together while no batch is being appended: the versions hold exactly the rows
    recorded before the instant. `log` None: the data directory has no log."""
    if log is None:
        return (clock.now() if settings.clock == "now" else None), ()
    with log.settled() as instant:
        return (instant if settings.clock == "now" else None), log.versions()


def load_source(settings: Settings) -> tuple[FeatureSource, Versions]:
    """The data a worker starts from, and the log versions they hold: a store appended to
    since its features were built is served as it is now; under the wall clock, as of
    the instant it was read. Beside a host's follower (`settings.live_dir`) that has
    published a snapshot, the data it was built from, with it (no row built here),
    brought there from the data the follower prepared, when it has (only the rows
    committed since are read: scoring/decide/prepared.py); a worker starting with the
    follower builds its own (waiting for the follower's first would add its whole load
    to the start: 20.7-22.8 s against 13.2-14.3 s to ready on the demo world,
    bench_live)."""
    store = ArrivalLog.present(settings.data_dir)
    live = settings.live_dir
    # prepared first: a state is prepared after it is published, so the snapshot read
    # next is of it or of a later one
    prepared = read_prepared(live, settings.data_dir) if live is not None and store else None
    published = read_published(live) if live is not None else None
    if published is not None:  # a worker started again beside a running host follower
        if prepared is not None and moved_back(published.versions, prepared.versions):
            prepared = None  # the follower was started again meanwhile: read the store
        source = FeatureSource.load(
            settings.data_dir,
            live=store,
            as_of=published.recorded_before,
            reuse=prepared.source if prepared is not None else None,
            versions=published.versions if store else None,
            snapshot=published.snapshot,
        )
        return source, published.versions
    instant, versions = settled_read(settings, ArrivalLog(settings.data_dir) if store else None)
    source = FeatureSource.load(
        settings.data_dir, live=store, as_of=instant, versions=versions if store else None
    )
    return source, versions
