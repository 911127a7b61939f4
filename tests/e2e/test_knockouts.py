"""Every knock-out and the fail-closed refer, decided by a real server over HTTP.

A copy of the tiny world is changed so the rare cases exist: one farmer's open contract
has its delivery window already over, another farmer's field boundaries are gone (no
imagery can verify cultivation); a farmer's closed contract stands for "no open contract".
The rest (suspended buyers, arrears, uncultivated fields, too small a limit) occur in the
simulated world as it is.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from features.feature_store import write_feature_store
from scoring.config import DEFAULT_POLICY
from scoring.decide.data import FeatureSource
from tests.factories import api_client, copy_world, running_server

pytestmark = pytest.mark.e2e


def _replace(path, write) -> None:
    path.unlink()  # copies are hard links: never write through them
    write(path)


@pytest.fixture(scope="module")
def knockout_world(served, tmp_path_factory):
    world = copy_world(served.world, tmp_path_factory.mktemp("knockouts") / "world")
    source = FeatureSource.load(world)
    snap = pd.read_parquet(world / "features" / "snapshot.parquet")
    contracts = source.inputs.contracts
    own_open = snap.merge(contracts[["contract_id", "party_type"]], on="contract_id")
    own_open = own_open[own_open["party_type"] == "farmer"]
    expired, unseen = own_open["farmer_id"].iloc[0], own_open["farmer_id"].iloc[1]
    expired_contract = own_open["contract_id"].iloc[0]
    closed = contracts[(contracts["party_type"] == "farmer") & contracts["closed_at"].notna()]
    closed = closed[~closed["farmer_id"].isin([expired, unseen])].iloc[0]

    table = pd.read_parquet(world / "contracts.parquet")
    row = table["contract_id"] == expired_contract
    signed = table.loc[row, "signed_at"].iloc[0]
    table.loc[row, "delivery_start"] = signed + pd.Timedelta(days=1)
    table.loc[row, "delivery_end"] = signed + pd.Timedelta(days=2)
    _replace(world / "contracts.parquet", lambda p: table.to_parquet(p, index=False))
    geo = json.loads((world / "fields.geojson").read_text())
    geo["features"] = [f for f in geo["features"] if f["properties"]["farmer_id"] != unseen]
    _replace(world / "fields.geojson", lambda p: p.write_text(json.dumps(geo)))
    write_feature_store(world)
    cases = {
        "CONTRACT_EXPIRED": (expired, expired_contract),
        "IMAGERY_MISSING": (unseen, own_open["contract_id"].iloc[1]),
        "NO_ACTIVE_CONTRACT": (closed["farmer_id"], closed["contract_id"]),
    }
    return world, cases


def _body(farmer_id: str, contract_id: str) -> dict:
    return {
        "farmer_id": farmer_id,
        "contract_id": contract_id,
        "requested_minor": 800_000,
        "inputs": [{"supplier_id": "S002", "item": "seed", "amount_minor": 800_000}],
    }


def test_each_knockout_and_refer_comes_back_over_http(served, knockout_world, tmp_path):
    world, cases = knockout_world
    snap = pd.read_parquet(world / "features" / "snapshot.parquet")
    snap = snap[snap["contract_id"].notna() & (snap["contract_id"] != "nan")]
    with (
        running_server(world, served.training, f"sqlite:///{tmp_path / 'l.db'}", tmp_path) as (
            base,
            keys,
            _,
            _,
        ),
        api_client(base, timeout=60) as client,
    ):
        headers = {"Authorization": f"Bearer {keys['lender']}"}
        made = {
            code: client.post("/v1/score", json=_body(*case), headers=headers).json()
            for code, case in cases.items()
        }
        everyone = [
            client.post("/v1/score", json=_body(r.farmer_id, r.contract_id), headers=headers).json()
            for r in snap.itertuples()
        ]

    for code, decision in made.items():
        codes = [r["code"] for r in decision["reasons"]]
        assert code in codes, (code, decision)
        expected = {"refer", "decline"} if code == "IMAGERY_MISSING" else {"decline"}
        assert decision["decision"] in expected, (code, decision["decision"])
        assert decision["disbursements"] == []
    seen = {r["code"] for d in everyone for r in d["reasons"]}
    assert {"BUYER_SUSPENDED", "LOAN_IN_ARREARS", "FIELD_NOT_CULTIVATED"} <= seen
    assert {"approve", "refer", "decline"} <= {d["decision"] for d in everyone}


def test_stale_imagery_refers_over_http_and_is_recorded(served, tmp_path):
    """A policy that trusts imagery for one day only: farmers whose latest clear scene is
    older are referred for stale imagery, never approved on it, and the ledger says so."""
    stale_policy = tmp_path / "policy.yaml"
    text = DEFAULT_POLICY.read_text()
    stale_policy.write_text(
        text.replace("max_days_since_last_scene: 60", "max_days_since_last_scene: 1").replace(
            'version: "', 'version: "stale-test-'
        )
    )
    snap = pd.read_parquet(served.world / "features" / "snapshot.parquet")
    snap = snap[snap["contract_id"].notna() & (snap["contract_id"] != "nan")].head(25)
    ledger_url = f"sqlite:///{tmp_path / 'l.db'}"
    env = {"AGRICREDIT_POLICY_PATH": str(stale_policy)}
    with (
        running_server(served.world, served.training, ledger_url, tmp_path, extra_env=env) as (
            base, keys, _, _,
        ),
        api_client(base, timeout=60) as client,
    ):  # fmt: skip
        headers = {"Authorization": f"Bearer {keys['lender']}"}
        answers = [
            client.post("/v1/score", json=_body(r.farmer_id, r.contract_id), headers=headers).json()
            for r in snap.itertuples()
        ]
        stored = [
            client.get(f"/v1/decisions/{a['decision_id']}", headers=headers).json() for a in answers
        ]

    stale = [a for a in answers if "IMAGERY_STALE" in [r["code"] for r in a["reasons"]]]
    assert len(stale) >= 10
    assert all(a["decision"] in ("refer", "decline") for a in stale)
    assert all(a["policy_version"].startswith("stale-test-") for a in answers)
    assert stored == answers
