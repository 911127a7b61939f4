"""Promotion and rollback of the champion, each leaving a signed gate record in MLflow.

Moving the `champion` alias is not what makes a version servable: a version is served only
with a gate record, on the version itself, that passed, names the exact digest of its
bundle, and carries a signature by the signing key (training/signing.py), which is not
kept in MLflow. Moving the alias by hand (MlflowClient, the UI's pencil) to a refused
version leaves it without such a record, and the service refuses it. Every promotion and
rollback is also kept as a JSON artifact of the version's run and in the registered
model's champion history.
"""

from __future__ import annotations

import getpass
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from training.artifact import ModelBundle
from training.config import TrainingSettings, get_training_settings
from training.dataset import LABEL
from training.gate import (
    ChampionComparison,
    GateBounds,
    GateCheck,
    GateReport,
    evaluate_gate,
)
from training.metrics import auc
from training.registry import (
    CHAMPION,
    MODEL_NAME,
    get_client,
    get_version,
    load_version,
    set_champion,
)
from training.signing import SigningKey

GATE_TAG = "agricredit.gate"
HISTORY_TAG = "agricredit.champions"
TEST_MATRIX = "test_matrix.parquet"  # the run's test season: features and outcome
HISTORY_KEPT = 20  # entries in the registered model's tag; the run artifacts keep them all


class UngatedModelError(RuntimeError):
    """A version without a valid, passing gate record for its exact bundle."""


@dataclass(frozen=True)
class Promotion:
    """What `promote` or `rollback` did: the report, and whether the alias moved."""

    report: GateReport
    promoted: bool
    previous: str | None


def _actor() -> str:
    return os.environ.get("AGRICREDIT_ACTOR") or getpass.getuser()


def _record(
    report: GateReport, sha256: str, *, action: str, previous: str | None
) -> dict[str, Any]:
    return {
        "model": MODEL_NAME,
        "version": str(report.version),
        "sha256": sha256,
        "passed": report.ok,
        "action": action,
        "by": _actor(),
        "at": pd.Timestamp.now(tz="UTC").isoformat(),
        "previous_champion": previous,
        "checks": [asdict(c) for c in report.checks],
    }


def write_gate_record(
    client: MlflowClient,
    version: ModelVersion,
    report: GateReport,
    *,
    key: SigningKey,
    action: str,
    previous: str | None = None,
) -> dict[str, Any]:
    """Sign and store the gate record of `version` (tag, run artifact, and, when it passed,
    the champion history); returns it."""
    record = _record(report, str(version.tags.get("sha256", "")), action=action,
                     previous=previous)  # fmt: skip
    record["signature"] = key.sign(record)
    text = json.dumps(record, indent=2)
    if version.run_id:
        stamp = record["at"].replace(":", "").replace("+", "Z")[:17]
        client.log_text(version.run_id, text, f"gate/{stamp}-{action}.json")
    if report.ok:
        client.set_model_version_tag(MODEL_NAME, version.version, GATE_TAG, text)
        history = champion_history(client)[-(HISTORY_KEPT - 1) :]
        history.append({k: record[k] for k in ("version", "sha256", "action", "by", "at")})
        client.set_registered_model_tag(MODEL_NAME, HISTORY_TAG, json.dumps(history))
    return record


def champion_history(client: MlflowClient) -> list[dict[str, Any]]:
    """The last promotions and rollbacks, oldest first."""
    tags = client.get_registered_model(MODEL_NAME).tags
    history: list[dict[str, Any]] = json.loads(tags.get(HISTORY_TAG, "[]"))
    return history


def verify_gate(version: ModelVersion, sha256: str, key: SigningKey) -> dict[str, Any]:
    """The version's gate record, if it is signed by `key`, passed, and names `sha256`.

    Raises:
        UngatedModelError: naming what is missing or wrong.
    """
    where = f"{MODEL_NAME} version {version.version}"
    text = version.tags.get(GATE_TAG)
    if not text:
        raise UngatedModelError(
            f"{where} has no gate record: it was never promoted through the gate "
            "(`agricredit promote VERSION`); the alias alone does not make it servable"
        )
    try:
        record: dict[str, Any] = json.loads(text)
        signature = record.pop("signature")
    except (ValueError, KeyError) as exc:
        raise UngatedModelError(f"{where}: its gate record is not readable") from exc
    if not key.verify(record, signature):
        raise UngatedModelError(
            f"{where}: its gate record is not signed by the signing key at {key.path} "
            "(forged, or promoted with another key)"
        )
    if record.get("version") != str(version.version) or record.get("sha256") != sha256:
        raise UngatedModelError(
            f"{where}: its gate record is for version {record.get('version')} with digest "
            f"{record.get('sha256')}, not this bundle ({sha256})"
        )
    if not record.get("passed"):
        raise UngatedModelError(f"{where} failed its gate")
    return record


