"""Facts that change: a contract delivered, closed or paid; a buyer re-graded; a supplier
suspended. Each change is a new row of the same key (its next version), never an edit; the
arrival log, or a table file with a `recorded_at` column, may hold several versions of a
key. Read as of T, a key is its latest version recorded before T.

A contract's closing and its buyer's payment are dated facts that a later version brings,
often days after their dates. Once a version carried one it never changes, so the latest
version keeps beside each the recording of the version that first carried it
(`CONTRACT_FACTS`): a build from tables read once (the training matrix) then cuts by
arrival exactly what a read at T would not hold (features/contracts.py).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from features.asof import to_ns
from features.problems import Problem
from features.store import RECORDED_AT

VERSIONED = ("buyers", "contracts", "suppliers")
# a contract's status may move only forward: active -> closed or cancelled, never back
CONTRACT_NEXT = {
    "active": {"active", "closed", "cancelled"},
    "closed": {"closed"},
    "cancelled": {"cancelled"},
}
# what a contract's later versions may not change: the terms signed
CONTRACT_TERMS = (
    "buyer_id",
    "party_type",
    "farmer_id",
    "coop_id",
    "crop",
    "quantity_kg",
    "price_per_kg_minor",
    "signed_at",
    "delivery_start",
    "delivery_end",
)
# a contract's dated facts and the column that says when the first version with it arrived
CONTRACT_FACTS = {
    "closed_at": "closed_recorded_at",
    "payment_due_at": "due_recorded_at",
    "paid_at": "paid_recorded_at",
}
# what a version may add but no later one change: the facts, the payment, a closed delivery
FIXED_ONCE_SET = (*CONTRACT_FACTS, "paid_minor")
# when an open contract first reported a delivery so far: a later closing's version does not
# keep what was reported before it, so a build read once knows to look at the versions
PROGRESS_RECORDED = "progress_recorded_at"
ARRIVAL_COLUMNS = (*CONTRACT_FACTS.values(), PROGRESS_RECORDED)


def latest_versions(table: str, key: tuple[str, ...], stored: pd.DataFrame) -> pd.DataFrame:
    """The latest version of each key (by `recorded_at`; rows in stored order, index reset);
    of contracts, with when each fact first arrived (`CONTRACT_FACTS`; NaT: never carried,
    or known from the start). A table without versions is returned as it is."""
    if table not in VERSIONED or RECORDED_AT not in stored or stored.empty:
        return stored.reset_index(drop=True)
    keys = list(key)
    latest = stored.sort_values(RECORDED_AT, kind="stable").drop_duplicates(keys, keep="last")
    out = stored.loc[np.sort(latest.index.to_numpy())].reset_index(drop=True)
    if table != "contracts":
        return out
    carried = {column: stored[fact].notna() for fact, column in CONTRACT_FACTS.items()}
    if "delivered_kg" in stored:
        carried[PROGRESS_RECORDED] = stored["delivered_kg"].notna() & stored["closed_at"].isna()
    for column, rows in carried.items():
        first = stored[rows].groupby(keys[0])[RECORDED_AT].min()
        out[column] = first.reindex(out[keys[0]].to_numpy()).array  # NaT: never carried
    return out


def contracts_as_of(versions: pd.DataFrame, t_ns: int) -> pd.DataFrame:
    """The contracts as a read at `t_ns` (UTC ns) holds them: of every version, the
    latest of each recorded before it."""
    return latest_versions(
        "contracts", ("contract_id",), versions[to_ns(versions[RECORDED_AT]) < t_ns]
    )


def _changed(before: pd.Series, after: pd.Series) -> list[str]:
    def same(a: object, b: object) -> bool:
        return bool(pd.isna(a) and pd.isna(b)) or bool(not pd.isna(a) and a == b)

    terms = [c for c in CONTRACT_TERMS if c in after and not same(after[c], before.get(c))]
    fixed = [
        c
        for c in FIXED_ONCE_SET
        if c in before and not pd.isna(before[c]) and not same(after.get(c), before[c])
    ]
    if str(before.get("status")) == "closed" and not same(
        after.get("delivered_kg"), before.get("delivered_kg")
    ):
        fixed.append("delivered_kg")
    return terms + fixed


def next_version_problems(
    before: pd.Series, after: pd.Series, where: str, row: int
) -> list[Problem]:
    """What is wrong with `after` (row `row` of a batch) as the next version of the contract
    whose latest version is `before`."""
    cid = after["contract_id"]
    problems: list[Problem] = []
    if after["status"] not in CONTRACT_NEXT[str(before["status"])]:
        problems.append(
            Problem(
                where,
                f"contract {cid} is {before['status']}; it cannot become {after['status']}",
                row=row,
                column="status",
            )
        )
    changed = _changed(before, after)
    terms = [c for c in changed if c in CONTRACT_TERMS]
    if terms:
        problems.append(
            Problem(
                where,
                f"contract {cid}'s signed terms cannot change ({', '.join(terms)}); a new "
                "contract needs a new contract_id",
                row=row,
                column=terms[0],
            )
        )
    facts = [c for c in changed if c not in CONTRACT_TERMS]
    if facts:
        problems.append(
            Problem(
                where,
                f"contract {cid}'s {', '.join(facts)} was recorded before and cannot change "
                "(a fact is a new row, never an edit); send the value recorded",
                row=row,
                column=facts[0],
            )
        )
    return problems


def successive_problems(
    table: str, frame: pd.DataFrame, recorded: pd.Series, where: str
) -> list[Problem]:
    """Of a file or bulk batch holding several versions of a key (each row's `recorded`
    time given): every contract version checked against the one recorded before it."""
    if table != "contracts" or frame.empty:
        return []
    ids = frame["contract_id"].to_numpy()
    order = np.lexsort((to_ns(recorded), ids))
    problems: list[Problem] = []
    for a, b in itertools.pairwise(order):
        if ids[a] == ids[b]:
            problems += next_version_problems(frame.iloc[a], frame.iloc[b], where, int(b) + 1)
    return problems
