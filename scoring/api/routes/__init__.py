"""One router per resource: decisions, co-op pre-approvals, models, operations."""

from scoring.api.routes import coops, health, models, score

__all__ = ["coops", "health", "models", "score"]
