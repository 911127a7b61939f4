"""Satellite imagery: Sentinel-2-like multi-band GeoTIFF scenes of each county.

Each scene holds red, NIR and blue surface reflectance (uint16, scale 1e-4) and a mask
band (0 fill, 1 clear, 2 cloud) in the county's UTM CRS, with nodata 0, tiled and
ZSTD-compressed. Field NDVI follows a double-logistic crop curve scaled by the field's
vigour and cut back by drought after its onset; partly sown and abandoned land looks like
the surrounding grass. Clouds are smooth blobs; some scenes lose a wedge to the swath edge.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from scipy.special import expit

from features.simulate.calendar import day_of_year, extracted_at, season_year
from features.simulate.geography import CountyGrid
from features.simulate.params import CROPS_BY_NAME, WorldParams

SOIL_NDVI = 0.15
REFLECTANCE_SCALE = 1e-4
ACQUISITION_HOUR_UTC = 7.8
BAND_NAMES = ("red", "nir", "blue", "cloud_mask")
MASK_FILL, MASK_CLEAR, MASK_CLOUD = 0, 1, 2


@dataclass
class _FieldState:
    """Per-field inputs of the NDVI curve for one season (index 0 = no field)."""

    planted_day: np.ndarray  # days since epoch
    season_days: np.ndarray
    peak_amplitude: np.ndarray
    vigour: np.ndarray
    fraction: np.ndarray
    loss: np.ndarray
    onset_day: np.ndarray


def crop_curve(days_since_planting: np.ndarray, season_days: np.ndarray) -> np.ndarray:
    """Share of peak canopy: logistic green-up, then logistic senescence."""
    t, length = days_since_planting, season_days
    green_up = expit((t - 0.3 * length) / (0.06 * length))
    senescence = expit(-(t - 0.85 * length) / (0.05 * length))
    return green_up * senescence


def upsample_bilinear(coarse: np.ndarray, height: int, width: int) -> np.ndarray:
    """Stretch a small grid over (height, width) by separable linear interpolation."""
    rows = np.linspace(0, coarse.shape[0] - 1, height)
    cols = np.linspace(0, coarse.shape[1] - 1, width)
    along_cols = np.stack([np.interp(cols, np.arange(coarse.shape[1]), r) for r in coarse])
    return np.stack([np.interp(rows, np.arange(coarse.shape[0]), c) for c in along_cols.T]).T


def grass_ndvi(day_of_year: float) -> float:
    """NDVI of grass and fallow: greener in the long rains (March-June)."""
    return 0.25 + 0.15 * float(np.exp(-(((day_of_year - 120) / 45) ** 2)))


def scene_dates(params: WorldParams, county_number: int) -> list[pd.Timestamp]:
    """Acquisition times over every season's window, up to the extraction date."""
    offset = county_number % params.revisit_days
    end = extracted_at(params)
    dates: list[pd.Timestamp] = []
    for s in range(params.seasons + 1):
        year = season_year(params, s)
        for doy in range(
            params.imagery_start_doy + offset, params.imagery_end_doy + 1, params.revisit_days
        ):
            when = day_of_year(year, doy) + pd.Timedelta(hours=ACQUISITION_HOUR_UTC)
            if when < end:
                dates.append(when)
    return dates


def _field_states(
    fields: pd.DataFrame, field_seasons: pd.DataFrame, county_seasons: pd.DataFrame
) -> dict[int, _FieldState]:
    epoch = pd.Timestamp("1970-01-01", tz="UTC")
    states: dict[int, _FieldState] = {}
    for s, fs in field_seasons.groupby("season"):
        fs = fs.set_index("field_id").reindex(fields.field_id)
        crop = fields.crop.map(CROPS_BY_NAME)
        cs = county_seasons[county_seasons.season == s].set_index("county")
        onset = pd.DatetimeIndex(fields.county.map(cs.drought_onset_at))

        def pad(values: np.ndarray, fill: float = 0.0) -> np.ndarray:
            return np.r_[fill, np.asarray(values, dtype=float)]

        states[int(s)] = _FieldState(
            planted_day=pad((pd.DatetimeIndex(fs.planted_at) - epoch).days),
            season_days=pad(crop.map(lambda c: c.season_days), 100.0),
            peak_amplitude=pad(crop.map(lambda c: c.peak_ndvi) - SOIL_NDVI),
            vigour=pad(fs.canopy_vigour),
            fraction=pad(fs.cultivated_fraction),
            loss=pad(fs.drought_loss),
            onset_day=pad((onset - epoch).days),
        )
    return states


