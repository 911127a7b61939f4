"""What the running service holds: settings, data, model, policy, ledger, metrics."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from scoring.config import Settings
from scoring.feature_source import FeatureSource
from scoring.ledger.repo import Ledger
from scoring.metrics import ServiceMetrics
from scoring.model_store import ModelStore
from scoring.policy import Policy


@dataclass
class ServiceState:
    """Everything a request handler needs, built once per worker."""

    settings: Settings
    source: FeatureSource
    models: ModelStore
    policy: Policy
    ledger: Ledger
    metrics: ServiceMetrics

    def as_of(self) -> pd.Timestamp:
        """The time decisions are made as of (see Settings.clock)."""
        if self.settings.clock == "now":
            return pd.Timestamp.now(tz="UTC")
        return self.source.data_as_of
