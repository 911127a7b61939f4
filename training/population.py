"""Where a model's training applicants stand on each feature: the reference that makes a
reason true ("your sales are low" means lower than the median applicant the model learned
from) and that places one applicant in the population."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

QUANTILES = tuple(q / 20 for q in range(1, 20))  # every 5 %, for placing a value


@dataclass(frozen=True)
class Population:
    """Per feature: the median and every fifth percentile of the present values, and the
    share of rows in which the feature was present. None where no row had a value."""

    medians: dict[str, float | None]
    quantiles: dict[str, list[float] | None]
    present_share: dict[str, float]

    @classmethod
    def describe(cls, x: pd.DataFrame) -> Population:
        """The population of the training rows `x` (one column per feature)."""
        medians: dict[str, float | None] = {}
        quantiles: dict[str, list[float] | None] = {}
        present: dict[str, float] = {}
        for name in x.columns:
            values = x[name].to_numpy(dtype=float, na_value=np.nan)
            values = values[~np.isnan(values)]
            present[name] = len(values) / len(x) if len(x) else 0.0
            if len(values):
                medians[name] = float(np.median(values))
                quantiles[name] = [float(v) for v in np.quantile(values, QUANTILES)]
            else:
                medians[name] = quantiles[name] = None
        return cls(medians, quantiles, present)

    def percentile(self, name: str, value: float) -> float | None:
        """About what share of training applicants had a lower value (0..1), or None."""
        cuts = self.quantiles.get(name)
        if cuts is None or np.isnan(value):
            return None
        return float(np.interp(value, cuts, QUANTILES, left=0.0, right=1.0))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "medians": self.medians,
            "quantiles": self.quantiles,
            "present_share": self.present_share,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Population:
        """Rebuild from `to_dict` output."""
        return cls(dict(data["medians"]), dict(data["quantiles"]), dict(data["present_share"]))
