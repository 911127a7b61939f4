"""From an application to a decision: features, probability, reasons, policy. No HTTP here.

One code path for a single application and for a batch (co-op pre-approval): rows are
built together and predicted together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from pandas import Timestamp

from features.asof import DAY_NS, instant_ns
from features.assembly import build_features
from features.registry import FLAG_NAMES, ROW_COLUMNS
from features.satellite.seasons import GrowingSeason
from scoring.decide.counteroffer import Counteroffer, search
from scoring.decide.data import FeatureSource
from scoring.decide.policy import Case, Decision, Policy, decide
from scoring.decide.predictor import Predictor
from scoring.decide.reasons import MAX_REASONS, ModelReason
from scoring.errors import InvalidApplicationError, NotFoundError

MAX_REQUEST_MINOR = 10**12  # far above any input loan: a typo, not an application

GROWING_SEASON = GrowingSeason()  # the one the satellite features are built on


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
    disbursements: list[dict[str, Any]]
    as_of: Timestamp
    counteroffer: Counteroffer | None = None  # declined and referred applications only

    def counteroffer_dict(self) -> dict[str, Any] | None:
        """The counteroffer as stored and answered (None for an approval)."""
        c = self.counteroffer
        if c is None:
            return None
        return {
            "amount_minor": c.amount_minor,
            "probability_of_default": c.probability_of_default,
            "band": c.band,
            "annual_rate": c.annual_rate,
            "detail": c.detail,
        }

    def shown_reasons(self) -> list[dict[str, Any]]:
        """Up to four reasons as the applicant is shown them: the policy's first, then the
        model's with their contributions to the log-odds of default."""
        shown: list[dict[str, Any]] = [
            {"code": r.code, "text": r.text, "contribution": None}
            for r in self.decision.policy_reasons
        ]
        shown += [
            {"code": r.code, "text": r.text, "contribution": round(r.contribution, 6)}
            for r in self.reasons
        ]
        return shown[:MAX_REASONS]


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
        where = f"inputs[{i}]"  # the request's own name for its lines
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
            f"the inputs add up to {total} but requested_minor is {app.requested_minor}",
            field="inputs",
        )


_COLUMN = {name: j for j, name in enumerate(ROW_COLUMNS)}
_FLAGS = [(name, _COLUMN[name]) for name in FLAG_NAMES]


@dataclass(frozen=True)
class FeatureRows:
    """Applications as numbers, in order: one row each over ROW_COLUMNS (features, then
    quality flags as 1.0 / 0.0)."""

    values: np.ndarray

    def column(self, name: str) -> np.ndarray:
        """One feature or flag of every application."""
        return self.values[:, _COLUMN[name]]

    def matrix(self, names: list[str]) -> np.ndarray:
        """The named columns, in that order (a model's input matrix)."""
        return self.values[:, _positions(tuple(names))]

    def frame(self) -> pd.DataFrame:
        """As a table (flags as booleans), for inspection and tests."""
        frame = pd.DataFrame(self.values, columns=list(ROW_COLUMNS))
        return frame.astype(dict.fromkeys(FLAG_NAMES, bool))


@lru_cache(maxsize=16)
def _positions(names: tuple[str, ...]) -> np.ndarray:
    return np.array([_COLUMN[n] for n in names], dtype=np.intp)


@dataclass(frozen=True)
class _PolicyInputs:
    """What the policy needs about one application besides the model's output."""

    crop: str | None
    delivery_end: pd.Timestamp | None
    buyer_grade: str | None
    drawn: float
    arrears_days: float
    verified_ha: float | None
    cultivated_ratio: float | None
    days_since_scene: float | None


