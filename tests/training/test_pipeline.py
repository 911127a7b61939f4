"""Training: reproducible, leak-checked, out of time, registered and loaded back exactly."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from features.ingest import load_data_dir
from features.store import file_sha256
from scoring.cli import main
from training.artifact import ModelIntegrityError, read_bundle, write_bundle
from training.gate import ChampionComparison, evaluate_gate
from training.pipeline import train_model
from training.registry import get_client, load_version


def test_training_twice_gives_the_same_metrics_and_model_file(tiny_matrix, tmp_path):
    first, second = train_model(tiny_matrix), train_model(tiny_matrix)

    hashes = [
        write_bundle(tmp_path / name, booster=m.booster, calibrator=m.calibrator,
                     scaler=m.scaler, features=m.features,
                 population=m.population)
        for name, m in (("a", first), ("b", second))
    ]  # fmt: skip
    assert first.metrics == second.metrics
    assert hashes[0] == hashes[1]


def test_split_is_out_of_time_with_matured_outcomes(tiny_matrix):
    model = train_model(tiny_matrix)

    s = model.split
    assert s.train["as_of"].max() < s.valid["as_of"].min() < s.test["as_of"].min()
    assert s.train["outcome_at"].max() < s.valid["as_of"].min()
    assert model.checks_passed


def test_a_feature_built_from_the_label_fails_the_checks_and_the_gate(tiny_matrix):
    leaky = tiny_matrix.copy()
    leaky["orders_amount_30d"] = leaky["defaulted"].astype(float).fillna(0) * 1e6

    model = train_model(leaky)

    failed = [c.name for c in model.checks if not c.passed]
    assert failed == ["no feature separates the outcome by itself"]
    report = evaluate_gate("9", model.metrics | {"checks_passed": 0.0}, None)
    assert not report.ok


def test_gate_refuses_a_worse_model_and_names_each_failed_check():
    same_rows = ChampionComparison("1", candidate_auc=0.75, champion_auc=0.80, rows=500)
    worse = {"test_auc": 0.75, "test_ece": 0.05, "score_psi_train_test": 0.1,
             "gender_approval_gap": 0.01, "gender_auc_gap": 0.01, "checks_passed": 1.0}  # fmt: skip

    report = evaluate_gate("2", worse, same_rows)

    assert not report.ok
    assert [c.name for c in report.checks if not c.passed] == [
        "test AUC vs champion",
        "expected calibration error",
    ]
    closer = dataclasses.replace(same_rows, candidate_auc=0.795)
    assert evaluate_gate("3", worse | {"test_ece": 0.01}, closer).ok


def test_registered_version_loads_back_and_reproduces_its_test_predictions(
    tiny_features, tiny_matrix, mlflow_store
):
    result = CliRunner().invoke(main, ["train", "--data", str(tiny_features)])
    assert result.exit_code == 0, result.output
    assert "registered agricredit-pd version 1" in result.output

    loaded = load_version(get_client(), "1")
    model = train_model(tiny_matrix)  # the same data: the same model
    test = model.split.test

    np.testing.assert_array_equal(loaded.bundle.predict_pd(test), model.test_predictions["pd"])
    assert loaded.bundle.sha256 == loaded.version.tags["sha256"]
    contrib = loaded.bundle.contributions(test)
    np.testing.assert_allclose(contrib.sum(axis=1), loaded.bundle.raw(test), atol=1e-9)


def test_a_changed_model_file_is_refused_before_it_is_parsed(tiny_matrix, tmp_path):
    model = train_model(tiny_matrix)
    digest = write_bundle(tmp_path / "m", booster=model.booster, calibrator=model.calibrator,
                          scaler=model.scaler, features=model.features,
                 population=model.population)  # fmt: skip
    path = tmp_path / "m" / "model.txt"
    text = path.read_text()
    tampered = re.sub(r"shrinkage=[0-9.e-]+", "shrinkage=0.5", text, count=1)
    assert tampered != text
    path.write_text(tampered)

    with pytest.raises(ModelIntegrityError, match="changed after registration"):
        read_bundle(tmp_path / "m", expected_sha256=digest)


@pytest.mark.parametrize("name", ["calibrator.json", "scaling.json", "features.json",
                                  "population.json"])  # fmt: skip
def test_a_change_to_any_file_of_the_bundle_is_refused(tiny_matrix, tmp_path, name):
    model = train_model(tiny_matrix)
    digest = write_bundle(tmp_path / "m", booster=model.booster, calibrator=model.calibrator,
                          scaler=model.scaler, features=model.features,
                          population=model.population)  # fmt: skip
    path = tmp_path / "m" / name
    path.write_text(path.read_text().replace("1", "2", 1))  # e.g. the calibrator's intercept

    with pytest.raises(ModelIntegrityError, match=f"{name} has SHA-256"):
        read_bundle(tmp_path / "m", expected_sha256=digest)
    # a manifest re-written to match the change no longer gives the registered digest
    manifest = tmp_path / "m" / "model.json"
    meta = json.loads(manifest.read_text())
    meta["files"][name] = file_sha256(path)
    manifest.write_text(json.dumps(meta))
    with pytest.raises(ModelIntegrityError, match="changed after registration"):
        read_bundle(tmp_path / "m", expected_sha256=digest)


def test_a_file_no_hash_covers_is_refused(tiny_matrix, tmp_path):
    model = train_model(tiny_matrix)
    digest = write_bundle(tmp_path / "m", booster=model.booster, calibrator=model.calibrator,
                          scaler=model.scaler, features=model.features,
                          population=model.population)  # fmt: skip
    (tmp_path / "m" / "override.json").write_text("{}")

    with pytest.raises(ModelIntegrityError, match=r"no hash covers: override\.json"):
        read_bundle(tmp_path / "m", expected_sha256=digest)


@pytest.mark.slow
def test_promote_sets_champion_and_refuses_a_worse_version_listing_failures(
    default_features, mlflow_store
):
    runner = CliRunner()
    assert runner.invoke(main, ["train", "--data", str(default_features)]).exit_code == 0
    promoted = runner.invoke(main, ["promote", "1"])
    assert promoted.exit_code == 0, promoted.output
    weak = runner.invoke(main, ["train", "--data", str(default_features), "--sources", "history"])
    assert weak.exit_code == 0, weak.output

    refused = runner.invoke(main, ["promote", "2"])
    listed = runner.invoke(main, ["models", "list"])

    assert refused.exit_code == 1
    assert "[FAIL] test AUC vs champion" in refused.output
    assert "version 2 not promoted" in refused.output
    lines = {line.split()[0]: line for line in listed.output.splitlines()[1:]}
    assert "champion" in lines["1"] and "champion" not in lines["2"]


def test_unknown_source_is_refused_with_the_choices(tiny_features, mlflow_store):
    result = CliRunner().invoke(main, ["train", "--data", str(tiny_features), "--sources", "sms"])

    assert result.exit_code == 2
    assert "unknown source(s) sms" in result.output and "orders" in result.output


@pytest.mark.slow
def test_default_world_beats_baseline_near_the_oracle_calibrated_and_every_source_counts(
    default_features,
):
    matrix = pd.read_parquet(default_features / "features" / "training.parquet")
    oracle = pd.read_parquet(default_features / "loans.parquet").set_index("loan_id")["true_pd"]

    full = train_model(matrix, oracle_pd=oracle)
    m = full.metrics
    print(f"test AUC {m['test_auc']:.4f}, oracle {m['oracle_auc']:.4f}, "
          f"baseline {m['baseline_auc']:.4f}, ECE {m['test_ece']:.4f}")  # fmt: skip
    assert m["auc_over_oracle"] >= 0.90
    assert m["test_auc"] > m["baseline_auc"]
    assert m["test_ece"] < 0.02
    for left_out in ("orders", "contracts", "satellite", "history"):
        kept = tuple(s for s in ("orders", "contracts", "satellite", "history") if s != left_out)
        assert train_model(matrix, sources=kept).metrics["test_auc"] < m["test_auc"], left_out


def test_a_store_trains_from_its_arrival_log(tiny_world, tmp_path, mlflow_store):
    # a data scientist trains on the store the service follows, not only on a world's files
    store = tmp_path / "store"
    load_data_dir(tiny_world, store)
    result = CliRunner().invoke(main, ["train", "--data", str(store)])
    assert result.exit_code == 0, result.output
    assert "registered agricredit-pd version 1" in result.output
    assert "oracle" in result.output  # the simulated loans' true_pd, read from the log
