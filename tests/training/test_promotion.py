"""The gate nobody walks around: promotion records a signed report in MLflow, only a version
with a passing record for its exact files is servable, rollback returns to the previous
champion, and the gate scores challenger and champion on the same test data."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from scoring.cli import main
from scoring.decide.model_store import ModelStore
from training.artifact import ModelIntegrityError
from training.config import get_training_settings
from training.gate import GateBounds
from training.metrics import auc
from training.pipeline import train_model
from training.promotion import (
    GATE_TAG,
    TEST_MATRIX,
    UngatedModelError,
    champion_history,
    promote,
    record_review,
    rollback,
    verify_gate,
)
from training.registry import CHAMPION, MODEL_NAME, get_client, get_version, load_version
from training.signing import SigningKey
from training.tracking import log_trained_model, use_experiment

# the tiny world's few hundred test loans calibrate more loosely than the default world's,
# and split by gender, their approval rates and AUCs are each known to about +-0.05, so
# the gaps to about +-0.07: these tests are of the gate's records, not of the model
TINY = GateBounds(max_ece=0.10, max_gender_approval_gap=0.15, max_gender_auc_gap=0.15)


@pytest.fixture
def versions(tiny_features, tiny_matrix, mlflow_store):
    """Three registered versions: two trained on every source, one on satellite data only."""
    use_experiment("gate-tests")
    audit = pd.read_parquet(tiny_features / "farmers.parquet")[["farmer_id", "county", "gender"]]
    full = train_model(tiny_matrix, groups=audit)
    weak = train_model(tiny_matrix, sources=("satellite",), groups=audit)
    return [log_trained_model(m, run_name=n).version
            for n, m in (("one", full), ("two", full), ("weak", weak))]  # fmt: skip


def test_promotion_records_its_signed_report_on_the_version(versions, monkeypatch):
    client = get_client()
    monkeypatch.setenv("AGRICREDIT_ACTOR", "ana")

    assert promote(versions[0], bounds=TINY).promoted

    record = json.loads(get_version(client, versions[0]).tags[GATE_TAG])
    loaded = load_version(client, versions[0])
    assert record["by"] == "ana" and record["sha256"] == loaded.bundle.sha256
    assert record["passed"] and record["action"] == "promote"
    assert {c["name"] for c in record["checks"]} >= {"test AUC vs champion",
                                                     "expected calibration error"}  # fmt: skip
    key = SigningKey.read(get_training_settings().signing_key_path)
    assert verify_gate(get_version(client, versions[0]), loaded.bundle.sha256, key)["by"] == "ana"
    run = get_version(client, versions[0]).run_id
    assert any(a.path.startswith("gate/") for a in client.list_artifacts(run, "gate"))
    assert champion_history(client)[-1]["version"] == versions[0]


def test_the_gate_scores_challenger_and_champion_on_the_same_test_rows(versions):
    client = get_client()
    promote(versions[0], bounds=TINY)

    refused = promote(versions[2], bounds=TINY)  # the satellite-only model

    check = next(c for c in refused.report.checks if c.name == "test AUC vs champion")
    assert not check.passed and not refused.promoted
    rows_path = client.download_artifacts(get_version(client, versions[2]).run_id, TEST_MATRIX)
    rows = pd.read_parquet(rows_path)
    y = rows["defaulted"].to_numpy(dtype=float)
    champion = load_version(client, versions[0]).bundle
    challenger = load_version(client, versions[2]).bundle
    assert f"{auc(y, champion.predict_pd(rows)):.4f}" in check.detail
    assert f"{auc(y, challenger.predict_pd(rows)):.4f}" in check.detail
    assert f"same {len(rows)} test loans" in check.detail
    assert str(get_version(client, CHAMPION).version) == versions[0]
    assert GATE_TAG not in get_version(client, versions[2]).tags  # refused: not servable


def test_an_alias_moved_by_hand_to_a_refused_version_is_never_served(versions):
    client = get_client()
    promote(versions[0], bounds=TINY)
    promote(versions[2], bounds=TINY)  # refused
    store = ModelStore("champion", get_training_settings())
    assert store.load().version == versions[0]

    client.set_registered_model_alias(MODEL_NAME, CHAMPION, versions[2])  # the UI's pencil

    with pytest.raises(UngatedModelError, match="no gate record"):
        store.load()
    assert store.current.version == versions[0]  # still serving the gated one


def test_a_forged_or_copied_gate_record_is_refused(versions):
    client = get_client()
    promote(versions[0], bounds=TINY)
    record = json.loads(get_version(client, versions[0]).tags[GATE_TAG])
    store = ModelStore("champion", get_training_settings())

    copied = record | {"version": versions[2]}  # the passing record put on another version
    client.set_model_version_tag(MODEL_NAME, versions[2], GATE_TAG, json.dumps(copied))
    client.set_registered_model_alias(MODEL_NAME, CHAMPION, versions[2])
    with pytest.raises(UngatedModelError, match="not signed by the signing key"):
        store.load()
    other_key = SigningKey(b"k" * 32, get_training_settings().signing_key_path)
    forged = {k: v for k, v in copied.items() if k != "signature"}
    forged["sha256"] = load_version(client, versions[2]).bundle.sha256
    forged["signature"] = other_key.sign(forged)
    client.set_model_version_tag(MODEL_NAME, versions[2], GATE_TAG, json.dumps(forged))
    with pytest.raises(UngatedModelError, match="not signed by the signing key"):
        store.load()


def test_rollback_returns_to_the_previous_champion_and_is_recorded(versions):
    client = get_client()
    assert promote(versions[0], bounds=TINY).promoted
    assert promote(versions[1], bounds=TINY).promoted

    result = CliRunner().invoke(main, ["promote", "--rollback"])

    assert result.exit_code == 0, result.output
    assert f"rolled back to version {versions[0]}" in result.output
    assert str(get_version(client, CHAMPION).version) == versions[0]
    record = json.loads(get_version(client, versions[0]).tags[GATE_TAG])
    assert record["action"] == "rollback" and record["previous_champion"] == versions[1]
    assert ModelStore("champion", get_training_settings()).load().version == versions[0]
    assert [h["action"] for h in champion_history(client)] == ["promote", "promote", "rollback"]


def test_rollback_with_no_earlier_champion_says_so_without_a_traceback(versions):
    promote(versions[0], bounds=TINY)

    result = CliRunner().invoke(main, ["promote", "--rollback"])

    assert result.exit_code == 1
    assert "no earlier champion" in result.output and "Traceback" not in result.output
    with pytest.raises(LookupError):
        rollback()


def test_a_changed_calibrator_in_the_store_is_refused_on_reload(versions, mlflow_store):
    client = get_client()
    record_review(client, versions[1], get_training_settings(), why="reviewed by the credit team")
    store = ModelStore("champion", get_training_settings())
    assert store.load().version == versions[1]
    run = get_version(client, versions[1]).run_id
    (path,) = (mlflow_store / "artifacts").glob(f"{run}/artifacts/model/calibrator.json")
    calibrator = json.loads(path.read_text())
    path.write_text(json.dumps(calibrator | {"b": calibrator["b"] + 0.5}))  # more approvals

    with pytest.raises(ModelIntegrityError, match=r"calibrator\.json has SHA-256"):
        store.load()
    assert store.current.version == versions[1]
