"""The counteroffer is exact: a second application at its amount is approved at exactly that
amount, one step more is not, and "no amount" means the smallest loan is not approved."""

from __future__ import annotations

import pytest

from scoring.decide.counteroffer import STEP_MINOR
from scoring.decide.data import FeatureSource
from scoring.decide.engine import Application, evaluate_applications
from scoring.decide.model_store import ModelStore
from scoring.decide.policy import load_policy


@pytest.fixture(scope="module")
def deciding(trained_served):
    source = FeatureSource.load(trained_served.world)
    served = ModelStore("champion", trained_served.training).load()
    snapshot = source.snapshot
    assert snapshot is not None
    policy = load_policy()
    farmers = [
        (farmer, row.contract_id)
        for farmer, row in snapshot.rows.items()
        if row.contract_id and row.contract_id != "nan" and source.contract(row.contract_id)
    ]

    def decide_at(pairs, amounts):
        apps = [
            Application(f"A-{f}-{a}", f, k, a, ()) for (f, k), a in zip(pairs, amounts, strict=True)
        ]
        return evaluate_applications(apps, source=source, model=served.predictor,
                                     policy=policy, as_of=snapshot.as_of)  # fmt: skip

    return farmers, decide_at, policy


@pytest.mark.parametrize("requested", [2_000_000, 8_000_000])
def test_every_refusal_carries_an_exact_counteroffer(deciding, requested):
    farmers, decide_at, policy = deciding
    first = decide_at(farmers, [requested] * len(farmers))
    refused = [
        (pair, o)
        for pair, o in zip(farmers, first, strict=True)
        if o.decision.decision != "approve"
    ]
    assert refused, "the tiny world has declines and referrals at this amount"
    assert all(o.counteroffer is None for o in first if o.decision.decision == "approve")

    offered = [(pair, o.counteroffer) for pair, o in refused if o.counteroffer.amount_minor]
    amounts = [c.amount_minor for _, c in offered]
    again = decide_at([p for p, _ in offered], amounts)
    for (pair, offer), second in zip(offered, again, strict=True):
        assert second.decision.decision == "approve", (pair, offer)
        assert second.decision.limit_minor == offer.amount_minor
        assert second.band == offer.band and round(second.pd, 6) == offer.probability_of_default
        assert offer.amount_minor % STEP_MINOR == 0
        assert offer.amount_minor <= max(requested, policy.limits.min_loan_minor)
    # one step more is not approved as asked (or is more than was requested)
    above = [(p, c.amount_minor + STEP_MINOR) for p, c in offered
             if c.amount_minor + STEP_MINOR <= requested]  # fmt: skip
    higher = decide_at([p for p, _ in above], [a for _, a in above])
    for (pair, amount), o in zip(above, higher, strict=True):
        assert not (o.decision.decision == "approve" and o.decision.limit_minor == amount), pair
    # "no amount": the smallest loan is not approved either
    none = [pair for pair, o in refused if o.counteroffer.amount_minor is None]
    smallest = decide_at(none, [policy.limits.min_loan_minor] * len(none))
    assert all(o.decision.decision != "approve" for o in smallest)
    assert all(o.counteroffer.detail.startswith("No amount") for _, o in refused
               if o.counteroffer.amount_minor is None)  # fmt: skip
    assert offered and none
