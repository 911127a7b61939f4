"""Credit-model metrics as pure functions on arrays: discrimination, calibration, stability."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

ECE_BINS = 10
PSI_BINS = 10


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (probability a defaulter scores above a non-defaulter)."""
    return float(roc_auc_score(np.asarray(y, dtype=bool), score))


def gini(y: np.ndarray, score: np.ndarray) -> float:
    """Gini coefficient (accuracy ratio) = 2 AUC - 1."""
    return 2 * auc(y, score) - 1


def ks(y: np.ndarray, score: np.ndarray) -> float:
    """Kolmogorov-Smirnov: the largest gap between the score CDFs of the two classes."""
    y = np.asarray(y, dtype=bool)
    order = np.argsort(score, kind="stable")
    s, yy = np.asarray(score)[order], y[order]
    cum_bad = np.cumsum(yy) / max(yy.sum(), 1)
    cum_good = np.cumsum(~yy) / max((~yy).sum(), 1)
    last_of_value = np.r_[s[1:] != s[:-1], True]  # compare only after tied scores
    return float(np.max(np.abs(cum_bad - cum_good)[last_of_value]))


def brier(y: np.ndarray, pd_: np.ndarray) -> float:
    """Mean squared error of predicted probabilities of default."""
    return float(np.mean((np.asarray(pd_) - np.asarray(y, dtype=float)) ** 2))


def ece(y: np.ndarray, pd_: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error over equal-count bins of predicted probability:
    the count-weighted mean |observed default rate - mean predicted probability|."""
    y, p = np.asarray(y, dtype=float), np.asarray(pd_, dtype=float)
    order = np.argsort(p, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, bins):
        if len(chunk):
            total += len(chunk) * abs(y[chunk].mean() - p[chunk].mean())
    return total / len(y)


def calibration_table(y: np.ndarray, pd_: np.ndarray, bins: int = ECE_BINS) -> np.ndarray:
    """(mean predicted, observed rate, count) per equal-count bin, for the calibration plot."""
    y, p = np.asarray(y, dtype=float), np.asarray(pd_, dtype=float)
    order = np.argsort(p, kind="stable")
    rows = [(p[c].mean(), y[c].mean(), len(c)) for c in np.array_split(order, bins) if len(c)]
    return np.array(rows)


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index of `actual` against `expected` over the expected deciles.

    Below 0.1 stable, 0.1-0.25 some shift, above 0.25 a shift worth acting on.
    """
    expected, actual = np.asarray(expected, float), np.asarray(actual, float)
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)))
    edges[0], edges[-1] = -np.inf, np.inf
    e = np.histogram(expected, edges)[0] / len(expected)
    a = np.histogram(actual, edges)[0] / len(actual)
    e, a = np.clip(e, 1e-6, None), np.clip(a, 1e-6, None)
    return float(np.sum((a - e) * np.log(a / e)))
