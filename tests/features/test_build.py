"""`agricredit features build`: what it writes, and missing data as flags, not crashes."""

from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd
from click.testing import CliRunner

from features.assembly import build_features, build_reference, field_table, snapshot_applications
from features.feature_store import (
    FIELD_AREAS_FILE,
    FIELD_SEASONS_FILE,
    SERIES_FILE,
    fieldset_of,
    inputs_from_tables,
    validated_tables,
    write_feature_store,
)
from features.registry import FEATURE_NAMES
from scoring.cli import main
from tests.factories import copy_world


def test_build_writes_series_training_matrix_and_snapshot(tiny_world, tmp_path):
    out = tmp_path / "features"

    result = CliRunner().invoke(
        main, ["features", "build", "--data", str(tiny_world), "--out", str(out), "--quiet"]
    )

    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    training = pd.read_parquet(out / "training.parquet")
    snapshot = pd.read_parquet(out / "snapshot.parquet")
    series = pd.read_parquet(out / "index_series.parquet")
    loans = pd.read_parquet(tiny_world / "loans.parquet")
    farmers = pd.read_parquet(tiny_world / "farmers.parquet")
    assert sorted(training["application_id"]) == sorted(loans["loan_id"])
    assert sorted(snapshot["farmer_id"]) == sorted(farmers["farmer_id"])
    assert manifest["features"] == list(FEATURE_NAMES)
    assert (series["acquired_at"] < pd.Timestamp(manifest["as_of"])).all()
    assert (snapshot["as_of"] == pd.Timestamp(manifest["as_of"])).all()
    assert f"{len(loans):,} loans" in result.output


def test_build_as_of_an_earlier_time_sees_only_what_was_known(tiny_world, tmp_path):
    out = tmp_path / "early"

    result = CliRunner().invoke(
        main,
        [
            "features",
            "build",
            "--data",
            str(tiny_world),
            "--out",
            str(out),
            "--as-of",
            "2023-06-01T00:00Z",
            "--quiet",
        ],
    )

    assert result.exit_code == 0, result.output
    training = pd.read_parquet(out / "training.parquet")
    series = pd.read_parquet(out / "index_series.parquet")
    cut = pd.Timestamp("2023-06-01T00:00Z")
    assert (training["as_of"] < cut).all() and (series["acquired_at"] < cut).all()


def test_bad_data_and_naive_times_write_nothing_and_say_why(tiny_world, tmp_path):
    broken = copy_world(tiny_world, tmp_path / "broken")
    orders = pd.read_parquet(broken / "orders.parquet")
    (broken / "orders.parquet").unlink()  # hard-linked: replace, never edit in place
    orders.loc[3, "amount_minor"] = -5
    orders.to_parquet(broken / "orders.parquet")

    bad = CliRunner().invoke(main, ["features", "build", "--data", str(broken), "--quiet"])
    naive = CliRunner().invoke(
        main, ["features", "build", "--data", str(tiny_world), "--as-of", "2024-01-01"]
    )

    assert bad.exit_code == 1
    assert "orders.parquet" in bad.output and "row 4" in bad.output
    assert not (broken / "features").exists()
    assert naive.exit_code == 2 and "timezone" in naive.output


def test_farmer_without_shop_contract_or_clear_scene_gets_flags_not_a_crash(tiny_inputs):
    farmer = tiny_inputs.loans["farmer_id"].iloc[0]
    fields = tiny_inputs.fields[tiny_inputs.fields["farmer_id"] == farmer]["field_id"]
    inputs = replace(
        tiny_inputs,
        orders=tiny_inputs.orders[tiny_inputs.orders["farmer_id"] != farmer],
        series=tiny_inputs.series[~tiny_inputs.series["field_id"].isin(fields)],
    )
    apps = snapshot_applications(
        inputs.farmers[inputs.farmers["farmer_id"] == farmer],
        inputs.contracts,
        pd.Timestamp("2024-04-01T00:00Z"),
    ).assign(contract_id=None)

    row = build_features(inputs, apps, reference=build_reference(inputs)).iloc[0]

    assert row[["dq_no_orders", "dq_no_contract", "dq_no_last_season", "dq_no_recent_scene"]].all()
    assert pd.isna(row["orders_amount_90d"]) and pd.isna(row["sat_last_peak_ndvi"])
    assert pd.isna(row["contract_receivable_minor"])
    assert row["history_prior_loans"] >= 0


def test_inputs_with_no_rows_at_all_give_missing_values_and_flags(tiny_inputs):
    from features.assembly import restrict_to_farmers

    empty = restrict_to_farmers(tiny_inputs, ["nobody"])
    apps = pd.DataFrame(
        {
            "application_id": ["a"],
            "farmer_id": ["nobody"],
            "as_of": pd.array([pd.Timestamp("2024-03-01T00:00Z")], dtype="datetime64[ns, UTC]"),
            "contract_id": [None],
            "requested_minor": [1e6],
        }
    )

    row = build_features(empty, apps, reference=build_reference(tiny_inputs)).iloc[0]

    flags = [c for c in row.index if c.startswith("dq_") and c != "dq_contract_not_open"]
    assert row[flags].all() and not row["dq_contract_not_open"]  # no contract at all
    assert (
        row[["orders_amount_30d", "contract_receivable_minor", "sat_last_peak_ndvi"]].isna().all()
    )


def test_the_field_areas_and_season_metrics_kept_beside_the_features_equal_measuring_again(
    tiny_world, tmp_path
):
    out = tmp_path / "features"
    write_feature_store(tiny_world, out=out)
    tables = validated_tables(tiny_world)
    fieldset = fieldset_of(tables["fields"])
    whole = field_table(tables["fields"], tables["farmers"], fieldset)
    kept = pd.read_parquet(out / FIELD_AREAS_FILE).set_index("field_id")["polygon_ha"]
    seasons = pd.read_parquet(out / FIELD_SEASONS_FILE)

    # all kept, or half of them (the other half measured again, as for fields added since)
    for measured in (kept, kept.iloc[::2]):
        again = field_table(tables["fields"], tables["farmers"], fieldset, measured=measured)
        pd.testing.assert_frame_equal(again, whole, check_exact=True)
    inputs = inputs_from_tables(tiny_world, tables, series=pd.read_parquet(out / SERIES_FILE))
    reference = build_reference(inputs)
    assert reference.field_seasons is not None
    pd.testing.assert_frame_equal(seasons, reference.field_seasons, check_exact=True)
