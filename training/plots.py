"""The plots logged with every model: ROC, calibration, score distribution, contributions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from training.metrics import calibration_table


def plot_roc(y: np.ndarray, curves: dict[str, np.ndarray], path: Path) -> None:
    """ROC curves of several scorers on the same outcomes."""
    fig = Figure(figsize=(5, 5), layout="constrained")
    ax = fig.subplots()
    for name, score in curves.items():
        fpr, tpr, _ = roc_curve(y, score)
        ax.plot(fpr, tpr, label=name, lw=1.2)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, test season")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)


def plot_calibration(y: np.ndarray, pd_: np.ndarray, path: Path) -> None:
    """Observed default rate against predicted probability, per decile."""
    table = calibration_table(y, pd_)
    fig = Figure(figsize=(5, 5), layout="constrained")
    ax = fig.subplots()
    top = max(table[:, 0].max(), table[:, 1].max()) * 1.1
    ax.plot([0, top], [0, top], color="grey", lw=0.8, ls="--")
    ax.plot(table[:, 0], table[:, 1], marker="o")
    ax.set(
        xlabel="predicted probability of default",
        ylabel="observed default rate",
        title="Calibration, test season (deciles)",
    )
    fig.savefig(path, dpi=110)


def plot_score_distribution(y: np.ndarray, points: np.ndarray, path: Path) -> None:
    """Histogram of score points for repaid and defaulted loans."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    low, high = float(points.min()), float(points.max())
    if high <= low:  # a model that scores everyone alike still gets its (one-bar) plot
        low, high = low - 1, high + 1
    bins = np.linspace(low, high, 30).tolist()
    ax.hist(points[~y], bins=bins, alpha=0.6, density=True, label="repaid")
    ax.hist(points[y], bins=bins, alpha=0.6, density=True, label="defaulted")
    ax.set(xlabel="score points", ylabel="density", title="Score by outcome, test season")
    ax.legend()
    fig.savefig(path, dpi=110)


def plot_contributions(names: list[str], mean_abs: np.ndarray, path: Path, top: int = 20) -> None:
    """Mean absolute contribution (log-odds) of the strongest features."""
    order = np.argsort(mean_abs)[-top:]
    fig = Figure(figsize=(7, 6), layout="constrained")
    ax = fig.subplots()
    ax.barh([names[i] for i in order], mean_abs[order])
    ax.tick_params(axis="y", labelsize=8)
    ax.set(xlabel="mean |contribution| to log-odds", title="Feature contributions, test season")
    fig.savefig(path, dpi=110)
