"""Synthetic skymatch inputs: dithered distorted images of one sky with known sky levels."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "resample"))

from resample_scenes import DEC0, RA0, distorted_wcs, gaussian_scene, image_model  # noqa: E402

SHAPE = (80, 90)
#: sky positions (arcsec east, north of RA0/DEC0) and peaks of a few bright sources
SOURCES = ((0.5, 0.8, 40.0), (-2.0, -1.5, 25.0), (2.5, -2.2, 60.0), (-1.2, 2.6, 30.0))


def offset_wcs(east_arcsec: float, north_arcsec: float, angle: float = 0.0,
               distortion: float = 2e-5, shape=SHAPE):
    """A distorted TAN gwcs centred ``east``/``north`` arcsec from (RA0, DEC0)."""
    ra = RA0 + east_arcsec / 3600.0 / math.cos(math.radians(DEC0))
    return distorted_wcs(shape, crval=(ra, DEC0 + north_arcsec / 3600.0), angle=angle,
                         distortion=distortion)


def exposure(sky: float, east: float, north: float, index: int, angle: float = 0.0,
             group: str | None = None, noise: float = 0.02, seed: int | None = None,
             shape=SHAPE, sources: bool = True, detector: str = "nrca1"):
    """An ImageModel of constant ``sky`` + Gaussian noise + the common bright sources."""
    wcs = offset_wcs(east, north, angle, shape=shape)
    rng = np.random.default_rng(index if seed is None else seed)
    data = np.full(shape, sky, np.float32) + rng.normal(0.0, noise, shape).astype(np.float32)
    if sources:
        for dx, dy, peak in SOURCES:
            ra = RA0 + dx / 3600.0 / math.cos(math.radians(DEC0))
            data += gaussian_scene(wcs, shape, ra, DEC0 + dy / 3600.0, sigma_arcsec=0.25,
                                   peak=peak)
    group = group or f"jw01234001001_01101_{index:05d}"
    name = f"{group}_{detector}_cal.fits"
    return image_model(data, wcs, name=name, group_id=group)


def three_overlapping(skies=(1.0, 1.5, 2.2), **kwargs):
    """Three exposures offset by a few arcsec (large overlaps) with the given skies."""
    placements = ((0.0, 0.0, 0.0), (2.0, 1.0, 10.0), (-1.5, 2.0, -20.0))
    return [exposure(sky, east, north, index + 1, angle=angle, **kwargs)
            for index, (sky, (east, north, angle)) in enumerate(zip(skies, placements,
                                                                    strict=True))]


def levels_of(library):
    """(BKGLEVEL, BKGSUB, BKGMETH, S_SKYMAT, SCI) of every member of ``library``."""
    out = []
    with library:
        for index in range(len(library)):
            model = library.borrow(index)
            background = model.meta.background
            out.append((background.level, background.subtracted, background.method,
                        model.meta.cal_step.skymatch, np.array(model.data)))
            library.shelve(model, index, modify=False)
    return out
