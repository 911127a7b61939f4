"""The labelled set: a season counts once every outcome in it is known."""

from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from training.dataset import LABEL, labelled

ROWS = st.lists(
    st.tuples(st.integers(2021, 2026), st.booleans(), st.booleans()), min_size=1, max_size=40
)


def _matrix(rows: list[tuple[int, bool, bool]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "application_id": [f"A{i:03d}" for i in range(len(rows))],
            "as_of": pd.to_datetime(
                [f"{year}-03-{1 + i % 28:02d}" for i, (year, _, _) in enumerate(rows)], utc=True
            ),
            "outcome_known": [known for _, known, _ in rows],
            LABEL: pd.array([d if known else None for _, known, d in rows], dtype="boolean"),
        }
    )


@settings(max_examples=60, deadline=None)
@given(ROWS)
def test_a_season_with_a_loan_still_maturing_is_left_out_whole(rows):
    matrix = _matrix(rows)
    out = labelled(matrix)
    seasons = pd.DatetimeIndex(matrix["as_of"]).year
    maturing = set(seasons[~matrix["outcome_known"]])
    complete = matrix[~seasons.isin(list(maturing))]
    assert set(out["season"]).isdisjoint(maturing)
    assert sorted(out["application_id"]) == sorted(complete["application_id"])
    assert out[LABEL].dtype == bool
