"""Batch scoring on a Dask cluster: a pre-approval's chunks become tasks running the same
`decide_chunk`; each worker loads the data directory, the policy and the model version
itself (it must see them: shared or object storage, the same MLflow registry) and keeps
them for the next task. The caller writes each chunk's ledger rows as its result comes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from features.runners import DaskRunner
from scoring.decide.data import FeatureSource
from scoring.decide.model_store import ModelStore, ServedModel
from scoring.decide.policy import load_policy
from scoring.decide.state import ServiceState
from scoring.preapproval.members import ChunkRows, decide_chunk
from scoring.preapproval.plan import MemberRequest, Plan
from training.config import TrainingSettings, get_training_settings

_LOADED: dict[tuple[Any, ...], object] = {}  # per worker process: what earlier tasks loaded


def _cached(key: tuple[Any, ...], load: Callable[[], Any]) -> Any:
    if key not in _LOADED:
        _LOADED[key] = load()
    return _LOADED[key]


def _decide_on_worker(data_dir: str, policy_path: str, version: str,
                      training: TrainingSettings, plan: Plan, part: list[MemberRequest],
                      job_id: str, context: dict[str, Any]) -> ChunkRows:  # fmt: skip
    source = _cached(("data", data_dir), lambda: FeatureSource.load(Path(data_dir)))
    policy = _cached(("policy", policy_path), lambda: load_policy(policy_path))
    model = _cached(("model", version), lambda: ModelStore(version, training).load())
    return decide_chunk(
        plan, part, job_id=job_id, source=source, model=model, policy=policy, context=context
    )


def submit_chunks(
    runner: DaskRunner,
    state: ServiceState,
    model: ServedModel,
    plan: Plan,
    chunks: dict[int, list[MemberRequest]],
    *,
    job_id: str,
    context: dict[str, Any],
) -> dict[int, Any]:  # chunk number -> a distributed.Future of ChunkRows
    """A future per chunk (chunk number -> future of `decide_chunk`'s rows)."""
    client = runner.client
    shared = client.scatter(plan, broadcast=True)
    settings = state.settings
    # the registry the caller loaded its model from, not whatever a worker's env names
    registry = state.models.settings or get_training_settings()
    return {
        n: client.submit(
            _decide_on_worker,
            str(settings.data_dir),
            str(settings.policy_path),
            model.version,
            registry,
            shared,
            part,
            job_id,
            context,
            pure=False,
        )
        for n, part in chunks.items()
    }
