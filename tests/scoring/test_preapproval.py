"""Co-op pre-approval: every member decided like /v1/score, the co-op's cap kept, other
co-ops invisible, jobs resumable without a row written twice."""

from __future__ import annotations

import csv
import dataclasses
import io
import time

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoring.api.app import create_app
from scoring.decide.model_store import ModelStore
from scoring.decide.policy import load_policy
from scoring.ledger.jobs import JobStore
from scoring.ledger.repo import Ledger
from scoring.ledger.tables import preapproval_jobs
from scoring.preapproval.members import evaluate_members
from scoring.preapproval.plan import MemberRequest, plan_preapproval
from scoring.preapproval.runner import JobRunner, run_job
from tests.factories import (
    ValidatingClient,
    bearer,
    coop_contracts,
    every_member_job,
    fresh_postgres_url,
)


@pytest.fixture
def coop(source) -> tuple[str, str]:
    return coop_contracts(source)[0]


def test_preapproval_decides_every_member_under_the_coop_cap(client, state, source, coop):
    coop_id, contract_id = coop
    response = client.post(
        f"/v1/coops/{coop_id}/preapprovals",
        json={"contract_id": contract_id},
        headers=bearer(state, "coop", coop_id),
    )

    assert response.status_code == 200, response.text
    body = response.json()
    members, summary = body["members"], body["summary"]
    assert body["status"] == "done"
    assert [m["farmer_id"] for m in members] == source.coop_members[coop_id]
    assert {m["decision"] for m in members} <= {"approve", "refer", "decline"}
    total = sum(m["preapproved_limit_minor"] for m in members)
    assert total == summary["total_preapproved_minor"]
    assert total <= summary["coop_cap_minor"] <= summary["contract_advance_cap_minor"]
    assert summary["approved"] + summary["referred"] + summary["declined"] == len(members)
    assert summary["approved"] > 0 and summary["total_preapproved_minor"] > 0
    for m in members:
        assert m["preapproved_limit_minor"] <= min(
            m["allocation_minor"], m["individual_limit_minor"]
        )
        if m["decision"] != "approve":
            assert m["preapproved_limit_minor"] == 0 and m["reasons"]
    assert state.ledger.count() == len(members) + 1  # a row per member and the batch
    assert state.ledger.verify().ok


def test_a_members_preapproval_is_what_score_decides(client, state, source, coop):
    coop_id, contract_id = coop
    supplier = next(s for s, ok in source.approved_suppliers.items() if ok)
    farmers = source.coop_members[coop_id][:12]
    members = [
        {"farmer_id": f, "budget_minor": 600_000 + 50_000 * i} for i, f in enumerate(farmers)
    ]
    lender = bearer(state)
    pre = client.post(
        f"/v1/coops/{coop_id}/preapprovals",
        json={"contract_id": contract_id, "members": members},
        headers=lender,
    ).json()["members"]

    for m, got in zip(members, pre, strict=True):
        scored = client.post(
            "/v1/score",
            json={
                "farmer_id": m["farmer_id"],
                "contract_id": contract_id,
                "requested_minor": m["budget_minor"],
                "inputs": [
                    {"supplier_id": supplier, "item": "seed", "amount_minor": m["budget_minor"]}
                ],
            },
            headers=lender,
        ).json()
        assert got["decision"] == scored["decision"]
        assert got["probability_of_default"] == scored["probability_of_default"]
        assert (got["score"], got["band"]) == (scored["score"], scored["band"])
        assert got["individual_limit_minor"] == scored["limit_minor"]
        assert [r["code"] for r in got["reasons"]] == [r["code"] for r in scored["reasons"]]
        assert got["model_version"] == scored["model"]["version"]


def test_a_coop_key_sees_nothing_of_another_coop(client, state, source):
    (mine, my_contract), (theirs, their_contract) = coop_contracts(source, financed_only=False)[:2]
    own_key, their_key = bearer(state, "coop", mine), bearer(state, "coop", theirs)

    asked = client.post(
        f"/v1/coops/{theirs}/preapprovals", json={"contract_id": their_contract}, headers=own_key
    )
    their_job = client.post(
        f"/v1/coops/{theirs}/preapprovals", json={"contract_id": their_contract}, headers=their_key
    ).json()["job_id"]
    peeked = client.get(f"/v1/preapprovals/{their_job}", headers=own_key)
    other_lender = client.get(f"/v1/preapprovals/{their_job}", headers=bearer(state))
    wrong_contract = client.post(
        f"/v1/coops/{mine}/preapprovals", json={"contract_id": their_contract}, headers=own_key
    )
    mixed = client.post(
        f"/v1/coops/{mine}/preapprovals",
        json={
            "contract_id": my_contract,
            "members": [
                {"farmer_id": source.coop_members[mine][0]},
                {"farmer_id": source.coop_members[theirs][0]},
                {"farmer_id": "F-UNKNOWN"},
            ],
        },
        headers=own_key,
    ).json()

    assert asked.status_code == 404 and peeked.status_code == 404
    assert other_lender.status_code == 404 and wrong_contract.status_code == 404
    assert client.get(f"/v1/preapprovals/{their_job}", headers=their_key).status_code == 200
    statuses = [(m["farmer_id"], m["status"]) for m in mixed["members"]]
    assert statuses == [
        (source.coop_members[mine][0], "evaluated"),
        (source.coop_members[theirs][0], "not_a_member"),
        ("F-UNKNOWN", "not_a_member"),
    ]
    assert mixed["summary"]["not_members"] == 2


