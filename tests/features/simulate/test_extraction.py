"""A world extracted at an instant (the demo's: now) holds only what had happened and
arrived by then, with each fact's status as it stood then."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from features.errors import SimulationParameterError
from features.history import DEFAULT_DPD
from features.simulate.params import WorldParams
from features.simulate.world import simulate_world
from features.tables import TABLES
from tests.factories import TINY, world_contracts

EVENT_TIMES = {
    "orders": ("placed_at",),
    "contracts": ("signed_at", "closed_at", "paid_at"),
    "loans": ("applied_at", "disbursed_at"),
    "repayments": ("paid_at",),
    "market_prices": ("observed_at",),
    "scenes": ("acquired_at",),
}
AT = pd.Timestamp("2026-08-20T10:30:00+00:00")  # the season's crop is being delivered
SIGNING = pd.Timestamp("2026-12-02T09:00:00+00:00")  # its loans are maturing, next signed


def _extracted(tmp_path_factory: pytest.TempPathFactory, at: pd.Timestamp):
    params = WorldParams.ending(at, farmers=240, seasons=3, counties=2, seed=11)
    out = tmp_path_factory.mktemp("extracted") / "world"
    simulate_world(params, out, progress=False)
    return out, params


@pytest.fixture(scope="module")
def world_in_delivery(tmp_path_factory):
    return _extracted(tmp_path_factory, AT)


@pytest.fixture(scope="module")
def world_signing(tmp_path_factory):
    return _extracted(tmp_path_factory, SIGNING)


def test_nothing_happened_or_arrived_at_or_after_the_extraction(world_in_delivery):
    out, params = world_in_delivery
    assert params.first_year == 2023 and params.extracted_on == AT.isoformat()
    assert json.loads((out / "world.json").read_text())["summary"]["extracted_at"] == AT.isoformat()
    for spec in TABLES:
        if spec.name == "fields":
            continue
        frame = pd.read_parquet(out / f"{spec.name}.parquet")
        for column in EVENT_TIMES.get(spec.name, ()) + ("recorded_at",) * ("recorded_at" in frame):
            late = frame[column] >= AT
            assert not late.any(), f"{spec.name}.{column}: {int(late.sum())} row(s) after {AT}"


def test_a_contract_still_in_delivery_is_active_without_its_closing(world_in_delivery):
    out, _ = world_in_delivery
    contracts = world_contracts(out)
    # the season's deliveries run into September: at 20 August some are still open
    open_ = contracts[contracts.status == "active"]
    assert len(open_) > 0 and open_.closed_at.isna().all() and open_.paid_at.isna().all()
    assert (open_.delivery_end > AT).any()
    closed = contracts[contracts.status == "closed"]
    assert (closed.closed_at < AT).all()


def test_a_loan_not_yet_90_days_past_due_has_not_defaulted_and_next_season_is_signing(
    world_signing,
):
    out, params = world_signing
    assert params.first_year == 2024  # seasons 2024-2026, the next (2027) being signed
    contracts = world_contracts(out)
    assert (contracts.status == "active").any()
    assert (contracts[contracts.status == "active"].delivery_start > SIGNING).all()
    truth = pd.read_parquet(out / "_truth" / "loans.parquet")
    loans = pd.read_parquet(out / "loans.parquet").merge(
        truth[["loan_id", "defaulted"]], on="loan_id", suffixes=("", "_eventually")
    )
    # the season's loans are out: none has yet reached 90 days past due, some will
    maturing = loans[loans.due_at + pd.Timedelta(days=DEFAULT_DPD) >= SIGNING]
    assert len(maturing) > 0 and not maturing.defaulted.any()
    assert maturing.defaulted_eventually.any()
    repayments = pd.read_parquet(out / "repayments.parquet")
    assert (repayments.paid_at < SIGNING).all()
    matured = loans[loans.due_at + pd.Timedelta(days=DEFAULT_DPD) < SIGNING]
    assert (matured.defaulted == matured.defaulted_eventually).all()
    assert (loans.defaulted == (loans.days_past_due >= DEFAULT_DPD)).all()


def test_the_world_names_an_application_to_send_at_its_extraction(world_in_delivery):
    out, _ = world_in_delivery
    example = json.loads((out / "world.json").read_text())["example_application"]
    contracts = world_contracts(out).set_index("contract_id")
    suppliers = pd.read_parquet(out / "suppliers.parquet").set_index("supplier_id")
    contract = contracts.loc[example["contract_id"]]
    assert contract.status == "active" and contract.farmer_id == example["farmer_id"]
    assert contract.delivery_end > AT
    assert sum(line["amount_minor"] for line in example["inputs"]) == example["requested_minor"]
    assert all(suppliers.approved[line["supplier_id"]] for line in example["inputs"])
    buyers = pd.read_parquet(out / "buyers.parquet").set_index("buyer_id")
    assert buyers.grade[contract.buyer_id] != "D"  # a buyer the policy finances against
    loans = pd.read_parquet(out / "loans.parquet")
    repaid = pd.read_parquet(out / "repayments.parquet").groupby("loan_id").amount_minor.sum()
    theirs = loans[loans.farmer_id == example["farmer_id"]]
    assert (theirs.loan_id.map(repaid).fillna(0) >= theirs.amount_minor).all()


def test_a_world_ending_at_its_natural_extraction_has_the_default_calendar():
    natural = WorldParams(**_tiny())
    ending = WorldParams.ending("2025-02-28T00:00:00+00:00", **_tiny())
    assert ending.first_year == natural.first_year == 2022
    assert WorldParams.ending("2025-12-01", **_tiny()).first_year == 2023  # signing 2026's
    assert WorldParams.ending("2025-10-31T23:59", **_tiny()).first_year == 2022


def test_an_instant_outside_the_worlds_calendar_is_refused_with_the_fix():
    with pytest.raises(SimulationParameterError, match=r"WorldParams.ending"):
        WorldParams(**_tiny(), extracted_on="2031-05-01T00:00:00+00:00")
    with pytest.raises(SimulationParameterError, match="time zone"):
        WorldParams(**_tiny(), extracted_on="2025-03-01T00:00:00")


def _tiny() -> dict[str, int]:
    return {"farmers": TINY.farmers, "seasons": TINY.seasons, "counties": TINY.counties}
