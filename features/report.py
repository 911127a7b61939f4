"""A picture of a feature build: NDVI through the seasons, and each feature's signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from features.registry import FEATURES, SOURCES
from features.satellite.seasons import good_observations

SOURCE_COLOURS = {"orders": "#1b9e77", "contracts": "#d95f02", "satellite": "#7570b3",
                  "history": "#e7298a"}  # fmt: skip


def directed_auc(defaulted: np.ndarray, values: pd.Series, direction: int) -> float:
    """AUC of one feature for predicting default, oriented by its declared direction
    (missing values take the median); 0.5 when the feature or the label does not vary."""
    values = values.astype(float)
    if len(np.unique(defaulted)) < 2 or values.nunique() < 2:
        return 0.5
    filled = values.fillna(values.median()).to_numpy()
    auc = float(roc_auc_score(defaulted, filled))
    return {1: auc, -1: 1 - auc, 0: max(auc, 1 - auc)}[direction]


def feature_aucs(training: pd.DataFrame) -> pd.DataFrame:
    """Directed AUC of every feature on the rows with a known outcome."""
    labelled = training[training["outcome_known"]]
    y = labelled["defaulted"].to_numpy(dtype=bool)
    rows = [
        (f.name, f.source, directed_auc(y, labelled[f.name], f.direction))
        for f in FEATURES
        if labelled[f.name].notna().any()
    ]
    return pd.DataFrame(rows, columns=["feature", "source", "auc"])


def plot_feature_report(
    series: pd.DataFrame, fields: pd.DataFrame, training: pd.DataFrame, path: Path
) -> None:
    """Write a two-panel PNG: weekly median NDVI per county, and AUC per feature."""
    from matplotlib.figure import Figure  # plotting only: AUCs need no matplotlib

    fig = Figure(figsize=(14, 7), layout="constrained")
    ndvi_ax, auc_ax = fig.subplots(1, 2, width_ratios=[1.1, 1])
    obs = good_observations(series).merge(fields[["field_id", "county"]], on="field_id")
    if not obs.empty:
        week = pd.DatetimeIndex(obs["acquired_at"]).tz_convert(None).to_period("W").start_time
        weekly = obs.assign(week=week).groupby(["county", "week"])["ndvi_mean"].median()
        for county, line in weekly.groupby(level="county"):
            weeks = pd.DatetimeIndex(line.index.get_level_values("week"))
            values = line.to_numpy(dtype=float)
            gap = np.r_[
                False, np.diff(weeks.asi8) > 21 * 86_400 * 10**9
            ]  # no imagery between seasons
            ndvi_ax.plot(weeks, np.where(gap, np.nan, values), label=county, lw=1)
        ndvi_ax.legend(fontsize=8)
    ndvi_ax.set(title="Median field NDVI per county (clear observations)", ylabel="NDVI")
    aucs = feature_aucs(training) if training["outcome_known"].any() else pd.DataFrame()
    if not aucs.empty:
        aucs = aucs.sort_values(["source", "auc"], key=lambda s: s.map(SOURCES.index)
                                if s.name == "source" else s)  # fmt: skip
        auc_ax.barh(aucs["feature"], aucs["auc"] - 0.5, left=0.5,
                    color=aucs["source"].map(SOURCE_COLOURS))  # fmt: skip
        auc_ax.axvline(0.5, color="grey", lw=0.8)
        auc_ax.tick_params(axis="y", labelsize=7)
    auc_ax.set(title="Each feature alone: AUC for default (declared direction)", xlabel="AUC")
    fig.savefig(path, dpi=110)
