"""Every error a real server sends is a problem document, from the HTTP parser's up: the
bad-input corpus over a socket, deadlines for slow senders, and large bodies refused unread
from senders without a key."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from tests.factories import api_client, applications, running_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(served, tmp_path_factory):
    logs = tmp_path_factory.mktemp("bad-input")
    env = {"AGRICREDIT_HEADER_TIMEOUT_SECONDS": "1", "AGRICREDIT_BODY_TIMEOUT_SECONDS": "6"}
    with running_server(served.world, served.training, f"sqlite:///{logs / 'l.db'}", logs,
                        extra_env=env) as running:  # fmt: skip
        yield running


def _raw(base: str, data: bytes, wait: float = 5.0) -> bytes:
    """Send raw bytes; the first answer, as soon as all of it has arrived."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
            head, sep, body = out.partition(b"\r\n\r\n")
            length = [int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
                      if line.startswith(b"content-length:")]  # fmt: skip
            if sep and length and len(body) >= length[0]:
                break
        return out


def _problem(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower(), answer[:300]
    return int(head.split()[1]), json.loads(body)


def test_the_bad_input_corpus_gets_problem_documents(server, source, served):
    base, keys, _, _ = server
    auth = {"Authorization": f"Bearer {keys['lender']}", "content-type": "application/json"}
    body = json.dumps(applications(source, served.world, 1)[0])
    corpus = {
        "invalid UTF-8": b'{"farmer_id": "\xff\xfe"}',
        "5,000-digit integer": body.replace("800000", "9" * 5000, 1).encode(),
        "nested 1,000 deep": b"[" * 1000 + b"]" * 1000,
        "objects 1,000 deep": b'{"a":' * 1000 + b"1" + b"}" * 1000,
        "not JSON": b"farmer_id=F0000",
        "a string amount": body.replace("800000", '"800000"', 1).encode(),
    }
    with api_client(base, timeout=30) as client:
        answers = {name: client.post("/v1/score", content=raw, headers=auth)
                   for name, raw in corpus.items()}  # fmt: skip
        answers["unknown path"] = client.get("/v1/nothing-here")
        answers["wrong method"] = client.delete("/v1/score", headers=auth)
        answers["no key"] = client.post("/v1/score", content=body, headers={
            "content-type": "application/json"})  # fmt: skip
    with httpx.Client(base_url=base, timeout=30) as bare:  # sends no Idempotency-Key
        answers["no Idempotency-Key"] = bare.post("/v1/score", content=body, headers=auth)
        answers["no Idempotency-Key, pre-approval"] = bare.post(
            "/v1/coops/C000/preapprovals", json={"contract_id": "K0000"}, headers=auth
        )

    for name in ("no Idempotency-Key", "no Idempotency-Key, pre-approval"):
        assert answers[name].status_code == 400, answers[name].text
        assert answers[name].json()["code"] == "idempotency_key_invalid"

    for name, answer in answers.items():
        assert 400 <= answer.status_code < 500, (name, answer.status_code, answer.text)
        assert answer.headers["content-type"] == "application/problem+json", name
        problem = answer.json()
        assert problem["status"] == answer.status_code and problem["detail"], name
        assert problem["request_id"] == answer.headers["x-request-id"], name


def test_a_malformed_request_is_a_problem_from_the_parser(server):
    base, _, _, _ = server

    status, problem = _problem(_raw(base, b"POST /v1/score HTTP/1.1\r\nHost: x\r\n"
                                          b"Content-Length: 12abc\r\n\r\n{}"))  # fmt: skip

    assert status == 400 and problem["code"] == "malformed_request"


def test_a_client_that_never_finishes_its_headers_is_cut_off(server):
    base, _, _, _ = server
    started = time.monotonic()

    status, problem = _problem(_raw(base, b"POST /v1/score HTTP/1.1\r\nHost: x\r\n"))

    assert status == 408 and problem["code"] == "request_timeout"
    assert time.monotonic() - started < 4


def test_a_large_body_without_a_key_is_refused_before_it_is_read(server, source):
    base, _, _, _ = server
    head = (b"POST /v1/coops/C000/preapprovals HTTP/1.1\r\nHost: x\r\n"
            b"content-type: application/json\r\ncontent-length: 16000000\r\n\r\n")  # fmt: skip
    started = time.monotonic()

    status, problem = _problem(_raw(base, head))  # not one byte of the 16 MB is sent

    assert status == 401 and problem["code"] == "unauthorized"
    assert time.monotonic() - started < 3  # answered at once, not at the 6 s body deadline
