"""On the default world, each source's features alone separate defaulters (issue: > 0.55).

AUCs are taken in the direction the registry declares for each feature, so a feature
that separates only "the wrong way round" does not count.
"""

from __future__ import annotations

import pandas as pd
import pytest

from features.registry import SOURCES, features_of
from features.report import directed_auc

MIN_AUC = 0.55


@pytest.fixture(scope="module")
def default_matrix(default_features) -> pd.DataFrame:
    """The training matrix as of just after the latest event (what `features build` writes)."""
    return pd.read_parquet(default_features / "features" / "training.parquet")


@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES)
def test_each_source_alone_separates_defaulters_on_the_default_world(default_matrix, source):
    labelled = default_matrix[default_matrix["outcome_known"]]
    y = labelled["defaulted"].to_numpy(dtype=bool)
    aucs = {
        f.name: directed_auc(y, labelled[f.name], f.direction)
        for f in features_of(source)
        if labelled[f.name].notna().any()
    }
    best = max(aucs, key=aucs.get)
    print(f"{source}: best feature {best}, AUC {aucs[best]:.3f}")

    assert aucs[best] > MIN_AUC