def test_bad_member_lists_are_refused_naming_the_field(client, state, coop):
    coop_id, contract_id = coop
    url, key = f"/v1/coops/{coop_id}/preapprovals", bearer(state)
    twice = [{"farmer_id": "F0001"}, {"farmer_id": "F0001"}]
    partial = [{"farmer_id": "F0001", "share": 0.5}, {"farmer_id": "F0002"}]
    too_much = [{"farmer_id": "F0001", "share": 0.7}, {"farmer_id": "F0002", "share": 0.6}]

    for members, field in ((twice, "members[1]"), (partial, "members"), (too_much, "members")):
        r = client.post(url, json={"contract_id": contract_id, "members": members}, headers=key)
        assert r.status_code == 422, r.text
        assert r.json()["field"] == field
    negative = [{"farmer_id": "F0001", "budget_minor": -5}]
    r = client.post(url, json={"contract_id": contract_id, "members": negative}, headers=key)
    assert r.status_code == 422 and "budget_minor" in r.json()["field"]
    assert (
        client.post(
            url, json={"contract_id": contract_id}, headers=bearer(state, "scientist")
        ).status_code
        == 403
    )
    assert state.ledger.count() == 0


@pytest.fixture
def job_client(state) -> TestClient:
    """The app with every request above two members made a job."""
    state.settings = state.settings.model_copy(update={"preapproval_sync_members": 2})
    with ValidatingClient(create_app(state.settings, state=state)) as c:
        yield c


