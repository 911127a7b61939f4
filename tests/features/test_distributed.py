"""The feature store built on a Dask cluster is the one built in process, table by table."""

from __future__ import annotations

import pandas as pd

from features.distributed import farmer_partition
from features.feature_store import SERIES_FILE, SNAPSHOT_FILE, TRAINING_FILE, write_feature_store


def test_cluster_build_equals_in_process_build(tiny_world, tmp_path, dask_runner):
    here = write_feature_store(tiny_world, out=tmp_path / "here")
    there = write_feature_store(tiny_world, out=tmp_path / "there", runner=dask_runner)

    assert (here.as_of, here.training_rows, here.snapshot_rows) == (
        there.as_of,
        there.training_rows,
        there.snapshot_rows,
    )
    assert here.series_rows > 0
    for name in (SERIES_FILE, TRAINING_FILE, SNAPSHOT_FILE):
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "here" / name), pd.read_parquet(tmp_path / "there" / name)
        )


def test_a_farmer_always_lands_in_the_same_partition():
    ids = pd.Series([f"F{i:05d}" for i in range(1000)])
    first, again = farmer_partition(ids, 7), farmer_partition(ids.sample(frac=1, random_state=1), 7)

    assert set(first) == set(range(7))
    assert (
        pd.Series(again, index=ids.sample(frac=1, random_state=1).index).sort_index() == first
    ).all()


def test_features_build_command_takes_a_scheduler(tiny_world, tmp_path, dask_runner):
    from click.testing import CliRunner

    from scoring.cli import main

    out = tmp_path / "features"
    result = CliRunner().invoke(
        main,
        ["features", "build", "--data", str(tiny_world), "--out", str(out), "--quiet",
         "--scheduler", dask_runner.client.scheduler.address],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert (out / "manifest.json").exists() and len(pd.read_parquet(out / TRAINING_FILE)) > 0
