"""Training fixtures: an isolated MLflow store per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.config import get_training_settings


@pytest.fixture
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh SQLite tracking and registry store with its own artifact root."""
    monkeypatch.setenv("AGRICREDIT_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("AGRICREDIT_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    get_training_settings.cache_clear()
    yield tmp_path
    get_training_settings.cache_clear()
