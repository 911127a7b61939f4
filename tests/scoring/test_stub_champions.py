"""The stub champions the API, policy, pre-approval and end-to-end tests serve: real model
files, registered and loaded the way a trained champion is, whose probability of default
is the one written down."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.registry import FEATURES
from scoring.decide.engine import Application, evaluate_applications
from scoring.decide.model_store import ModelStore
from scoring.decide.policy import load_policy
from tests.factories import (
    STUB_FEATURE,
    STUB_ORDERS,
    STUB_PD_FEW_ORDERS,
    STUB_PD_MANY_ORDERS,
    register_champion,
    write_stub_bundle,
)
from training.artifact import read_bundle
from training.config import TrainingSettings


@pytest.fixture(scope="module")
def constant(tmp_path_factory) -> ModelStore:
    root = tmp_path_factory.mktemp("constant")
    settings = TrainingSettings(tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
                                artifact_root=root / "artifacts")  # fmt: skip
    sha = write_stub_bundle(root / "constant", pd_few=0.05, pd_many=0.05)
    register_champion(root / "constant", sha, settings)
    store = ModelStore("champion", settings)
    store.load()
    return store


def test_the_constant_champion_gives_every_row_the_same_pd(constant):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, len(FEATURES))) * 100
    x[::7] = np.nan  # missing values too

    pds = constant.current.predictor.predict_pd(x)

    np.testing.assert_allclose(pds, 0.05, atol=1e-6)


def test_the_scripted_champion_gives_its_pd_by_the_orders_of_the_last_year(served):
    bundle = read_bundle(next(served.root.glob("scripted")))
    column = bundle.feature_names.index(STUB_FEATURE)
    x = np.zeros((4, len(bundle.feature_names)))
    x[:, column] = [0, STUB_ORDERS - 1, STUB_ORDERS + 1, 300]
    missing = x[:1].copy()
    missing[0, column] = np.nan  # no shop: read as no orders

    pds = bundle.predict_pd(np.vstack([x, missing]))

    expected = [STUB_PD_FEW_ORDERS] * 2 + [STUB_PD_MANY_ORDERS] * 2 + [STUB_PD_FEW_ORDERS]
    np.testing.assert_allclose(pds, expected, atol=1e-6)


def test_served_decisions_follow_the_scripted_pd(state, source):
    snapshot = pd.read_parquet(state.settings.data_dir / "features" / "snapshot.parquet")
    rows = snapshot[snapshot["contract_id"].notna() & (snapshot["contract_id"] != "nan")].head(30)
    apps = [
        Application(f"stub-{i}", r.farmer_id, r.contract_id, 500_000, ())
        for i, r in enumerate(rows.itertuples())
    ]

    outcomes = evaluate_applications(
        apps,
        source=source,
        model=state.models.current.predictor,
        policy=load_policy(),
        as_of=source.data_as_of,
    )

    few = rows[STUB_FEATURE].fillna(0).to_numpy() < STUB_ORDERS
    assert few.any() and (~few).any()
    for outcome, is_few in zip(outcomes, few, strict=True):
        wanted = STUB_PD_FEW_ORDERS if is_few else STUB_PD_MANY_ORDERS
        assert outcome.pd == pytest.approx(wanted, abs=1e-6)
        if is_few:
            assert outcome.decision.decision == "decline"