def _policy_inputs(
    source: FeatureSource, apps: list[Application], rows: FeatureRows, as_of: pd.Timestamp
) -> list[_PolicyInputs]:
    t = instant_ns(as_of)
    season_clock = instant_ns(GROWING_SEASON.latest_in_season(pd.Timestamp(as_of)))
    ratios = rows.column("sat_last_cultivated_ratio").tolist()
    out = []
    for app, ratio in zip(apps, ratios, strict=True):
        contract = source.known_contract(app.contract_id)
        loans = source.outstanding(app.farmer_id, t)
        arrears = max([(t - loan.due_ns) / DAY_NS for loan in loans] + [0.0])
        drawn = sum(loan.amount_minor for loan in loans if loan.contract_id == app.contract_id)
        fields = source.field_rows(app.farmer_id)
        crop_area = sum(f.declared_area_ha for f in fields if f.crop == contract["crop"])
        seen = [at for f in fields if (at := source.last_clear_scene_ns(f.field_id, t)) is not None]
        known = not math.isnan(ratio)
        out.append(
            _PolicyInputs(
                crop=contract["crop"],
                delivery_end=contract["delivery_end"],
                buyer_grade=source.buyer_grades.get(contract["buyer_id"]),
                drawn=float(drawn),
                arrears_days=float(arrears),
                verified_ha=ratio * crop_area if known else None,
                cultivated_ratio=ratio if known else None,
                # off season no scene is due: the age counts up to the last season's end
                days_since_scene=max(season_clock - max(seen), 0) / DAY_NS if seen else None,
            )
        )
    return out


