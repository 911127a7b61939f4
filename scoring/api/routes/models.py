"""GET /v1/models/champion and POST /v1/models/reload."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from scoring.api.contract import problems
from scoring.api.deps import ReaderDep, ScientistDep, StateDep
from scoring.api.schemas import ChampionPublic
from scoring.decide.model_store import ServedModel
from scoring.errors import ModelRefusedError
from training.artifact import ModelIntegrityError
from training.promotion import UngatedModelError
from training.signing import SigningKeyError

router = APIRouter(prefix="/v1/models", tags=["models"])


def _public(served: ServedModel) -> dict[str, Any]:
    return {
        "name": served.name,
        "version": served.version,
        "run_id": served.run_id,
        "sha256": served.bundle.sha256,
        "features": served.bundle.feature_names,
    }


@router.get("/champion", response_model=ChampionPublic, responses=problems(401, 403))
def read_champion(state: StateDep, _key: ReaderDep) -> dict[str, Any]:
    """The model version being served."""
    return _public(state.models.current)


@router.post("/reload", response_model=ChampionPublic, responses=problems(401, 403, 409))
def reload_champion(state: StateDep, _key: ScientistDep) -> dict[str, Any]:
    """Load the version the champion alias points at now, if it is gated (a passing gate
    record signed for its exact files); requests in flight finish on the version they
    started with. A refused version is a 409 and the current one keeps serving."""
    try:
        served = state.models.load()
    except (LookupError, ModelIntegrityError, UngatedModelError, SigningKeyError) as exc:
        current = state.models.current
        raise ModelRefusedError(
            f"{exc}; still serving {current.name} version {current.version}", field="champion"
        ) from exc
    state.metrics.serve_model(served.name, served.version)
    return _public(served)
