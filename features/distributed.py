"""Feature building on a Dask runner's cluster: the same pure functions as in process,
mapped over groups of scenes (zonal statistics) and over farmer partitions (every feature
source), and gathered back in input order. There is no second implementation of any
feature."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from features.assembly import Inputs, Reference, build_features, restrict_to_farmers
from features.runners import DaskRunner
from features.satellite.series import SERIES_COLUMNS, build_index_series
from features.satellite.zonal import FieldSet

SCENES_PER_TASK = 8


def farmer_partition(farmer_ids: pd.Series | np.ndarray, partitions: int) -> np.ndarray:
    """A stable partition number per farmer (the same farmer always lands together)."""
    hashed = pd.util.hash_array(np.asarray(farmer_ids, dtype=object))
    return (hashed % np.uint64(partitions)).astype(np.int64)


def index_series_on(
    runner: DaskRunner, data_dir: Path | str, scenes: pd.DataFrame, fields: FieldSet
) -> pd.DataFrame:
    """`build_index_series` with groups of scenes as tasks; workers read the scenes from
    `data_dir`, which they must see (shared or object storage)."""
    ordered = scenes.sort_values(["acquired_at", "scene_id"], ignore_index=True)
    groups = [
        ordered.iloc[i : i + SCENES_PER_TASK] for i in range(0, len(ordered), SCENES_PER_TASK)
    ]
    if not groups:
        return pd.DataFrame(columns=list(SERIES_COLUMNS))
    client = runner.client
    shared = client.scatter(fields, broadcast=True)
    parts = client.gather(
        client.map(partial(build_index_series, str(data_dir)), groups, fields=shared, pure=False)
    )
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=list(SERIES_COLUMNS))
    series = pd.concat(parts, ignore_index=True)[list(SERIES_COLUMNS)]
    return series.sort_values(["field_id", "acquired_at", "scene_id"], ignore_index=True)


def _partition_features(
    inputs: Inputs, applications: pd.DataFrame, reference: Reference
) -> pd.DataFrame:
    built = build_features(inputs, applications.reset_index(drop=True), reference=reference)
    built.index = applications.index
    return built


def features_on(
    runner: DaskRunner,
    inputs: Inputs,
    applications: pd.DataFrame,
    *,
    reference: Reference,
    partitions: int | None = None,
) -> pd.DataFrame:
    """`build_features` over farmer partitions on the cluster; rows in input order.

    Each partition gets only its farmers' rows (and their co-ops' contracts); the reference
    tables, which span all farmers, go to every worker once.
    """
    client = runner.client
    partitions = partitions or 2 * runner.workers
    apps = applications.reset_index(drop=True)
    part = farmer_partition(apps["farmer_id"], partitions)
    shared = client.scatter(reference, broadcast=True)
    futures = []
    for p in range(partitions):
        mine = apps[part == p]
        if len(mine):
            data = restrict_to_farmers(inputs, mine["farmer_id"].unique())
            # scattered, not embedded: the task graph stays small whatever the partition
            sent = client.scatter([data, mine])
            futures.append(client.submit(_partition_features, *sent, shared, pure=False))
    built = pd.concat(client.gather(futures)).sort_index()
    return built.reset_index(drop=True)
