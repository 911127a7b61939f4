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
            # a store appended to since its features were built is served as it is now
            source=FeatureSource.load(
                settings.data_dir, live=ArrivalLog.present(settings.data_dir)
            ),
            models=store,
            policy=load_policy(settings.policy_path),
            ledger=ledger,
            metrics=metrics,
        )

    def as_of(self) -> pd.Timestamp:
        """The time decisions are made as of (see Settings.clock)."""
        if self.settings.clock == "now":
            return pd.Timestamp.now(tz="UTC")
        return self.source.data_as_of
