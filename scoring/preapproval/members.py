"""Members' pre-approvals: each member decided through the same engine as `/v1/score`,
given their share of the co-op's cap, with the ids, summary and CSV of the results."""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from typing import Any

from scoring.decide.data import FeatureSource
from scoring.decide.engine import Application, Outcome, evaluate_applications
from scoring.decide.model_store import ServedModel
from scoring.decide.policy import Policy
from scoring.decide.predictor import Predictor
from scoring.preapproval.plan import MemberRequest, Plan


def _stable_id(name: str) -> str:
    # a UUID-shaped digest of the name (uuid.uuid5 costs 40 us, ten times this)
    h = hashlib.sha256(b"agricredit-preapproval:" + name.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def member_decision_id(job_id: str, farmer_id: str) -> str:
    """The ledger id of a member's pre-approval: the same on every run of the job, so a
    resumed job finds what an interrupted one wrote."""
    return _stable_id(f"{job_id}:{farmer_id}")


def batch_decision_id(job_id: str) -> str:
    """The ledger id of the job's co-op level row."""
    return _stable_id(f"{job_id}:batch")


@dataclass(frozen=True)
class MemberResult:
    """One member's pre-approval."""

    farmer_id: str
    decision_id: str
    outcome: Outcome
    share: float
    verified_ha: float | None
    allocation_minor: int  # share x contract value x the member's band advance rate
    preapproved_minor: int  # what the member may draw: approved members only

    def as_dict(self) -> dict[str, Any]:
        o, d = self.outcome, self.outcome.decision
        return {
            "farmer_id": self.farmer_id,
            "status": "evaluated",
            "decision_id": self.decision_id,
            "decision": d.decision,
            "probability_of_default": round(o.pd, 6),
            "score": o.points,
            "band": o.band,
            "individual_limit_minor": d.limit_minor if d.decision != "decline" else 0,
            "allocation_minor": self.allocation_minor,
            "preapproved_limit_minor": self.preapproved_minor,
            "capped_by_coop": d.decision == "approve" and self.allocation_minor < d.limit_minor,
            "annual_rate": d.annual_rate if d.decision != "decline" else None,
            "due_at": d.due_at.isoformat()
            if d.due_at is not None and d.decision != "decline"
            else None,
            "share": round(self.share, 8),
            "verified_area_ha": None if self.verified_ha is None else round(self.verified_ha, 4),
            "reasons": o.shown_reasons(),
            "counteroffer": o.counteroffer_dict(),
            "data_quality_flags": o.flags,
        }


def evaluate_members(
    plan: Plan,
    members: list[MemberRequest],
    *,
    job_id: str,
    source: FeatureSource,
    model: Predictor,
    policy: Policy,
) -> list[MemberResult]:
    """Decide some of the plan's members together, with their co-op allocation.

    A member without a budget asks for the inputs of their declared area of the crop at
    the policy's cost per hectare (at least the smallest loan, at most the per-farmer cap).
    """
    lim = policy.limits
    per_ha = lim.input_cost_per_ha_minor.get(plan.crop)

    def default_budget(farmer: str) -> int:
        if per_ha is None or plan.declared_ha[farmer] <= 0:
            return lim.per_farmer_cap_minor
        need = int(per_ha * plan.declared_ha[farmer] // 1000 * 1000)
        return min(max(need, lim.min_loan_minor), lim.per_farmer_cap_minor)

    apps = [
        Application(
            f"{job_id}:{m.farmer_id}",
            m.farmer_id,
            plan.contract_id,
            m.budget_minor or default_budget(m.farmer_id),
            (),
        )
        for m in members
    ]
    outcomes = evaluate_applications(
        apps, source=source, model=model, policy=policy, as_of=plan.as_of
    )
    results = []
    for m, o in zip(members, outcomes, strict=True):
        share = plan.shares.get(m.farmer_id, 0.0)
        allocation = int(
            plan.contract_value_minor * share * plan.advance_rates[o.band] // 1000 * 1000
        )
        approved = o.decision.decision == "approve"
        results.append(
            MemberResult(
                farmer_id=m.farmer_id,
                decision_id=member_decision_id(job_id, m.farmer_id),
                outcome=o,
                share=share,
                verified_ha=plan.verified_ha.get(m.farmer_id),
                allocation_minor=allocation,
                preapproved_minor=min(o.decision.limit_minor, allocation) if approved else 0,
            )
        )
    return results


def not_member_result(coop_id: str, farmer_id: str) -> dict[str, Any]:
    """A requested farmer who is not a member: reported, never dropped. Unknown farmers and
    members of other co-ops read the same, so a co-op learns nothing of others' members."""
    return {
        "farmer_id": farmer_id,
        "status": "not_a_member",
        "detail": f"farmer {farmer_id} is not a member of co-op {coop_id}",
    }


def summarise(plan: Plan, members: list[dict[str, Any]]) -> dict[str, Any]:
    """The co-op level figures of a finished pre-approval (members as `as_dict` rows)."""
    evaluated = [m for m in members if m["status"] == "evaluated"]
    count = {d: sum(m["decision"] == d for m in evaluated) for d in ("approve", "refer", "decline")}
    return {
        "coop_id": plan.coop_id,
        "contract_id": plan.contract_id,
        "crop": plan.crop,
        "contract_value_minor": int(plan.contract_value_minor),
        "contract_advance_cap_minor": int(plan.contract_advance_cap_minor),
        "coop_cap_minor": sum(m["allocation_minor"] for m in evaluated),
        "total_preapproved_minor": sum(m["preapproved_limit_minor"] for m in evaluated),
        "members_requested": len(plan.members) + len(plan.not_members),
        "members_evaluated": len(evaluated),
        "approved": count["approve"],
        "referred": count["refer"],
        "declined": count["decline"],
        "not_members": len(plan.not_members),
        "features_as_of": plan.as_of.isoformat(),
    }


# each member's result row, and its ledger row (decision_id, kind, body)
ChunkRows = list[tuple[dict[str, Any], tuple[str, str, dict[str, Any]]]]


def decide_chunk(
    plan: Plan,
    part: list[MemberRequest],
    *,
    job_id: str,
    source: FeatureSource,
    model: ServedModel,
    policy: Policy,
    context: dict[str, Any],
) -> ChunkRows:
    """One chunk's members decided: (result row, ledger row) each."""
    decided = evaluate_members(
        plan, part, job_id=job_id, source=source, model=model.predictor, policy=policy
    )
    out: ChunkRows = []
    for r in decided:
        row = r.as_dict() | {"model_version": model.version}
        body = context | {
            "member": row,
            "model": {"name": model.name, "version": model.version},
            "model_sha256": model.bundle.sha256,
            "feature_vector": r.outcome.features,
        }
        out.append((row, (r.decision_id, "preapproval", body)))
    return out


CSV_COLUMNS = [
    "farmer_id", "status", "decision", "probability_of_default", "score", "band",
    "individual_limit_minor", "allocation_minor", "preapproved_limit_minor", "capped_by_coop",
    "annual_rate", "due_at", "share", "verified_area_ha", "reason_codes", "reasons",
    "counteroffer_minor", "counteroffer", "data_quality_flags", "model_version", "decision_id",
    "detail",
]  # fmt: skip


def results_csv(results: list[dict[str, Any]]) -> str:
    """Member results as CSV, one row each: reason codes and flags space-separated, the
    reasons' sentences one after another, the counteroffer's amount and its sentence."""
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in results:
        writer.writerow(
            r
            | {
                "reason_codes": " ".join(x["code"] for x in r.get("reasons") or []),
                "reasons": " ".join(x["text"] for x in r.get("reasons") or []),
                "counteroffer_minor": (r.get("counteroffer") or {}).get("amount_minor"),
                "counteroffer": (r.get("counteroffer") or {}).get("detail"),
                "data_quality_flags": " ".join(r.get("data_quality_flags") or []),
            }
        )
    return out.getvalue()
