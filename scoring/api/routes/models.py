"""GET /v1/models/champion and POST /v1/models/reload."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from scoring.api.deps import ReaderDep, ScientistDep, StateDep
from scoring.api.schemas import ChampionPublic
from scoring.decide.model_store import ServedModel

router = APIRouter(prefix="/v1/models", tags=["models"])


def _public(served: ServedModel) -> dict[str, Any]:
    return {
        "name": served.name,
        "version": served.version,
        "run_id": served.run_id,
        "sha256": served.bundle.sha256,
        "features": served.bundle.feature_names,
    }


@router.get("/champion", response_model=ChampionPublic)
def read_champion(state: StateDep, _key: ReaderDep) -> dict[str, Any]:
    """The model version being served."""
    return _public(state.models.current)


@router.post("/reload", response_model=ChampionPublic)
def reload_champion(state: StateDep, _key: ScientistDep) -> dict[str, Any]:
    """Load the version the champion alias points at now; requests in flight finish on the
    version they started with."""
    served = state.models.load()
    state.metrics.serve_model(served.name, served.version)
    return _public(served)
