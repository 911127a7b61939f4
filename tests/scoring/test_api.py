"""The decision API in process: decisions, idempotency, roles, bad input, operations."""

from __future__ import annotations

import json
import os
import re

import pandas as pd
import pytest

from scoring.ledger.keys import create_key
from scoring.preapproval.members import batch_decision_id
from tests.factories import (
    ValidatingClient,
    applications,
    bearer,
    coop_contracts,
    copy_world,
    decide_request,
    write_stub_bundle,
)


@pytest.fixture
def body(source, served) -> dict:
    return applications(source, served.world, 1)[0]


def test_score_answers_with_a_decision_naming_model_policy_and_as_of(client, state, body, served):
    response = client.post("/v1/score", json=body, headers=bearer(state))

    assert response.status_code == 200, response.text
    d = response.json()
    assert d["decision"] in {"approve", "refer", "decline"}
    assert 0 < d["probability_of_default"] < 1 and d["band"] in "ABCDE"
    assert d["model"] == {"name": "agricredit-pd", "version": state.models.current.version}
    assert d["policy_version"] == state.policy.version
    assert d["features_as_of"] == state.source.data_as_of.isoformat()
    assert d["data_seen"] == {}  # a directory's rows carry no arrivals (a store's do)
    assert len(d["reasons"]) <= 4
    assert sum(p["amount_minor"] for p in d["disbursements"]) <= d["limit_minor"]
    if d["decision"] == "approve":
        assert d["disbursements"] and d["due_at"] and d["annual_rate"]
    else:
        assert d["disbursements"] == [] and d["reasons"]
    assert state.ledger.count() == 1


def test_every_outcome_is_reachable_and_declines_explain_themselves(client, state, source, served):
    headers = bearer(state)
    decisions = [
        client.post("/v1/score", json=b, headers=headers).json()
        for b in applications(source, served.world, 40)
    ]

    outcomes = {d["decision"] for d in decisions}
    assert {"approve", "decline"} <= outcomes
    for d in decisions:
        if d["decision"] != "approve":
            assert d["reasons"] and all(r["text"].endswith(".") for r in d["reasons"])


def test_same_idempotency_key_and_body_returns_the_stored_decision_once(client, state, body):
    headers = bearer(state) | {"Idempotency-Key": "order-42"}

    first = client.post("/v1/score", json=body, headers=headers)
    again = client.post("/v1/score", json=body, headers=headers)

    assert first.json()["decision_id"] == again.json()["decision_id"]
    assert state.ledger.count() == 1


def test_a_retry_is_answered_from_the_ledger_without_deciding_again(
    client, state, body, monkeypatch
):
    from scoring.decide import batcher as decisions

    headers = bearer(state) | {"Idempotency-Key": "order-44"}
    first = client.post("/v1/score", json=body, headers=headers).json()

    def must_not_decide(*args, **kwargs):
        raise AssertionError("a retry decided again")

    monkeypatch.setattr(decisions, "evaluate_at_their_rows", must_not_decide)
    again = client.post("/v1/score", json=body, headers=headers)

    assert again.status_code == 200 and again.json() == first


def test_same_idempotency_key_with_another_body_is_422_and_writes_nothing(client, state, body):
    headers = bearer(state) | {"Idempotency-Key": "order-43"}
    client.post("/v1/score", json=body, headers=headers)
    other = body | {
        "requested_minor": 500_000,
        "inputs": [body["inputs"][0] | {"amount_minor": 500_000}],
    }

    response = client.post("/v1/score", json=other, headers=headers)

    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert state.ledger.count() == 1


