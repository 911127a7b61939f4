"""From an application to a decision: features, probability, reasons, policy. No HTTP here.

One code path for a single application and for a batch (co-op pre-approval): rows are
built together and predicted together.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.asof import DAY_NS, instant_ns
from features.build import build_features
from scoring.errors import InvalidApplicationError, NotFoundError
from scoring.feature_source import FeatureSource
from scoring.policy import Case, Decision, Policy, decide
from scoring.reasons import ModelReason, top_reasons
from training.artifact import ModelBundle

MAX_REQUEST_MINOR = 10**12  # far above any input loan: a typo, not an application


@dataclass(frozen=True)
class InputLine:
    """One line of inputs to buy: paid straight to the supplier."""

    supplier_id: str
    item: str
    amount_minor: int


@dataclass(frozen=True)
class Application:
    """An application as the lender sends it."""

    application_id: str
    farmer_id: str
    contract_id: str
    requested_minor: int
    lines: tuple[InputLine, ...]


@dataclass
class Outcome:
    """Everything decided about one application."""

    application: Application
    decision: Decision
    pd: float
    points: int
    band: str
    reasons: list[ModelReason]
    features: dict[str, float | None]
    flags: list[str]
    disbursements: list[dict]
    as_of: pd.Timestamp
    extra: dict = field(default_factory=dict)


def check_application(app: Application, source: FeatureSource) -> None:
    """Refuse what cannot be decided, naming the field (404 unknown, 422 inconsistent)."""
    farmer = source.farmer(app.farmer_id)
    if farmer is None:
        raise NotFoundError(f"farmer {app.farmer_id!r} is not known", field="farmer_id")
    contract = source.contract(app.contract_id)
    if contract is None:
        raise NotFoundError(f"contract {app.contract_id!r} is not known", field="contract_id")
    own = contract["party_type"] == "farmer" and contract["farmer_id"] == app.farmer_id
    coop = (
        contract["party_type"] == "coop"
        and pd.notna(farmer["coop_id"])
        and contract["coop_id"] == farmer["coop_id"]
    )
    if not (own or coop):
        raise InvalidApplicationError(
            f"contract {app.contract_id} is not a contract of farmer {app.farmer_id} or "
            "of their co-op",
            field="contract_id",
        )
    if not 0 < app.requested_minor <= MAX_REQUEST_MINOR:
        raise InvalidApplicationError(
            f"requested_minor must be a positive amount of minor units up to "
            f"{MAX_REQUEST_MINOR}; got {app.requested_minor}",
            field="requested_minor",
        )
    total = 0
    for i, line in enumerate(app.lines):
        where = f"lines[{i}]"
        if line.supplier_id not in source.approved_suppliers:
            raise InvalidApplicationError(
                f"{where}: supplier {line.supplier_id!r} is not known", field=f"{where}.supplier_id"
            )
        if not source.approved_suppliers[line.supplier_id]:
            raise InvalidApplicationError(
                f"{where}: supplier {line.supplier_id} is not approved for direct payment",
                field=f"{where}.supplier_id",
            )
        if line.amount_minor <= 0:
            raise InvalidApplicationError(
                f"{where}: amount_minor must be positive", field=f"{where}.amount_minor"
            )
        total += line.amount_minor
    if app.lines and total != app.requested_minor:
        raise InvalidApplicationError(
            f"the lines add up to {total} but requested_minor is {app.requested_minor}",
            field="lines",
        )


def _case_inputs(
    source: FeatureSource, apps: list[Application], rows: pd.DataFrame, as_of: pd.Timestamp
) -> list[dict]:
    """Per application, what the policy needs besides the model's output."""
    t = instant_ns(as_of)
    point = source.at(as_of)
    ratios = rows["sat_last_cultivated_ratio"].to_numpy(dtype=float)
    out = []
    for i, app in enumerate(apps):
        contract = source.contract(app.contract_id)
        loans = point.outstanding.get(app.farmer_id, [])
        arrears = max([(t - due) / DAY_NS for _, _, due in loans] + [0.0])
        drawn = sum(amount for contract_id, amount, _ in loans if contract_id == app.contract_id)
        fields = source.fields_of(app.farmer_id)
        crop_area = float(fields.loc[fields["crop"] == contract["crop"], "declared_area_ha"].sum())
        seen = [point.last_scene[f] for f in fields["field_id"] if f in point.last_scene]
        ratio = ratios[i]
        known = not np.isnan(ratio)
        out.append(
            {
                "crop": contract["crop"],
                "delivery_end": contract["delivery_end"],
                "drawn": float(drawn),
                "arrears": float(arrears),
                "verified_ha": float(ratio * crop_area) if known else None,
                "cultivated_ratio": float(ratio) if known else None,
                "days_since_scene": (as_of - max(seen)).total_seconds() / 86_400 if seen else None,
            }
        )
    return out