def _wait_done(client, job_id: str, headers: dict) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = client.get(f"/v1/preapprovals/{job_id}", headers=headers).json()
        if body["status"] in ("done", "failed"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not done: {body}")


def test_large_requests_become_jobs_with_progress_json_and_csv(job_client, state, source, coop):
    coop_id, contract_id = coop
    key = bearer(state, "coop", coop_id) | {"Idempotency-Key": "season-1"}
    started = job_client.post(
        f"/v1/coops/{coop_id}/preapprovals", json={"contract_id": contract_id}, headers=key
    )
    again = job_client.post(
        f"/v1/coops/{coop_id}/preapprovals", json={"contract_id": contract_id}, headers=key
    )
    conflict = job_client.post(
        f"/v1/coops/{coop_id}/preapprovals",
        json={"contract_id": contract_id, "members": [{"farmer_id": "F0001"}]},
        headers=key,
    )

    assert started.status_code == 202, started.text
    job_id = started.json()["job_id"]
    assert started.headers["location"] == f"/v1/preapprovals/{job_id}"
    assert again.json()["job_id"] == job_id and conflict.status_code == 422
    done = _wait_done(job_client, job_id, key)
    assert done["status"] == "done"
    members = source.coop_members[coop_id]
    assert done["progress"] == {"done": len(members), "total": len(members)}
    table = job_client.get(f"/v1/preapprovals/{job_id}", headers=key | {"Accept": "text/csv"})
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert table.headers["content-type"].startswith("text/csv")
    assert [r["farmer_id"] for r in rows] == members
    by_id = {m["farmer_id"]: m for m in done["members"]}
    assert all(
        int(r["preapproved_limit_minor"]) == by_id[r["farmer_id"]]["preapproved_limit_minor"]
        for r in rows
    )
    assert state.ledger.count() == len(members) + 1


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_state(request, state):
    """The service state with its ledger (and jobs) on each database."""
    if request.param == "sqlite":
        yield state
        return
    book = Ledger(fresh_postgres_url())
    book.migrate()
    yield dataclasses.replace(state, ledger=book)
    book.close()


@pytest.mark.parametrize("resumer_chunk", [4, 3, 7])  # a worker configured otherwise resumes
def test_an_interrupted_job_resumes_and_writes_no_row_twice(any_db_state, source, coop,
                                                            resumer_chunk):  # fmt: skip
    state = any_db_state
    coop_id = coop[0]
    store = JobStore(state.ledger)
    job = every_member_job(store, source, coop, key_id="k-1", idempotency_key="once",
                           chunk_members=4)  # fmt: skip
    first: list[int] = []

    def crash_after_two_chunks(done: int, _total: int) -> None:
        first.append(done)
        if len(first) == 2:
            raise KeyboardInterrupt("the worker stops here")

    with pytest.raises(KeyboardInterrupt):
        run_job(job, state, store, chunk=4, on_chunk=crash_after_two_chunks)
    written = state.ledger.count()
    assert written == 8 and store.get(job.job_id).status == "running"

    with state.ledger.engine.begin() as conn:  # the stopped worker's lease runs out
        conn.execute(preapproval_jobs.update().values(lease_until=0.0))
    runner = JobRunner(state, chunk=resumer_chunk)
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while store.get(job.job_id).status != "done" and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        runner.stop()

    members = source.coop_members[coop_id]
    assert store.get(job.job_id).status == "done"
    assert state.ledger.count() == len(members) + 1
    assert state.ledger.verify().ok
    results = runner.results(store.get(job.job_id))
    assert [r["farmer_id"] for r in results] == members


@pytest.fixture(scope="module")
def model(served):
    store = ModelStore("champion", served.training)
    return store.load()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_member_limits_never_sum_above_the_contract_cap(data, source, model):
    policy = load_policy()
    coop_id, contract_id = data.draw(st.sampled_from(coop_contracts(source, financed_only=False)))
    everyone = source.coop_members[coop_id]
    chosen = data.draw(
        st.lists(st.sampled_from(everyone), min_size=1, max_size=len(everyone), unique=True)
    )
    budgets = data.draw(st.lists(st.integers(1, 10**9), min_size=len(chosen), max_size=len(chosen)))
    with_shares = data.draw(st.booleans())
    weights = data.draw(st.lists(st.floats(0, 1), min_size=len(chosen), max_size=len(chosen)))
    scale = max(sum(weights), 1.0)
    members = [
        MemberRequest(f, b, (w / scale) if with_shares else None)
        for f, b, w in zip(chosen, budgets, weights, strict=True)
    ]
    plan = plan_preapproval(
        source, policy, coop_id=coop_id, contract_id=contract_id, members=members,
        as_of=pd.Timestamp(source.data_as_of),
    )  # fmt: skip

    results = evaluate_members(
        plan, plan.members, job_id="j", source=source, model=model.predictor, policy=policy
    )

    limits = [r.preapproved_minor for r in results]
    assert all(0 <= r.preapproved_minor <= r.allocation_minor for r in results)
    assert all(r.preapproved_minor <= r.outcome.decision.limit_minor for r in results)
    assert (
        sum(limits) <= sum(r.allocation_minor for r in results) <= plan.contract_advance_cap_minor
    )


def test_preapprove_command_writes_csv_and_names_bad_member_rows(
    served, source, tmp_path, monkeypatch
):
    from click.testing import CliRunner

    from scoring.cli import main
    from scoring.ledger.repo import Ledger

    coop_id, contract_id = coop_contracts(source)[0]
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("AGRICREDIT_DATABASE_URL", ledger_url)
    monkeypatch.setenv("AGRICREDIT_TRACKING_URI", served.training.tracking_uri)
    monkeypatch.setenv("AGRICREDIT_ARTIFACT_ROOT", str(served.training.artifact_root))
    first, second = source.coop_members[coop_id][:2]
    bad = tmp_path / "bad.csv"
    bad.write_text(f"farmer_id,budget_minor\n{first},lots\n,100\n")
    good = tmp_path / "members.csv"
    good.write_text(f"farmer_id,budget_minor\n{first},700000\n{second},\nF-NOBODY,500000\n")
    out = tmp_path / "out.csv"
    args = ["preapprove", "--coop", coop_id, "--contract", contract_id, "--data", str(served.world)]

    refused = CliRunner().invoke(main, [*args, "--members", str(bad)])
    done = CliRunner().invoke(main, [*args, "--members", str(good), "--out", str(out)])

    assert refused.exit_code == 2
    assert f"{bad}:2: budget_minor 'lots' is not a whole number" in refused.output
    assert f"{bad}:3: farmer_id is empty" in refused.output
    assert done.exit_code == 0, done.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(r["farmer_id"], r["status"]) for r in rows] == [
        (first, "evaluated"),
        (second, "evaluated"),
        ("F-NOBODY", "not_a_member"),
    ]
    book = Ledger(ledger_url)
    assert book.count() == 3 and book.verify().ok  # two members and the batch row
    book.close()


def test_csv_of_an_unfinished_job_is_refused_with_its_progress(client, state, source, coop):
    from scoring.ledger.keys import create_key

    coop_id = coop[0]
    made, secret = create_key(state.ledger.keys, role="lender", name="csv")
    # leased to a worker that has not finished
    held = every_member_job(
        JobStore(state.ledger), source, coop, key_id=made.key_id, org_id=made.org_id
    )
    auth = {"Authorization": f"Bearer {secret}"}

    as_csv = client.get(f"/v1/preapprovals/{held.job_id}", headers=auth | {"Accept": "text/csv"})
    as_json = client.get(f"/v1/preapprovals/{held.job_id}", headers=auth)

    assert as_csv.status_code == 409
    assert f"0 of {len(source.coop_members[coop_id])} members" in as_csv.json()["detail"]
    assert as_json.json()["status"] == "running" and as_json.json()["members"] is None
