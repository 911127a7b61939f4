"""Reasons for a decision from LightGBM's per-feature contributions (SHAP values).

The contributions of one row plus the expected value equal the model's raw log-odds; the
features pushing hardest towards default, mapped through the registry's reason texts, are
what the applicant is told.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.registry import get_feature

MAX_REASONS = 4


@dataclass(frozen=True)
class ModelReason:
    """A feature that raised the risk, its plain text and its contribution (log-odds)."""

    code: str
    text: str
    contribution: float


def top_reasons(
    names: list[str], contributions: np.ndarray, *, limit: int = MAX_REASONS
) -> list[ModelReason]:
    """Up to `limit` features with the largest positive contribution to the risk of default.

    `contributions` is one row of `pred_contrib` output: one value per feature, then the
    expected value (ignored here).
    """
    values = np.asarray(contributions)[: len(names)]
    order = np.argsort(-values, kind="stable")
    return [
        ModelReason(names[i].upper(), get_feature(names[i]).reason, float(values[i]))
        for i in order[:limit]
        if values[i] > 0
    ]
