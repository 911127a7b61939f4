"""The training matrix: every loan as the application it was, from what had arrived then.

A loan applied for at T is trained on the row `features build --as-of T` would have given
it: rows recorded before T and dated before T. The matrix is built from the tables as read
for the build, cut at each loan's T by event time, and that is already exact for a loan
when no row it is built from was *in flight* at T (dated before T, recorded at or after
it); market prices and co-ops' areas, which span farmers, and the recent observations are
cut by arrival where they are read (features/contracts.py, `asof.visible`). A loan whose
farmer, fields or loans had a row in flight is built again from those rows recorded before
its T, many such loans in one build (one per farmer, so each row is cut at one T). A loan
applied for while a finished season's observations were still arriving is built from the
whole store as of its T: its county's reference peaks move too. Contracts' closings and
payments are cut by arrival where they are read: each fact counts from the later of its
date and the arrival of the version that first carried it (features/versions.py); a loan
whose contract had reported a delivery so far that its latest version does not keep is
built again with the contract as it stood at its T, from every version. A loan's buyer
grade is that of the buyer's version recorded before its T.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numba
import numpy as np
import pandas as pd

from features.asof import DAY_NS, EventIndex, before, encode, instant_ns, recorded_ns, to_ns
from features.assembly import (
    Inputs,
    Reference,
    build_features,
    build_reference,
    loan_applications,
    restrict_to_farmers,
)
from features.contracts import GRADE_CODE
from features.history import DEFAULT_DPD, loan_settlements
from features.satellite.seasons import GrowingSeason, field_season_metrics
from features.store import RECORDED_AT
from features.versions import PROGRESS_RECORDED, contracts_as_of, latest_versions

_EARLIEST = np.iinfo(np.int64).min  # a row with no event time: dated before any T
_LATEST = np.iinfo(np.int64).max


@numba.njit(cache=True, nogil=True)
def _latest_so_far(recorded: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Within each entity's rows in time order, the latest recorded time up to each row."""
    out = np.empty_like(recorded)
    for c in range(len(starts) - 1):
        latest = _EARLIEST
        for k in range(starts[c], starts[c + 1]):
            latest = max(latest, recorded[k])
            out[k] = latest
    return out


def _in_flight(
    keys: pd.Series, event_ns: np.ndarray, recorded: np.ndarray, asked: pd.Series, t: np.ndarray
) -> np.ndarray:
    """Per question (a key and an instant t): did a row of that key dated before t arrive
    at or after t."""
    known = keys.notna().to_numpy()
    if not known.any():
        return np.zeros(len(asked), dtype=bool)
    index = EventIndex.build(keys[known], event_ns[known])
    latest = _latest_so_far(recorded[known][index.order], index.starts)
    codes = index.code_of(asked.astype(str).where(asked.notna(), "").to_numpy())
    end = index.count_before(codes, t)
    seen = (codes >= 0) & (end > index.first_of(codes))
    return seen & (latest[np.maximum(end - 1, 0)] >= t)


def with_arrivals(series: pd.DataFrame, scene_recorded: pd.Series | None) -> pd.DataFrame:
    """The observations with their `recorded_at`: each arrives with its scene."""
    if scene_recorded is None or "scene_id" not in series:
        return series
    codes, scenes = encode(series["scene_id"])  # a few hundred scenes, a million rows
    at = pd.Index(scene_recorded.index).get_indexer(scenes)
    arrived = np.where(at >= 0, to_ns(scene_recorded)[np.maximum(at, 0)], _EARLIEST)[codes]
    recorded = pd.DatetimeIndex(arrived.view("datetime64[ns]")).tz_localize("UTC")  # min: NaT
    return series.assign(recorded_at=recorded.as_unit("us"))


Keyed = tuple[pd.Series, np.ndarray, np.ndarray]  # the key of each row, its event, its arrival


def _farmer_rows(inputs: Inputs) -> list[Keyed]:
    """Each farmer-keyed input as (farmer of each row, event time, recorded time). The
    observations are not among them: recent ones are cut by arrival where they are read
    (`asof.visible`), and a season's only count once it has ended."""
    loan_owner = inputs.loans.set_index("loan_id")["farmer_id"]
    i = inputs
    return [
        (i.orders["farmer_id"], to_ns(i.orders["placed_at"]), recorded_ns(i.orders)),
        (i.fields["farmer_id"], np.full(len(i.fields), _EARLIEST), recorded_ns(i.fields)),
        (i.loans["farmer_id"], to_ns(i.loans["applied_at"]), recorded_ns(i.loans)),
        (
            i.repayments["loan_id"].map(loan_owner),
            to_ns(i.repayments["paid_at"]),
            recorded_ns(i.repayments),
        ),
        (i.farmers["farmer_id"], to_ns(i.farmers["registered_at"]), recorded_ns(i.farmers)),
    ]


