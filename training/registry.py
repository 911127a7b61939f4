"""The MLflow model registry: register a bundle, load a version back safely, aliases.

A version's source is the run's `model/` directory of plain files (artifact.py) and its
`sha256` tag the bundle's digest over every file, checked before any file is parsed.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from training.artifact import ModelBundle, read_bundle
from training.config import TrainingSettings, get_training_settings

MODEL_NAME = "agricredit-pd"
CHAMPION = "champion"
BUNDLE_PATH = "model"


def get_client(settings: TrainingSettings | None = None) -> MlflowClient:
    """A client of the configured tracking and registry store."""
    settings = settings or get_training_settings()
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def store_exists(settings: TrainingSettings | None = None) -> bool:
    """Whether the tracking store is there (a SQLite file that exists, or any server URL):
    reading from a folder without one must not create an empty store."""
    settings = settings or get_training_settings()
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).exists()
    return True


def register_version(
    client: MlflowClient, run_id: str, sha256: str, *, name: str = MODEL_NAME
) -> str:
    """Register the run's bundle as a new version of `name`; returns the version number."""
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description="Probability of default of input loans")
    source = f"{client.get_run(run_id).info.artifact_uri}/{BUNDLE_PATH}"
    version = client.create_model_version(name, source, run_id=run_id, tags={"sha256": sha256})
    return str(version.version)


@dataclass
class LoadedVersion:
    """A model version read back from the registry."""

    bundle: ModelBundle
    version: ModelVersion


def get_version(client: MlflowClient, ref: str, *, name: str = MODEL_NAME) -> ModelVersion:
    """A version by number, alias or "latest" (e.g. "3", "champion", "latest").

    Raises:
        LookupError: naming what was not found.
    """
    try:
        if ref == "latest":
            versions = client.search_model_versions(f"name='{name}'")
            if not versions:
                raise LookupError(f"model {name} has no versions; run `agricredit train` first")
            ref = str(max(int(v.version) for v in versions))
        if ref.isdigit():
            return client.get_model_version(name, ref)
        return client.get_model_version_by_alias(name, ref)
    except MlflowException as exc:
        raise LookupError(f"model {name} has no version or alias {ref!r}") from exc


def load_version(client: MlflowClient, ref: str, *, name: str = MODEL_NAME) -> LoadedVersion:
    """Download a version's files and read them, checking the registered SHA-256 first."""
    version = get_version(client, ref, name=name)
    # the bundle is read whole into memory, so its download leaves nothing behind
    with tempfile.TemporaryDirectory(prefix=f"agricredit-model-{version.version}-") as target:
        local = mlflow.artifacts.download_artifacts(artifact_uri=version.source, dst_path=target)
        bundle = read_bundle(Path(local), expected_sha256=version.tags.get("sha256"))
    return LoadedVersion(bundle=bundle, version=version)


def set_champion(client: MlflowClient, version: str, *, name: str = MODEL_NAME) -> None:
    """Point the `champion` alias at `version`."""
    client.set_registered_model_alias(name, CHAMPION, version)


def list_versions(client: MlflowClient, *, name: str = MODEL_NAME) -> list[dict[str, Any]]:
    """Every version, newest first, with its aliases and key test metrics."""
    try:
        versions = client.search_model_versions(f"name='{name}'")
    except MlflowException:
        return []
    aliases: dict[str, list[str]] = {}
    for alias, version in client.get_registered_model(name).aliases.items():
        aliases.setdefault(str(version), []).append(alias)
    rows = []
    for v in sorted(versions, key=lambda v: int(v.version), reverse=True):
        metrics = client.get_run(v.run_id).data.metrics if v.run_id else {}
        rows.append(
            {
                "version": v.version,
                "aliases": aliases.get(str(v.version), []),
                "run_id": v.run_id,
                "created": v.creation_timestamp,
                **metrics,
            }
        )
    return rows
