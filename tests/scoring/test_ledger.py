"""The ledger on SQLite and PostgreSQL: append-only, hash-chained, idempotent under races."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.errors import IdempotencyConflictError
from scoring.ledger.repo import Ledger
from scoring.ledger.tables import decisions
from tests.factories import fresh_postgres_url


def _fill(ledger, n: int = 5) -> None:
    for i in range(n):
        ledger.record(
            key_id="k",
            org_id="k",
            idempotency_key=f"i{i}",
            request={"n": i},
            bodies=[(f"d{i}", "score", {"pd": i / 10})],
        )


def test_an_untouched_chain_verifies(ledger):
    _fill(ledger)

    report = ledger.verify()

    assert report.ok and report.rows == 5


@pytest.mark.parametrize("tamper", ["edit", "delete", "reorder"])
def test_any_edit_deletion_or_reordering_is_detected(ledger, tamper):
    _fill(ledger)
    with ledger.engine.begin() as conn:
        if tamper == "edit":
            conn.execute(
                decisions.update().where(decisions.c.decision_id == "d2").values(body='{"pd":0.0}')
            )
        elif tamper == "delete":
            conn.execute(decisions.delete().where(decisions.c.decision_id == "d2"))
        else:  # swap the contents of two rows, keeping their sequence numbers
            rows = {r.decision_id: r for r in conn.execute(sa.select(decisions))}
            for a, b in (("d1", "d3"), ("d3", "d1")):
                src = rows[b]
                conn.execute(
                    decisions.update()
                    .where(decisions.c.seq == rows[a].seq)
                    .values(
                        decision_id=f"tmp-{b}",
                        body=src.body,
                        prev_hash=src.prev_hash,
                        row_hash=src.row_hash,
                        created_at=src.created_at,
                    )
                )

    report = ledger.verify()

    assert not report.ok
    assert report.problems


def test_idempotency_key_reused_with_another_request_writes_nothing(ledger):
    ledger.record(
        key_id="k", org_id="k", idempotency_key="x", request={"a": 1}, bodies=[("d1", "score", {})]
    )

    with pytest.raises(IdempotencyConflictError):
        ledger.record(
            key_id="k",
            org_id="k",
            idempotency_key="x",
            request={"a": 2},
            bodies=[("d2", "score", {})],
        )

    assert ledger.count() == 1
    # another key may use the same idempotency key for its own request
    assert ledger.record(
        key_id="k2",
        org_id="k2",
        idempotency_key="x",
        request={"a": 2},
        bodies=[("d3", "score", {})],
    ) == ("d3", True)


def test_concurrent_requests_with_one_key_make_exactly_one_decision(ledger):
    results: list[tuple[str, bool]] = []

    def submit(i: int) -> None:
        results.append(
            ledger.record(
                key_id="k",
                org_id="k",
                idempotency_key="same",
                request={"a": 1},
                bodies=[(f"d{i}", "score", {"i": i})],
            )
        )

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert ledger.count() == 1
    assert len({decision_id for decision_id, _ in results}) == 1
    assert sum(written for _, written in results) == 1
    assert ledger.verify().ok


def test_a_batch_wider_than_one_statement_is_written_whole_and_in_order(ledger):
    ledger.record(
        key_id="k", org_id="k", idempotency_key="old", request={"a": 1}, bodies=[("d0", "s", {})]
    )
    futures = [
        ledger.submit(
            key_id="k",
            org_id="k",
            idempotency_key=f"new-{i}",
            request={"i": i},
            bodies=[(f"n{i}", "s", {"i": i})],
        )
        for i in range(300)
    ]
    wide = ledger.submit(
        key_id="k",
        org_id="k",
        idempotency_key="wide",
        request={"w": 1},
        bodies=[(f"w{i}", "s", {"i": i}) for i in range(600)],
    )
    again, clash = (
        ledger.submit(
            key_id="k", org_id="k", idempotency_key="old", request={"a": a}, bodies=[(d, "s", {})]
        )
        for a, d in ((1, "x"), (2, "y"))
    )

    assert [f.result() for f in futures] == [(f"n{i}", True) for i in range(300)]
    assert wide.result() == ("w0", True)
    assert again.result() == ("d0", False)
    with pytest.raises(IdempotencyConflictError):
        clash.result()
    assert ledger.count() == 1 + 300 + 600
    assert ledger.verify().ok


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["k1", "k2"]),
            st.sampled_from([None, "a", "b", "c"]),
            st.integers(1, 2),
            st.integers(1, 3),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_jobs_handed_over_together_act_as_if_recorded_one_by_one(tmp_path_factory, database, jobs):
    """Whatever mix of new, repeated and conflicting keys is committed together, each job
    gets what recording the jobs one at a time in the same order would give it."""
    url = (
        f"sqlite:///{tmp_path_factory.mktemp('batch') / 'l.db'}"
        if database == "sqlite"
        else fresh_postgres_url()
    )
    ledger = Ledger(url)
    ledger.migrate()
    try:
        futures = [
            ledger.submit(
                key_id=key_id,
                org_id=key_id,
                idempotency_key=ident,
                request={"r": request},
                bodies=[(f"d{n}-{b}", "s", {"n": n}) for b in range(bodies)],
            )
            for n, (key_id, ident, request, bodies) in enumerate(jobs)
        ]
        claimed: dict[tuple[str, str], tuple[int, str]] = {}
        rows = 0
        for n, ((key_id, ident, request, bodies), future) in enumerate(
            zip(jobs, futures, strict=True)
        ):
            first = claimed.get((key_id, ident)) if ident is not None else None
            if first is None:
                assert future.result() == (f"d{n}-0", True)
                rows += bodies
                if ident is not None:
                    claimed[key_id, ident] = (request, f"d{n}-0")
            elif first[0] == request:
                assert future.result() == (first[1], False)
            else:
                with pytest.raises(IdempotencyConflictError):
                    future.result()
        assert ledger.count() == rows
        assert ledger.verify().ok
    finally:
        ledger.close()


def test_a_caller_that_gave_up_writes_nothing_and_the_writer_goes_on(tmp_path):
    import fcntl

    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    ledger.migrate()
    try:
        with open(tmp_path / "l.db.write-lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # the writer waits as for another worker
            kept = ledger.submit(
                key_id="k", org_id="k", idempotency_key="a", request={}, bodies=[("d1", "s", {})]
            )
            gone = ledger.submit(
                key_id="k", org_id="k", idempotency_key="b", request={}, bodies=[("d2", "s", {})]
            )
            assert gone.cancel()  # e.g. the request's task was cancelled while it waited
            fcntl.flock(lock, fcntl.LOCK_UN)
        assert kept.result(timeout=10) == ("d1", True)
        later = ledger.submit(
            key_id="k", org_id="k", idempotency_key="c", request={}, bodies=[("d3", "s", {})]
        )
        assert later.result(timeout=10) == ("d3", True)
        assert ledger.count() == 2 and ledger.verify().ok
    finally:
        ledger.close()


def test_replay_many_answers_each_request_as_replay_would_alone(ledger):
    from scoring.errors import IdempotencyConflictError

    ledger.record(
        key_id="k", org_id="k", idempotency_key="a", request={"x": 1}, bodies=[("d1", "s", {})]
    )
    ledger.record(
        key_id="k", org_id="k", idempotency_key="b", request={"x": 2}, bodies=[("d2", "s", {})]
    )

    found = ledger.replay_many(
        [("k", "a", {"x": 1}), ("k", "b", {"x": 1}), ("k", "c", {"x": 1}), ("other", "a", {"x": 1})]
    )

    assert found[0] == "d1"
    assert isinstance(found[1], IdempotencyConflictError)
    assert found[2] is None and found[3] is None
    assert ledger.replay(org_id="k", idempotency_key="a", request={"x": 1}) == "d1"
    with pytest.raises(IdempotencyConflictError):
        ledger.replay(org_id="k", idempotency_key="b", request={"x": 1})


def test_a_dropped_postgresql_connection_is_replaced_and_no_acknowledged_decision_lost():
    import time
    import uuid

    name = f"ledger-{uuid.uuid4().hex[:8]}"
    url = fresh_postgres_url() + f"&application_name={name}"
    book = Ledger(url)
    book.migrate()
    acknowledged = []
    for i in range(5):
        assert book.replay_many([("k", f"i{i}", {"n": i})]) == [None]
        recorded = book.record(key_id="k", org_id="k", idempotency_key=f"i{i}",
                               request={"n": i}, bodies=[(f"d{i}", "score", {"n": i})])  # fmt: skip
        acknowledged.append(recorded[0])
    admin = sa.create_engine(url.split("?")[0])
    with admin.begin() as conn:  # what an operator's or a failover's kill does
        killed = conn.execute(sa.text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = :name"), {"name": name}).scalar_one()  # fmt: skip
    admin.dispose()
    assert killed >= 2  # the writer's and the look-up's connections at least

    started = time.monotonic()
    assert book.replay_many([("k", "i0", {"n": 0})]) == [acknowledged[0]]
    after = book.record(key_id="k", org_id="k", idempotency_key="i9", request={"n": 9},
                        bodies=[("d9", "score", {"n": 9})])  # fmt: skip
    recovered = time.monotonic() - started

    assert after == ("d9", True) and recovered < 5
    stored = book.get_many([*acknowledged, "d9"])
    assert sorted(stored) == sorted([*acknowledged, "d9"])
    assert book.verify().ok
    book.close()