class SceneRenderer:
    """Renders one county's scenes; static per-pixel texture is drawn once."""

    def __init__(self, params: WorldParams, grid: CountyGrid, rng: np.random.Generator) -> None:
        self.params = params
        self.grid = grid
        self.rng = rng
        shape = (grid.height, grid.width)
        self.cultivation_rank = rng.random(shape)  # pixel sown if rank < sown fraction
        self.texture = 1 + 0.05 * rng.standard_normal(shape)
        self.soil = SOIL_NDVI + 0.02 * rng.standard_normal(shape)

    def ndvi(self, when: pd.Timestamp, state: _FieldState) -> np.ndarray:
        """Noise-free NDVI of every pixel at `when`."""
        idx = self.grid.field_index
        day = (when - pd.Timestamp("1970-01-01", tz="UTC")).days
        curve = crop_curve(day - state.planted_day, state.season_days)
        drought = 1 - 0.8 * state.loss * np.clip((day - state.onset_day) / 20, 0, 1)
        amplitude = state.peak_amplitude * state.vigour * drought * curve
        sown = self.cultivation_rank < state.fraction[idx]
        grass = grass_ndvi(when.day_of_year) * self.texture
        crop = self.soil + amplitude[idx] * self.texture
        return np.where(idx == 0, grass, np.where(sown, crop, 0.8 * grass))

    def _clouds(self, when: pd.Timestamp) -> np.ndarray:
        p = self.params
        rainy = 1.4 if 60 <= when.day_of_year <= 150 else 1.0
        u = self.rng.random()
        if u < p.cloud_clear_share / rainy:
            cover = self.rng.uniform(0, 0.03)
        elif u > 1 - p.cloud_heavy_share * rainy:
            cover = self.rng.uniform(0.6, 1.0)
        else:
            cover = self.rng.uniform(0.05, 0.6)
        h, w = self.grid.height, self.grid.width
        coarse = self.rng.standard_normal((max(2, h // 24), max(2, w // 24)))
        smooth = upsample_bilinear(coarse, h, w)
        return smooth > np.quantile(smooth, 1 - cover)

    def _fill(self) -> np.ndarray:
        h, w = self.grid.height, self.grid.width
        if self.rng.random() >= self.params.swath_edge_share:
            return np.zeros((h, w), dtype=bool)
        angle = self.rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:h, 0:w]
        along = (xx - w / 2) * np.cos(angle) + (yy - h / 2) * np.sin(angle)
        return along > self.rng.uniform(0.1, 0.45) * max(h, w)

    def render(self, when: pd.Timestamp, state: _FieldState) -> np.ndarray:
        """Bands (4, h, w) uint16: red, NIR, blue reflectance x 1e4 and the mask."""
        ndvi = np.clip(self.ndvi(when, state), 0.02, 0.95)
        cover = np.clip((ndvi - 0.1) / 0.75, 0, 1)
        red = 0.16 * (1 - 0.75 * cover)
        nir = red * (1 + ndvi) / (1 - ndvi)
        blue = 0.55 * red + 0.012
        bands = np.stack([red, nir, blue])
        bands += self.params.sensor_noise * self.rng.standard_normal(bands.shape)
        cloud = self._clouds(when)
        bands[:, cloud] = np.array([0.30, 0.34, 0.36])[:, None] + 0.02 * self.rng.standard_normal(
            (3, int(cloud.sum()))
        )
        dn = np.clip(np.round(bands / REFLECTANCE_SCALE), 1, 65_535).astype(np.uint16)
        mask = np.where(cloud, MASK_CLOUD, MASK_CLEAR).astype(np.uint16)
        out = np.concatenate([dn, mask[None]])
        out[:, self._fill()] = MASK_FILL
        return out


def write_scene(path: Path, bands: np.ndarray, grid: CountyGrid, when: pd.Timestamp) -> None:
    """Write one scene as a tiled, compressed GeoTIFF with band names and nodata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": 4,
        "dtype": "uint16",
        "crs": f"EPSG:{grid.epsg}",
        "transform": grid.transform,
        "nodata": 0,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "zstd",
        "predictor": 2,
        "interleave": "band",
    }
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(bands)
        for i, name in enumerate(BAND_NAMES, start=1):
            ds.set_band_description(i, name)
        ds.update_tags(
            ACQUISITION_DATETIME=when.isoformat(),
            PLATFORM="simulated-S2",
            REFLECTANCE_SCALE=str(REFLECTANCE_SCALE),
            MASK_VALUES="0=fill,1=clear,2=cloud",
        )


def iter_county_scenes(
    params: WorldParams,
    grid: CountyGrid,
    county_number: int,
    fields: pd.DataFrame,
    field_seasons: pd.DataFrame,
    county_seasons: pd.DataFrame,
    rng: np.random.Generator,
) -> Iterator[tuple[pd.Timestamp, np.ndarray]]:
    """Yield (acquisition time, bands) for every scene of one county."""
    states = _field_states(fields, field_seasons, county_seasons)
    renderer = SceneRenderer(params, grid, rng)
    for when in scene_dates(params, county_number):
        yield when, renderer.render(when, states[when.year - params.first_year])


def scene_row(scene_id: str, when: pd.Timestamp, rel_path: str) -> dict[str, object]:
    """The scenes-table row describing a written scene."""
    return {
        "scene_id": scene_id,
        "acquired_at": when,
        "path": rel_path,
        "red_band": 1,
        "nir_band": 2,
        "blue_band": 3,
        "mask_band": 4,
        "mask_clear_values": str(MASK_CLEAR),
        "nodata": None,
        "reflectance_scale": REFLECTANCE_SCALE,
        "reflectance_offset": 0.0,
    }
