"""A follower keeps a farmer's satellite features when only their orders, loans or
repayments moved and the instant it builds as of is before `satellite_unchanged_until`:
for all instants before that one, the features are those at as_of, bit for bit."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.asof import to_ns
from features.assembly import Inputs, Reference, build_reference, snapshot_applications
from features.satellite.pipeline import build_satellite_features, satellite_unchanged_until

START = pd.Timestamp("2022-01-01", tz="UTC")
SPAN_HOURS = 4 * 365 * 24  # the tiny world's history runs 2021 to early 2025
PROPERTY = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def reference(tiny_inputs: Inputs) -> Reference:
    return build_reference(tiny_inputs)


def _jittered(inputs: Inputs, seed: int) -> Inputs:
    """The inputs with each observation acquired up to three days off, at any second: a
    regular revisit lines the bounds of different observations up, and irregular ones
    must hold as well."""
    rng = np.random.default_rng(seed)
    shift = rng.integers(-3 * 86_400, 3 * 86_400, len(inputs.series))
    series = inputs.series.assign(
        acquired_at=inputs.series["acquired_at"] + pd.to_timedelta(shift, unit="s")
    )
    return replace(inputs, series=series)


def _satellite(inputs: Inputs, reference: Reference, apps: pd.DataFrame) -> np.ndarray:
    out = build_satellite_features(
        inputs.series, apps, fields=inputs.fields, contracts=inputs.contracts,
        farmers=inputs.farmers, coop_areas=reference.coop_areas,
        county_peaks=reference.county_peaks, field_seasons=reference.field_seasons,
    )  # fmt: skip
    return out.drop(columns="application_id").to_numpy(dtype=float)


@PROPERTY
@given(
    hours=st.integers(0, SPAN_HOURS),
    seconds=st.integers(1, 3599),  # off midnight, where nothing is kept
    seed=st.integers(0, 2**31 - 1),
    fraction=st.floats(0, 1, exclude_max=True),
)
def test_satellite_features_stay_as_they_are_until_the_instant_given(
    tiny_inputs, reference, hours, seconds, seed, fraction
):
    as_of = START + pd.Timedelta(hours=hours, seconds=seconds)
    inputs = _jittered(tiny_inputs, seed)
    farmers = inputs.farmers.sample(n=40, random_state=seed)
    apps = snapshot_applications(farmers, inputs.contracts, as_of)

    until = satellite_unchanged_until(
        inputs.series, apps, fields=inputs.fields, contracts=inputs.contracts
    )

    t = to_ns(apps["as_of"])
    assert (until >= t).all()
    assert (until > t).mean() > 0.5  # the interval is seldom empty: keeping rows pays
    at_as_of = _satellite(inputs, reference, apps)
    inside = t + np.floor(fraction * (until - t).astype(float)).astype(np.int64)
    last = np.maximum(until - 1, t)  # the interval's last instant: past any bound missed
    for later in (inside, last):
        moved = apps.assign(as_of=pd.to_datetime(later, utc=True).as_unit("ns"))
        np.testing.assert_array_equal(_satellite(inputs, reference, moved), at_as_of)