def _season_still_arriving(
    series: pd.DataFrame, series_recorded: np.ndarray, t: np.ndarray, season: GrowingSeason
) -> np.ndarray:
    """Per instant t: did an observation of a season ended before t arrive at or after t."""
    if not len(series):
        return np.zeros(len(t), dtype=bool)
    years = pd.Series(pd.DatetimeIndex(pd.to_datetime(t, utc=True)).year)
    this_end = to_ns(season.end_of(years))
    last_end = np.where(this_end < t, this_end, to_ns(season.end_of(years - 1)))
    acquired = to_ns(series["acquired_at"])
    order = np.argsort(acquired, kind="stable")
    latest = np.maximum.accumulate(series_recorded[order])
    n = np.searchsorted(acquired[order], last_end, side="left")  # acquired before that end
    return (n > 0) & (latest[np.maximum(n - 1, 0)] >= t)


def _groups(farmers: pd.Series, contracts: pd.Series) -> list[np.ndarray]:
    """Positions in groups with at most one application per farmer and per contract (a
    co-op's contract is its members'), each to the first group where neither is taken."""
    taken: list[set[tuple[str, object]]] = []
    groups: list[list[int]] = []
    for i, (farmer, contract) in enumerate(zip(farmers, contracts, strict=True)):
        keys = {("farmer", farmer)} | ({("contract", contract)} if pd.notna(contract) else set())
        g = next((g for g, seen in enumerate(taken) if seen.isdisjoint(keys)), len(taken))
        if g == len(taken):
            taken.append(set())
            groups.append([])
        taken[g] |= keys
        groups[g].append(i)
    return [np.asarray(g, dtype=np.int64) for g in groups]


def _progress_in_flight(
    contracts: pd.DataFrame, applications: pd.DataFrame, t: np.ndarray
) -> np.ndarray:
    """Per application: had its contract reported a delivery so far before t in a version
    the latest (recorded at or after t) does not keep."""
    if PROGRESS_RECORDED not in contracts or "contract_id" not in applications:
        return np.zeros(len(applications), dtype=bool)
    by_id = contracts.set_index("contract_id")
    at = by_id.index.get_indexer(applications["contract_id"].to_numpy())
    known = at >= 0
    pos = np.maximum(at, 0)
    reported = to_ns(by_id[PROGRESS_RECORDED])[pos]
    latest = recorded_ns(by_id)[pos]
    return known & (reported != _EARLIEST) & (reported < t) & (latest >= t)


def _with_contracts_at(
    contracts: pd.DataFrame, versions: pd.DataFrame, asked: pd.DataFrame
) -> pd.DataFrame:
    """`contracts` with the own contract of each application `asked` (one per contract) as
    its version at the application's as_of."""
    then = [
        contracts_as_of(versions[versions["contract_id"] == cid], int(t))
        for cid, t in zip(asked["contract_id"], to_ns(asked["as_of"]), strict=True)
    ]
    kept = contracts[~contracts["contract_id"].isin(asked["contract_id"])]
    return pd.concat([kept, *then], ignore_index=True)


def _cut(frame: pd.DataFrame, owner: pd.Series, cut_of: pd.Series) -> pd.DataFrame:
    """The rows of `frame` recorded before the instant of their owner (`cut_of`, ns, by a
    unique owner); a row whose owner has none is kept."""
    at = pd.Index(cut_of.index).get_indexer(owner.to_numpy())
    cut = np.where(at >= 0, cut_of.to_numpy(dtype=np.int64)[np.maximum(at, 0)], _LATEST)
    return frame[recorded_ns(frame) < cut]


