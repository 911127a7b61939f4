"""A field's season metrics depend on its own observations only: the reference computes
every field's once, and each partition of applications reads its own fields' rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from features.satellite.seasons import field_season_metrics


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.02, 0.6))
def test_a_fields_season_metrics_are_the_same_computed_alone_or_with_all_fields(
    tiny_inputs, seed, share
):
    fields, series = tiny_inputs.fields, tiny_inputs.series
    rng = np.random.default_rng(seed)
    some = fields["field_id"][rng.random(len(fields)) < share]
    whole = field_season_metrics(series, fields)
    alone = field_season_metrics(
        series[series["field_id"].isin(some)], fields[fields["field_id"].isin(some)]
    )
    from_whole = whole[whole["field_id"].isin(some)].reset_index(drop=True)
    pd.testing.assert_frame_equal(from_whole, alone.reset_index(drop=True), check_exact=True)
