"""Vegetation indices from surface reflectance (arrays of floats, any shape).

NDVI = (NIR - red) / (NIR + red). EVI = 2.5 (NIR - red) / (NIR + 6 red - 7.5 blue + 1)
(Huete et al. 2002); without a blue band, the two-band EVI2 = 2.5 (NIR - red) /
(NIR + 2.4 red + 1) (Jiang et al. 2008) stands in for it.
"""

from __future__ import annotations

import numpy as np


def ndvi(red: np.ndarray, nir: np.ndarray) -> np.ndarray:
    """Normalised difference vegetation index; NaN where both bands are zero."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (nir - red) / (nir + red)


def evi(red: np.ndarray, nir: np.ndarray, blue: np.ndarray | None = None) -> np.ndarray:
    """Enhanced vegetation index (EVI2 when `blue` is None); NaN where undefined."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if blue is None:
            return 2.5 * (nir - red) / (nir + 2.4 * red + 1.0)
        return 2.5 * (nir - red) / (nir + 6.0 * red - 7.5 * blue + 1.0)
