"""A follower finds each farmer's orders by position after a commit without grouping every
order again: the positions equal grouping the table as it is now, whichever side of the
rows read before the commit's rows land on."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.decide.data import _orders_positions, _positions

farmers = st.lists(st.sampled_from(["F1", "F2", "F3", "F4"]), max_size=12)


@settings(max_examples=200, deadline=None)
@given(kept=farmers, added=farmers, newest_first=st.booleans())
def test_positions_after_a_commit_equal_grouping_the_orders_again(kept, added, newest_first):
    before = pd.DataFrame({"order_id": [f"K{i}" for i in range(len(kept))], "farmer_id": kept})
    new = pd.DataFrame({"order_id": [f"A{i}" for i in range(len(added))], "farmer_id": added})
    parts = [new, before] if newest_first else [before, new]
    orders = pd.concat(parts, ignore_index=True)
    reuse = SimpleNamespace(_orders=_positions(before, "farmer_id"),
                            inputs=SimpleNamespace(orders=before))  # fmt: skip
    log_tables = SimpleNamespace(added={"orders": new})

    got = _orders_positions(orders, reuse, log_tables)  # type: ignore[arg-type]

    want = _positions(orders, "farmer_id")
    assert got.keys() == want.keys()
    for farmer, at in want.items():
        np.testing.assert_array_equal(np.sort(got[farmer]), at)
