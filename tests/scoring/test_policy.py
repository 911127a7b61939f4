"""The decision policy: knock-outs, fail-closed refers, cut-offs, limits and pricing."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from scoring.config import DEFAULT_POLICY
from scoring.decide.policy import Case, decide, load_policy

POLICY = load_policy()
NOW = pd.Timestamp("2026-03-01T00:00Z")
GOOD = Case(
    requested_minor=1_000_000,
    pd=0.03,
    band="B",
    crop="maize",
    contract_open=True,
    delivery_end=NOW + pd.Timedelta(days=150),
    buyer_grade="A",
    receivable_minor=10_000_000,
    drawn_on_contract_minor=0,
    verified_cultivated_ha=1.0,
    cultivated_ratio=0.9,
    days_since_last_scene=10,
    arrears_days=0,
    as_of=NOW,
)


def codes(decision) -> list[str]:
    return [r.code for r in decision.policy_reasons]


def test_a_good_case_is_approved_with_price_and_due_date_after_delivery_and_grace():
    d = decide(GOOD, POLICY)

    assert d.decision == "approve" and d.limit_minor == 1_000_000
    assert d.annual_rate == POLICY.pricing.annual_rate_by_band["B"]
    assert d.due_at == GOOD.delivery_end + pd.Timedelta(days=POLICY.due.grace_days)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"contract_open": False}, "NO_ACTIVE_CONTRACT"),
        ({"delivery_end": NOW - pd.Timedelta(days=1)}, "CONTRACT_EXPIRED"),
        ({"buyer_grade": "D"}, "BUYER_SUSPENDED"),
        ({"arrears_days": 45}, "LOAN_IN_ARREARS"),
        ({"cultivated_ratio": 0.1}, "FIELD_NOT_CULTIVATED"),
    ],
)
def test_knockouts_decline_with_their_reason(change, code):
    d = decide(replace(GOOD, **change), POLICY)

    assert d.decision == "decline" and code in codes(d) and d.limit_minor == 0


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"cultivated_ratio": None, "verified_cultivated_ha": None}, "IMAGERY_MISSING"),
        ({"days_since_last_scene": None}, "IMAGERY_MISSING"),
        ({"days_since_last_scene": 400}, "IMAGERY_STALE"),
        ({"receivable_minor": 100_000}, "LIMIT_TOO_SMALL"),
        ({"recent_ndvi_anomaly": -0.4}, "CROP_STRESS"),
    ],
)
def test_missing_or_stale_data_refers_and_never_approves(change, code):
    d = decide(replace(GOOD, pd=0.001, band="A", **change), POLICY)

    assert d.decision == "refer" and code in codes(d)


def test_cutoffs_split_approve_refer_decline():
    assert decide(replace(GOOD, pd=0.05), POLICY).decision == "approve"
    assert decide(replace(GOOD, pd=0.15, band="D"), POLICY).decision == "refer"
    assert decide(replace(GOOD, pd=0.30, band="E"), POLICY).decision == "decline"


def test_limit_is_the_smallest_of_request_cost_advance_and_cap():
    by_cost = decide(replace(GOOD, requested_minor=9_000_000, verified_cultivated_ha=0.5), POLICY)
    by_advance = decide(
        replace(
            GOOD,
            requested_minor=9_000_000,
            receivable_minor=4_000_000,
            drawn_on_contract_minor=500_000,
        ),
        POLICY,
    )

    assert by_cost.limit_minor == 0.5 * POLICY.limits.input_cost_per_ha_minor["maize"]
    assert by_advance.limit_minor == 0.5 * 4_000_000 - 500_000  # band B advances 50 %


def test_a_policy_file_with_a_missing_band_is_refused_naming_it(tmp_path):
    broken = tmp_path / "p.yaml"
    broken.write_text(DEFAULT_POLICY.read_text().replace("    E: 0.28\n", ""))

    with pytest.raises(
        ValueError, match=r"(?s)p\.yaml: not a valid policy.*annual_rate_by_band lacks"
    ):
        load_policy(broken)


def test_a_feed_staler_than_its_bound_refers_every_decision_and_a_fresh_one_does_not():
    bound = POLICY.freshness.max_source_age_days["orders"]
    arrived = {"orders": NOW - pd.Timedelta(days=bound + 0.01), "farmers": NOW}
    stale = POLICY.freshness.stale_sources(arrived, NOW)
    assert stale == ("orders",)
    d = decide(replace(GOOD, pd=0.001, band="A", stale_sources=stale), POLICY)
    assert d.decision == "refer" and "DATA_STALE" in codes(d)
    fresh = {"orders": NOW - pd.Timedelta(days=bound - 0.01)}
    assert POLICY.freshness.stale_sources(fresh, NOW) == ()
    assert POLICY.freshness.stale_sources({}, NOW) == ()  # arrivals unknown: not judged


def test_a_freshness_bound_on_no_table_is_refused(tmp_path):
    broken = tmp_path / "policy.yaml"
    broken.write_text(DEFAULT_POLICY.read_text().replace("    orders: 3", "    order: 3"))
    with pytest.raises(ValueError, match="max_source_age_days names no input table: order"):
        load_policy(broken)


def test_a_crop_a_little_below_its_earlier_seasons_is_not_referred_for_stress():
    bound = POLICY.knockouts.max_recent_ndvi_drop
    assert bound is not None
    slight = decide(replace(GOOD, pd=0.001, band="A", recent_ndvi_anomaly=-bound / 2), POLICY)
    assert slight.decision == "approve" and "CROP_STRESS" not in codes(slight)
