"""The serving predictor: predictions through the single-row API equal LightGBM's own."""

from __future__ import annotations

import numpy as np
import pytest

from scoring.decide.predictor import SINGLE_ROW_MAX, Predictor
from training.artifact import read_bundle, write_bundle
from training.pipeline import train_model


@pytest.fixture(scope="module")
def bundle(tiny_matrix, tmp_path_factory):
    model = train_model(tiny_matrix)
    directory = tmp_path_factory.mktemp("bundle")
    write_bundle(directory, booster=model.booster, calibrator=model.calibrator,
                 scaler=model.scaler, features=model.features,
                 population=model.population)  # fmt: skip
    loaded = Predictor(read_bundle(directory))
    rows = tiny_matrix[loaded.feature_names].to_numpy(dtype=float, na_value=np.nan)
    return loaded, rows


@pytest.mark.parametrize("n", [1, 3, SINGLE_ROW_MAX, SINGLE_ROW_MAX + 1])
def test_raw_scores_and_contributions_equal_lightgbm_predict_bit_for_bit(bundle, n):
    model, rows = bundle
    x = rows[:n].copy()
    x[0, ::3] = np.nan  # missing values take the trees' default branches
    booster = model.booster

    assert np.array_equal(model.raw(x), booster.predict(x, raw_score=True))
    assert np.array_equal(model.contributions(x), booster.predict(x, pred_contrib=True))
    # the contributions and the expected value add up to the raw score
    np.testing.assert_allclose(model.contributions(x).sum(axis=1), model.raw(x), atol=1e-9)


def test_a_busy_single_row_predictor_hands_the_rows_to_lightgbm(bundle):
    model, rows = bundle
    x = rows[:2]
    expected = model.booster.predict(x, raw_score=True)
    predictor = model._raw_rows
    with predictor._lock:  # another thread is predicting
        assert predictor.predict(x) is None
        assert np.array_equal(model.raw(x), expected)
    assert np.array_equal(predictor.predict(x)[:, 0], expected)
