"""Training settings: the MLflow store defaults to SQLite under mlruns/."""

from __future__ import annotations

from pathlib import Path

from training.config import TrainingSettings


def test_default_store_is_sqlite_in_mlruns_not_the_file_store(monkeypatch):
    monkeypatch.delenv("AGRICREDIT_TRACKING_URI", raising=False)

    settings = TrainingSettings()

    assert settings.tracking_uri == "sqlite:///mlruns/mlflow.db"
    assert settings.artifact_root == Path("mlruns/artifacts")


def test_tracking_uri_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("AGRICREDIT_TRACKING_URI", "postgresql://127.0.0.1:5432/test")

    assert TrainingSettings().tracking_uri == "postgresql://127.0.0.1:5432/test"
