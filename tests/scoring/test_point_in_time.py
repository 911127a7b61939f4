"""What a decision looks up besides features, per farmer and field at any instant: the
loans outstanding and each field's latest clear scene equal the same filters over the
whole tables, whatever the instant."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from features.asof import before, instant_ns
from features.history import loan_settlements
from features.satellite.seasons import good_observations
from scoring.decide.data import FeatureSource

_DAY = 86_400 * 10**9


def _instants(times: pd.Series) -> st.SearchStrategy[int]:
    """Any instant around `times`, and often exactly one of them (where `<` and `<=` part)."""
    ns = sorted({instant_ns(t) for t in times.dropna()})
    return st.one_of(st.integers(ns[0] - 30 * _DAY, ns[-1] + 30 * _DAY), st.sampled_from(ns))


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_loans_outstanding_at_any_instant_are_those_applied_for_and_unsettled_then(
    source: FeatureSource, data
):
    loans = source.inputs.loans
    settled = loan_settlements(loans, source.inputs.repayments).set_index("loan_id")
    settled_at = pd.DatetimeIndex(loans["loan_id"].map(settled["settled_at"]))
    t = data.draw(_instants(pd.concat([loans["applied_at"], pd.Series(settled_at)])))
    open_then = loans[before(loans["applied_at"], t) & ~before(settled_at, t)]
    # the farmers whose loans start or end at t, and others
    at_t = loans.loc[
        (loans["applied_at"] == pd.Timestamp(t, tz="UTC"))
        | (settled_at == pd.Timestamp(t, tz="UTC")),
        "farmer_id",
    ]
    farmers = list(at_t) + data.draw(
        st.lists(st.sampled_from(sorted(set(loans["farmer_id"]))), max_size=20)
    )

    for farmer in farmers:
        expected = open_then[open_then["farmer_id"] == farmer]
        found = source.outstanding(farmer, t)
        assert sorted((x.contract_id, x.amount_minor) for x in found) == sorted(
            zip(expected["contract_id"], expected["amount_minor"].astype(int), strict=True)
        )


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_a_fields_last_clear_scene_at_any_instant_is_the_latest_clear_one_before_it(
    source: FeatureSource, data
):
    obs = good_observations(source.inputs.series)
    t = data.draw(_instants(obs["acquired_at"]))
    at_t = obs.loc[obs["acquired_at"] == pd.Timestamp(t, tz="UTC"), "field_id"]
    fields = list(at_t) + data.draw(
        st.lists(st.sampled_from(sorted(set(source.inputs.series["field_id"]))), max_size=20)
    )
    seen = obs[before(obs["acquired_at"], t)].groupby("field_id")["acquired_at"].max()

    for field in fields:
        want = seen.get(field)
        got = source.last_clear_scene_ns(field, t)
        assert got == (None if want is None else instant_ns(want)), field
    assert source.last_clear_scene_ns("no-such-field", t) is None
    assert np.all(np.diff(next(iter(source._clear_scenes.values()))) >= 0)
