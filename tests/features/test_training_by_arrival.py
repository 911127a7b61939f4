"""The training matrix by arrival: each loan's row is the row `features build --as-of` its
application time gives, whatever arrived after it (an order backfilled, a repayment posted
late, a scene delivered days after acquisition, a price the day after its market, a co-op
member recorded late, a contract's closing or its buyer's payment posted late)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.asof import to_ns
from features.assembly import Inputs, build_features, build_reference, loan_applications
from features.contracts import GRADES
from features.feature_store import (
    SERIES_FILE,
    TRAINING_FILE,
    inputs_from_tables,
    validated_tables,
    write_feature_store,
)
from features.ingest import load_data_dir
from features.registry import FEATURE_NAMES
from features.training_matrix import training_matrix, with_arrivals
from features.versions import ARRIVAL_COLUMNS, CONTRACT_FACTS, contracts_as_of, latest_versions

COLUMNS = [*FEATURE_NAMES]


@pytest.fixture(scope="module")
def store(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("by-arrival") / "store"
    load_data_dir(tiny_world, store)
    write_feature_store(store)
    return store


@pytest.fixture(scope="module")
def arrived(store: Path) -> Inputs:
    """The store read whole, the observations with their scenes' arrival."""
    tables = validated_tables(store)
    series = pd.read_parquet(store / "features" / SERIES_FILE)
    inputs = inputs_from_tables(store, tables, series=series)
    scenes = tables["scenes"].set_index("scene_id")["recorded_at"]
    return replace(inputs, series=with_arrivals(inputs.series, scenes))


# a contract's dated facts, what comes with each, and the column saying when it arrived
_WITH_FACT = {
    "closed_at": ("delivered_kg", "status"),
    "payment_due_at": (),
    "paid_at": ("paid_minor",),
}


def _contracts_at(contracts: pd.DataFrame, t: pd.Timestamp) -> pd.DataFrame:
    """The contracts as a read at t holds them, from their latest versions: the simulated
    world's later versions only add a closing and a payment, so a contract at t is its
    latest version without the facts that arrived at or after t."""
    c = contracts.copy()
    for fact, comes_with in _WITH_FACT.items():
        late = c[CONTRACT_FACTS[fact]] >= t
        c.loc[late, CONTRACT_FACTS[fact]] = pd.NaT
        for column in (fact, *comes_with):
            c.loc[late, column] = "active" if column == "status" else None
    return c


def _cut(inputs: Inputs, t: pd.Timestamp) -> Inputs:
    """What had arrived before t, table by table: the reading `--as-of t` makes."""
    cut = {n: f[f["recorded_at"] < t] for n, f in vars(inputs).items() if n != "contracts"}
    return replace(inputs, contracts=_contracts_at(inputs.contracts, t), **cut)


def _as_of_application(inputs: Inputs, loan: pd.Series) -> pd.Series:
    then = _cut(inputs, loan["applied_at"])
    apps = loan_applications(loan.to_frame().T.astype(inputs.loans.dtypes.to_dict()))
    return build_features(then, apps, reference=build_reference(then)).iloc[0]


def _same(a: pd.Series, b: pd.Series) -> bool:
    x, y = a[COLUMNS].to_numpy(dtype=float), b[COLUMNS].to_numpy(dtype=float)
    return bool(((x == y) | (np.isnan(x) & np.isnan(y))).all())


def _late(
    frame: pd.DataFrame, rows: pd.Index, until: pd.Timestamp, lag: pd.Timedelta
) -> pd.DataFrame:
    """`frame` with `rows` recorded `lag` after `until` (so in flight at any T up to it)."""
    recorded = frame["recorded_at"].copy()
    recorded.loc[rows] = until + lag
    return frame.assign(recorded_at=recorded)


def _facts_late(
    contracts: pd.DataFrame, rows: dict[str, pd.Index], until: pd.Timestamp, lag: pd.Timedelta
) -> pd.DataFrame:
    """`contracts` with each fact of `rows[fact]` (and the facts after it) arriving `lag`
    after `until`: a closing brings the payment's due date, a payment comes after both."""
    c = contracts.copy()
    facts = list(CONTRACT_FACTS)
    for k, fact in enumerate(facts):
        for later in facts[k:]:
            column = CONTRACT_FACTS[later]
            late = c.index.isin(rows[fact]) & c[later].notna()
            c.loc[late, column] = np.maximum(c.loc[late, column], until + lag)
    return c


