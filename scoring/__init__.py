"""The scoring service, decision policy and ledger; home of the `agricredit` command.

Rooms, arrows one way (docs/architecture.md): `api` -> `preapproval` -> `decide` ->
`ledger`, on the shared `config`, `errors`, `ids`, `metrics` and `runtime`. Members load on
first use: a serving worker pins itself to its CPU before it imports NumPy or LightGBM.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "create_app": "scoring.api.app",
    "Settings": "scoring.config",
    "ServiceState": "scoring.decide.state",
    "Ledger": "scoring.ledger.repo",
    "main": "scoring.cli",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'scoring' has no attribute {name!r}")
