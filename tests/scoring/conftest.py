"""Scoring fixtures: a ledger on each database, and a fresh service state (own ledger) per
test on the tiny world's champion (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from scoring.api.app import create_app
from scoring.config import Settings
from scoring.decide.data import FeatureSource
from scoring.decide.model_store import ModelStore
from scoring.decide.policy import load_policy
from scoring.decide.state import ServiceState
from scoring.ledger.repo import Ledger
from scoring.metrics import ServiceMetrics
from tests.factories import Served, ValidatingClient, fresh_postgres_url


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
    with ValidatingClient(create_app(state.settings, state=state)) as c:
        yield c
