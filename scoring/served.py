"""The app as `serve` runs it, in every serving process."""

from __future__ import annotations

from fastapi import FastAPI

from scoring.api.app import create_app
from scoring.runtime import settle_after_loading


def served_app() -> FastAPI:
    """The service, its interpreter settled once the lifespan has loaded data and model."""
    return create_app(after_start=settle_after_loading)
