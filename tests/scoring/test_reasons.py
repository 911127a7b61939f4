"""Reasons are true: a shown feature reason names a value the applicant has, on the side of
the training population's median where its sentence holds; missing data is said as such."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.registry import FLAG_NAMES, QUALITY_FLAGS, get_feature
from scoring.decide.data import FeatureSource
from scoring.decide.engine import Application, evaluate_applications
from scoring.decide.model_store import ModelStore
from scoring.decide.policy import load_policy
from scoring.decide.predictor import Predictor
from scoring.decide.reasons import Explainer, ModelReason
from training.artifact import ModelBundle, read_bundle
from training.dataset import labelled, split_out_of_time
from training.pipeline import train_model

_FLAG_BY_CODE = {q.name.removeprefix("dq_").upper(): q for q in QUALITY_FLAGS}


@pytest.fixture(scope="module")
def model(tiny_matrix) -> tuple[Predictor, np.ndarray, np.ndarray]:
    trained = train_model(tiny_matrix)
    bundle = ModelBundle(trained.booster, trained.calibrator, trained.scaler, trained.features,
                         trained.population, sha256="-")  # fmt: skip
    predictor = Predictor(bundle)
    x = tiny_matrix[predictor.feature_names].to_numpy(dtype=float, na_value=np.nan)
    flags = tiny_matrix[predictor.explainer.flag_names].to_numpy(dtype=float)
    return predictor, x, flags


def untrue(reason: ModelReason, row: dict[str, float], raised: set[str], medians) -> str | None:
    """Why `reason` is not a true statement about the applicant, or None when it is."""
    if reason.code in _FLAG_BY_CODE:
        flag = _FLAG_BY_CODE[reason.code]
        return None if flag.name in raised else f"{reason.code}: flag not raised"
    spec = get_feature(reason.code.lower())
    value = row[spec.name]
    if np.isnan(value):
        return f"{reason.code}: the applicant has no value"
    if any(q.whole_source and q.source == spec.source for q in QUALITY_FLAGS if q.name in raised):
        return f"{reason.code}: the whole {spec.source} source is missing"
    median = medians[spec.name]
    if median is None or (value - median) * spec.adverse_side <= 0:
        return f"{reason.code}: {value} is not on the adverse side of the median {median}"
    return None


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_every_shown_reason_is_true_of_a_random_applicant(model, data):
    predictor, x, flags = model
    i = data.draw(st.integers(0, len(x) - 1), label="base applicant")
    row = x[i].copy()
    blank = data.draw(st.lists(st.integers(0, row.size - 1), max_size=12), label="missing")
    row[blank] = np.nan
    raised_row = flags[i].copy()
    extra = data.draw(st.lists(st.integers(0, raised_row.size - 1), max_size=3), label="raised")
    raised_row[extra] = 1.0
    contrib = predictor.contributions(row[None])

    reasons = predictor.explainer.top_reasons(row[None], contrib, raised_row[None])[0]

    names = predictor.feature_names
    raised = {n for n, v in zip(predictor.explainer.flag_names, raised_row, strict=True) if v}
    medians = predictor.bundle.population.medians
    values = dict(zip(names, row, strict=True))
    assert [untrue(r, values, raised, medians) for r in reasons] == [None] * len(reasons)
    assert len(reasons) <= 4
    assert [r.contribution for r in reasons] == sorted((r.contribution for r in reasons),
                                                       reverse=True)  # fmt: skip


def test_a_missing_source_is_said_as_missing_and_carries_its_features_weight(served):
    # the scripted stub champion: fewer than 40 orders in the last year is risky, so a
    # farmer who never sold has a positive orders contribution to be said as missing data
    predictor = Predictor(read_bundle(served.root / "scripted"))
    names = predictor.feature_names
    no_orders = predictor.explainer.flag_names.index("dq_no_orders")
    orders = [j for j, n in enumerate(names) if n.startswith("orders_")]
    row = np.zeros((1, len(names)))  # what the pipeline writes for a farmer who never sold
    raised = np.zeros((1, len(predictor.explainer.flag_names)))
    raised[0, no_orders] = 1.0
    contrib = predictor.contributions(row)

    reasons = predictor.explainer.top_reasons(row, contrib, raised)[0]

    carried = np.clip(contrib[0, orders], 0, None).sum()
    assert carried > 0
    assert [(r.code, r.text) for r in reasons] == [
        ("NO_ORDERS", "No sales history on the platform yet.")
    ]
    assert reasons[0].contribution == pytest.approx(carried)
    # the same row with its sales known (the flag down): the count itself is the reason
    known = predictor.explainer.top_reasons(row, contrib, np.zeros_like(raised))[0]
    assert [r.code for r in known] == ["ORDERS_COUNT_365D"]


def test_no_false_reason_for_any_snapshot_farmer_of_a_trained_champion(trained_served):
    source = FeatureSource.load(trained_served.world)
    store = ModelStore("champion", trained_served.training)
    served = store.load()
    snapshot = source.snapshot
    assert snapshot is not None
    apps = [
        Application(f"A-{farmer}", farmer, row.contract_id, 800_000, ())
        for farmer, row in snapshot.rows.items()
        if row.contract_id and row.contract_id != "nan" and source.contract(row.contract_id)
    ]
    outcomes = evaluate_applications(apps, source=source, model=served.predictor,
                                     policy=load_policy(), as_of=snapshot.as_of,
                                     reasons_for="all")  # fmt: skip

    medians = served.bundle.population.medians
    false, no_orders_shown_orders = [], 0
    for o in outcomes:
        values = {k: (np.nan if v is None else float(v)) for k, v in o.features.items()}
        raised = set(o.flags)
        false += [f"{o.application.farmer_id} {why}" for r in o.reasons
                  if (why := untrue(r, values, raised, medians))]  # fmt: skip
        if "dq_no_orders" in raised:
            no_orders_shown_orders += any(r.code.startswith("ORDERS_") for r in o.reasons)
    assert len(outcomes) > 50
    assert false == []
    assert no_orders_shown_orders == 0
    assert set(served.predictor.explainer.flag_names) <= set(FLAG_NAMES)


def test_the_explainer_reads_the_population_the_model_was_trained_on(model, tiny_matrix):
    predictor, _, _ = model
    explainer = Explainer.build(predictor.bundle.features, predictor.bundle.population)
    train = split_out_of_time(labelled(tiny_matrix)).train  # the rows the model learned from

    for j, name in enumerate(predictor.feature_names):
        values = train[name].dropna()
        expected = float(values.median()) if len(values) else np.nan
        np.testing.assert_equal(explainer.medians[j], expected, err_msg=name)
