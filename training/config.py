"""Training settings: where MLflow tracks runs and keeps the registry.

The default store is top-level `mlruns/`: tracking and registry in SQLite
(`mlruns/mlflow.db`), artifacts under `mlruns/artifacts`. MLflow 3's file-store backend is
legacy and is not used. Override with AGRICREDIT_TRACKING_URI (e.g. a PostgreSQL URL).
Promotions are signed with the key in AGRICREDIT_SIGNING_KEY_FILE (default
`mlruns/signing.key`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_STORE = Path("mlruns")


class TrainingSettings(BaseSettings):
    """Tracking URI, artifact root and experiment name, from AGRICREDIT_* variables."""

    model_config = SettingsConfigDict(env_prefix="AGRICREDIT_", extra="ignore")

    tracking_uri: str = f"sqlite:///{DEFAULT_STORE / 'mlflow.db'}"
    artifact_root: Path = DEFAULT_STORE / "artifacts"
    experiment: str = "agricredit"
    signing_key_file: Path | None = None  # default: signing.key beside the artifact root

    @property
    def signing_key_path(self) -> Path:
        """Where the key that signs promotions is kept (training/signing.py)."""
        return self.signing_key_file or Path(self.artifact_root).parent / "signing.key"


@lru_cache
def get_training_settings() -> TrainingSettings:
    """The process-wide settings, read once from the environment."""
    return TrainingSettings()
