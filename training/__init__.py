"""Labelled datasets, LightGBM training, evaluation and MLflow tracking (imports features).

Members load on first use: `scoring` reads the model bundle without importing MLflow.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "ModelBundle": "training.artifact",
    "read_bundle": "training.artifact",
    "write_bundle": "training.artifact",
    "TrainedModel": "training.pipeline",
    "train_model": "training.pipeline",
    "run_training": "training.runner",
    "promote": "training.promotion",
    "rollback": "training.promotion",
    "GateReport": "training.gate",
    "TrainingSettings": "training.config",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'training' has no attribute {name!r}")
