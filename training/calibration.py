"""Probability calibration on held-out data: Platt scaling of the model's raw log-odds,
levelled to the long-run default rate.

The slope and shape come from the validation season: two parameters, smooth and hard to
overfit on the few hundred defaults a season holds (isotonic steps would follow the noise).
One season's default rate swings with its weather and prices, so, as is usual for credit
PD models, the level is then set to the central tendency: the mean default rate of every
season of history, each season weighted equally. Stored as JSON with the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import brentq, minimize
from scipy.special import expit


class Calibrator:
    """p = sigmoid(a * raw + b) for a model's raw log-odds `raw` (sklearn-style)."""

    def __init__(self, *, ridge: float = 1e-3) -> None:
        self.ridge = ridge

    def fit(
        self, raw: np.ndarray, y: np.ndarray, *, long_run_rate: float | None = None
    ) -> Calibrator:
        """Fit a and b by penalised maximum likelihood; then, with `long_run_rate`, shift b
        so the mean probability over `raw` equals it. Returns self."""
        raw, y = np.asarray(raw, float), np.asarray(y, float)
        if len(np.unique(y)) < 2:
            raise ValueError("calibration needs both outcomes in the held-out data; got one")

        def loss(ab: np.ndarray) -> float:
            z = ab[0] * raw + ab[1]
            return float(np.mean(np.logaddexp(0, z) - y * z) + self.ridge * (ab[0] - 1) ** 2)

        result = minimize(loss, x0=np.array([1.0, 0.0]), method="L-BFGS-B")
        self.a_, self.b_ = float(result.x[0]), float(result.x[1])
        self.level_shift_ = 0.0
        if long_run_rate is not None:
            if not 0 < long_run_rate < 1:
                raise ValueError(f"long_run_rate must lie in (0, 1); got {long_run_rate}")
            z = self.a_ * raw + self.b_
            self.level_shift_ = float(
                brentq(lambda d: float(expit(z + d).mean()) - long_run_rate, -10, 10)
            )
            self.b_ += self.level_shift_
        return self

    def _check_is_fitted(self) -> None:
        if not hasattr(self, "a_"):
            raise RuntimeError("Calibrator is not fitted; call fit(raw, y) first")

    def predict(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated probability of default."""
        self._check_is_fitted()
        pd_: np.ndarray = expit(self.a_ * np.asarray(raw, float) + self.b_)
        return pd_

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters."""
        self._check_is_fitted()
        return {"method": "platt", "a": self.a_, "b": self.b_}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        """Rebuild from `to_dict` output."""
        if data.get("method") != "platt":
            raise ValueError(f"unknown calibration method {data.get('method')!r}")
        c = cls()
        c.a_, c.b_ = float(data["a"]), float(data["b"])
        return c
