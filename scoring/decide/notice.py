"""The adverse-action notice: what a lender sends an applicant who was declined or referred,
in plain words, from the decision as recorded (never recomputed)."""

from __future__ import annotations

from typing import Any

from features.registry import QUALITY_FLAGS

SOURCES_USED = {
    "orders": "your sales history on the e-commerce platform",
    "contracts": "the purchase contract named in the application and its buyer's payment record",
    "satellite": "satellite images of your declared fields",
    "history": "your earlier loans with us",
}
_ABSENT = {q.name: q.source for q in QUALITY_FLAGS if q.whole_source}
_OUTCOME = {
    "decline": "we cannot offer the loan you applied for",
    "refer": "your application needs a review by a loan officer before we can decide it",
}


def adverse_action_notice(record: dict[str, Any]) -> dict[str, Any]:
    """The notice of one declined or referred decision (a score or a member's pre-approval
    record, as `decision_view` gives it): its parts, and the whole letter as text.

    Raises:
        ValueError: the decision was an approval (there is no adverse action).
    """
    decision = record["decision"]
    if decision not in _OUTCOME:
        raise ValueError(f"decision {record['decision_id']} was an approval: nothing to notify")
    reasons = [r["text"] for r in record.get("reasons") or []]
    offer = record.get("counteroffer") or {}
    missing = {_ABSENT[f] for f in record.get("data_quality_flags") or [] if f in _ABSENT}
    used = [text for source, text in SOURCES_USED.items() if source not in missing]
    lacking = [text for source, text in SOURCES_USED.items() if source in missing]
    lines = [
        f"Decision {record['decision_id']} on application {record['application_id']}: "
        f"{_OUTCOME[decision]}.",
        "",
        "The principal reasons:" if reasons else "No single reason stood out.",
        *[f"  - {text}" for text in reasons],
        "",
        offer.get("detail") or "",
        "",
        "We used: " + "; ".join(used) + f", as they stood on {record['features_as_of'][:10]}.",
    ]
    if lacking:
        lines.append("We had none of: " + "; ".join(lacking) + ".")
    lines.append(
        f"The decision was made by model {record['model']['name']} version "
        f"{record['model']['version']} under policy {record['policy_version']}. You may ask "
        "your lender for a review and correct any of this data."
    )
    return {
        "decision_id": record["decision_id"],
        "application_id": record["application_id"],
        "decision": decision,
        "principal_reasons": reasons,
        "counteroffer": offer or None,
        "data_used": used,
        "data_missing": lacking,
        "features_as_of": record["features_as_of"],
        "text": "\n".join(line for line in lines if line is not None).strip() + "\n",
    }