@settings(max_examples=6, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(data=st.data())
def test_each_loans_row_is_what_had_arrived_at_its_application(arrived, data):
    loans = arrived.loans[arrived.loans["applied_at"] > arrived.loans["applied_at"].min()]
    picked = loans.sample(3, random_state=data.draw(st.integers(0, 10**6)))
    lag = pd.Timedelta(hours=data.draw(st.integers(1, 24 * 40)))
    inputs = arrived
    for _, loan in picked.iterrows():
        t, farmer = loan["applied_at"], loan["farmer_id"]
        coop = arrived.farmers.set_index("farmer_id")["coop_id"].get(farmer)
        share = data.draw(st.floats(0.1, 1.0))

        def recent(frame: pd.DataFrame, col: str, days: int, t: pd.Timestamp = t) -> pd.DataFrame:
            return frame[(frame[col] < t) & (frame[col] >= t - pd.Timedelta(days=days))]

        def some(rows: pd.Index) -> pd.Index:
            return rows[: data.draw(st.integers(0, len(rows)))]

        orders = recent(inputs.orders[inputs.orders["farmer_id"] == farmer], "placed_at", 400)
        mine = inputs.loans.loc[inputs.loans["farmer_id"] == farmer, "loan_id"]
        paid = recent(inputs.repayments[inputs.repayments["loan_id"].isin(mine)], "paid_at", 400)
        scenes = recent(inputs.series, "acquired_at", 60)["scene_id"].drop_duplicates()
        scenes = scenes.sample(frac=share, random_state=2)
        others = (inputs.farmers["coop_id"] == coop) & (inputs.farmers["farmer_id"] != farmer)
        # the buyer's other contracts, and the party's: closings and payments posted late
        c = inputs.contracts
        buyer = c.loc[c["contract_id"] == loan["contract_id"], "buyer_id"].iloc[0]
        party = (c["farmer_id"] == farmer) | (c["coop_id"].notna() & (c["coop_id"] == coop))
        late_facts = {
            fact: some(recent(c[(c["buyer_id"] == buyer) | party], fact, 400).index)
            for fact in CONTRACT_FACTS
        }
        inputs = replace(
            inputs,
            orders=_late(inputs.orders, orders.sample(frac=share, random_state=1).index, t, lag),
            repayments=_late(inputs.repayments, paid.index, t, lag),
            series=_late(
                inputs.series, inputs.series.index[inputs.series["scene_id"].isin(scenes)], t, lag
            ),
            market_prices=_late(
                inputs.market_prices, some(recent(inputs.market_prices, "observed_at", 28).index),
                t, lag,
            ),
            farmers=_late(inputs.farmers, some(inputs.farmers.index[others]), t, lag),
            contracts=_facts_late(inputs.contracts, late_facts, t, lag),
        )  # fmt: skip
    build_at = max(f["recorded_at"].max() for f in vars(inputs).values()) + pd.Timedelta("1s")
    matrix = training_matrix(inputs, reference=build_reference(inputs), as_of=build_at)
    rows = matrix.set_index("application_id")
    for _, loan in picked.iterrows():
        expected = _as_of_application(inputs, loan)
        assert _same(rows.loc[loan["loan_id"]], expected), loan["loan_id"]


def test_features_build_trains_each_loan_on_what_had_arrived_at_its_application(store, arrived):
    matrix = pd.read_parquet(store / "features" / TRAINING_FILE).set_index("application_id")
    # the simulated world's own lags: loans whose farmer had an order backfilled after its
    # application, and a few others
    orders = arrived.orders.merge(
        arrived.loans[["loan_id", "farmer_id", "applied_at"]], on="farmer_id"
    )
    flying = orders[
        (orders["placed_at"] < orders["applied_at"])
        & (orders["recorded_at"] >= orders["applied_at"])
    ]
    ids = [*flying["loan_id"].unique()[:4], *arrived.loans["loan_id"].sample(3, random_state=3)]
    assert len(flying), "the tiny world has no loan with an order in flight at its application"
    for loan_id in ids:
        loan = arrived.loans.set_index("loan_id").loc[loan_id].rename(loan_id)
        loan = pd.concat([pd.Series({"loan_id": loan_id}), loan])
        assert _same(matrix.loc[loan_id], _as_of_application(arrived, loan)), loan_id


def test_a_loans_contract_is_trained_on_the_delivery_it_had_reported_then(arrived):
    # a contract's report of what was delivered so far, sent an hour before the loan's
    # application: its later closing version does not keep it, so only the versions can
    c = arrived.contracts.drop(columns=list(ARRIVAL_COLUMNS))
    loans = arrived.loans.merge(c[["contract_id", "party_type", "recorded_at"]], on="contract_id")
    picked = loans[
        (loans["recorded_at_y"] > loans["applied_at"]) & (loans["party_type"] == "farmer")
    ]
    picked = picked.drop_duplicates("contract_id").head(3)
    assert len(picked), "the tiny world has no loan whose contract moved on after it"
    applied = picked.set_index("contract_id")["applied_at"]
    reports = c[c["contract_id"].isin(applied.index)]
    reports = reports.assign(
        status="active", closed_at=pd.NaT, payment_due_at=pd.NaT, paid_at=pd.NaT,
        paid_minor=pd.NA, delivered_kg=reports["quantity_kg"] * 0.6,
        recorded_at=reports["contract_id"].map(applied) - pd.Timedelta(hours=1),
    )  # fmt: skip
    versions = pd.concat([c, reports], ignore_index=True)
    inputs = replace(arrived, contracts=latest_versions("contracts", ("contract_id",), versions))
    build_at = max(f["recorded_at"].max() for f in vars(inputs).values()) + pd.Timedelta("1s")
    reference = build_reference(inputs)

    matrix = training_matrix(inputs, reference=reference, as_of=build_at,
                             contract_versions=versions).set_index("application_id")  # fmt: skip
    unversioned = training_matrix(inputs, reference=reference, as_of=build_at)

    for _, loan in picked.iterrows():
        t = loan["applied_at"]
        then = _cut(inputs, t)
        mine = versions[versions["contract_id"] == loan["contract_id"]]
        others = then.contracts[then.contracts["contract_id"] != loan["contract_id"]]
        at_t = contracts_as_of(mine, int(to_ns(pd.Series([t]))[0]))
        then = replace(then, contracts=pd.concat([others, at_t], ignore_index=True))
        one = loan.drop(["recorded_at_y", "party_type"]).rename({"recorded_at_x": "recorded_at"})
        apps = loan_applications(one.to_frame().T.astype(inputs.loans.dtypes.to_dict()))
        expected = build_features(then, apps, reference=build_reference(then)).iloc[0]
        assert _same(matrix.loc[loan["loan_id"]], expected), loan["loan_id"]
    receivable = "contract_receivable_minor"
    without = unversioned.set_index("application_id").loc[picked["loan_id"], receivable]
    assert (matrix.loc[picked["loan_id"], receivable] < without).all()  # 60 % delivered then


def test_a_loan_is_trained_on_its_buyers_grade_as_it_stood_at_its_application(arrived):
    # a buyer re-graded while its contracts' loans were being applied for: those applied for
    # before the new grade arrived are trained on the grade it had, as a read then gives it
    loans = arrived.loans.merge(arrived.contracts[["contract_id", "buyer_id"]], on="contract_id")
    buyer = loans["buyer_id"].value_counts().index[0]
    mine = loans[loans["buyer_id"] == buyer]
    arrives = mine["applied_at"].sort_values().iloc[len(mine) // 2]
    was = arrived.buyers[arrived.buyers["buyer_id"] == buyer]
    grade = "D" if was["grade"].iloc[0] != "D" else "A"
    versions = pd.concat([arrived.buyers, was.assign(grade=grade, recorded_at=arrives)],
                         ignore_index=True)  # fmt: skip
    inputs = replace(arrived, buyers=latest_versions("buyers", ("buyer_id",), versions))
    build_at = max(f["recorded_at"].max() for f in vars(inputs).values()) + pd.Timedelta("1s")
    matrix = training_matrix(inputs, reference=build_reference(inputs), as_of=build_at,
                             buyer_versions=versions).set_index("application_id")  # fmt: skip

    code = {g: float(i) for i, g in enumerate(GRADES)}
    before, after = mine[mine["applied_at"] <= arrives], mine[mine["applied_at"] > arrives]
    assert len(before) and len(after)
    grades = matrix["contract_buyer_grade"]
    assert (grades.loc[before["loan_id"]] == code[was["grade"].iloc[0]]).all()
    assert (grades.loc[after["loan_id"]] == code[grade]).all()
    # one loan of before, whole: what a read at its application holds
    loan = arrived.loans.set_index("loan_id").loc[before["loan_id"].iloc[-1]]
    t = loan["applied_at"]
    then = replace(_cut(inputs, t), buyers=latest_versions(
        "buyers", ("buyer_id",), versions[versions["recorded_at"] < t]))  # fmt: skip
    one = pd.concat([pd.Series({"loan_id": loan.name}), loan])
    apps = loan_applications(one.to_frame().T.astype(inputs.loans.dtypes.to_dict()))
    expected = build_features(then, apps, reference=build_reference(then)).iloc[0]
    assert _same(matrix.loc[loan.name], expected), loan.name
