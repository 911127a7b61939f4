"""Tampering the record shows: with the signing key every row carries a MAC and the ledger's
end is checkpointed outside the database, so a lost tail, a forged append and an edit with
the whole chain re-hashed all fail `verify`, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from scoring.ledger.chain import GENESIS, link_hash
from scoring.ledger.repo import Ledger
from scoring.ledger.tables import decisions
from tests.factories import fresh_postgres_url
from training.signing import SigningKey


@pytest.fixture(params=["sqlite", "postgresql"])
def keyed(request: pytest.FixtureRequest, tmp_path):
    """A migrated, keyed ledger with a checkpoint file, holding 40 rows, checkpointed."""
    url = f"sqlite:///{tmp_path / 'l.db'}" if request.param == "sqlite" else fresh_postgres_url()
    key = SigningKey.read(tmp_path / "signing.key", create=True)
    book = Ledger(url, key=key, checkpoint_path=tmp_path / "ledger.checkpoint")
    book.migrate()
    for i in range(40):
        book.record(key_id="k", org_id="k", idempotency_key=f"i{i}", request={"n": i},
                    bodies=[(f"d{i:02}", "score", {"pd": i / 100})])  # fmt: skip
    assert book.checkpoint() is not None
    yield book
    book.close()


def _rows(book: Ledger) -> list[dict]:
    with book.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(decisions).order_by("seq"))]


def test_an_untouched_keyed_ledger_verifies(keyed):
    report = keyed.verify()

    assert report.ok and report.keyed and report.rows == 40


@pytest.mark.parametrize("lost", [1, 25, 40])
def test_rows_deleted_from_the_end_are_seen(keyed, lost):
    with keyed.engine.begin() as conn:
        last = conn.execute(sa.select(sa.func.max(decisions.c.seq))).scalar_one()
        conn.execute(decisions.delete().where(decisions.c.seq > last - lost))

    report = keyed.verify()

    assert not report.ok
    assert any("rows were deleted from its end" in p for p in report.problems), report.problems


def test_a_forged_row_appended_with_a_correct_hash_is_seen(keyed):
    head = _rows(keyed)[-1]
    created = head["created_at"]
    body = '{"pd":0.001}'
    forged = link_hash(head["row_hash"], "forged", "k", "score", created, body)
    with keyed.engine.begin() as conn:
        conn.execute(decisions.insert().values(decision_id="forged", key_id="k", kind="score",
                                               created_at=created, body=body,
                                               prev_hash=head["row_hash"], row_hash=forged,
                                               row_mac="0" * 64))  # fmt: skip

    report = keyed.verify()

    assert [p for p in report.problems if "forged" in p and "MAC does not verify" in p]


def test_an_edit_with_the_whole_chain_re_hashed_is_seen(keyed):
    rows = _rows(keyed)
    rows[3]["body"] = '{"pd":0.9}'  # the edit
    prev = GENESIS
    with keyed.engine.begin() as conn:
        for row in rows:  # every link re-computed: the plain hash chain holds again
            row_hash = link_hash(prev, row["decision_id"], row["key_id"], row["kind"],
                                 row["created_at"], row["body"])  # fmt: skip
            conn.execute(decisions.update().where(decisions.c.seq == row["seq"])
                         .values(body=row["body"], prev_hash=prev, row_hash=row_hash))  # fmt: skip
            prev = row_hash

    report = keyed.verify()

    assert not report.ok
    assert any("d03" in p and "MAC does not verify" in p for p in report.problems)
    assert any("rewritten up to there" in p for p in report.problems)


def test_a_checkpoint_changed_by_hand_is_seen(keyed):
    path = keyed.checkpoints.path
    path.write_text(path.read_text().replace('"seq": 40', '"seq": 10'))

    assert any("signature does not verify" in p for p in keyed.verify().problems)


def test_the_checkpoint_never_moves_backwards(keyed):
    first = keyed.checkpoints.read()
    with keyed.engine.begin() as conn:
        conn.execute(decisions.delete().where(decisions.c.seq > 30))

    keyed.checkpoint()  # after the deletion: must not hide it

    assert keyed.checkpoints.read() == first
    assert not keyed.verify().ok


def test_ledger_verify_names_an_empty_ledger_and_a_broken_one(tmp_path, monkeypatch):
    from scoring.cli import main
    from scoring.config import get_settings
    from training.config import get_training_settings

    monkeypatch.setenv("AGRICREDIT_DATABASE_URL", f"sqlite:///{tmp_path / 'l.db'}")
    monkeypatch.setenv("AGRICREDIT_SIGNING_KEY_FILE", str(tmp_path / "signing.key"))
    get_settings.cache_clear()
    get_training_settings.cache_clear()
    SigningKey.read(tmp_path / "signing.key", create=True)  # as the first promotion makes it
    try:
        empty = CliRunner().invoke(main, ["ledger", "verify"])
        book = Ledger.open(get_settings())
        book.migrate()
        for i in range(3):
            book.record(key_id="k", org_id="k", idempotency_key=f"i{i}", request={"n": i},
                        bodies=[(f"d{i}", "score", {"pd": i / 10})])  # fmt: skip
        book.close()  # checkpoints on close
        ok = CliRunner().invoke(main, ["ledger", "verify"])
        with book.engine.begin() as conn:
            conn.execute(decisions.delete().where(decisions.c.decision_id == "d2"))
        broken = CliRunner().invoke(main, ["ledger", "verify"])
    finally:
        get_settings.cache_clear()
        get_training_settings.cache_clear()

    assert empty.exit_code == 0 and "is empty: no decision has been recorded yet" in empty.output
    assert ok.exit_code == 0 and "ledger intact: 3 rows" in ok.output
    assert broken.exit_code == 1 and "rows were deleted from its end" in broken.output


def test_ledger_verify_without_the_signing_key_says_so_and_makes_none(tmp_path, monkeypatch):
    from scoring.cli import main
    from scoring.config import get_settings
    from training.config import get_training_settings

    monkeypatch.setenv("AGRICREDIT_DATABASE_URL", f"sqlite:///{tmp_path / 'l.db'}")
    monkeypatch.setenv("AGRICREDIT_SIGNING_KEY_FILE", str(tmp_path / "absent.key"))
    get_settings.cache_clear()
    get_training_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["ledger", "verify"])
    finally:
        get_settings.cache_clear()
        get_training_settings.cache_clear()

    assert result.exit_code == 1 and "no signing key at" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "absent.key").exists()
