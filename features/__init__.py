"""Input tables, the simulated world and the feature pipelines.

Imports nothing from `training` or `scoring`: arrows go features <- training <- scoring.
Heavy members (validation reads vector files through GDAL) load on first use, so light
entry points such as the simulator stay small.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from features.errors import AgricreditError, TableValidationError
from features.problems import Problem
from features.tables import TABLES, ColumnSpec, ForeignKey, TableSpec, get_table

_LAZY = {
    "ValidationReport": "features.validation",
    "validate_dir": "features.validation",
    "load_data_dir": "features.ingest",
    "simulate_world": "features.simulate.world",
    "WorldParams": "features.simulate.params",
}

__all__ = [
    "TABLES",
    "AgricreditError",
    "ColumnSpec",
    "ForeignKey",
    "Problem",
    "TableSpec",
    "TableValidationError",
    "ValidationReport",
    "WorldParams",
    "get_table",
    "load_data_dir",
    "simulate_world",
    "validate_dir",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'features' has no attribute {name!r}")
