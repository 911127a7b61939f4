"""Tenancy by organisation: a lender's keys share its decisions, jobs and Idempotency-Keys,
so a key rotation loses nothing; other organisations see none of it; a ledger made before
organisations keeps every key's view exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from scoring.cli import main
from scoring.config import get_settings
from scoring.ledger.database import make_engine, migrate, now_text
from scoring.ledger.keys import UnknownOrganisationError, create_key, rotate_key
from scoring.ledger.repo import Ledger
from tests.factories import applications, coop_contracts, fresh_postgres_url
from training.config import get_training_settings


def _auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def body(source, served) -> dict:
    return applications(source, served.world, 1)[0]


def test_after_a_rotation_the_new_key_reads_past_decisions_and_is_held_by_their_keys(
    client, state, body
):
    old, old_secret = create_key(state.ledger.keys, role="lender", name="bank")
    first = client.post(
        "/v1/score", json=body, headers=_auth(old_secret) | {"Idempotency-Key": "app-1"}
    ).json()

    new, new_secret = rotate_key(state.ledger.keys, old.key_id)

    assert new.org_id == old.org_id and new.key_id != old.key_id
    assert client.post("/v1/score", json=body, headers=_auth(old_secret)).status_code == 401
    read = client.get(f"/v1/decisions/{first['decision_id']}", headers=_auth(new_secret))
    assert read.status_code == 200 and read.json() == first
    notice = client.get(f"/v1/decisions/{first['decision_id']}/notice", headers=_auth(new_secret))
    assert notice.status_code in (200, 409)  # 409: an approval has no adverse-action notice
    retried = client.post(
        "/v1/score", json=body, headers=_auth(new_secret) | {"Idempotency-Key": "app-1"}
    )
    assert retried.status_code == 200 and retried.json() == first
    other_body = body | {"requested_minor": body["requested_minor"] - 1000}
    other_body["inputs"] = [body["inputs"][0] | {"amount_minor": other_body["requested_minor"]}]
    reused = client.post(
        "/v1/score", json=other_body, headers=_auth(new_secret) | {"Idempotency-Key": "app-1"}
    )
    assert reused.status_code == 422, reused.text
    assert reused.json()["code"] == "idempotency_key_reused"
    assert state.ledger.count() == 1


def test_another_organisation_sees_nothing_and_its_keys_are_its_own(client, state, body):
    _, mine = create_key(state.ledger.keys, role="lender", name="bank a")
    _, theirs = create_key(state.ledger.keys, role="lender", name="bank b")
    made = client.post(
        "/v1/score", json=body, headers=_auth(mine) | {"Idempotency-Key": "same"}
    ).json()

    assert client.get(
        f"/v1/decisions/{made['decision_id']}", headers=_auth(theirs)
    ).status_code == (404)
    their_own = client.post(
        "/v1/score", json=body, headers=_auth(theirs) | {"Idempotency-Key": "same"}
    ).json()
    assert their_own["decision_id"] != made["decision_id"]
    assert state.ledger.count() == 2


def test_a_preapproval_job_is_read_by_any_key_of_its_organisation(client, state, source):
    coop_id, contract_id = coop_contracts(source)[0]
    first, first_secret = create_key(state.ledger.keys, role="lender", name="bank")
    _, second_secret = create_key(
        state.ledger.keys, role="lender", name="bank ops", org_id=first.org_id
    )
    _, stranger = create_key(state.ledger.keys, role="lender", name="other bank")
    members = sorted(source.coop_members[coop_id])[:2]
    job = client.post(
        f"/v1/coops/{coop_id}/preapprovals",
        json={"contract_id": contract_id, "members": [{"farmer_id": f} for f in members]},
        headers=_auth(first_secret) | {"Idempotency-Key": "run-1"},
    ).json()

    read = client.get(f"/v1/preapprovals/{job['job_id']}", headers=_auth(second_secret))
    assert read.status_code == 200 and read.json()["members"] == job["members"]
    assert client.get(f"/v1/preapprovals/{job['job_id']}", headers=_auth(stranger)).status_code == (
        404
    )
    again = client.post(
        f"/v1/coops/{coop_id}/preapprovals",
        json={"contract_id": contract_id, "members": [{"farmer_id": f} for f in members]},
        headers=_auth(second_secret) | {"Idempotency-Key": "run-1"},
    ).json()
    assert again["job_id"] == job["job_id"]


def test_a_key_for_an_unknown_organisation_is_refused(ledger):
    with pytest.raises(UnknownOrganisationError, match="no organisation 'org_nobody'"):
        create_key(ledger.keys, role="lender", name="x", org_id="org_nobody")
    assert ledger.keys.list() == []


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_ledger_from_before_organisations_keeps_every_keys_decisions_claims_and_jobs(
    database: str, tmp_path: Path
):
    url = f"sqlite:///{tmp_path / 'old.db'}" if database == "sqlite" else fresh_postgres_url()
    engine = make_engine(url)
    migrate(engine, "0003")
    created = now_text()
    with engine.begin() as conn:  # what a 0003 ledger held: two keys, a claim, a job
        for key_id in ("key-a", "key-b"):
            conn.execute(
                sa.text(
                    "INSERT INTO api_keys (key_id, name, role, coop_id, key_hash, created_at) "
                    "VALUES (:k, :k, 'lender', NULL, :h, :t)"
                ),
                {"k": key_id, "h": key_id * 4, "t": created},
            )
        conn.execute(
            sa.text(
                "INSERT INTO idempotency (key_id, idempotency_key, request_hash, decision_id, "
                "created_at) VALUES ('key-a', 'i1', 'h1', 'd1', :t), "
                "('operator-cli', 'job:x:0', 'h2', 'd2', :t)"
            ),
            {"t": created},
        )
        conn.execute(
            sa.text(
                "INSERT INTO preapproval_jobs (job_id, key_id, idempotency_key, request_hash, "
                "coop_id, contract_id, request, status, total, done, created_at, updated_at) "
                "VALUES ('j1', 'key-b', 'run', 'h', 'C1', 'K1', '{}', 'done', 0, 0, :t, :t)"
            ),
            {"t": created},
        )
    engine.dispose()

    book = Ledger(url)
    book.migrate()
    try:
        keys = {k.key_id: k.org_id for k in book.keys.list()}
        assert keys == {"key-a": "key-a", "key-b": "key-b"}
        assert {o.org_id for o in book.keys.organisations()} == {"key-a", "key-b"}
        claims = book.replay_many([("key-a", "i1", {}), ("operator-cli", "job:x:0", {})])
        assert [type(c).__name__ for c in claims] == ["IdempotencyConflictError"] * 2
        assert book.replay_many([("key-b", "i1", {})]) == [None]
        with book.reader.connect() as conn:
            job = conn.execute(sa.text("SELECT org_id FROM preapproval_jobs")).scalar_one()
        assert job == "key-b"
        made, _ = create_key(book.keys, role="lender", name="next", org_id="key-a")
        assert made.org_id == "key-a"
    finally:
        book.close()


def test_keys_commands_create_in_an_organisation_and_rotate(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGRICREDIT_DATABASE_URL", f"sqlite:///{tmp_path / 'l.db'}")
    monkeypatch.setenv("AGRICREDIT_SIGNING_KEY_FILE", str(tmp_path / "signing.key"))
    get_settings.cache_clear()  # the commands read the settings of this environment
    get_training_settings.cache_clear()
    runner = CliRunner()
    try:
        made = runner.invoke(main, ["keys", "create", "--role", "lender", "--name", "bank"])
        assert made.exit_code == 0, made.output
        first_line = made.output.splitlines()[0].split()
        key_id, org_id = first_line[1], first_line[3]
        second = runner.invoke(main, ["keys", "create", "--role", "lender", "--org", org_id])
        rotated = runner.invoke(main, ["keys", "rotate", key_id])
        unknown = runner.invoke(main, ["keys", "create", "--role", "lender", "--org", "org_no"])
        listed = runner.invoke(main, ["keys", "list"])
    finally:
        get_settings.cache_clear()
        get_training_settings.cache_clear()

    assert second.exit_code == 0 and f"org {org_id}" in second.output
    assert rotated.exit_code == 0 and f"org {org_id}" in rotated.output
    assert f"old key {key_id} revoked" in rotated.output
    assert unknown.exit_code == 2 and "no organisation 'org_no'" in unknown.output
    assert "Traceback" not in unknown.output
    rows = [line.split() for line in listed.output.splitlines()]
    assert sum(r[1] == org_id for r in rows) == 3
    assert next(r for r in rows if r[0] == key_id)[-2] == "revoked"
