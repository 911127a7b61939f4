"""A real uvicorn server on loopback: decisions over HTTP, a race on one Idempotency-Key,
a model reload under load, and the ledger verified afterwards."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from scoring.decide.data import FeatureSource
from scoring.ledger.repo import Ledger
from tests.factories import (
    api_client,
    applications,
    coop_contracts,
    fresh_postgres_url,
    running_server,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request, served, tmp_path):
    ledger_url = (
        f"sqlite:///{tmp_path / 'ledger.db'}" if request.param == "sqlite" else fresh_postgres_url()
    )
    with running_server(served.world, served.training, ledger_url, tmp_path) as running:
        yield running


def test_a_hundred_concurrent_duplicates_make_exactly_one_ledger_row(server, source, served):
    base, keys, ledger_url, _ = server
    body = applications(source, served.world, 1)[0]
    headers = {"Authorization": f"Bearer {keys['lender']}", "Idempotency-Key": "race-1"}

    with api_client(base, timeout=60) as client, ThreadPoolExecutor(16) as pool:
        responses = list(
            pool.map(lambda _: client.post("/v1/score", json=body, headers=headers), range(100))
        )
    ids = {r.json()["decision_id"] for r in responses}

    assert all(r.status_code == 200 for r in responses)
    assert len(ids) == 1
    book = Ledger(ledger_url)
    assert book.count() == 1 and book.verify().ok
    book.close()


@pytest.fixture
def two_workers(served, tmp_path):
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with running_server(served.world, served.training, ledger_url, tmp_path, workers=2) as running:
        yield running


def _workers_of(base: str, connections: int) -> list[int]:
    """The worker behind each of `connections` keep-alive connections opened together."""
    clients = [api_client(base, timeout=30) for _ in range(connections)]
    try:
        return [client.get("/healthz").json()["worker"] for client in clients]
    finally:
        for client in clients:
            client.close()


def test_two_workers_share_the_port_and_one_ledger(two_workers, source, served):
    base, keys, ledger_url, _ = two_workers
    auth = {"Authorization": f"Bearer {keys['lender']}"}
    # dealt in turn from the first connection on (none is taken before both workers are
    # ready): eight keep-alive connections are four per worker, every time
    for _ in range(3):
        pids = _workers_of(base, 8)
        assert len(set(pids)) == 2 and sorted(pids.count(p) for p in set(pids)) == [4, 4]
    bodies = applications(source, served.world, 40)

    def post(i: int) -> httpx.Response:
        # fresh connections, so both workers decide: the same key races across processes
        with api_client(base, timeout=60) as client:
            key = "shared" if i % 2 else f"own-{i}"
            body = bodies[0] if i % 2 else bodies[i // 2]
            return client.post("/v1/score", json=body, headers=auth | {"Idempotency-Key": key})

    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(post, range(80)))

    assert all(r.status_code == 200 for r in responses), [r.text for r in responses][:3]
    shared = {r.json()["decision_id"] for i, r in enumerate(responses) if i % 2}
    assert len(shared) == 1
    book = Ledger(ledger_url)
    assert book.count() == 40 + 1 and book.verify().ok
    book.close()
    # with a CPU for each, each worker keeps to its own, its ledger writer thread included
    if len(os.sched_getaffinity(0)) >= 2:
        cpus = [_cpus_of(pid) for pid in set(pids)]
        assert all(len(c) == 1 for c in cpus) and cpus[0] != cpus[1], cpus
    # whichever worker answers /metrics reports both workers' requests and decisions
    clients = [api_client(base, timeout=30) for _ in range(2)]
    try:
        scrapes = {c.get("/healthz").json()["worker"]: _samples(c.get("/metrics").text)
                   for c in clients}  # fmt: skip
    finally:
        for client in clients:
            client.close()
    assert len(scrapes) == 2
    for samples in scrapes.values():
        assert samples[("agricredit_requests_total", "/v1/score", "200")] == 80
        assert samples[("agricredit_decisions_total", None, None)] == 40 + 1
        assert samples[("agricredit_model_version", "pids", None)] == set(scrapes)


def _cpus_of(pid: int) -> set[int]:
    """The CPUs any thread of the process may run on."""
    return set().union(*(os.sched_getaffinity(int(t)) for t in os.listdir(f"/proc/{pid}/task")))


def _samples(text: str) -> dict:
    """The figures the test reads from a Prometheus text page."""
    out: dict = {("agricredit_decisions_total", None, None): 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "agricredit_requests_total":
                out[(sample.name, labels["route"], labels["status"])] = sample.value
            elif sample.name == "agricredit_decisions_total":
                out[(sample.name, None, None)] += sample.value
            elif sample.name == "agricredit_model_version" and sample.value == 1:
                out.setdefault((sample.name, "pids", None), set()).add(int(labels["pid"]))
    return out


def test_a_worker_that_dies_is_replaced_and_new_connections_are_answered(two_workers):
    base = two_workers[0]
    killed = _workers_of(base, 2)[0]
    os.kill(killed, signal.SIGKILL)
    # kill() returns before the kernel has torn the process down: a connection handed to it
    # in that instant is lost with it, as with any server whose process dies under it
    _wait_exited(killed)
    deadline = time.monotonic() + 90
    while True:  # every connection is answered meanwhile, by the survivor or the new one
        pids = _workers_of(base, 4)
        assert killed not in pids
        if len(set(pids)) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(set(pids)) == 2, "no worker replaced the one that died"


def _wait_exited(pid: int, timeout_s: float = 30.0) -> None:
    """Until the process has exited: gone, or a zombie its parent has not reaped yet (its
    sockets closed either way)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] in {"Z", "X"}:
                    return
        except FileNotFoundError:
            return
        time.sleep(0.01)
    raise AssertionError(f"worker {pid} had not exited {timeout_s} s after SIGKILL")


