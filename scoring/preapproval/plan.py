"""Co-op pre-approval: every member's decision under one co-op contract, and the co-op's cap.

One code path with `/v1/score`: members become applications (the requested amount is the
member's input budget, by default the policy's per-farmer cap) and go through
`evaluate_applications` together. On top of each member's own limit, the co-op's exposure
is capped: the contract's undelivered value is shared among members in proportion to their
verified cultivated area of the contracted crop (or to shares written in the contract), and
a member may be pre-approved for at most their share times their band's advance rate. The
sum over members therefore never exceeds the band-weighted advance on the contract.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.asof import instant_ns
from features.registry import ROW_COLUMNS
from scoring.decide.data import FeatureSource
from scoring.decide.engine import Application, feature_rows
from scoring.decide.policy import Policy
from scoring.errors import InvalidApplicationError, NotFoundError

_CULTIVATED = ROW_COLUMNS.index("sat_last_cultivated_ratio")


@dataclass(frozen=True)
class MemberRequest:
    """A member to pre-approve: their input budget, and their share when the contract
    writes one down."""

    farmer_id: str
    budget_minor: int | None = None
    share: float | None = None


@dataclass(frozen=True)
class Plan:
    """What a pre-approval evaluates, fixed before any member is decided."""

    coop_id: str
    contract_id: str
    crop: str
    contract_value_minor: float  # undelivered value: the whole contract while it is open
    advance_rates: dict[str, float]
    members: list[MemberRequest]  # members of the co-op, in request order
    not_members: list[str]  # requested, but not (or not known as) members of this co-op
    shares: dict[str, float]  # farmer_id -> share of the contract value
    verified_ha: dict[str, float | None]
    declared_ha: dict[str, float]  # declared area of the contracted crop
    as_of: pd.Timestamp

    @property
    def contract_advance_cap_minor(self) -> float:
        """The most the contract could carry at the best band's advance rate."""
        return self.contract_value_minor * max(self.advance_rates.values())


def resolve_members(
    source: FeatureSource,
    *,
    coop_id: str,
    contract_id: str,
    members: list[MemberRequest] | None,
) -> tuple[list[MemberRequest], list[str]]:
    """The requested members who belong to the co-op, and the requested farmers who do not.

    Raises:
        NotFoundError: unknown co-op, or a contract that is not this co-op's.
        InvalidApplicationError: a member listed twice, or shares that are partial, out of
            [0, 1] or add up to more than 1.
    """
    everyone = source.coop_members.get(coop_id)
    if everyone is None:
        raise NotFoundError(f"co-op {coop_id!r} is not known", field="coop_id")
    contract = source.contract(contract_id)
    if contract is None or contract["party_type"] != "coop" or contract["coop_id"] != coop_id:
        raise NotFoundError(f"co-op {coop_id} has no contract {contract_id!r}", field="contract_id")
    if members is None:
        return [MemberRequest(f) for f in everyone], []
    belongs = set(everyone)
    members = _checked(members)
    return (
        [m for m in members if m.farmer_id in belongs],
        [m.farmer_id for m in members if m.farmer_id not in belongs],
    )


def plan_preapproval(
    source: FeatureSource,
    policy: Policy,
    *,
    coop_id: str,
    contract_id: str,
    members: list[MemberRequest] | None,
    as_of: pd.Timestamp,
) -> Plan:
    """Resolve the members (see `resolve_members`) and share the contract's value."""
    chosen, outside = resolve_members(
        source, coop_id=coop_id, contract_id=contract_id, members=members
    )
    everyone = source.coop_members[coop_id]
    contract = source.known_contract(contract_id)
    crop = str(contract["crop"])
    ratios = _cultivated_ratios(source, everyone, contract_id, as_of)
    areas = source.crop_areas.get(crop, {})
    declared = {f: areas.get(f, 0.0) for f in everyone}
    verified: dict[str, float | None] = {
        f: None if math.isnan(r) else r * declared[f]
        for f, r in zip(everyone, ratios.tolist(), strict=True)
    }
    if any(m.share is not None for m in chosen):
        shares = {m.farmer_id: float(m.share or 0.0) for m in chosen}
    else:
        total = sum(v for v in verified.values() if v)
        shares = {f: (v / total if v and total > 0 else 0.0) for f, v in verified.items()}
    t = instant_ns(as_of)
    open_ = instant_ns(contract["signed_at"]) < t and not (
        pd.notna(contract["closed_at"]) and instant_ns(contract["closed_at"]) < t
    )
    value = float(contract["quantity_kg"]) * float(contract["price_per_kg_minor"]) if open_ else 0.0
    return Plan(
        coop_id=coop_id,
        contract_id=contract_id,
        crop=crop,
        contract_value_minor=value,
        advance_rates=dict(policy.limits.advance_rate_by_band),
        members=chosen,
        not_members=outside,
        shares=shares,
        verified_ha=verified,
        declared_ha=declared,
        as_of=as_of,
    )


def _cultivated_ratios(
    source: FeatureSource, farmers: list[str], contract_id: str, as_of: pd.Timestamp
) -> np.ndarray:
    """Each farmer's latest cultivated ratio at as_of: a satellite feature, the same under
    any contract, so the snapshot's rows serve whenever it was built at as_of."""
    snapshot, t = source.snapshot, instant_ns(as_of)
    if snapshot is not None and all(snapshot.row_at(f, t) is not None for f in farmers):
        at = np.fromiter((snapshot.rows[f].row for f in farmers), dtype=np.intp, count=len(farmers))
        return np.asarray(snapshot.values[at, _CULTIVATED])
    apps = [Application(f"plan:{f}", f, contract_id, 1, ()) for f in farmers]
    return feature_rows(apps, source, as_of).column("sat_last_cultivated_ratio")


def _checked(members: list[MemberRequest]) -> list[MemberRequest]:
    seen: set[str] = set()
    for i, m in enumerate(members):
        if m.farmer_id in seen:
            raise InvalidApplicationError(
                f"members[{i}]: farmer {m.farmer_id} is listed twice", field=f"members[{i}]"
            )
        seen.add(m.farmer_id)
    given = [m.share for m in members if m.share is not None]
    if given and len(given) != len(members):
        raise InvalidApplicationError(
            "give a share for every member or for none (then shares follow verified area)",
            field="members",
        )
    if given and (min(given) < 0 or sum(given) > 1 + 1e-9):
        raise InvalidApplicationError(
            f"shares must be between 0 and 1 and add up to at most 1; they add up to "
            f"{sum(given):.4f}",
            field="members",
        )
    return members