def feature_rows(
    apps: list[Application], source: FeatureSource, as_of: pd.Timestamp
) -> pd.DataFrame:
    """Feature rows of the applications, in order.

    When the feature store's snapshot was built at exactly `as_of` and names the same
    contract, its row is the application's features (only the requested amount's ratio
    depends on the request); every other application is built with `build_features`.
    """
    frame = pd.DataFrame(
        {
            "application_id": [a.application_id for a in apps],
            "farmer_id": [a.farmer_id for a in apps],
            "as_of": pd.array([as_of] * len(apps), dtype="datetime64[ns, UTC]"),
            "contract_id": [a.contract_id for a in apps],
            "requested_minor": [float(a.requested_minor) for a in apps],
        }
    )
    snap = source.snapshot_rows(as_of)
    hits = [
        i
        for i, a in enumerate(apps)
        if snap is not None
        and a.farmer_id in snap.index
        and snap.at[a.farmer_id, "contract_id"] == a.contract_id
    ]
    rest = [i for i in range(len(apps)) if i not in set(hits)]
    parts = []
    if hits:
        rows = snap.loc[[apps[i].farmer_id for i in hits]].reset_index(drop=True)
        receivable = rows["contract_receivable_minor"].to_numpy(dtype=float)
        requested = frame["requested_minor"].to_numpy()[hits]
        with np.errstate(divide="ignore", invalid="ignore"):
            rows["contract_requested_over_receivable"] = np.where(
                receivable > 0, requested / receivable, np.nan
            )
        rows["application_id"] = frame["application_id"].to_numpy()[hits]
        rows.index = hits
        parts.append(rows)
    if rest:
        inputs = source.for_farmers(sorted({apps[i].farmer_id for i in rest}))
        built = build_features(
            inputs, frame.iloc[rest].reset_index(drop=True), reference=source.reference
        )
        built.index = rest
        parts.append(built)
    return pd.concat(parts).sort_index()


def evaluate_applications(
    apps: list[Application],
    *,
    source: FeatureSource,
    model: ModelBundle,
    policy: Policy,
    as_of: pd.Timestamp,
    reasons_for: str = "declined_or_referred",
) -> list[Outcome]:
    """Decide a batch of (already checked) applications at `as_of`, vectorised.

    `reasons_for` = "all" computes contributions for every row; by default only rows that
    are not approved get them (contributions cost far more than predictions).
    """
    rows = feature_rows(apps, source, as_of)
    pd_ = model.predict_pd(rows)
    points = model.scaler.points(pd_)
    bands = model.scaler.band(pd_)
    extras = _case_inputs(source, apps, rows, as_of)
    decisions = []
    for i, app in enumerate(apps):
        row, x = rows.iloc[i], extras[i]
        contract = source.contract(app.contract_id)
        contract_open = not (row["dq_no_contract"] or row["dq_contract_not_open"])
        case = Case(
            requested_minor=app.requested_minor,
            pd=float(pd_[i]),
            band=str(bands[i]),
            crop=x["crop"],
            contract_open=contract_open,
            delivery_end=x["delivery_end"],
            buyer_grade=source.buyer_grades.get(contract["buyer_id"]),
            receivable_minor=float(np.nan_to_num(row["contract_receivable_minor"])),
            drawn_on_contract_minor=x["drawn"],
            verified_cultivated_ha=x["verified_ha"],
            cultivated_ratio=x["cultivated_ratio"],
            days_since_last_scene=x["days_since_scene"],
            arrears_days=x["arrears"],
            as_of=as_of,
        )
        decisions.append(decide(case, policy))
    needs = [i for i, d in enumerate(decisions) if reasons_for == "all" or d.decision != "approve"]
    contrib = model.contributions(rows.iloc[needs]) if needs else np.zeros((0, 0))
    by_row = dict(zip(needs, contrib, strict=True))
    flags = [c for c in rows.columns if c.startswith("dq_")]
    outcomes = []
    for i, app in enumerate(apps):
        d = decisions[i]
        row = rows.iloc[i]
        reasons = top_reasons(model.feature_names, by_row[i]) if i in by_row else []
        outcomes.append(
            Outcome(
                application=app,
                decision=d,
                pd=float(pd_[i]),
                points=int(points[i]),
                band=str(bands[i]),
                reasons=reasons,
                features={
                    n: (None if pd.isna(row[n]) else float(row[n])) for n in model.feature_names
                },
                flags=[f for f in flags if bool(row[f])],
                disbursements=_disburse(app, d.limit_minor) if d.decision == "approve" else [],
                as_of=as_of,
            )
        )
    return outcomes


def _disburse(app: Application, limit: int) -> list[dict]:
    """Payments to the suppliers, in line order, never above the limit in total."""
    left, out = limit, []
    for line in app.lines:
        amount = min(line.amount_minor, left)
        if amount > 0:
            out.append(
                {
                    "payee_supplier_id": line.supplier_id,
                    "item": line.item,
                    "amount_minor": int(amount),
                }
            )
        left -= amount
    return out
