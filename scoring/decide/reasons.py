"""Reasons for a decision from LightGBM's per-feature contributions (SHAP values), kept
only where they state a fact that is true of the applicant.

The contributions of one row plus the expected value equal the model's raw log-odds. A
feature pushing towards default is shown, in the registry's words, only when its value is
present and lies on the adverse side of the median of the applicants the model was trained
on (`FeatureSpec.adverse_side`): "your sales over the last year are low" is said of a
farmer who sold less than the median applicant, never of one with no value at all. What
missing data contributes is said as what it is: a data-quality flag's own reason ("No
sales history on the platform yet"), carrying the summed contributions of the features it
left without a measurement. Contributions of missing values no raised flag explains are
not shown at all (docs/scoring.md, "Reasons").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.registry import QUALITY_FLAGS, FeatureSpec, QualityFlag
from training.population import Population

MAX_REASONS = 4


@dataclass(frozen=True)
class ModelReason:
    """A feature (or a data-quality flag) that raised the risk, its plain text and its
    contribution to the log-odds of default."""

    code: str
    text: str
    contribution: float


@dataclass(frozen=True)
class Explainer:
    """One model's columns as arrays: what each can say, and when it is true. Built once
    per model (`Predictor.explainer`), used on every batch."""

    codes: list[str]  # features, then the flags that have a reason
    texts: list[str]
    medians: np.ndarray  # NaN where the population had no value
    sides: np.ndarray  # +1 / -1 / 0 per feature
    flags: tuple[QualityFlag, ...]
    covers: np.ndarray  # (flags, features): the features a raised flag leaves unmeasured
    whole: np.ndarray  # (flags,): the flag means the source is absent altogether

    @classmethod
    def build(cls, features: list[FeatureSpec], population: Population) -> Explainer:
        """The explainer of a model reading `features`, trained on `population`."""
        flags = tuple(q for q in QUALITY_FLAGS if q.reason)
        covers = np.array(
            [
                [(f.source == q.source) if q.whole_source else (f.name in q.explains)
                 for f in features]
                for q in flags
            ],
            dtype=bool,
        ).reshape(len(flags), len(features))  # fmt: skip
        medians = [population.medians.get(f.name) for f in features]
        return cls(
            codes=[f.name.upper() for f in features]
            + [q.name.removeprefix("dq_").upper() for q in flags],
            texts=[f.reason for f in features] + [q.reason for q in flags],
            medians=np.array([np.nan if m is None else m for m in medians], dtype=float),
            sides=np.array([f.adverse_side for f in features], dtype=float),
            flags=flags,
            covers=covers,
            whole=np.array([q.whole_source for q in flags], dtype=bool),
        )

    @property
    def flag_names(self) -> list[str]:
        """The data-quality flags, in the order `top_reasons` reads them."""
        return [q.name for q in self.flags]

    def top_reasons(
        self,
        values: np.ndarray,
        contributions: np.ndarray,
        raised: np.ndarray,
        *,
        limit: int = MAX_REASONS,
    ) -> list[list[ModelReason]]:
        """Up to `limit` true reasons per row, largest contribution first. Vectorised.

        Args:
            values: the model's input rows (features in model order; NaN = missing).
            contributions: `pred_contrib` rows (per feature, then the expected value).
            raised: one row per input row, one 0/1 column per flag in `flag_names` order.
        """
        n = len(self.sides)
        x = np.asarray(values, dtype=float).reshape(-1, n)
        if not len(x):
            return []
        c = np.asarray(contributions, dtype=float).reshape(len(x), -1)[:, :n]
        up = np.where(c > 0, c, 0.0)
        on = np.asarray(raised, dtype=bool).reshape(len(x), len(self.flags))
        stand_in = (on & self.whole) @ self.covers  # (rows, features): a zero, not data
        with np.errstate(invalid="ignore"):
            adverse = (x - self.medians) * self.sides > 0  # False if missing or no median
        feature_score = np.where(adverse & ~stand_in & (c > 0), c, -np.inf)
        # a flag carries what the features it left unmeasured contributed: all of its
        # source's for a whole-source flag, otherwise the missing ones it explains
        unmeasured = np.where(self.whole[:, None], self.covers, False)[None] | (
            self.covers[None] & np.isnan(x)[:, None, :] & ~stand_in[:, None, :]
        )  # (rows, flags, features)
        carried = np.einsum("rfj,rj->rf", unmeasured.astype(float), up)
        flag_score = np.where(on & (carried > 0), carried, -np.inf)
        score = np.concatenate([feature_score, flag_score], axis=1)
        k = min(limit, score.shape[1])
        order = np.argsort(-score, axis=1, kind="stable")[:, :k]
        top = np.take_along_axis(score, order, axis=1)
        return [
            [
                ModelReason(self.codes[j], self.texts[j], v)
                for j, v in zip(cols, vals, strict=True)
                if v > 0
            ]
            for cols, vals in zip(order.tolist(), top.tolist(), strict=True)
        ]
