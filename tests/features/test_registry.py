"""The feature catalogue: declared once, complete, and what the pipelines return."""

from __future__ import annotations

import pandas as pd
from click.testing import CliRunner

from features.assembly import build_features, build_reference, snapshot_applications
from features.registry import FEATURES, QUALITY_FLAGS, SOURCES, features_of, output_columns
from scoring.cli import main


def test_every_feature_is_declared_once_with_a_direction_unit_and_reason():
    names = [f.name for f in FEATURES] + [q.name for q in QUALITY_FLAGS]

    assert len(names) == len(set(names))
    for f in FEATURES:
        assert f.direction in (-1, 0, 1), f.name
        assert f.unit and f.description.endswith(".") and f.reason.endswith("."), f.name
        assert f.name.split("_")[0] in {"orders", "contract", "sat", "history"}, f.name
    assert all(q.name.startswith("dq_") for q in QUALITY_FLAGS)
    assert {f.source for f in FEATURES} == set(SOURCES)


def test_build_returns_exactly_the_catalogue_in_order(tiny_inputs):
    apps = snapshot_applications(
        tiny_inputs.farmers.head(20), tiny_inputs.contracts, pd.Timestamp("2024-03-01T00:00Z")
    )

    out = build_features(tiny_inputs, apps, reference=build_reference(tiny_inputs))

    expected = [name for s in SOURCES for name in output_columns(s) if not name.startswith("dq_")]
    features = [c for c in out.columns if c in {f.name for f in FEATURES}]
    assert features == expected
    assert [c for c in out.columns if c.startswith("dq_")] == [q.name for q in QUALITY_FLAGS]
    assert len(out) == 20 and out["application_id"].tolist() == apps["application_id"].tolist()


def test_features_list_prints_the_whole_catalogue_and_filters_by_source():
    everything = CliRunner().invoke(main, ["features", "list"])
    satellite = CliRunner().invoke(main, ["features", "list", "--source", "satellite", "--reasons"])

    assert everything.exit_code == 0 and satellite.exit_code == 0
    assert all(f.name in everything.output for f in FEATURES)
    assert all(f.name in satellite.output for f in features_of("satellite"))
    assert "orders_amount_30d" not in satellite.output
    assert features_of("satellite")[0].reason in satellite.output