def _bad(body: dict, **changes) -> dict:
    return body | changes


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        (lambda b: _bad(b, farmer_id="F-NOBODY"), 404, "farmer_id"),
        (lambda b: _bad(b, contract_id="K-NONE"), 404, "contract_id"),
        (lambda b: _bad(b, requested_minor=-5), 422, "requested_minor"),
        (lambda b: _bad(b, requested_minor=10**15), 422, "requested_minor"),
        (
            lambda b: _bad(b, inputs=[b["inputs"][0] | {"supplier_id": "S-NONE"}]),
            422,
            "inputs[0].supplier_id",
        ),
        (lambda b: _bad(b, inputs=[]), 422, "inputs"),
        (lambda b: _bad(b, surprise=1), 422, "surprise"),
        (lambda b: {k: v for k, v in b.items() if k != "farmer_id"}, 422, "farmer_id"),
        (lambda b: _bad(b, farmer_id="F0' OR 1=1 --"), 422, "farmer_id"),
        (lambda b: _bad(b, requested_minor="800000"), 422, "requested_minor"),
        (
            lambda b: _bad(b, inputs=[b["inputs"][0] | {"amount_minor": "800000"}]),
            422,
            "inputs[0].amount_minor",
        ),
    ],
    ids=[
        "unknown_farmer",
        "unknown_contract",
        "negative",
        "absurd",
        "unknown_supplier",
        "no_inputs",
        "unknown_field",
        "missing_field",
        "injection",
        "string_amount",
        "string_line_amount",
    ],
)
def test_bad_input_gets_a_4xx_problem_naming_the_field_and_writes_nothing(
    client, state, body, change, status, field
):
    response = client.post("/v1/score", json=change(body), headers=bearer(state))

    assert response.status_code == status, response.text
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert problem["field"] == field and problem["request_id"]
    assert state.ledger.count() == 0


def test_contract_of_another_farmer_is_refused(client, state, source, served):
    first, second = applications(source, served.world, 40)[:2]
    if first["contract_id"] == second["contract_id"]:
        pytest.skip("both farmers share a co-op contract")

    response = client.post(
        "/v1/score", json=first | {"contract_id": second["contract_id"]}, headers=bearer(state)
    )

    assert response.status_code in (422,) and response.json()["field"] == "contract_id"


def test_malformed_json_and_oversized_bodies_are_refused_not_crashed(client, state):
    headers = bearer(state) | {"content-type": "application/json"}

    broken = client.post("/v1/score", content=b"{not json", headers=headers)
    huge = client.post("/v1/score", content=b'{"x":"' + b"a" * 100_000 + b'"}', headers=headers)

    assert broken.status_code == 422
    assert huge.status_code == 413


def test_keys_roles_and_revocation(client, state, body):
    assert client.post("/v1/score", json=body).status_code == 401
    assert (
        client.post(
            "/v1/score", json=body, headers={"Authorization": "Bearer agk_wrong"}
        ).status_code
        == 401
    )
    coop = bearer(state, "coop", coop_id="C000")
    assert client.post("/v1/score", json=body, headers=coop).status_code == 403
    made, secret = create_key(state.ledger.keys, role="lender", name="to revoke")
    assert state.ledger.keys.revoke(made.key_id)
    revoked = client.post("/v1/score", json=body, headers={"Authorization": f"Bearer {secret}"})
    assert revoked.status_code == 401


def test_a_decision_is_readable_by_its_lender_only(client, state, body):
    mine, other = bearer(state), bearer(state)
    decision_id = client.post("/v1/score", json=body, headers=mine).json()["decision_id"]

    assert (
        client.get(f"/v1/decisions/{decision_id}", headers=mine).json()["decision_id"]
        == decision_id
    )
    assert client.get(f"/v1/decisions/{decision_id}", headers=other).status_code == 404
    assert client.get("/v1/decisions/nope", headers=mine).status_code == 404


def test_health_readiness_metrics_and_champion(client, state, body):
    client.post("/v1/score", json=body, headers=bearer(state))

    assert client.get("/healthz").json() == {"status": "alive", "worker": os.getpid()}
    ready = client.get("/readyz").json()
    age = ready.pop("data_age_seconds")
    assert ready.pop("tables") == {}  # a directory's arrivals are unknown (test_follower)
    assert ready == {"model_loaded": True, "ledger_reachable": True, "ledger_writable": True,
                     "data_as_of": state.source.data_as_of.isoformat(), "data_fresh": True,
                     "decisions_as_of": state.source.data_as_of.isoformat(),
                     "detail": None}  # fmt: skip
    assert age == pytest.approx(
        (pd.Timestamp.now(tz="UTC") - state.source.data_as_of).total_seconds(), abs=60
    )
    metrics = client.get("/metrics").text
    assert 'agricredit_requests_total{method="POST",route="/v1/score",status="200"} 1.0' in metrics
    assert (
        "agricredit_decisions_total" in metrics and "agricredit_request_seconds_bucket" in metrics
    )
    champion = client.get("/v1/models/champion", headers=bearer(state, "scientist")).json()
    assert champion["sha256"] == state.models.current.bundle.sha256
    assert client.post("/v1/models/reload", headers=bearer(state)).status_code == 403
    assert client.post("/v1/models/reload", headers=bearer(state, "scientist")).status_code == 200