def evaluation_matrix(version: ModelVersion) -> pd.DataFrame | None:
    """The version's test season as its run logged it (None if it logged none)."""
    if not version.run_id:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(
                run_id=version.run_id, artifact_path=TEST_MATRIX, dst_path=tmp
            )
        except Exception:  # a run logged without it (an older or hand-made version)
            return None
        return pd.read_parquet(path)


def _compare(
    candidate: ModelVersion, bundle: ModelBundle, client: MlflowClient, champion: ModelVersion
) -> ChampionComparison:
    """Both models' AUC on the candidate's logged test season."""
    against = str(champion.version)
    rows = evaluation_matrix(candidate)
    if rows is None:
        why = f"version {candidate.version} logged no {TEST_MATRIX}"
        return ChampionComparison(against, None, None, 0, why)
    y = rows[LABEL].to_numpy(dtype=float)
    scores = []
    for label, model in (("candidate", bundle), ("champion", load_version(client, against).bundle)):
        missing = [n for n in model.feature_names if n not in rows]
        if missing:
            why = f"the {label} reads {missing}, not in the test data"
            return ChampionComparison(against, None, None, len(rows), why)
        scores.append(auc(y, model.predict_pd(rows)))
    return ChampionComparison(against, scores[0], scores[1], len(rows))


def promote(
    version: str, settings: TrainingSettings | None = None, bounds: GateBounds | None = None
) -> Promotion:
    """Gate VERSION against the current champion, both scored on the candidate's test
    data; record the signed report either way; move the alias if it passed."""
    settings = settings or get_training_settings()
    client = get_client(settings)
    key = SigningKey.read(settings.signing_key_path, create=True)
    candidate = get_version(client, version)
    bundle = load_version(client, str(candidate.version)).bundle  # every file checked first
    metrics = client.get_run(candidate.run_id).data.metrics if candidate.run_id else {}
    try:
        champion: ModelVersion | None = get_version(client, CHAMPION)
    except LookupError:
        champion = None
    if champion is not None and champion.version == candidate.version:
        champion = None
    comparison = _compare(candidate, bundle, client, champion) if champion else None
    report = evaluate_gate(candidate.version, metrics, comparison, bounds)
    previous = str(champion.version) if champion is not None else None
    write_gate_record(client, candidate, report, key=key, action="promote", previous=previous)
    if report.ok:
        set_champion(client, candidate.version)
    return Promotion(report, report.ok, previous)


def rollback(settings: TrainingSettings | None = None) -> Promotion:
    """Make the champion before the current one the champion again: its bundle is checked
    file by file and its own gate record must still verify; the rollback is recorded.

    Raises:
        LookupError: there is no earlier champion to return to.
        UngatedModelError: the earlier champion's record does not verify.
    """
    settings = settings or get_training_settings()
    client = get_client(settings)
    key = SigningKey.read(settings.signing_key_path)
    current = get_version(client, CHAMPION)
    earlier = [h for h in champion_history(client) if h["version"] != str(current.version)]
    if not earlier:
        raise LookupError(
            f"no earlier champion of {MODEL_NAME} to roll back to (version {current.version} "
            "is the only one promoted)"
        )
    target = get_version(client, earlier[-1]["version"])
    loaded = load_version(client, str(target.version))  # every file against its digest
    gate = verify_gate(target, loaded.bundle.sha256, key)
    checks = [GateCheck(c["name"], c["passed"], c["detail"]) for c in gate["checks"]]
    checks.append(GateCheck("rollback", True, f"from version {current.version}, by {_actor()}"))
    report = GateReport(str(target.version), checks)
    write_gate_record(client, target, report, key=key, action="rollback",
                      previous=str(current.version))  # fmt: skip
    set_champion(client, target.version)
    return Promotion(report, True, str(current.version))


def record_review(client: MlflowClient, version: str, settings: TrainingSettings,
                       *, why: str) -> None:  # fmt: skip
    """Record a passing gate for a version made by hand (a bundle brought from elsewhere after
    its own review, the stub champions of the tests): the record names `why` as its one check."""
    key = SigningKey.read(settings.signing_key_path, create=True)
    record = get_version(client, version)
    report = GateReport(str(record.version), [GateCheck("reviewed outside the gate", True, why)])
    write_gate_record(client, record, report, key=key, action="promote")
    set_champion(client, record.version)


def evaluation_rows(test: pd.DataFrame, feature_names: list[str]) -> pd.DataFrame:
    """The columns of a test split to log with a run (ids, outcome, every feature)."""
    keep = ["application_id", "farmer_id", LABEL, *[n for n in feature_names if n in test]]
    return test[keep].reset_index(drop=True)
