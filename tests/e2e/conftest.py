"""Fixtures shared with the scoring tests (the tiny world with a champion)."""

from tests.scoring.conftest import served, source  # noqa: F401 - re-exported fixtures
