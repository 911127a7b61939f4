"""A plain logistic-regression baseline on the same split: what the boosted model must beat."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler


def fit_baseline(x: pd.DataFrame, y: np.ndarray, *, seed: int = 7) -> Pipeline:
    """Median imputation with missing-value indicators, scaling, L2 logistic regression."""
    model = make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
        StandardScaler(),
        LogisticRegression(C=0.1, max_iter=2000, random_state=seed),
    )
    return model.fit(x, y)


def predict_baseline(model: Pipeline, x: pd.DataFrame) -> np.ndarray:
    """Probability of default from the baseline."""
    return np.asarray(model.predict_proba(x)[:, 1])
