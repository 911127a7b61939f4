"""The fairness audit of the policy's decisions: the test season's applications decided
again, each as of its own application time, by the champion and the policy exactly as the
service decides, and the shares approved, referred and declined by county, gender and age
band. PD alone says little about who is lent to: knock-outs, limits and data that is
missing decide as much (docs/training.md, "Fairness")."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from scoring.decide.data import FeatureSource
from scoring.decide.engine import Application, evaluate_applications
from scoring.decide.policy import Policy
from scoring.decide.predictor import Predictor

AGE_BANDS = ((0, 30, "under 30"), (30, 45, "30-44"), (45, 60, "45-59"), (60, 200, "60 and over"))
OUTCOMES = ("approve", "refer", "decline")


def age_band(age: float) -> str:
    """The audit's age band of an age in years."""
    return next(name for low, high, name in AGE_BANDS if low <= age < high)


def decide_again(
    loans: pd.DataFrame,
    *,
    source: FeatureSource,
    model: Predictor,
    policy: Policy,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Each loan's application (farmer, contract, amount, time) decided again: loan_id,
    farmer_id, decision."""
    rows = []
    for loan in loans.itertuples():
        app = Application(str(loan.loan_id), str(loan.farmer_id), str(loan.contract_id),
                          int(loan.amount_minor), ())  # fmt: skip
        (outcome,) = evaluate_applications([app], source=source, model=model, policy=policy,
                                           as_of=pd.Timestamp(loan.applied_at),
                                           counteroffers=False)  # fmt: skip
        rows.append((loan.loan_id, loan.farmer_id, outcome.decision.decision))
        if progress is not None:
            progress(1)
    return pd.DataFrame(rows, columns=["loan_id", "farmer_id", "decision"])


def decision_rates(decided: pd.DataFrame, loans: pd.DataFrame,
                   farmers: pd.DataFrame) -> pd.DataFrame:  # fmt: skip
    """Per attribute (county, gender, age band) and group: applications and the share of
    each outcome."""
    applied = loans.set_index("loan_id")["applied_at"]
    people = farmers.set_index("farmer_id")
    frame = decided.assign(
        county=decided["farmer_id"].map(people["county"]),
        gender=decided["farmer_id"].map(people["gender"]),
        age_band=[
            age_band(pd.Timestamp(applied[loan]).year - people.at[farmer, "birth_year"])
            for loan, farmer in zip(decided["loan_id"], decided["farmer_id"], strict=True)
        ],
    )
    out = []
    for attribute in ("county", "gender", "age_band"):
        for group, rows in frame.groupby(attribute):
            shares = rows["decision"].value_counts(normalize=True)
            out.append({"attribute": attribute, "group": str(group), "applications": len(rows)}
                       | {o: float(shares.get(o, 0.0)) for o in OUTCOMES})  # fmt: skip
    return pd.DataFrame(out)


def rates_markdown(rates: pd.DataFrame, *, version: str, policy: Policy) -> str:
    """The model card's section on the policy's decisions by group."""
    lines = [
        "## Decisions by group (the policy's, not PD alone)",
        "",
        f"Version {version}'s test-season applications decided again by this model under "
        f"policy {policy.version}, each as of its application time.",
        "",
        "| attribute | group | applications | approved | referred | declined |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r.attribute} | {r.group} | {r.applications} | {r.approve:.1%} | {r.refer:.1%} "
        f"| {r.decline:.1%} |"
        for r in rates.itertuples()
    ]
    for attribute in ("county", "gender", "age_band"):
        part = rates[rates["attribute"] == attribute]
        if len(part) > 1:
            gap = part["approve"].max() - part["approve"].min()
            lines.append(f"\nApproval-rate gap by {attribute.replace('_', ' ')}: {gap:.1%}.")
    return "\n".join(lines) + "\n"