def test_openapi_documents_every_route_with_a_working_example(client):
    spec = client.get("/openapi.json").json()

    paths = set(spec["paths"])
    assert {
        "/v1/score",
        "/v1/decisions/{decision_id}",
        "/v1/models/champion",
        "/v1/models/reload",
        "/healthz",
        "/readyz",
        "/metrics",
    } <= paths
    assert spec["components"]["schemas"]["ScoreRequest"]["examples"][0]["farmer_id"] == "F0000"


def test_snapshot_shortcut_gives_the_same_features_as_building_them(source, served):
    from features.assembly import build_features
    from features.registry import ROW_COLUMNS
    from scoring.decide.engine import Application, InputLine, feature_rows

    bodies = applications(source, served.world, 30)
    apps = [
        Application(
            f"a{i}",
            b["farmer_id"],
            b["contract_id"],
            700_000 + i,
            (InputLine("S002", "seed", 700_000 + i),),
        )
        for i, b in enumerate(bodies)
    ]
    as_of = source.data_as_of
    assert source.snapshot is not None and source.snapshot.as_of == as_of

    fast = feature_rows(apps, source, as_of)
    frame = pd.DataFrame(
        {
            "application_id": [a.application_id for a in apps],
            "farmer_id": [a.farmer_id for a in apps],
            "as_of": pd.array([as_of] * len(apps), dtype="datetime64[ns, UTC]"),
            "contract_id": [a.contract_id for a in apps],
            "requested_minor": [float(a.requested_minor) for a in apps],
        }
    )
    built = build_features(
        source.for_farmers([a.farmer_id for a in apps]), frame, reference=source.reference
    )

    columns = list(ROW_COLUMNS)
    pd.testing.assert_frame_equal(fast.frame(), built[columns].reset_index(drop=True))


def _decided(answer: dict) -> dict:
    """A decision without what differs between two decisions on one application."""
    return {k: v for k, v in answer.items() if k != "decision_id"}


def test_the_fast_path_and_the_route_answer_alike(state, source, served):

    from scoring.api.app import create_app

    route_only = state.settings.model_copy(update={"score_fast_path": False})
    bodies = [
        b | {"application_id": f"APP-{i}"} for i, b in enumerate(applications(source, served.world))
    ]
    headers = bearer(state)
    with (
        ValidatingClient(create_app(state.settings, state=state)) as fast,
        ValidatingClient(create_app(route_only, state=state)) as route,
    ):
        answers = [
            (
                fast.post("/v1/score", json=b, headers=headers | {"Idempotency-Key": f"f{i}"}),
                route.post("/v1/score", json=b, headers=headers | {"Idempotency-Key": f"r{i}"}),
            )
            for i, b in enumerate(bodies)
        ]
        # the fast path's answer to a retry is the route's answer to it
        retry = route.post("/v1/score", json=bodies[0], headers=headers | {"Idempotency-Key": "f0"})

    for by_fast, by_route in answers:
        assert by_fast.status_code == by_route.status_code == 200
        assert by_fast.headers["content-type"] == by_route.headers["content-type"]
        assert len(by_fast.headers["x-request-id"]) == len(by_route.headers["x-request-id"]) == 32
        assert _decided(by_fast.json()) == _decided(by_route.json())
    assert {a.json()["decision"] for a, _ in answers} >= {"approve", "decline"}
    assert retry.json() == answers[0][0].json()
    assert state.metrics.fast_path._value.get() == len(bodies)
    assert state.ledger.count() == 2 * len(bodies)
    # both paths count their requests under the route's label, in one registry here
    counted = state.metrics.requests.labels("/v1/score", "POST", "200")._value.get()
    assert counted == 2 * len(bodies) + 1
    assert state.metrics.latency.labels("/v1/score", "POST")._sum.get() > 0


