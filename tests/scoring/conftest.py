"""Scoring fixtures: a tiny world with a trained champion in its own MLflow store, and a
fresh service state (own ledger) per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from features.feature_store import write_feature_store
from scoring.api.app import create_app
from scoring.config import Settings
from scoring.decide.data import FeatureSource
from scoring.decide.model_store import ModelStore
from scoring.decide.policy import load_policy
from scoring.decide.state import ServiceState
from scoring.ledger.keys import create_key
from scoring.ledger.repo import Ledger
from scoring.metrics import ServiceMetrics
from tests.factories import copy_world
from training.config import TrainingSettings
from training.pipeline import train_model
from training.registry import get_client, set_champion
from training.tracking import log_trained_model, use_experiment

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class Served:
    """A world ready to serve: data with features, and a store with a champion."""

    world: Path
    training: TrainingSettings
    root: Path


@pytest.fixture(scope="session")
def served(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Served:
    root = tmp_path_factory.mktemp("served")
    world = copy_world(tiny_world, root / "world")
    write_feature_store(world)
    settings = TrainingSettings(tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
                                artifact_root=root / "artifacts")  # fmt: skip
    use_experiment("serving-tests", settings)
    model = train_model(pd.read_parquet(world / "features" / "training.parquet"))
    tracked = log_trained_model(model, run_name="champion", settings=settings)
    set_champion(get_client(settings), tracked.version)
    return Served(world, settings, root)


@pytest.fixture(scope="session")
def source(served: Served) -> FeatureSource:
    return FeatureSource.load(served.world)


def postgres_or_skip() -> str:
    """The CI PostgreSQL, or a skip with the reason (a failure where it is required)."""
    engine = sa.create_engine(POSTGRES_URL)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        if os.environ.get("AGRICREDIT_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required here but not reachable at {POSTGRES_URL}: {exc}")
        pytest.skip(f"no PostgreSQL at {POSTGRES_URL} (CI runs these against it)")
    finally:
        engine.dispose()
    return POSTGRES_URL


def fresh_postgres_url() -> str:
    """A new schema of the test database, as a URL whose connections use it."""
    base = postgres_or_skip()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    return f"{base}?options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    """A migrated, empty ledger on each database."""
    url = (
        f"sqlite:///{tmp_path / 'ledger.db'}" if request.param == "sqlite" else fresh_postgres_url()
    )
    book = Ledger(url)
    book.migrate()
    yield book
    book.close()


@pytest.fixture
def state(served: Served, source: FeatureSource, tmp_path: Path) -> Iterator[ServiceState]:
    settings = Settings(data_dir=served.world, database_url=f"sqlite:///{tmp_path / 'l.db'}")
    book = Ledger(settings.ledger_url)
    book.migrate()
    store = ModelStore("champion", served.training)
    store.load()
    yield ServiceState(settings=settings, source=source, models=store,
                        policy=load_policy(settings.policy_path), ledger=book,
                        metrics=ServiceMetrics())  # fmt: skip
    book.close()


@pytest.fixture
def client(state: ServiceState) -> TestClient:
    with TestClient(create_app(state.settings, state=state)) as c:
        yield c


def bearer(state: ServiceState, role: str = "lender", coop_id: str | None = None) -> dict:
    """Authorization header of a new key."""
    _, secret = create_key(state.ledger.keys, role=role, name=f"test {role}", coop_id=coop_id)
    return {"Authorization": f"Bearer {secret}"}