def test_server_approves_and_declines_with_reasons_over_http(server, source, served):
    base, keys, _, _ = server
    lender = {"Authorization": f"Bearer {keys['lender']}"}
    with api_client(base, timeout=30) as client:
        decisions = [
            client.post("/v1/score", json=b, headers=lender).json()
            for b in applications(source, served.world, 40)
        ]

    assert {"approve", "decline"} <= {d["decision"] for d in decisions}
    assert all(d["reasons"] for d in decisions if d["decision"] != "approve")
    codes = {r["code"] for d in decisions for r in d["reasons"]}
    assert codes & {"FIELD_NOT_CULTIVATED", "BUYER_SUSPENDED", "LOAN_IN_ARREARS", "IMAGERY_MISSING"}


def test_reload_under_load_answers_every_request_with_one_version(server, source, served):
    base, keys, _, _ = server
    bodies = applications(source, served.world, 10)
    lender = {"Authorization": f"Bearer {keys['lender']}"}

    with api_client(base, timeout=30) as client, ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(client.post, "/v1/score", json=b, headers=lender) for b in bodies]
        reload = client.post(
            "/v1/models/reload", headers={"Authorization": f"Bearer {keys['scientist']}"}
        )
        responses = [f.result() for f in futures]

    assert reload.status_code == 200
    assert all(r.status_code == 200 for r in responses)
    assert {r.json()["model"]["version"] for r in responses} == {reload.json()["version"]}


def test_ledger_verify_command_checks_what_the_server_wrote(server, source, served, monkeypatch):
    base, keys, ledger_url, _ = server
    with api_client(base, timeout=30) as client:
        for body in applications(source, served.world, 3):
            client.post(
                "/v1/score", json=body, headers={"Authorization": f"Bearer {keys['lender']}"}
            )
    from scoring.cli import main
    from scoring.config import get_settings
    from training.config import get_training_settings

    monkeypatch.setenv("AGRICREDIT_DATABASE_URL", ledger_url)
    monkeypatch.setenv("AGRICREDIT_SIGNING_KEY_FILE", str(served.training.signing_key_path))
    get_settings.cache_clear()
    get_training_settings.cache_clear()
    result = CliRunner().invoke(main, ["ledger", "verify"])
    get_settings.cache_clear()
    get_training_settings.cache_clear()

    assert result.exit_code == 0 and "ledger intact: 3 rows" in result.output


