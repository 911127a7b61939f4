"""Every served answer has the shape its route declares: the served dicts (the fast path's
and the routes') and the pydantic response models are written apart, so this holds them
together. The API tests' client checks every answer it gets (tests/factories.py); here
every route is called at least once, and the check itself is shown to fail."""

from __future__ import annotations

import pytest

from scoring.api.app import create_app
from scoring.api.schemas import ScoreResponse
from tests.factories import (
    ValidatingClient,
    applications,
    bearer,
    coop_contracts,
    unexpected_keys,
)


def test_an_undeclared_key_anywhere_in_an_answer_is_found():
    reason = {"code": "c", "text": "t", "contribution": None}
    answer = {"decision_id": "d", "reasons": [reason, reason | {"weight": 1}], "shadow": 2}

    assert unexpected_keys(ScoreResponse, answer) == ["shadow", "reasons.1.weight"]
    assert unexpected_keys(ScoreResponse, {"decision_id": "d", "reasons": [reason]}) == []


def test_a_served_answer_that_drifts_from_its_model_fails_the_client(
    client, state, source, served, monkeypatch
):
    from scoring.decide import batcher

    written = batcher.score_response
    monkeypatch.setattr(batcher, "score_response", lambda *a, **k: written(*a, **k) | {"pd": 1})
    body = applications(source, served.world, 1)[0]
    # the fast path and the route both send the served dict as it is (no response model)
    for fast_path in (True, False):
        state.settings = state.settings.model_copy(update={"score_fast_path": fast_path})
        with (
            ValidatingClient(create_app(state.settings, state=state)) as checked,
            pytest.raises(AssertionError, match=r"\['pd'\] are not in ScoreResponse"),
        ):
            checked.post("/v1/score", json=body, headers=bearer(state))


def test_every_route_answers_in_its_declared_shape(client, state, source, served):
    lender, scientist = bearer(state), bearer(state, "scientist")
    bodies = applications(source, served.world, 20)
    decided = [client.post("/v1/score", json=b, headers=lender).json() for b in bodies]
    client.get(f"/v1/decisions/{decided[0]['decision_id']}", headers=lender)
    refused = next(d for d in decided if d["decision"] != "approve")
    client.get(f"/v1/decisions/{refused['decision_id']}/notice", headers=lender)
    client.get("/v1/decisions/unknown", headers=lender)  # a problem answer
    client.post("/v1/score", json=bodies[0] | {"requested_minor": -1}, headers=lender)
    client.post("/v1/score", json=bodies[0])  # no key
    client.get("/v1/models/champion", headers=lender)
    client.post("/v1/models/reload", headers=scientist)
    # a files world, not a store: 409 (tests/scoring/test_data_api.py commits batches)
    client.post(
        "/v1/data/orders", json={"batch_id": "b", "rows": [{}]}, headers=bearer(state, "data")
    )
    client.put("/v1/data/files/a.tif", content=b"II*", headers=bearer(state, "data"))
    client.get("/healthz")
    client.get("/readyz")
    client.get("/metrics")
    coop_id, contract_id = coop_contracts(source)[0]
    coop_key = bearer(state, "coop", coop_id)
    job = client.post(
        f"/v1/coops/{coop_id}/preapprovals", json={"contract_id": contract_id}, headers=coop_key
    ).json()
    client.get(f"/v1/preapprovals/{job['job_id']}", headers=coop_key)

    assert {d["decision"] for d in decided} >= {"approve", "decline"}
    routes = {
        (method.upper(), template)
        for template, operations in client.app.openapi()["paths"].items()
        for method in operations
    }
    assert routes - client.answered == set()
