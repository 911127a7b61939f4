"""The counteroffer: the largest amount at which a declined or referred applicant, with the
same contract, would be approved by the same model and policy — or that none would.

Only the requested amount changes: the feature `contract_requested_over_receivable`
(amount over the applicant's receivable), hence the probability of default and the band,
and the policy's limit. The model rises monotonically in that ratio (a LightGBM monotone
constraint), the calibrator and the band cut-offs are monotone, and a better band never
lowers the advance rate, so the amounts that are approved at exactly the amount asked form
one range from the policy's smallest loan upwards. A binary search over whole thousands of
minor units (the policy's limit granularity) finds its top. The smallest loan is decided by
the policy's own `decide`; the probes above it by its `terms` alone, since its `screen`
(knock-outs, imagery) does not depend on the amount and already passed; the answer is
re-decided whole once more before it is offered. The
offer never exceeds the request, except up to the policy's smallest loan when less was asked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scoring.decide.policy import Case, Decision, Policy, decide, terms
from scoring.decide.predictor import Predictor

STEP_MINOR = 1000  # limits are whole thousands of minor units (policy._limit)
RATIO = "contract_requested_over_receivable"


@dataclass(frozen=True)
class Counteroffer:
    """What would be approved instead; `amount_minor` None when no amount would be."""

    amount_minor: int | None
    probability_of_default: float | None
    band: str | None
    annual_rate: float | None
    detail: str


def _cases_at(
    cases: list[Case], x: np.ndarray, amounts: np.ndarray, model: Predictor, column: int | None
) -> list[Case]:
    # the same applications, each at its own amount: the ratio, the PD and the band follow
    rows = x.copy()
    if column is not None:
        receivable = np.array([c.receivable_minor for c in cases], dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            rows[:, column] = np.where(receivable > 0, amounts / receivable, np.nan)
    pds = model.predict_pd(rows)
    bands = [str(b) for b in model.scaler.band(pds)]
    return [
        c.at(a, p, b)
        for c, a, p, b in zip(cases, amounts.tolist(), pds.tolist(), bands, strict=True)
    ]


def _approved_as_asked(case: Case, policy: Policy) -> tuple[bool, Decision]:
    d = decide(case, policy)
    return d.decision == "approve" and d.limit_minor == case.requested_minor, d


def _terms_approve_as_asked(case: Case, policy: Policy) -> bool:
    # a probe of a case whose screen passed with no refers (its smallest loan was approved)
    d = terms(case, policy, [])
    return d.decision == "approve" and d.limit_minor == case.requested_minor


def search(
    cases: list[Case], x: np.ndarray, model: Predictor, policy: Policy
) -> list[Counteroffer]:
    """The counteroffer of each application (its case and model input row), vectorised:
    one prediction over the batch per halving of the range."""
    if not cases:
        return []
    names = model.feature_names
    column = names.index(RATIO) if RATIO in names else None
    smallest = -(-max(policy.limits.min_loan_minor, STEP_MINOR) // STEP_MINOR)
    lo = np.full(len(cases), smallest, dtype=np.int64)
    # never above the request, except up to the smallest loan when less was asked
    hi = np.array([c.requested_minor // STEP_MINOR for c in cases], dtype=np.int64)
    hi = np.maximum(np.minimum(hi, policy.limits.per_farmer_cap_minor // STEP_MINOR), smallest)
    first = _cases_at(cases, x, lo * STEP_MINOR, model, column)
    checks = [_approved_as_asked(c, policy) for c in first]
    possible = np.array([ok for ok, _ in checks])
    while True:
        open_ = np.flatnonzero(possible & (lo < hi))
        if not len(open_):
            break
        mid = (lo[open_] + hi[open_] + 1) // 2
        probes = _cases_at([cases[i] for i in open_], x[open_], mid * STEP_MINOR, model, column)
        ok = np.array([_terms_approve_as_asked(c, policy) for c in probes])
        lo[open_] = np.where(ok, mid, lo[open_])
        hi[open_] = np.where(ok, hi[open_], mid - 1)
    found = np.flatnonzero(possible)
    final = _cases_at([cases[i] for i in found], x[found], lo[found] * STEP_MINOR, model, column)
    offers: list[Counteroffer] = [_none(d, policy) for _, d in checks]
    for i, case in zip(found.tolist(), final, strict=True):
        confirmed, d = _approved_as_asked(case, policy)
        if not confirmed:  # only if the model broke monotonicity: offer nothing rather than a guess
            offers[i] = Counteroffer(None, None, None, None, "No amount could be confirmed.")
            continue
        offers[i] = Counteroffer(
            case.requested_minor,
            round(case.pd, 6),
            case.band,
            d.annual_rate,
            f"An application for {case.requested_minor} minor units with this contract "
            "would be approved.",
        )
    return offers


def _none(smallest: Decision, policy: Policy) -> Counteroffer:
    # why even the smallest loan the policy makes is not approved
    why = [r.text for r in smallest.policy_reasons]
    if not why:
        why = ["Even the smallest loan carries more risk than the policy approves."]
    return Counteroffer(
        None,
        None,
        None,
        None,
        f"No amount would be approved with this contract (the smallest loan is "
        f"{policy.limits.min_loan_minor} minor units): " + " ".join(why),
    )
