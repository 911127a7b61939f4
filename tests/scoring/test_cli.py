"""The `agricredit` command line: simulate, validate and load, with exit codes."""

from __future__ import annotations

import pandas as pd
from click.testing import CliRunner

from scoring.cli import main
from tests.factories import copy_world


def test_simulate_prints_counts_default_rate_and_oracle_auc(tmp_path):
    out = tmp_path / "world"
    result = CliRunner().invoke(
        main,
        [
            "simulate",
            "--out",
            str(out),
            "--farmers",
            "120",
            "--seasons",
            "3",
            "--counties",
            "1",
            "--imagery-counties",
            "0",
            "--quiet",
        ],
    )

    assert result.exit_code == 0, result.output
    assert "120 farmers" in result.output
    assert "oracle AUC (true_pd vs outcome) 0." in result.output
    assert (out / "loans.parquet").exists()


def test_simulate_refuses_bad_parameters_with_the_value(tmp_path):
    result = CliRunner().invoke(main, ["simulate", "--out", str(tmp_path / "w"), "--farmers", "3"])

    assert result.exit_code != 0
    assert "farmers is out of range; got 3" in result.output
    assert not (tmp_path / "w").exists()


def test_validate_exits_0_on_a_valid_world_and_1_naming_each_problem(tiny_world, tmp_path):
    broken = copy_world(tiny_world, tmp_path / "broken")
    loans = pd.read_parquet(broken / "loans.parquet")
    loans.loc[0, "amount_minor"] = -5
    (broken / "loans.parquet").unlink()
    loans.to_parquet(broken / "loans.parquet")

    good = CliRunner().invoke(main, ["data", "validate", str(tiny_world)])
    bad = CliRunner().invoke(main, ["data", "validate", str(broken), "--no-rasters"])

    assert good.exit_code == 0 and "valid" in good.output
    assert bad.exit_code == 1
    assert "loans.parquet, row 1, column amount_minor: must be >= 0" in bad.output


def test_load_writes_nothing_when_invalid_and_installs_when_valid(tiny_world, tmp_path):
    broken = copy_world(tiny_world, tmp_path / "broken")
    (broken / "farmers.parquet").unlink()
    store = tmp_path / "store"

    refused = CliRunner().invoke(main, ["data", "load", str(broken), "--data", str(store)])
    assert refused.exit_code == 1 and not store.exists()

    loaded = CliRunner().invoke(main, ["data", "load", str(tiny_world), "--data", str(store)])
    assert loaded.exit_code == 0, loaded.output
    assert "valid (11 tables" in loaded.output and "arrival log" in loaded.output
    assert (store / "log" / "loans").is_dir() and (store / "log" / "fields").is_dir()
    validated = CliRunner().invoke(main, ["data", "validate", str(store)])
    assert validated.exit_code == 0 and "valid (11 tables" in validated.output, validated.output


def test_the_command_line_and_the_workers_import_no_data_library_before_they_start():
    # a spawned worker imports these before it pins its CPU: a library that starts threads
    # on import (pyarrow's allocator does) would leave them on every CPU
    import subprocess
    import sys

    code = ("import sys, threading, scoring.cli, scoring.workers, scoring.http_protocol; "
            "print(sorted(m for m in ('pandas', 'pyarrow', 'lightgbm', 'mlflow', 'numpy') "
            "if m in sys.modules), threading.active_count())")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert out.stdout.split() == ["[]", "1"]


def test_user_mistakes_on_the_command_line_get_a_sentence_not_a_traceback(tmp_path, monkeypatch,
                                                                          served):  # fmt: skip
    import socket

    from click.testing import CliRunner

    from scoring.cli import main
    from scoring.config import get_settings
    from training.config import get_training_settings

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # another folder: the default store is not here
    for name in ("AGRICREDIT_TRACKING_URI", "AGRICREDIT_ARTIFACT_ROOT"):
        monkeypatch.delenv(name, raising=False)
    get_training_settings.cache_clear()
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        no_store = runner.invoke(main, ["promote", "3"])
        listed = runner.invoke(main, ["models", "list"])
        serve_no_store = runner.invoke(main, ["serve", "--port", "0"])
        assert not (elsewhere / "mlruns").exists()  # nothing was made silently

        monkeypatch.setenv("AGRICREDIT_TRACKING_URI", served.training.tracking_uri)
        monkeypatch.setenv("AGRICREDIT_ARTIFACT_ROOT", str(served.training.artifact_root))
        get_training_settings.cache_clear()
        unknown = runner.invoke(main, ["promote", "99"])
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            taken = runner.invoke(main, ["serve", "--port", str(port)])
        monkeypatch.setenv("AGRICREDIT_MODEL_REF", "no-such-alias")
        get_settings.cache_clear()
        no_champion = runner.invoke(main, ["serve", "--port", "0"])
    finally:
        get_training_settings.cache_clear()
        get_settings.cache_clear()

    for result, says in ((no_store, "no MLflow store here"), (serve_no_store, "no MLflow store"),
                         (unknown, "no version or alias '99'"), (taken, "cannot listen on"),
                         (no_champion, "cannot serve 'no-such-alias'")):  # fmt: skip
        assert result.exit_code == 1, result.output
        assert says in result.output and "Traceback" not in result.output, result.output
    assert listed.exit_code == 0 and "no MLflow store here" in listed.output


def test_audit_decisions_adds_the_policys_outcomes_by_group_to_the_model_card(
    trained_served, monkeypatch
):
    from pathlib import Path

    import pandas as pd
    from click.testing import CliRunner

    from scoring.cli import main
    from scoring.config import get_settings
    from training.config import get_training_settings
    from training.promotion import evaluation_matrix
    from training.registry import CHAMPION, get_client, get_version

    monkeypatch.setenv("AGRICREDIT_TRACKING_URI", trained_served.training.tracking_uri)
    monkeypatch.setenv("AGRICREDIT_ARTIFACT_ROOT", str(trained_served.training.artifact_root))
    get_training_settings.cache_clear()
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["audit", "decisions", "--data",
                                           str(trained_served.world)])  # fmt: skip
        client = get_client()
        champion = get_version(client, CHAMPION)
        card = Path(client.download_artifacts(champion.run_id, "model_card.md")).read_text()
        rates = pd.read_csv(client.download_artifacts(champion.run_id, "decision_fairness.csv"))
        tested = len(evaluation_matrix(champion))
    finally:
        get_training_settings.cache_clear()
        get_settings.cache_clear()

    assert result.exit_code == 0, result.output
    assert "## Decisions by group" in card and "## Decisions by group" in result.output
    assert set(rates["attribute"]) == {"county", "gender", "age_band"}
    for _, part in rates.groupby("attribute"):
        assert part["applications"].sum() == tested  # every test-season application, once
    shares = rates[["approve", "refer", "decline"]].sum(axis=1)
    assert ((shares - 1).abs() < 1e-9).all()
    assert rates["decline"].max() > 0 and rates["approve"].max() > 0