def test_the_fast_path_answers_an_unexpected_failure_as_the_route_would(
    client, state, body, monkeypatch
):
    async def broken(*_args, **_kwargs):
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(client.app.state.decisions, "decide", broken)
    response = client.post(
        "/v1/score", json=body, headers=bearer(state) | {"x-request-id": "req-fast-1"}
    )

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "req-fast-1"
    problem = response.json()
    assert problem["code"] == "internal_error" and problem["request_id"] == "req-fast-1"
    assert "disk" not in response.text  # no detail of the failure leaks out
    assert state.metrics.requests.labels("/v1/score", "POST", "500")._value.get() == 1
    assert state.ledger.count() == 0


def test_a_body_over_the_limit_is_refused_whether_or_not_it_says_its_length(client, state, body):
    padded = body | {"application_id": "A" * (state.settings.max_body_bytes + 1)}
    raw = json.dumps(padded).encode()
    headers = bearer(state) | {"content-type": "application/json"}

    declared = client.post("/v1/score", content=raw, headers=headers)
    chunked = client.post("/v1/score", content=iter([raw[:1000], raw[1000:]]), headers=headers)

    assert declared.status_code == chunked.status_code == 413, chunked.text
    for refused in (declared, chunked):
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "body_too_large"
        assert refused.json()["request_id"] == refused.headers["x-request-id"]
    assert state.metrics.fast_path._value.get() == 0
    assert state.ledger.count() == 0


@pytest.mark.parametrize(
    ("send", "status"),
    [
        (lambda body, key: {"json": body}, 401),
        (lambda body, key: {"json": body, "headers": key | {"Authorization": "Bearer nope"}}, 401),
        (lambda body, key: {"json": body | {"farmer_id": "F-NOBODY"}, "headers": key}, 404),
        (lambda body, key: {"json": body | {"requested_minor": 0}, "headers": key}, 422),
        (lambda body, key: {"content": b"[1, 2", "headers": key}, 422),
        (
            lambda body, key: {
                "content": json.dumps(body).encode(),
                "headers": key | {"content-type": "text/plain"},
            },
            422,
        ),
        (lambda body, key: {"json": body, "headers": key | {"Idempotency-Key": "k" * 201}}, 422),
    ],
    ids=["no_key", "bad_key", "unknown_farmer", "zero", "broken_json", "not_json", "long_key"],
)
def test_what_the_fast_path_does_not_decide_the_route_answers(client, state, body, send, status):
    response = client.post("/v1/score", **send(body, bearer(state)))

    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["request_id"] == response.headers["x-request-id"]
    assert state.metrics.fast_path._value.get() == 0
    assert state.ledger.count() == 0


def test_applications_decided_together_are_decided_as_if_alone(state, source, served):
    import asyncio

    from scoring.api.schemas import ScoreRequest
    from scoring.decide.batcher import DecisionBatcher

    _, secret = create_key(state.ledger.keys, role="lender", name="batch")
    key = state.ledger.keys.find(secret)
    bodies = [
        ScoreRequest.model_validate(b | {"application_id": f"APP-{i}"})
        for i, b in enumerate(applications(source, served.world, 12))
    ]
    batcher = DecisionBatcher(state)

    async def together() -> list[dict]:
        waiting = (decide_request(batcher, b, key, f"t{i}") for i, b in enumerate(bodies))
        return await asyncio.gather(*waiting)

    async def alone() -> list[dict]:
        return [await decide_request(batcher, b, key, f"a{i}") for i, b in enumerate(bodies)]

    batched = asyncio.run(together())
    single = asyncio.run(alone())

    assert [_decided(a) for a in batched] == [_decided(a) for a in single]
    sizes = state.metrics.batch_size
    assert sizes._sum.get() == 2 * len(bodies)  # one batch of 12, then 12 of one
    assert sum(b.get() for b in sizes._buckets) == 1 + len(bodies)
    assert state.ledger.count() == 2 * len(bodies) and state.ledger.verify().ok


