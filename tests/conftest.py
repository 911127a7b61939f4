"""Shared, expensive fixtures: simulated worlds built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from features.assembly import Inputs
from features.feature_store import load_inputs, write_feature_store
from features.runners import DaskRunner
from features.simulate.params import WorldParams
from features.simulate.world import WorldSummary, simulate_world
from scoring.decide.data import FeatureSource
from tests.factories import (
    STUB_PD_FEW_ORDERS,
    STUB_PD_MANY_ORDERS,
    TINY,
    Served,
    copy_world,
    register_champion,
    write_stub_bundle,
)
from training.config import TrainingSettings
from training.pipeline import train_model
from training.promotion import record_review
from training.registry import get_client
from training.tracking import log_trained_model, use_experiment

# The test worlds end at their natural extraction, months ago: the tests decide on their
# data's clock (servers they start inherit it), and a test of the wall clock says so.
os.environ.setdefault("AGRICREDIT_CLOCK", "data")

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small seeded world: two counties (two UTM zones), three seasons."""
    out = tmp_path_factory.mktemp("worlds") / "tiny"
    simulate_world(TINY, out, progress=False)
    return out


@pytest.fixture(scope="session")
def default_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, WorldSummary]:
    """The world the README's main command builds (default parameters)."""
    out = tmp_path_factory.mktemp("worlds") / "default"
    summary = simulate_world(WorldParams(), out, progress=False)
    return out, summary


@pytest.fixture(scope="session")
def tiny_inputs(tiny_world: Path) -> Inputs:
    """The tiny world's typed tables and index time series (read-only: copy to change)."""
    return load_inputs(tiny_world)


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Real public files in ../shared/data/real (read-only)."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"real data not found at {REAL_DATA}; clone beside ../shared")
    return REAL_DATA


@pytest.fixture(scope="session")
def dask_runner():
    """A runner on a local Dask cluster of two single-threaded worker processes."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        yield DaskRunner(client)


@pytest.fixture(scope="session")
def tiny_features(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny world with its features built (read-only)."""
    world = copy_world(tiny_world, tmp_path_factory.mktemp("trained") / "world")
    write_feature_store(world)
    return world


@pytest.fixture(scope="session")
def tiny_matrix(tiny_features: Path) -> pd.DataFrame:
    """The tiny world's training matrix."""
    return pd.read_parquet(tiny_features / "features" / "training.parquet")


@pytest.fixture(scope="session")
def default_features(default_world, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the default world with its features built (read-only)."""

    world = copy_world(default_world[0], tmp_path_factory.mktemp("trained") / "default")
    write_feature_store(world)
    return world


def _served_world(tmp_path_factory: pytest.TempPathFactory, tiny_world: Path, name: str):
    root = tmp_path_factory.mktemp(name)
    world = copy_world(tiny_world, root / "world")
    write_feature_store(world)
    settings = TrainingSettings(tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
                                artifact_root=root / "artifacts")  # fmt: skip
    return root, world, settings


@pytest.fixture(scope="session")
def served(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Served:
    """The tiny world with its features and the scripted stub champion (tests/factories.py)."""
    root, world, settings = _served_world(tmp_path_factory, tiny_world, "served")
    sha = write_stub_bundle(
        root / "scripted", pd_few=STUB_PD_FEW_ORDERS, pd_many=STUB_PD_MANY_ORDERS
    )
    register_champion(root / "scripted", sha, settings)
    return Served(world, settings, root)


@pytest.fixture(scope="session")
def trained_served(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Served:
    """The tiny world with a champion trained on it: for the end-to-end smoke test."""
    root, world, settings = _served_world(tmp_path_factory, tiny_world, "trained-served")
    use_experiment("serving-tests", settings)
    model = train_model(pd.read_parquet(world / "features" / "training.parquet"))
    tracked = log_trained_model(model, run_name="champion", settings=settings)
    record_review(get_client(settings), tracked.version, settings,
                  why="trained on the tiny world for the end-to-end smoke test")  # fmt: skip
    return Served(world, settings, root)


@pytest.fixture(scope="session")
def source(served: Served) -> FeatureSource:
    return FeatureSource.load(served.world)


# Tests that build the default world run on one xdist worker (it is built once per worker
# that needs it); so do those on a local Dask cluster (one cluster per worker).
_GROUPS = (("default_world", "default-world"), ("dask_runner", "dask"))


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        for fixture, group in _GROUPS:
            if fixture in fixtures:
                item.add_marker(pytest.mark.xdist_group(group))
                break
