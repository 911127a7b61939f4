"""Rows taken chunk by chunk equal `iloc`, for any frame of chunked Arrow columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from features.chunked import _chunked, take_rows

texts = st.one_of(st.none(), st.text(max_size=6))


@st.composite
def chunked_frames(draw) -> pd.DataFrame:
    """A frame as a log's table is after commits: parts concatenated, so its Arrow-backed
    columns hold one chunk per part; with missing values, a datetime and masked numbers."""
    parts = []
    for _ in range(draw(st.integers(1, 5))):
        n = draw(st.integers(0, 8))
        parts.append(pd.DataFrame({
            "id": pd.array(draw(st.lists(texts, min_size=n, max_size=n)), dtype="string[pyarrow]"),
            "amount": pd.array(draw(st.lists(st.one_of(st.none(), st.integers(-5, 5)),
                                             min_size=n, max_size=n)), dtype="Int64"),
            "at": pd.to_datetime(draw(st.lists(st.integers(0, 10**12), min_size=n, max_size=n)),
                                 unit="s", utc=True),
            "kind": pd.array(draw(st.lists(texts, min_size=n, max_size=n)), dtype="string"),
        }))  # fmt: skip
    frame = pd.concat(parts, ignore_index=True)
    frame.attrs = {"crs": "EPSG:4326"}
    return frame


@settings(max_examples=150, deadline=None)
@given(frame=chunked_frames(), data=st.data())
def test_rows_taken_chunk_by_chunk_equal_iloc(frame: pd.DataFrame, data) -> None:
    n = len(frame)
    picks = st.lists(st.integers(-n, n - 1), max_size=12) if n else st.just([])
    positions = np.array(data.draw(picks), dtype=np.int64)
    if data.draw(st.booleans()):
        positions = np.sort(positions)
    taken = take_rows(frame, positions)
    pd.testing.assert_frame_equal(taken, frame.iloc[positions], check_exact=True)
    assert taken.attrs == frame.attrs


def test_a_column_of_many_chunks_is_taken_chunk_by_chunk() -> None:
    parts = [pd.DataFrame({"id": pd.array([f"{i}-{j}" for j in range(3)], dtype="string[pyarrow]")})
             for i in range(4)]  # fmt: skip
    frame = pd.concat(parts, ignore_index=True)
    assert _chunked(frame["id"]) is not None  # the case the chunked path is for
    assert take_rows(frame, np.array([11, 0, 5]))["id"].tolist() == ["3-2", "0-0", "1-2"]