def test_applications_arriving_during_a_commit_wait_for_it_and_go_as_one_batch(
    state, source, served
):
    import asyncio
    import fcntl
    from pathlib import Path

    from scoring.api.schemas import ScoreRequest
    from scoring.decide.batcher import DecisionBatcher

    _, secret = create_key(state.ledger.keys, role="lender", name="batch")
    key = state.ledger.keys.find(secret)
    bodies = [ScoreRequest.model_validate(b) for b in applications(source, served.world, 6)]
    batcher = DecisionBatcher(state)
    sizes = state.metrics.batch_size
    database = Path(state.settings.ledger_url.removeprefix("sqlite:///"))

    async def scenario() -> list[dict]:
        with open(database.with_name(database.name + ".write-lock"), "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another worker's commit holds the ledger
            first = asyncio.ensure_future(decide_request(batcher, bodies[0], key, "first"))
            await asyncio.sleep(0.2)
            rest = [
                asyncio.ensure_future(decide_request(batcher, b, key, f"later-{i}"))
                for i, b in enumerate(bodies[1:])
            ]
            await asyncio.sleep(0.2)
            decided_before_the_commit = sizes._sum.get()
            fcntl.flock(lock, fcntl.LOCK_UN)
            answers = await asyncio.wait_for(asyncio.gather(first, *rest), timeout=30)
        assert decided_before_the_commit == 1  # the later five waited for the first commit
        return answers

    answers = asyncio.run(scenario())

    assert len({a["decision_id"] for a in answers}) == 6
    assert sizes._sum.get() == 6 and sum(b.get() for b in sizes._buckets) == 2  # 1, then 5
    assert state.ledger.count() == 6 and state.ledger.verify().ok


def test_a_request_cancelled_while_it_waits_is_not_decided_and_the_rest_are(state, source, served):
    import asyncio
    import fcntl
    from pathlib import Path

    from scoring.api.schemas import ScoreRequest
    from scoring.decide.batcher import DecisionBatcher

    _, secret = create_key(state.ledger.keys, role="lender", name="batch")
    key = state.ledger.keys.find(secret)
    bodies = [ScoreRequest.model_validate(b) for b in applications(source, served.world, 4)]
    batcher = DecisionBatcher(state)
    database = Path(state.settings.ledger_url.removeprefix("sqlite:///"))

    async def scenario() -> list:
        with open(database.with_name(database.name + ".write-lock"), "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            first = asyncio.ensure_future(decide_request(batcher, bodies[0], key, "first"))
            await asyncio.sleep(0.2)  # decided; its commit waits for the lock
            later = [
                asyncio.ensure_future(decide_request(batcher, b, key, f"later-{i}"))
                for i, b in enumerate(bodies[1:])
            ]
            await asyncio.sleep(0.05)
            later[1].cancel()  # e.g. the server shutting down that request
            fcntl.flock(lock, fcntl.LOCK_UN)
            waited = asyncio.gather(first, *later, return_exceptions=True)
            return await asyncio.wait_for(waited, timeout=30)  # a lost answer fails, not hangs

    outcomes = asyncio.run(scenario())

    assert isinstance(outcomes[2], asyncio.CancelledError)
    assert all(isinstance(o, dict) for i, o in enumerate(outcomes) if i != 2)
    assert state.ledger.count() == 3 and state.ledger.verify().ok


def test_a_batch_answers_its_retries_refuses_reused_keys_and_decides_the_rest(
    state, source, served, monkeypatch
):
    import asyncio

    from scoring.api.schemas import ScoreRequest
    from scoring.decide import batcher as decisions
    from scoring.decide.batcher import DecisionBatcher
    from scoring.errors import IdempotencyConflictError

    _, secret = create_key(state.ledger.keys, role="lender", name="retries")
    key = state.ledger.keys.find(secret)
    first, second, new = (
        ScoreRequest.model_validate(b) for b in applications(source, served.world, 3)
    )
    batcher = DecisionBatcher(state)  # one batcher serves one event loop
    decided = []
    evaluate = decisions.evaluate_at_their_rows

    def counting(apps, **kwargs):
        decided.extend(a.farmer_id for a in apps)
        return evaluate(apps, **kwargs)

    async def scenario() -> tuple[list, list]:
        recorded = [
            await decide_request(batcher, first, key, "a"),
            await decide_request(batcher, second, key, "b"),
        ]
        decided.clear()
        together = [
            decide_request(batcher, first, key, "a"),  # a retry
            decide_request(batcher, first, key, "b"),  # key "b" again, with another body
            decide_request(batcher, new, key, "c"),
        ]
        return recorded, await asyncio.wait_for(
            asyncio.gather(*together, return_exceptions=True), timeout=30
        )

    monkeypatch.setattr(decisions, "evaluate_at_their_rows", counting)
    recorded, (retry, reused, fresh) = asyncio.run(scenario())

    assert retry == recorded[0]
    assert isinstance(reused, IdempotencyConflictError)
    assert fresh["decision_id"] not in {r["decision_id"] for r in recorded}
    assert decided == [new.farmer_id]  # neither the retry nor the reused key was decided
    assert state.ledger.count() == 3 and state.ledger.verify().ok


def test_a_retry_is_answered_as_first_decided_after_its_application_stopped_checking_out(
    client, state, body, source, monkeypatch
):
    headers = bearer(state) | {"Idempotency-Key": "order-45"}
    first = client.post("/v1/score", json=body, headers=headers).json()
    supplier = body["inputs"][0]["supplier_id"]
    monkeypatch.setitem(source.approved_suppliers, supplier, False)  # no longer approved

    again = client.post("/v1/score", json=body, headers=headers)
    other = client.post("/v1/score", json=body, headers=bearer(state) | {"Idempotency-Key": "x"})

    assert again.status_code == 200 and again.json() == first
    assert other.status_code == 422 and other.json()["field"] == "inputs[0].supplier_id"
    assert state.ledger.count() == 1


def test_the_event_loop_never_waits_on_the_database(client, state, source, served, monkeypatch):
    import threading

    calls: list[tuple[str, int]] = []
    loop_threads: set[int] = set()

    def watched(owner, name, into):
        method = getattr(owner, name)

        def call(*args, **kwargs):
            into.append((name, threading.get_ident()))
            return method(*args, **kwargs)

        monkeypatch.setattr(owner, name, call)

    for name in ("replay_many", "replay", "get", "get_many", "count"):
        watched(state.ledger, name, calls)
    watched(state.ledger.keys, "find", calls)
    watched(client.app.state.runner.store, "create", calls)
    observed: list[tuple[str, int]] = []
    watched(state.metrics, "observe_request", observed)  # called on the event loop
    lender = bearer(state)
    body = applications(source, served.world, 1)[0]
    retry = lender | {"Idempotency-Key": "once"}
    first = client.post("/v1/score", json=body, headers=retry)
    again = client.post("/v1/score", json=body, headers=retry)  # answered from the ledger
    gone = client.post("/v1/score", json=body | {"requested_minor": 10**13}, headers=retry)
    coop_id, contract_id = coop_contracts(source)[0]
    client.post(
        f"/v1/coops/{coop_id}/preapprovals",
        json={"contract_id": contract_id},
        headers=bearer(state, "coop", coop_id),
    )
    loop_threads = {ident for _, ident in observed}

    assert again.json() == first.json() and gone.status_code == 422
    assert {"replay_many", "get", "find", "create"} <= {name for name, _ in calls}
    assert len(loop_threads) == 1
    assert [name for name, ident in calls if ident in loop_threads] == []


def test_a_decision_of_every_kind_is_readable_and_a_refusal_has_a_notice(client, state, source,
                                                                         served):  # fmt: skip
    headers = bearer(state)
    decided = [client.post("/v1/score", json=b, headers=headers).json()
               for b in applications(source, served.world, 40)]  # fmt: skip
    refused = next(d for d in decided if d["decision"] != "approve")
    approved = next(d for d in decided if d["decision"] == "approve")
    coop_id, contract_id = coop_contracts(source)[0]
    job = client.post(f"/v1/coops/{coop_id}/preapprovals", json={"contract_id": contract_id},
                      headers=headers | {"Idempotency-Key": "coop-notice"}).json()  # fmt: skip
    done = client.get(f"/v1/preapprovals/{job['job_id']}", headers=headers).json()
    assert done["status"] == "done"
    member = next(m for m in done["members"] if m["status"] == "evaluated")

    as_member = client.get(f"/v1/decisions/{member['decision_id']}", headers=headers)
    batch = client.get(f"/v1/decisions/{batch_decision_id(job['job_id'])}", headers=headers)
    notice = client.get(f"/v1/decisions/{refused['decision_id']}/notice", headers=headers)

    shown = {k: v for k, v in as_member.json()["member"].items() if v is not None}
    assert as_member.status_code == 200 and shown == {
        k: v for k, v in member.items() if v is not None
    }
    assert as_member.json()["kind"] == "preapproval"
    assert batch.status_code == 200 and batch.json()["summary"] == done["summary"]
    body = notice.json()
    assert notice.status_code == 200 and body["decision"] == refused["decision"]
    assert body["principal_reasons"] == [r["text"] for r in refused["reasons"]]
    assert body["counteroffer"] == refused["counteroffer"]
    assert refused["counteroffer"]["detail"] in body["text"]
    assert all(text in body["text"] for text in body["principal_reasons"] + body["data_used"])
    member_notice = client.get(f"/v1/decisions/{member['decision_id']}/notice", headers=headers)
    assert member_notice.status_code == (200 if member["decision"] != "approve" else 409)
    for no_notice in (approved["decision_id"], batch_decision_id(job["job_id"])):
        answer = client.get(f"/v1/decisions/{no_notice}/notice", headers=headers)
        assert answer.status_code == 409 and answer.json()["code"] == "no_adverse_action"
    other = bearer(state)
    assert client.get(f"/v1/decisions/{member['decision_id']}", headers=other).status_code == 404


def test_reloading_an_alias_moved_to_an_ungated_version_is_refused_and_keeps_serving(
    client, state, served, tmp_path
):
    import mlflow

    from training.registry import BUNDLE_PATH, CHAMPION, MODEL_NAME, get_client, register_version

    scientist = bearer(state, "scientist")
    before = client.get("/v1/models/champion", headers=scientist).json()
    sha = write_stub_bundle(tmp_path / "ungated", pd_few=0.01, pd_many=0.01)
    mlflow_client = get_client(served.training)
    with mlflow.start_run(run_name="ungated") as run:
        mlflow.log_artifacts(str(tmp_path / "ungated"), artifact_path=BUNDLE_PATH)
    ungated = register_version(mlflow_client, run.info.run_id, sha)
    mlflow_client.set_registered_model_alias(MODEL_NAME, CHAMPION, ungated)  # by hand
    try:
        answer = client.post("/v1/models/reload", headers=scientist)
    finally:
        mlflow_client.set_registered_model_alias(MODEL_NAME, CHAMPION, before["version"])

    assert answer.status_code == 409 and answer.json()["code"] == "model_refused"
    assert "no gate record" in answer.json()["detail"]
    assert f"still serving {MODEL_NAME} version {before['version']}" in answer.json()["detail"]
    assert client.get("/v1/models/champion", headers=scientist).json() == before


def test_a_changed_feature_snapshot_is_refused_at_start_naming_the_file(served, tmp_path):
    from features.feature_store import FeatureStoreIntegrityError
    from scoring.decide.data import FeatureSource

    world = copy_world(served.world, tmp_path / "world")
    snapshot = world / "features" / "snapshot.parquet"
    frame = pd.read_parquet(snapshot)
    frame.loc[0, "orders_count_365d"] = 500.0  # one farmer made to look busier
    snapshot.unlink()  # a hard link to the shared world's file: write a new one
    frame.to_parquet(snapshot, index=False)

    with pytest.raises(FeatureStoreIntegrityError, match=r"snapshot\.parquet has changed"):
        FeatureSource.load(world)


@pytest.mark.parametrize("sent", [None, "", "   "])
def test_a_missing_or_empty_idempotency_key_is_a_400_problem_and_writes_nothing(
    client, state, body, source, sent
):
    client.fills_idempotency_keys = False
    headers = bearer(state) | ({} if sent is None else {"Idempotency-Key": sent})
    coop_id, contract_id = coop_contracts(source)[0]

    scored = client.post("/v1/score", json=body, headers=headers)
    coop = client.post(f"/v1/coops/{coop_id}/preapprovals", json={"contract_id": contract_id},
                       headers=headers)  # fmt: skip

    for answer in (scored, coop):
        assert answer.status_code == 400, answer.text
        assert answer.json()["code"] == "idempotency_key_invalid"
        assert answer.json()["field"] == "Idempotency-Key"
    assert state.ledger.count() == 0


def test_a_preapproval_retried_later_on_the_wall_clock_is_the_same_request(state, source):
    from scoring.api.app import create_app

    state.settings = state.settings.model_copy(update={"clock": "now"})
    headers = bearer(state) | {"Idempotency-Key": "coop-now"}
    coop_id, contract_id = coop_contracts(source)[0]
    with ValidatingClient(create_app(state.settings, state=state)) as client:
        first = client.post(f"/v1/coops/{coop_id}/preapprovals",
                            json={"contract_id": contract_id}, headers=headers)  # fmt: skip
        again = client.post(f"/v1/coops/{coop_id}/preapprovals",
                            json={"contract_id": contract_id}, headers=headers)  # fmt: skip

    assert first.status_code == again.status_code == 200, again.text
    assert again.json()["job_id"] == first.json()["job_id"]


def test_data_older_than_the_allowed_age_make_the_worker_not_ready_and_say_so(state):
    from scoring.api.app import create_app

    age = (pd.Timestamp.now(tz="UTC") - state.source.data_as_of).total_seconds()
    answers = {}
    for limit in (age + 3600, age - 3600):
        state.settings = state.settings.model_copy(update={"max_data_age_seconds": limit})
        with ValidatingClient(create_app(state.settings, state=state)) as checked:
            answers[limit] = checked.get("/readyz")

    fresh, stale = answers[age + 3600], answers[age - 3600]
    assert fresh.status_code == 200 and fresh.json()["data_fresh"] is True
    assert stale.status_code == 503 and stale.json()["data_fresh"] is False
    assert "older than max_data_age_seconds" in stale.json()["detail"]


def test_when_the_ledger_cannot_commit_requests_get_503_and_readiness_says_why(client, state,
                                                                              body):  # fmt: skip
    import sqlalchemy as sa

    headers = bearer(state)  # the key is stored before the ledger breaks
    with state.ledger.engine.begin() as conn:  # the table the commit needs is gone
        conn.execute(sa.text("ALTER TABLE decisions RENAME TO decisions_away"))
    try:
        refused = client.post("/v1/score", json=body, headers=headers | {"Idempotency-Key": "a"})
        ready = client.get("/readyz")
    finally:
        with state.ledger.engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE decisions_away RENAME TO decisions"))

    assert refused.status_code == 503 and refused.json()["code"] == "ledger_unavailable"
    assert ready.status_code == 503 and not ready.json()["ledger_writable"]
    assert "decisions" in ready.json()["detail"]
    assert client.get("/readyz").status_code == 200  # a probe commit succeeds again
    again = client.post("/v1/score", json=body, headers=headers | {"Idempotency-Key": "a"})
    assert again.status_code == 200 and state.ledger.count() == 1


def test_openapi_describes_every_field_with_units_and_every_error_as_a_problem(client):
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]

    undescribed = [
        f"{name}.{field}"
        for name, schema in schemas.items()
        for field, declared in schema.get("properties", {}).items()
        if not declared.get("description")
    ]
    assert undescribed == []
    money = [
        (f"{name}.{field}", declared["description"])
        for name, schema in schemas.items()
        for field, declared in schema.get("properties", {}).items()
        if field.endswith("_minor")
    ]
    assert money and all("minor" in text for _, text in money), money
    assert "HTTPValidationError" not in schemas  # a 422 is a problem document too
    for template, operations in spec["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert {"408", "500"} <= set(responses), (method, template)
            for status, response in responses.items():
                if int(status) >= 400 and template != "/readyz":
                    assert list(response["content"]) == ["application/problem+json"], (
                        method,
                        template,
                        status,
                    )
    for template in ("/v1/score", "/v1/coops/{coop_id}/preapprovals"):
        header = next(
            p
            for p in spec["paths"][template]["post"]["parameters"]
            if p["name"] == "idempotency-key"
        )
        assert header["in"] == "header" and header["required"] is True
        assert "503" in spec["paths"][template]["post"]["responses"]


def test_docs_work_offline_and_openapi_declares_the_bearer_scheme(client):
    page = client.get("/docs")
    spec = client.get("/openapi.json").json()

    assert page.status_code == 200
    scripts = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert scripts and all(s.startswith("/docs/assets/") for s in scripts), scripts
    for asset in scripts:  # every script, style and icon the page loads is served here
        assert client.get(asset).status_code == 200, asset
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert {"HTTPBearer": []} in spec["paths"]["/v1/score"]["post"]["security"]
    score = spec["paths"]["/v1/score"]["post"]["responses"]
    assert {"400", "401", "403", "404", "413", "422"} <= set(score)
