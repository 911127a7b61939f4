"""Loan history: days past due rebuilt from repayments, as known at each time."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.assembly import build_reference
from features.feature_store import latest_event
from features.history import build_history_features
from features.training_matrix import training_matrix


def _apps(farmers, as_of):
    return pd.DataFrame(
        {
            "application_id": [f"a-{f}" for f in farmers],
            "farmer_id": list(farmers),
            "as_of": pd.array([as_of] * len(farmers), dtype="datetime64[ns, UTC]"),
        }
    )


def test_at_extraction_worst_dpd_and_defaults_match_the_loans_table(tiny_inputs):
    loans = tiny_inputs.loans
    extracted = latest_event(tiny_inputs) + pd.Timedelta(seconds=1)
    farmers = loans["farmer_id"].unique()

    out = build_history_features(
        loans, _apps(farmers, extracted), repayments=tiny_inputs.repayments
    )

    table = loans.groupby("farmer_id").agg(
        worst=("days_past_due", "max"), defaults=("defaulted", "sum")
    )
    got = out.assign(farmer_id=farmers).set_index("farmer_id")
    assert (got["history_defaults"] == table["defaults"].reindex(got.index)).all()
    gap = (got["history_worst_dpd"] - table["worst"].reindex(got.index)).abs()
    assert gap.max() <= 1  # repayment times are stamped to the minute, due dates to the day


def test_a_loan_repaid_after_as_of_is_outstanding_and_late_then():
    loans = pd.DataFrame(
        {
            "loan_id": ["L1"], "farmer_id": ["F"], "contract_id": ["K"],
            "applied_at": pd.to_datetime(["2023-01-01"], utc=True),
            "disbursed_at": pd.to_datetime(["2023-01-02"], utc=True),
            "due_at": pd.to_datetime(["2023-08-01"], utc=True),
            "amount_minor": [1_000],
        }
    )  # fmt: skip
    repayments = pd.DataFrame(
        {"repayment_id": ["R1", "R2"], "loan_id": ["L1", "L1"],
         "paid_at": pd.to_datetime(["2023-08-20", "2023-12-01"], utc=True),
         "amount_minor": [400, 700]}
    )  # fmt: skip
    when = [pd.Timestamp("2023-06-01T00:00Z"), pd.Timestamp("2023-10-01T00:00Z"),
            pd.Timestamp("2024-01-01T00:00Z")]  # fmt: skip
    rows = [
        build_history_features(loans, _apps(["F"], t), repayments=repayments).iloc[0] for t in when
    ]

    assert [r["history_worst_dpd"] for r in rows] == [0, 61, 122]
    assert [r["history_defaults"] for r in rows] == [0, 0, 1]
    assert [r["history_outstanding_minor"] for r in rows] == [1_000, 1_000, 0]
    assert [r["history_repaid_loans"] for r in rows] == [0, 0, 1]


def test_first_loan_has_no_history_and_says_so(tiny_inputs):
    first = tiny_inputs.loans.sort_values("applied_at").iloc[0]

    out = build_history_features(
        tiny_inputs.loans, _apps([first["farmer_id"]], first["applied_at"]),
        repayments=tiny_inputs.repayments,
    )  # fmt: skip

    assert out.iloc[0]["dq_no_loan_history"]
    assert out.iloc[0]["history_prior_loans"] == 0
    assert np.isnan(out.iloc[0]["history_worst_dpd"])


def test_training_labels_rebuilt_from_repayments_match_the_table_and_hide_the_unripe(tiny_inputs):
    extracted = latest_event(tiny_inputs) + pd.Timedelta(seconds=1)
    reference = build_reference(tiny_inputs)

    full = training_matrix(tiny_inputs, reference=reference, as_of=extracted)
    loans = tiny_inputs.loans.set_index("loan_id").loc[full["application_id"]]
    assert full["outcome_known"].all()
    assert (full["defaulted"].to_numpy(dtype=bool) == loans["defaulted"].to_numpy()).all()

    mid = loans["applied_at"].sort_values().iloc[len(loans) // 2]
    early = training_matrix(tiny_inputs, reference=reference, as_of=mid)
    assert (early["as_of"] < mid).all() and len(early) < len(full)
    assert early["defaulted"].isna().sum() == (~early["outcome_known"]).sum() > 0