def _group_inputs(
    inputs: Inputs, apps: pd.DataFrame, reference: Reference, season: GrowingSeason,
    contract_versions: pd.DataFrame | None, reported: np.ndarray,
) -> tuple[Inputs, Reference]:  # fmt: skip
    """The inputs of one group's farmers and co-ops, each row cut at its owner's T; the
    contract of each application `reported` (its latest version lacks a report it had
    then) as its version then, from every version."""
    t = pd.Series(to_ns(apps["as_of"]), index=apps["farmer_id"].to_numpy())
    part = restrict_to_farmers(inputs, apps["farmer_id"])
    loan_owner = inputs.loans.set_index("loan_id")["farmer_id"]
    field_owner = inputs.fields.set_index("field_id")["farmer_id"]
    series = part.series
    part = replace(
        part,
        farmers=_cut(part.farmers, part.farmers["farmer_id"], t),
        fields=_cut(part.fields, part.fields["farmer_id"], t),
        orders=_cut(part.orders, part.orders["farmer_id"], t),
        loans=_cut(part.loans, part.loans["farmer_id"], t),
        repayments=_cut(part.repayments, part.repayments["loan_id"].map(loan_owner), t),
        series=_cut(series, series["field_id"].map(field_owner), t),
    )  # fmt: skip
    if contract_versions is not None and reported.any():
        contracts = _with_contracts_at(part.contracts, contract_versions, apps[reported])
        part = replace(part, contracts=contracts)
    group_reference = replace(
        reference, field_seasons=field_season_metrics(part.series, part.fields, season=season)
    )
    return part, group_reference


