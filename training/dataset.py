"""The labelled dataset and its out-of-time split: train on earlier seasons, validate on the
next, test on the latest, with checks that no outcome leaks backwards in time."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.registry import FEATURES, SOURCES, FeatureSpec
from features.report import directed_auc

LABEL = "defaulted"


def select_features(sources: tuple[str, ...] = SOURCES) -> list[FeatureSpec]:
    """The registry's features of some sources, in catalogue order."""
    unknown = set(sources) - set(SOURCES)
    if unknown:
        raise ValueError(
            f"unknown source(s) {', '.join(sorted(unknown))}; choose from {', '.join(SOURCES)}"
        )
    return [f for f in FEATURES if f.source in sources]


def labelled(matrix: pd.DataFrame) -> pd.DataFrame:
    """Loans of the seasons whose every outcome is known, with `season` = the year of the
    application.

    A season still maturing is left out whole: the outcomes known early in it are those of
    the loans due first, not a fair sample of the season.
    """
    season = pd.Series(pd.DatetimeIndex(matrix["as_of"]).year, index=matrix.index)
    known = matrix["outcome_known"].astype(bool)
    maturing = season[~known].unique()
    rows = matrix[known & ~season.isin(maturing)].copy()
    rows[LABEL] = rows[LABEL].astype(bool)
    rows["season"] = season[rows.index]
    return rows.sort_values(["as_of", "application_id"], ignore_index=True)


def fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 of a frame's values, row order included: the data a model was trained on."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    columns = ",".join(map(str, frame.columns)).encode()
    return hashlib.sha256(columns + hashed.tobytes()).hexdigest()


@dataclass(frozen=True)
class SplitCheck:
    """One named check of the split, with what it found."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Split:
    """Train, validation and test rows of an out-of-time split, and its checks."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    checks: list[SplitCheck] = field(default_factory=list)

    @property
    def seasons(self) -> dict[str, list[int]]:
        """Seasons of each part."""
        return {
            part: sorted(getattr(self, part)["season"].unique().tolist())
            for part in ("train", "valid", "test")
        }

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(c.passed for c in self.checks)


def _before(earlier: pd.DataFrame, later: pd.DataFrame, what: str) -> SplitCheck:
    start = later["as_of"].min()
    late = int((earlier["outcome_at"] >= start).sum()) if "outcome_at" in earlier else 0
    return SplitCheck(
        f"{what} outcomes known before the next part starts",
        late == 0,
        f"{late} outcome(s) of {what} loans became known only after {start:%Y-%m-%d}",
    )


def split_out_of_time(rows: pd.DataFrame) -> Split:
    """Latest season for test, the one before for validation, the rest for training.

    Raises:
        ValueError: with fewer than three seasons of labelled loans.
    """
    seasons = sorted(rows["season"].unique())
    if len(seasons) < 3:
        raise ValueError(
            f"an out-of-time split needs three seasons of loans with known outcomes; "
            f"got {len(seasons)} ({', '.join(map(str, seasons))}). Simulate more seasons "
            "or wait for outcomes to mature"
        )
    train = rows[rows["season"] <= seasons[-3]]
    valid = rows[rows["season"] == seasons[-2]]
    test = rows[rows["season"] == seasons[-1]]
    checks = [
        SplitCheck(
            "time order",
            train["as_of"].max() < valid["as_of"].min()
            and valid["as_of"].max() < test["as_of"].min(),
            "every training application precedes every validation one, which precede the test",
        ),
        _before(train, valid, "training"),
        _before(valid, test, "validation"),
        SplitCheck(
            "both outcomes in every part",
            all(part[LABEL].nunique() == 2 for part in (train, valid, test)),
            "each part holds defaults and repaid loans",
        ),
    ]
    return Split(train, valid, test, checks)


def leakage_check(
    rows: pd.DataFrame, features: list[FeatureSpec], limit: float = 0.98
) -> SplitCheck:
    """No single feature may separate the training outcome almost perfectly: such a
    feature was almost surely built from the label or from the future."""
    y = rows[LABEL].to_numpy(dtype=bool)
    worst, name = 0.5, ""
    for f in features:
        auc = directed_auc(y, rows[f.name], 0)  # either direction counts here
        if auc > worst:
            worst, name = auc, f.name
    return SplitCheck(
        "no feature separates the outcome by itself",
        worst < limit,
        f"strongest single feature {name or '-'}: AUC {worst:.3f} (limit {limit})",
    )


def xy(rows: pd.DataFrame, features: list[FeatureSpec]) -> tuple[pd.DataFrame, np.ndarray]:
    """The feature matrix (catalogue order, floats) and the labels of some rows."""
    return rows[[f.name for f in features]].astype(float), rows[LABEL].to_numpy(dtype=bool)
