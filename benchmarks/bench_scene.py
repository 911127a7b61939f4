"""A new scene over every field of a store: how long after its commit decisions see it.

Writes a SIZE x SIZE px 4-band scene (tiled, ZSTD; red, NIR, blue, cloud mask) whose
footprint covers every field of a private copy of STORE, in the CRS of the store's own
scenes, and appends it through the arrival log as one scenes batch (`append_file`: the row
validated, the GeoTIFF opened and copied into the store). A follower then loads the store
as of the commit from the data it had (zonal statistics of the new scene over every field,
those fields' season metrics computed again, the rows of the farmers whose fields it covers
built as of the instant); its peer is the same load read whole, timed in the same round, the two in
alternating order. A decision sees the scene one poll (`follow_log_seconds`) plus the
follower's load after the commit. Medians of `--rounds`; issue 18 asks for 3 s at
5,000 x 5,000 px over 5,000 fields.

    python benchmarks/bench_scene.py --data STORE [--size 5000] [--rounds 3]

STORE is a store with its features built (`agricredit data load WORLD --data STORE`, then
`agricredit features build --data STORE`).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
import shapely
from affine import Affine
from bench_reload import followed_and_whole
from bench_zonal import write_scene
from pyproj import Transformer

from features import clock
from features.arrival_log import ArrivalLog
from features.ingest import append_file
from scoring.config import Settings
from scoring.decide.data import FeatureSource


def covering_transform(
    store: Path, tables: dict[str, pd.DataFrame], size: int
) -> tuple[Affine, str]:
    """A grid of `size` x `size` square pixels over every field, in the CRS of the store's
    first scene."""
    with rasterio.open(store / tables["scenes"]["path"].iloc[0]) as ds:
        crs = ds.crs.to_string()
    fields = tables["fields"]
    to_scene = Transformer.from_crs(fields.attrs["crs"], crs, always_xy=True)
    minx, miny, maxx, maxy = shapely.total_bounds(fields["geometry"].to_numpy())
    xs, ys = to_scene.transform([minx, maxx, minx, maxx], [miny, miny, maxy, maxy])
    pad = 100.0  # metres, so no field touches the edge
    left, top = min(xs) - pad, max(ys) + pad
    pixel = max(max(xs) - min(xs), max(ys) - min(ys)) + 2 * pad
    return Affine(pixel / size, 0, left, 0, -pixel / size, top), crs


def scene_batch(folder: Path, size: int, transform: Affine, crs: str, n: int) -> Path:
    """A scenes batch file naming one new GeoTIFF beside it."""
    folder.mkdir(parents=True)
    write_scene(folder / "scene.tif", size, np.random.default_rng(n), transform=transform, crs=crs)
    row = pd.DataFrame({
        "scene_id": [f"BENCH-SCENE-{n}"],
        "acquired_at": [clock.now() - pd.Timedelta(days=1)],
        "path": ["scene.tif"], "red_band": [1], "nir_band": [2], "blue_band": [3],
        "mask_band": [4], "mask_clear_values": ["1"], "reflectance_scale": [1e-4],
        "reflectance_offset": [0.0], "nodata": [0.0],
    })  # fmt: skip
    row.to_parquet(folder / "scenes.parquet", index=False)
    return folder / "scenes.parquet"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a store with features built")
    parser.add_argument("--size", type=int, default=5000, help="the scene's width and height")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    poll = Settings().follow_log_seconds
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        shutil.copytree(args.data, store)
        log = ArrivalLog(store)
        tables = log.tables()
        transform, crs = covering_transform(store, tables, args.size)
        source = FeatureSource.load(store, live=True, as_of=clock.now(), versions=log.versions())
        appended, followed, whole = [], [], []
        for i in range(args.rounds):
            batch = scene_batch(Path(tmp) / f"batch-{i}", args.size, transform, crs, i)
            started = time.perf_counter()
            append_file(store, "scenes", batch)
            appended.append(time.perf_counter() - started)
            source, took, took_whole = followed_and_whole(store, log, source, i)
            followed.append(took)
            whole.append(took_whole)
            series = source.inputs.series
            covered = series.loc[series["scene_id"] == f"BENCH-SCENE-{i}", "field_id"].nunique()
            print(f"  round {i + 1}: append {appended[-1]:.2f} s, follower's load "
                  f"{followed[-1]:.2f} s (whole {whole[-1]:.2f} s), {covered:,} fields covered",
                  flush=True)  # fmt: skip
    a, f, w = (statistics.median(x) for x in (appended, followed, whole))
    fields = len(source.inputs.fields)
    print(f"{args.size:,} x {args.size:,} px scene over {fields:,} fields "
          f"({len(source.inputs.farmers):,} farmers), median of {args.rounds}: append {a:.2f} s; "
          f"follower's load {f:.2f} s against {w:.2f} s whole ({w / f:.1f}x faster); "
          f"in decisions at most {poll:g} s + {f:.2f} s = {poll + f:.2f} s after the commit; "
          "rows equal")  # fmt: skip


if __name__ == "__main__":
    main()
