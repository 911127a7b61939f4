"""Reasons for a decision from LightGBM's per-feature contributions (SHAP values).

The contributions of one row plus the expected value equal the model's raw log-odds; the
features pushing hardest towards default, mapped through the registry's reason texts, are
what the applicant is told.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

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
) -> list[list[ModelReason]]:
    """For each row of `pred_contrib` output (one value per feature, then the expected
    value, which is ignored), up to `limit` features with the largest positive contribution
    to the risk of default, largest first. Vectorised over rows."""
    values = np.asarray(contributions, dtype=float).reshape(-1, contributions.shape[-1])
    values = values[:, : len(names)]
    k = min(limit, len(names))
    order = np.argsort(-values, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(values, order, axis=1)
    codes, texts = _codes_and_texts(tuple(names))
    return [
        [ModelReason(codes[j], texts[j], v) for j, v in zip(cols, vals, strict=True) if v > 0]
        for cols, vals in zip(order.tolist(), top.tolist(), strict=True)
    ]


@lru_cache(maxsize=16)
def _codes_and_texts(names: tuple[str, ...]) -> tuple[list[str], list[str]]:
    # once per model's columns, not per batch: 41 registry look-ups cost 30 us
    return [n.upper() for n in names], [get_feature(n).reason for n in names]
