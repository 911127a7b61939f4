"""Benchmark: cloud-masked zonal NDVI statistics, field-scenes per second, against peers.

One generated 4-band scene (red, NIR, blue, cloud mask; uint16, tiled, ZSTD) of SIZE x SIZE
pixels at 10 m in UTM, with FIELDS polygons in WGS 84 laid over it. The project's kernel
reads the bands, masks clouds and fill, computes NDVI and EVI and reprojects the polygons
itself, every run. The peers get it easier: an NDVI raster computed in advance (invalid
pixels as nodata) and polygons already in the scene's CRS. rasterstats uses the same
centre-of-pixel rule; exactextract weights pixels by exact coverage (a different rule,
reported for speed only). Medians of the repeats; ratios are measured in the same run.

    python benchmarks/bench_zonal.py [--size 5000] [--fields 5000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
import rasterio
import shapely
from affine import Affine
from pyproj import CRS, Transformer
from timing import timed

from features.satellite.scenes import Scene, SceneBands
from features.satellite.zonal import FieldSet, zonal_stats

CRS_UTM = "EPSG:32736"


def write_scene(
    path: Path,
    size: int,
    rng: np.random.Generator,
    *,
    transform: Affine | None = None,
    crs: str = CRS_UTM,
) -> Affine:
    """A scene with smooth fields of reflectance and cloud blobs (band 4: 1 clear, 2
    cloud), 10 m pixels in UTM unless `transform` says otherwise; returns its transform."""
    transform = transform or Affine(10, 0, 300_000, 0, -10, 9_900_000)
    coarse = rng.random((size // 50 + 2, size // 50 + 2))
    smooth = np.kron(coarse, np.ones((50, 50)))[:size, :size]
    red = (0.03 + 0.12 * (1 - smooth)) * 10_000
    nir = (0.15 + 0.40 * smooth) * 10_000
    blue = np.full_like(red, 500)
    clouds = np.kron(rng.random((size // 100 + 1, size // 100 + 1)) < 0.2, np.ones((100, 100)))
    mask = np.where(clouds[:size, :size], 2, 1)
    profile = {
        "driver": "GTiff", "width": size, "height": size, "count": 4, "dtype": "uint16",
        "crs": crs, "transform": transform, "nodata": 0, "tiled": True,
        "blockxsize": 256, "blockysize": 256, "compress": "zstd",
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as ds:
        for i, band in enumerate((red, nir, blue, mask), start=1):
            ds.write(band.astype("uint16"), i)
    return transform


def write_ndvi(scene: Path, out: Path) -> None:
    """The peers' input: NDVI of clear pixels, -999 elsewhere, same grid and tiling."""
    with rasterio.open(scene) as ds:
        red, nir, _, mask = ds.read().astype(np.float32)
        profile = ds.profile | {"count": 1, "dtype": "float32", "nodata": -999.0}
    ndvi = np.where(mask == 1, (nir - red) / (nir + red), -999.0).astype(np.float32)
    with rasterio.open(out, "w", **profile) as ds:
        ds.write(ndvi, 1)


def make_fields(n: int, size: int, transform: Affine, rng: np.random.Generator) -> list:
    """n quadrilaterals, one per grid cell, in the scene's CRS."""
    per_side = int(np.ceil(np.sqrt(n)))
    cell = size / per_side
    polys = []
    for k in range(n):
        r, c = divmod(k, per_side)
        corners = []
        for dc, dr in ((0.1, 0.1), (0.9, 0.15), (0.85, 0.9), (0.15, 0.85)):
            jitter = rng.uniform(-0.08, 0.08, 2)
            corners.append(transform @ ((c + dc + jitter[0]) * cell, (r + dr + jitter[1]) * cell))
        polys.append(shapely.Polygon(corners))
    return polys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=5000)
    parser.add_argument("--fields", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    tmp = Path(tempfile.mkdtemp())
    scene, ndvi = tmp / "scene.tif", tmp / "ndvi.tif"
    transform = write_scene(scene, args.size, rng)
    write_ndvi(scene, ndvi)
    utm = make_fields(args.fields, args.size, transform, rng)
    to_lonlat = Transformer.from_crs(CRS_UTM, 4326, always_xy=True)
    lonlat = shapely.transform(utm, lambda xy: np.column_stack(to_lonlat.transform(*xy.T)))
    ids = np.array([f"P{i}" for i in range(args.fields)])
    features = [
        {
            "type": "Feature",
            "properties": {"field_id": str(i)},
            "geometry": shapely.geometry.mapping(p),
        }
        for i, p in zip(ids, utm, strict=True)
    ]
    bands = SceneBands(scene, 1, 2, 3, 4, (1,), 0, 1e-4)

    def ours() -> None:
        fields = FieldSet(ids, lonlat, CRS.from_epsg(4326))  # reprojection included
        with Scene(bands) as s:
            zonal_stats(s, fields)

    def with_rasterstats() -> None:
        import rasterstats

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rasterstats.zonal_stats(utm, str(ndvi), stats=["mean", "count"], nodata=-999.0)

    def with_exactextract(strategy: str) -> None:
        from exactextract import exact_extract

        with rasterio.open(ndvi) as ds:
            exact_extract(ds, features, ["mean", "count"], output="pandas", strategy=strategy)

    n = args.fields
    results = {"project kernel (from raw bands, WGS 84 polygons)": timed(ours, args.repeats)[0]}
    results["exactextract (feature-sequential, NDVI given)"] = timed(
        lambda: with_exactextract("feature-sequential"), args.repeats
    )[0]
    results["exactextract (raster-sequential, NDVI given)"] = timed(
        lambda: with_exactextract("raster-sequential"), args.repeats
    )[0]
    results["rasterstats (NDVI given)"] = timed(with_rasterstats, args.repeats)[0]
    print(f"scene {args.size}x{args.size} px, {n:,} fields, median of {args.repeats}")
    project = "project kernel (from raw bands, WGS 84 polygons)"
    base = results[project]
    for name, seconds in results.items():
        ratio = "" if name == project else f"  project is {seconds / base:5.1f}x faster"
        print(f"  {name:<52} {seconds:8.3f} s  {n / seconds:10,.0f} field-scenes/s{ratio}")


if __name__ == "__main__":
    main()
