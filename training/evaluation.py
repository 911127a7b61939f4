"""Test-season evaluation: the metrics logged for a model and its fairness audit."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.metrics import auc, brier, ece, gini, ks

APPROVE_BELOW_PD = 0.10  # the audit's stand-in for the policy's approval cut-off


def evaluate(y: np.ndarray, pd_: np.ndarray, *, prefix: str = "test") -> dict[str, float]:
    """AUC, Gini, KS, Brier and expected calibration error, named `{prefix}_{metric}`."""
    return {
        f"{prefix}_auc": auc(y, pd_),
        f"{prefix}_gini": gini(y, pd_),
        f"{prefix}_ks": ks(y, pd_),
        f"{prefix}_brier": brier(y, pd_),
        f"{prefix}_ece": ece(y, pd_),
        f"{prefix}_default_rate": float(np.mean(y)),
        f"{prefix}_mean_pd": float(np.mean(pd_)),
    }


def fairness_table(
    groups: pd.DataFrame, y: np.ndarray, pd_: np.ndarray, *, approve_below: float = APPROVE_BELOW_PD
) -> pd.DataFrame:
    """Per value of each group column: loans, approval rate, default rate, AUC.

    Protected attributes are read here only, for the audit; they are never model inputs.
    """
    rows = []
    frame = groups.assign(y=y, pd=pd_, approved=pd_ < approve_below)
    for column in groups.columns:
        for value, part in frame.groupby(column, dropna=False):
            both = part["y"].nunique() == 2
            rows.append(
                {
                    "attribute": column,
                    "group": str(value),
                    "loans": len(part),
                    "approval_rate": part["approved"].mean(),
                    "default_rate": part["y"].mean(),
                    "auc": auc(part["y"].to_numpy(), part["pd"].to_numpy()) if both else np.nan,
                }
            )
    return pd.DataFrame(rows)


def fairness_gaps(table: pd.DataFrame, attribute: str) -> dict[str, float]:
    """Largest difference between groups of one attribute in approval rate and in AUC."""
    part = table[(table["attribute"] == attribute) & (table["loans"] >= 30)]
    if len(part) < 2:
        return {f"{attribute}_approval_gap": 0.0, f"{attribute}_auc_gap": 0.0}
    approval, aucs = part["approval_rate"], part["auc"]
    return {
        f"{attribute}_approval_gap": float(approval.max() - approval.min()),
        f"{attribute}_auc_gap": float(aucs.max() - aucs.min()),
    }