def test_a_job_interrupted_by_a_killed_server_resumes_after_restart(served, source, tmp_path):

    coop_id, contract_id = coop_contracts(source)[0]
    members = source.coop_members[coop_id]
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    slow_jobs = {  # every request a job, one member a chunk, a stopped worker's lease short
        "AGRICREDIT_PREAPPROVAL_SYNC_MEMBERS": "0",
        "AGRICREDIT_PREAPPROVAL_CHUNK_MEMBERS": "1",
        "AGRICREDIT_PREAPPROVAL_LEASE_SECONDS": "1",
    }
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    run = (served.world, served.training, ledger_url)
    with running_server(*run, tmp_path / "first", extra_env=slow_jobs) as (base, keys, _, _):
        auth = {"Authorization": f"Bearer {keys['lender']}"}
        with api_client(base, timeout=30) as client:
            url = f"/v1/coops/{coop_id}/preapprovals"
            job_id = client.post(url, json={"contract_id": contract_id}, headers=auth).json()[
                "job_id"
            ]
            worker = client.get("/healthz").json()["worker"]
            deadline = time.monotonic() + 60
            while (
                client.get(f"/v1/preapprovals/{job_id}", headers=auth).json()["progress"]["done"]
                < 2
            ):
                assert time.monotonic() < deadline
            os.kill(worker, signal.SIGKILL)  # no shutdown: the job is left half done
    book = Ledger(ledger_url)
    at_kill = book.count()
    with running_server(*run, tmp_path / "second", extra_env=slow_jobs) as (base, _, _, _):
        with api_client(base, timeout=30) as client:
            deadline = time.monotonic() + 60
            while (job := client.get(f"/v1/preapprovals/{job_id}", headers=auth).json())[
                "status"
            ] != "done":
                assert time.monotonic() < deadline, job
                time.sleep(0.05)

    assert 2 <= at_kill < len(members)  # killed mid-way, before the batch row
    assert [m["farmer_id"] for m in job["members"]] == members
    assert book.count() == len(members) + 1 and book.verify().ok
    book.close()


def test_workers_listening_on_the_port_themselves_serve_one_ledger(served, source, tmp_path):
    # the plain SO_REUSEPORT alternative the benchmark measures the supervisor against
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with running_server(
        served.world, served.training, url, tmp_path, workers=2, serve_args=("--reuse-port",)
    ) as (base, keys, ledger_url, _):
        auth = {"Authorization": f"Bearer {keys['lender']}"}
        bodies = applications(source, served.world, 10)

        def post(i: int) -> httpx.Response:
            with api_client(base, timeout=60) as client:
                return client.post("/v1/score", json=bodies[i], headers=auth)

        with ThreadPoolExecutor(5) as pool:
            responses = list(pool.map(post, range(10)))
        workers = set(_workers_of(base, 16))

    assert all(r.status_code == 200 for r in responses), [r.text for r in responses][:3]
    assert len(workers) == 2  # 16 connections hashed by the kernel reach both
    book = Ledger(ledger_url)
    assert book.count() == 10 and book.verify().ok
    book.close()


def test_a_trained_champion_decides_over_http(trained_served, tmp_path):
    # the smoke test of the whole path with a model training produced (the other API and
    # end-to-end tests serve a stub champion whose PD is written down)
    source = FeatureSource.load(trained_served.world)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with running_server(trained_served.world, trained_served.training, url, tmp_path) as (
        base,
        keys,
        ledger_url,
        _,
    ):
        lender = {"Authorization": f"Bearer {keys['lender']}"}
        with api_client(base, timeout=30) as client:
            decisions = [
                client.post("/v1/score", json=b, headers=lender).json()
                for b in applications(source, trained_served.world, 40)
            ]
            champion = client.get("/v1/models/champion", headers=lender).json()

    assert {"approve", "decline"} <= {d["decision"] for d in decisions}
    assert all(d["reasons"] for d in decisions if d["decision"] != "approve")
    assert {d["model"]["version"] for d in decisions} == {champion["version"]}
    assert len({round(d["probability_of_default"], 6) for d in decisions}) > 2
    book = Ledger(ledger_url)
    assert book.count() == 40 and book.verify().ok
    book.close()


def test_serve_with_one_worker_serves_the_data_directory_it_is_given(served, source, tmp_path):
    # the environment names another folder: --data must win, and nothing be made there
    elsewhere = tmp_path / "elsewhere"
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with running_server(
        served.world, served.training, url, tmp_path, workers=1,
        extra_env={"AGRICREDIT_DATA_DIR": str(elsewhere)}, serve_args=("--data", str(served.world)),
    ) as (base, _, _, _):  # fmt: skip
        ready = httpx.get(f"{base}/readyz", timeout=10).json()

    assert ready["data_as_of"] == source.data_as_of.isoformat()
    assert not elsewhere.exists()
