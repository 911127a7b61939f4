"""Batch scoring on a Dask cluster: the same member decisions as in process."""

from __future__ import annotations

from scoring.ledger.jobs import JobStore
from scoring.preapproval.runner import run_job
from tests.factories import coop_contracts, every_member_job


def test_batch_scores_on_the_cluster_equal_in_process_scores(state, source, dask_runner):
    coop_id, contract_id = coop_contracts(source)[0]
    members = source.coop_members[coop_id]
    store = JobStore(state.ledger)

    def new_job():
        return every_member_job(store, source, (coop_id, contract_id), key_id="k")

    here = run_job(new_job(), state, store, chunk=7)
    there = run_job(new_job(), state, store, chunk=7, runner=dask_runner)

    def without_ids(rows):
        return [{k: v for k, v in r.items() if k != "decision_id"} for r in rows]

    assert len(there) == len(members) and {r["status"] for r in there} == {"evaluated"}
    assert without_ids(there) == without_ids(here)
    assert state.ledger.count() == 2 * (len(members) + 1) and state.ledger.verify().ok


def test_preapprove_command_on_a_scheduler_writes_the_in_process_result(
    served, source, dask_runner, tmp_path, monkeypatch
):
    import csv
    import io

    from click.testing import CliRunner

    from scoring.cli import main

    coop_id, contract_id = coop_contracts(source)[0]
    monkeypatch.setenv("AGRICREDIT_DATABASE_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    monkeypatch.setenv("AGRICREDIT_TRACKING_URI", served.training.tracking_uri)
    monkeypatch.setenv("AGRICREDIT_ARTIFACT_ROOT", str(served.training.artifact_root))
    args = ["preapprove", "--coop", coop_id, "--contract", contract_id,
            "--data", str(served.world)]  # fmt: skip

    here = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "here.csv")])
    there = CliRunner().invoke(
        main,
        [
            *args,
            "--out",
            str(tmp_path / "there.csv"),
            "--scheduler",
            dask_runner.client.scheduler.address,
        ],
    )

    assert here.exit_code == 0 and there.exit_code == 0, there.output

    def rows(name: str) -> list[dict]:
        table = csv.DictReader(io.StringIO((tmp_path / name).read_text()))
        return [{k: v for k, v in r.items() if k != "decision_id"} for r in table]

    assert rows("there.csv") == rows("here.csv")
    assert len(rows("here.csv")) == len(source.coop_members[coop_id])
