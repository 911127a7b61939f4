"""Score points and risk bands from a calibrated probability of default."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

DEFAULT_BANDS = {"A": 0.03, "B": 0.06, "C": 0.12, "D": 0.25, "E": 1.0}


@dataclass(frozen=True)
class ScoreScaler:
    """points = offset + factor * ln(odds of repaying), factor = pdo / ln 2, where a score
    of `base_points` means odds of `base_odds` to 1 and each `pdo` points doubles the odds.

    Bands are upper bounds on the probability of default, best band first.
    """

    base_points: float = 600.0
    base_odds: float = 50.0
    pdo: float = 20.0
    bands: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_BANDS))

    def __post_init__(self) -> None:
        if not self.pdo > 0:
            raise ValueError(f"pdo must be a positive number of points; got {self.pdo}")
        if not self.base_odds > 0:
            raise ValueError(f"base_odds must be positive; got {self.base_odds}")
        limits = list(self.bands.values())
        if limits != sorted(limits) or limits[-1] < 1.0:
            raise ValueError(
                f"bands must be increasing upper bounds ending at 1.0; got {self.bands}"
            )

    def points(self, pd_: np.ndarray) -> np.ndarray:
        """Score points (higher is safer), rounded to whole points."""
        p = np.clip(np.asarray(pd_, dtype=float), 1e-6, 1 - 1e-6)
        factor = self.pdo / math.log(2)
        offset = self.base_points - factor * math.log(self.base_odds)
        points: np.ndarray = np.round(offset + factor * np.log((1 - p) / p))
        return points

    def band(self, pd_: np.ndarray) -> np.ndarray:
        """Risk band of each probability of default."""
        names = list(self.bands)
        idx = np.searchsorted(np.array(list(self.bands.values())), np.asarray(pd_), side="left")
        return np.array(names, dtype=object)[np.minimum(idx, len(names) - 1)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters (stored with the model)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoreScaler:
        """Rebuild from `to_dict` output."""
        return cls(**data)
