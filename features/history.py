"""Loan history on the platform: how earlier loans were repaid, as known at each application.

The loans table's `days_past_due` and `defaulted` describe extraction time and are never
read here. Days past due as of a time are rebuilt from repayments: a loan is settled when
its repayments dated before that time reach its principal.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.asof import DAY_NS, before, check_applications, to_ns, visible
from features.registry import output_columns

DEFAULT_DPD = 90


def loan_settlements(loans: pd.DataFrame, repayments: pd.DataFrame) -> pd.DataFrame:
    """When each loan's repayments first reached its principal: loan_id, settled_at (or NaT).

    A repayment is dated at its own paid_at, so comparing settled_at with an as-of time
    through `asof.before` uses only repayments made before it.
    """
    r = repayments.merge(loans[["loan_id", "amount_minor"]], on="loan_id", suffixes=("", "_loan"))
    r = r.sort_values(["loan_id", "paid_at", "repayment_id"])
    r["repaid"] = r.groupby("loan_id")["amount_minor"].cumsum()
    full = r[r["repaid"] >= r["amount_minor_loan"]]
    settled = full.groupby("loan_id")["paid_at"].first()
    return pd.DataFrame(
        {
            "loan_id": loans["loan_id"].to_numpy(),
            "settled_at": settled.reindex(loans["loan_id"].to_numpy()).to_numpy(),
        }
    )


def build_history_features(
    loans: pd.DataFrame, applications: pd.DataFrame, *, repayments: pd.DataFrame
) -> pd.DataFrame:
    """Loan-history features of each application.

    Requires:
        loans: loan_id, farmer_id, applied_at, disbursed_at, amount_minor, due_at.
        repayments: repayment_id, loan_id, paid_at, amount_minor (of those loans).
        applications: application_id, farmer_id, as_of.
    Returns:
        One row per application, in input order: application_id, the `history` features of
        the registry, then `dq_no_loan_history`.
    As of:
        A loan counts if applied for before as_of (the application's own loan is not yet);
        repayments and days past due are measured with what was paid before as_of.
    """
    check_applications(applications)
    settled = loan_settlements(loans, repayments)
    table = loans[["loan_id", "farmer_id", "applied_at", "disbursed_at", "amount_minor", "due_at"]]
    prior = visible(table.merge(settled, on="loan_id"), applications, time_col="applied_at")
    as_of = to_ns(prior["as_of"])
    is_settled = before(prior["settled_at"], as_of)
    due_ns, settled_ns = to_ns(prior["due_at"]), to_ns(prior["settled_at"])
    late_until = np.where(is_settled, settled_ns, as_of)
    dpd = np.where(before(prior["due_at"], as_of), np.maximum(late_until - due_ns, 0) // DAY_NS, 0)
    disbursed = before(prior["disbursed_at"], as_of)
    prior = prior.assign(
        repaid=is_settled,
        dpd=dpd,
        defaulted=dpd >= DEFAULT_DPD,
        outstanding=np.where(disbursed & ~is_settled, prior["amount_minor"].to_numpy(), 0),
    )
    agg = (
        prior.groupby("application_id")
        .agg(
            history_prior_loans=("loan_id", "size"),
            history_repaid_loans=("repaid", "sum"),
            history_worst_dpd=("dpd", "max"),
            history_defaults=("defaulted", "sum"),
            history_outstanding_minor=("outstanding", "sum"),
        )
        .reindex(applications["application_id"])
    )
    out = pd.DataFrame({"application_id": applications["application_id"].to_numpy()})
    has = agg["history_prior_loans"].notna().to_numpy()
    for name in output_columns("history"):
        if name == "dq_no_loan_history":
            out[name] = ~has
        elif name in (
            "history_prior_loans",
            "history_repaid_loans",
            "history_defaults",
            "history_outstanding_minor",
        ):
            out[name] = agg[name].fillna(0).to_numpy(dtype=float)  # no loans: truly zero
        else:
            out[name] = agg[name].to_numpy(dtype=float)
    return out