def feature_rows(
    apps: list[Application], source: FeatureSource, as_of: pd.Timestamp
) -> FeatureRows:
    """Feature rows of the applications, in order.

    When the farmer's snapshot row was built at exactly `as_of` and names the same
    contract, it is the application's features (only the requested amount's ratio
    depends on the request); every other application is built with `build_features`.
    """
    values = np.empty((len(apps), len(ROW_COLUMNS)))
    snapshot = source.snapshot
    t = instant_ns(as_of)
    hits, rest = [], []
    for i, app in enumerate(apps):
        found = snapshot.row_at(app.farmer_id, t) if snapshot is not None else None
        if found is not None and found.contract_id == app.contract_id:
            hits.append((i, found.row))
        else:
            rest.append(i)
    if hits and snapshot is not None:
        at, from_row = (list(x) for x in zip(*hits, strict=True))
        values[at] = snapshot.values[from_row]
        receivable = values[at, _COLUMN["contract_receivable_minor"]]
        requested = np.array([apps[i].requested_minor for i in at], dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            values[at, _COLUMN["contract_requested_over_receivable"]] = np.where(
                receivable > 0, requested / receivable, np.nan
            )
    if rest:
        frame = pd.DataFrame(
            {
                "application_id": [apps[i].application_id for i in rest],
                "farmer_id": [apps[i].farmer_id for i in rest],
                "as_of": pd.array([as_of] * len(rest), dtype="datetime64[ns, UTC]"),
                "contract_id": [apps[i].contract_id for i in rest],
                "requested_minor": [float(apps[i].requested_minor) for i in rest],
            }
        )
        inputs = source.for_farmers(sorted({apps[i].farmer_id for i in rest}))
        built = build_features(inputs, frame, reference=source.reference)
        values[rest] = built[list(ROW_COLUMNS)].to_numpy(dtype=float, na_value=np.nan)
    return FeatureRows(values)


def evaluate_at_their_rows(
    apps: list[Application],
    *,
    source: FeatureSource,
    model: Predictor,
    policy: Policy,
    as_of: pd.Timestamp,
) -> list[Outcome]:
    """Decide a batch as of the wall clock's snapshot: each application whose farmer has a
    snapshot row for its contract as of that row's instant, every other as of `as_of` (the
    snapshot's latest). A follower builds again only the rows of the farmers a commit
    touched, so each decision is exactly `features build --as-of` the instant it states."""
    snapshot = source.snapshot
    groups: dict[pd.Timestamp, list[int]] = {}
    for i, app in enumerate(apps):
        row = snapshot.rows.get(app.farmer_id) if snapshot is not None else None
        instant = as_of
        if snapshot is not None and row is not None and row.contract_id == app.contract_id:
            instant = snapshot.instant_of(app.farmer_id) or as_of
        groups.setdefault(instant, []).append(i)
    if len(groups) == 1:
        (instant,) = groups
        return evaluate_applications(apps, source=source, model=model, policy=policy, as_of=instant)
    out: list[Outcome | None] = [None] * len(apps)
    for instant, at in groups.items():
        decided = evaluate_applications(
            [apps[i] for i in at], source=source, model=model, policy=policy, as_of=instant
        )
        for i, outcome in zip(at, decided, strict=True):
            out[i] = outcome
    return [o for o in out if o is not None]


def evaluate_applications(
    apps: list[Application],
    *,
    source: FeatureSource,
    model: Predictor,
    policy: Policy,
    as_of: pd.Timestamp,
    reasons_for: str = "declined_or_referred",
    counteroffers: bool = True,
) -> list[Outcome]:
    """Decide a batch of (already checked) applications at `as_of`, vectorised.

    `reasons_for` = "all" computes contributions for every row; by default only rows that
    are not approved get them (contributions cost far more than predictions).
    `counteroffers` = False leaves out the counteroffer search (where only the decision is
    wanted: the audit of a season's decisions).
    """
    rows = feature_rows(apps, source, as_of)
    x = rows.matrix(model.feature_names)
    pd_ = model.predict_pd(x)
    points = model.scaler.points(pd_).tolist()
    bands = [str(b) for b in model.scaler.band(pd_)]
    pds = pd_.tolist()
    extras = _policy_inputs(source, apps, rows, as_of)
    receivable = rows.column("contract_receivable_minor")
    receivable = np.where(np.isnan(receivable), 0.0, receivable).tolist()  # none: nothing owed
    anomaly = rows.column("sat_recent_anomaly_own").tolist()
    stale = policy.freshness.stale_sources(source.last_arrivals, pd.Timestamp(as_of))
    not_open = (rows.column("dq_no_contract") + rows.column("dq_contract_not_open")).tolist()
    decisions, cases = [], []
    for i, app in enumerate(apps):
        e = extras[i]
        case = Case(
            requested_minor=app.requested_minor,
            pd=pds[i],
            band=bands[i],
            crop=e.crop,
            contract_open=not not_open[i],
            delivery_end=e.delivery_end,
            buyer_grade=e.buyer_grade,
            receivable_minor=receivable[i],
            drawn_on_contract_minor=e.drawn,
            verified_cultivated_ha=e.verified_ha,
            cultivated_ratio=e.cultivated_ratio,
            days_since_last_scene=e.days_since_scene,
            arrears_days=e.arrears_days,
            as_of=as_of,
            recent_ndvi_anomaly=None if math.isnan(anomaly[i]) else anomaly[i],
            stale_sources=stale,
        )
        cases.append(case)
        decisions.append(decide(case, policy))
    refused = (
        [i for i, d in enumerate(decisions) if d.decision != "approve"] if counteroffers else []
    )
    offers = dict(
        zip(refused, search([cases[i] for i in refused], x[refused], model, policy), strict=True)
    )
    needs = [i for i, d in enumerate(decisions) if reasons_for == "all" or d.decision != "approve"]
    names = model.feature_names
    contrib = model.contributions(x[needs]) if needs else np.zeros((0, len(names) + 1))
    explainer = model.explainer
    raised = rows.values[needs][:, _positions(tuple(explainer.flag_names))]
    by_row = dict(zip(needs, explainer.top_reasons(x[needs], contrib, raised), strict=True))
    # the stored feature vector: missing values as None (JSON null), never NaN
    model_values = np.where(np.isnan(x), np.array(None, dtype=object), x.astype(object)).tolist()
    flag_values = rows.values[:, [j for _, j in _FLAGS]].tolist()
    outcomes = []
    for i, app in enumerate(apps):
        d = decisions[i]
        outcomes.append(
            Outcome(
                application=app,
                decision=d,
                pd=pds[i],
                points=int(points[i]),
                band=bands[i],
                reasons=by_row.get(i, []),
                features=dict(zip(names, model_values[i], strict=True)),
                flags=[name for (name, _), v in zip(_FLAGS, flag_values[i], strict=True) if v],
                disbursements=_disburse(app, d.limit_minor) if d.decision == "approve" else [],
                as_of=as_of,
                counteroffer=offers.get(i),
            )
        )
    return outcomes


def _disburse(app: Application, limit: int) -> list[dict[str, Any]]:
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
