"""What the running service holds: settings, data, model, policy, ledger, metrics."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from features.arrival_log import ArrivalLog
from scoring.config import Settings
from scoring.decide.data import FeatureSource
from scoring.decide.model_store import ModelStore
from scoring.decide.policy import Policy, load_policy
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
        return cls(
            settings=settings,
            source=_first_source(settings),
            models=store,
            policy=load_policy(settings.policy_path),
            ledger=ledger,
            metrics=metrics,
        )

    def as_of(self, source: FeatureSource | None = None) -> pd.Timestamp:
        """The time decisions from `source` (default: the current data) are made as of (see
        Settings.clock): under the wall clock, the instant its snapshot was built
        (scoring/decide/follower.py)."""
        source = source or self.source
        if self.settings.clock == "now":
            snapshot = source.snapshot
            return snapshot.as_of if snapshot is not None else pd.Timestamp.now(tz="UTC")
        return source.data_as_of


def _first_source(settings: Settings) -> FeatureSource:
    """The data a worker starts from: a store appended to since its features were built is
    served as it is now; under the wall clock, as of the instant it was read."""
    store = ArrivalLog.present(settings.data_dir)
    if settings.clock != "now":
        return FeatureSource.load(settings.data_dir, live=store)
    if not store:
        return FeatureSource.load(settings.data_dir, as_of=pd.Timestamp.now(tz="UTC"))
    with ArrivalLog(settings.data_dir).settled() as instant:  # nothing half-committed
        pass
    return FeatureSource.load(settings.data_dir, live=True, as_of=instant)
