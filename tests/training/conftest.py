"""Training fixtures: an isolated MLflow store per test, and the tiny world's features."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.build import write_feature_store
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
def tiny_features(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny world with its features built (read-only)."""
    from tests.factories import copy_world

    world = copy_world(tiny_world, tmp_path_factory.mktemp("trained") / "world")
    write_feature_store(world)
    return world


@pytest.fixture(scope="session")
def default_features(default_world, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the default world with its features built (read-only)."""
    from tests.factories import copy_world

    world = copy_world(default_world[0], tmp_path_factory.mktemp("trained") / "default")
    write_feature_store(world)
    return world


@pytest.fixture(scope="session")
def tiny_matrix(tiny_features: Path) -> pd.DataFrame:
    """The tiny world's training matrix."""
    return pd.read_parquet(tiny_features / "features" / "training.parquet")
