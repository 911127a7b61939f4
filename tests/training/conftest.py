"""Training fixtures: an isolated MLflow store per test, and the default world's features."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.feature_store import write_feature_store
from tests.factories import copy_world
from training.config import get_training_settings


@pytest.fixture
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh SQLite tracking and registry store with its own artifact root."""
    monkeypatch.setenv("AGRICREDIT_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("AGRICREDIT_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    get_training_settings.cache_clear()
    yield tmp_path
    get_training_settings.cache_clear()


@pytest.fixture(scope="session")
def default_features(default_world, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the default world with its features built (read-only)."""

    world = copy_world(default_world[0], tmp_path_factory.mktemp("trained") / "default")
    write_feature_store(world)
    return world
