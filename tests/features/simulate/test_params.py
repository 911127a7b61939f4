"""Simulation parameters: documented, and refused with a clear message when out of range."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.errors import SimulationParameterError
from features.simulate.params import WorldParams, parameter_names

DOCS = Path(__file__).resolve().parents[3] / "docs" / "simulation.md"


def test_every_parameter_is_documented():
    text = DOCS.read_text()

    missing = [name for name in parameter_names() if f"`{name}`" not in text]

    assert missing == []


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"farmers": 10}, "farmers is out of range; got 10"),
        ({"seasons": 2}, "seasons is out of range; got 2"),
        ({"counties": 99}, "counties is out of range; got 99"),
        ({"imagery_counties": 5}, "imagery_counties must be between 0 and counties (4); got 5"),
    ],
    ids=["too_few_farmers", "too_few_seasons", "too_many_counties", "imagery_beyond_counties"],
)
def test_out_of_range_parameters_are_refused_with_the_value(overrides, fragment):
    with pytest.raises(
        SimulationParameterError, match=fragment.replace("(", r"\(").replace(")", r"\)")
    ):
        WorldParams(**overrides)
