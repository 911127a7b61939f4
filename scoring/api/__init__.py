"""The HTTP room: the app factory, middleware, the score fast path, dependencies, routes,
request and response schemas, and problem answers. No decision logic and no SQL here."""

from scoring.api.app import ScoringAPI, create_app
from scoring.api.errors import PROBLEM, problem

__all__ = ["PROBLEM", "ScoringAPI", "create_app", "problem"]