def recorded_before(
    inputs: Inputs,
    t: int,
    contract_versions: pd.DataFrame | None = None,
    buyer_versions: pd.DataFrame | None = None,
) -> Inputs:
    """Every input as read as of `t` (ns): the rows recorded before it (of contracts and
    buyers, each one's version then, when every version is given)."""

    def cut(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[recorded_ns(frame) < t]

    contracts = inputs.contracts
    if contract_versions is not None:
        contracts = contracts_as_of(contract_versions, t)
    buyers = cut(inputs.buyers)
    if buyer_versions is not None:
        then = buyer_versions[recorded_ns(buyer_versions) < t]
        buyers = latest_versions("buyers", ("buyer_id",), then)
    return replace(
        inputs,
        contracts=contracts,
        farmers=cut(inputs.farmers),
        fields=cut(inputs.fields),
        orders=cut(inputs.orders),
        loans=cut(inputs.loans),
        repayments=cut(inputs.repayments),
        buyers=buyers,
        market_prices=cut(inputs.market_prices),
        series=cut(inputs.series),
    )


def rebuilt_by_arrival(
    matrix: pd.DataFrame,
    inputs: Inputs,
    applications: pd.DataFrame,
    *,
    reference: Reference,
    season: GrowingSeason | None = None,
    contract_versions: pd.DataFrame | None = None,
    buyer_versions: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """`matrix` (`build_features` of `applications`, rows in their order, from `inputs` cut
    by event time) with the rows of the applications that had a row in flight at their
    as_of built again from what had arrived by then.

    Of a store, every input table says when its rows arrived (`recorded_at`); the
    observations too (`with_arrivals`). With every contract version (`contract_versions`),
    an application whose contract had reported a delivery so far in a version its latest
    does not keep is built again with its contract as it stood then.
    """
    season = season or GrowingSeason()
    series_recorded = recorded_ns(inputs.series)
    t = to_ns(applications["as_of"])
    farmer = applications["farmer_id"]
    flying = np.zeros(len(applications), dtype=bool)
    for keys, event, recorded in _farmer_rows(inputs):
        flying |= _in_flight(keys, event, recorded, farmer, t)
    reported = np.zeros(len(applications), dtype=bool)
    if contract_versions is not None:
        reported = _progress_in_flight(inputs.contracts, applications, t)
        flying |= reported
    whole = _season_still_arriving(inputs.series, series_recorded, t, season)
    rebuilt: list[tuple[np.ndarray, pd.DataFrame]] = []
    grouped = np.flatnonzero(flying & ~whole)
    # one per contract only where the contract is taken as it stood then
    contract = applications.get("contract_id", pd.Series(None, index=applications.index))
    contract = contract.where(reported)
    for members in _groups(farmer.iloc[grouped], contract.iloc[grouped]):
        at = grouped[members]
        apps = applications.iloc[at].reset_index(drop=True)
        part, part_reference = _group_inputs(
            inputs, apps, reference, season, contract_versions, reported[at]
        )
        rebuilt.append((at, build_features(part, apps, reference=part_reference, season=season)))
    for instant in np.unique(t[whole]):
        at = np.flatnonzero(whole & (t == instant))
        then = recorded_before(inputs, int(instant), contract_versions, buyer_versions)
        rows = build_features(
            then,
            applications.iloc[at].reset_index(drop=True),
            reference=build_reference(then, season=season),
            season=season,
        )
        rebuilt.append((at, rows))
    if not rebuilt:
        return matrix
    again = np.concatenate([at for at, _ in rebuilt])
    rows = pd.concat([r.set_axis(at) for at, r in rebuilt])
    kept = matrix.drop(index=matrix.index[again])
    return pd.concat([kept, rows.set_axis(matrix.index[again])]).loc[matrix.index]


def buyer_grades_by_arrival(
    matrix: pd.DataFrame,
    inputs: Inputs,
    applications: pd.DataFrame,
    buyer_versions: pd.DataFrame,
) -> pd.DataFrame:
    """`matrix` with each application's buyer grade as the buyer's version recorded before
    its as_of had it (a buyer re-graded after the application was trained with the new
    grade): the grade is the only feature a buyer's row gives (features/contracts.py), and a
    buyer's first version arrives before any contract names it, so only a row with a grade
    can move, and only where its buyer's latest version arrived at or after its as_of."""
    if "contract_buyer_grade" not in matrix or RECORDED_AT not in buyer_versions:
        return matrix
    buyer_of = inputs.contracts.set_index("contract_id")["buyer_id"]
    buyer = applications["contract_id"].map(buyer_of).to_numpy(dtype=object)
    t = to_ns(applications["as_of"])
    at = pd.Index(inputs.buyers["buyer_id"].astype(str)).get_indexer(buyer.astype(str))
    latest = recorded_ns(inputs.buyers)[np.maximum(at, 0)]  # each one's latest version
    late = (at >= 0) & (latest >= t) & matrix["contract_buyer_grade"].notna().to_numpy()
    if not late.any():
        return matrix
    versions = buyer_versions.assign(
        _at=recorded_ns(buyer_versions), buyer_id=buyer_versions["buyer_id"].astype(str)
    )
    versions = versions.sort_values("_at", kind="stable")
    asked = pd.DataFrame(
        {"buyer_id": buyer[late].astype(str), "_at": t[late] - 1, "_row": np.flatnonzero(late)}
    )
    then = pd.merge_asof(  # the latest version recorded strictly before each as_of
        asked.sort_values("_at", kind="stable"), versions[["buyer_id", "_at", "grade"]],
        on="_at", by="buyer_id", direction="backward",
    )  # fmt: skip
    code = then["grade"].map(GRADE_CODE).to_numpy(dtype=float)
    out = matrix.copy()
    column = out.columns.get_loc("contract_buyer_grade")
    out.iloc[then["_row"].to_numpy(), column] = code
    return out


def training_matrix(
    inputs: Inputs,
    *,
    reference: Reference,
    as_of: pd.Timestamp,
    build: Callable[..., pd.DataFrame] = build_features,
    scene_recorded: pd.Series | None = None,
    contract_versions: pd.DataFrame | None = None,
    buyer_versions: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Features of every loan applied for before `as_of`, with its outcome where known.

    `build` computes the features (`build_features`, or its cluster version). Each loan's
    row is built from what had arrived by its application (`rebuilt_by_arrival`; the
    scenes' recorded times by scene_id in `scene_recorded`; every contract version, of a
    store, in `contract_versions`; every buyer version in `buyer_versions`: each loan's
    buyer grade as it stood at its application).

    A loan's outcome is known at `as_of` once it is 90 days past due (`outcome_at`); it
    defaulted when its repayments had not reached the principal by then. Both are rebuilt from
    repayments dated before `as_of`, never from the loans table's current status.
    """
    t = instant_ns(as_of)
    loans = inputs.loans[before(inputs.loans["applied_at"], t)].reset_index(drop=True)
    applications = loan_applications(loans)
    inputs = replace(inputs, series=with_arrivals(inputs.series, scene_recorded))
    matrix = build(inputs, applications, reference=reference)
    matrix = rebuilt_by_arrival(
        matrix, inputs, applications, reference=reference, contract_versions=contract_versions,
        buyer_versions=buyer_versions,
    )  # fmt: skip
    if buyer_versions is not None:
        matrix = buyer_grades_by_arrival(matrix, inputs, applications, buyer_versions)
    matured = to_ns(loans["due_at"]) + DEFAULT_DPD * DAY_NS
    known = matured < t
    settled = loan_settlements(loans, inputs.repayments)["settled_at"]
    repaid_in_time = before(settled, np.minimum(matured, t))
    matrix["outcome_at"] = pd.to_datetime(matured, utc=True)
    matrix["outcome_known"] = known
    outcome = np.where(known, ~repaid_in_time, np.array(None, dtype=object))
    matrix["defaulted"] = pd.array(outcome, dtype="boolean")
    return matrix
