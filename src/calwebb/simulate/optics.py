"""Telescope optics: detector distortion to V2/V3, the pointing to the sky, pixel areas, flats.

The simulator's own geometry, written with plain numpy so that it checks the pipeline's
gwcs-based ``assign_wcs`` rather than sharing code with it. The same objects write the
DISTORTION, FILTEROFFSET, AREA and FLAT references, so a perfect Stage 2 recovers the
truth.

Conventions (dataformats.md §6.4, stage2.md §4.1): detector pixels are 0-based full-frame
science coordinates; a filter offset is added to them before the distortion polynomial;
V2/V3 are in arcsec; velocity aberration scales V2/V3 about the reference point; the
attitude rotates the V frame so that (V2_REF, V3_REF) lands on (RA_REF, DEC_REF) with the
V3 axis at position angle ROLL_REF (east of north).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from astropy.modeling import bind_bounding_box, fitting, models
from astropy.utils.exceptions import AstropyUserWarning

from calwebb.simulate.instruments import Detector

ARCSEC_PER_RADIAN = 206264.80624709636
DEGREE = np.pi / 180.0
DEGREE_OF_DISTORTION = 3
DEGREE_OF_INVERSE = 5
#: per filter (column, row) pixel offsets the FILTEROFFSET reference carries
FILTER_OFFSETS = {"F070W": (0.05, -0.03), "F090W": (0.04, -0.02), "F115W": (0.02, 0.01),
                  "F150W": (0.0, 0.0), "F200W": (0.12, -0.08), "F277W": (-0.06, 0.04),
                  "F356W": (0.0, 0.0), "F444W": (0.09, 0.11), "F560W": (0.1, -0.2),
                  "F770W": (0.0, 0.0), "F1000W": (-0.15, 0.05), "F1500W": (0.2, 0.1),
                  "F2100W": (-0.1, -0.25)}


def _powers(degree: int) -> list[tuple[int, int]]:
    """(i, j) exponents of x^i y^j in astropy ``Polynomial2D`` coefficient order."""
    terms = [(i, 0) for i in range(degree + 1)]
    terms += [(0, j) for j in range(1, degree + 1)]
    terms += [(i, j) for i in range(1, degree) for j in range(1, degree) if i + j <= degree]
    return terms


@dataclass(frozen=True)
class Distortion:
    """Full-frame detector pixel (0-based) → V2/V3 (arcsec): a cubic in offsets from the
    reference pixel, ``v = Σ c_ij u^i w^j`` for each of V2 and V3."""

    detector: Detector
    x_ref: float  # 0-based reference pixel (maps to V2_REF, V3_REF)
    y_ref: float
    v2: dict[tuple[int, int], float]  # (i, j) -> coefficient, arcsec per pixel^(i+j)
    v3: dict[tuple[int, int], float]

    @classmethod
    def of(cls, detector: Detector) -> Distortion:
        """The simulated distortion of a detector: its scale, V3IdlYAngle, parity −1 and a
        few-pixel quadratic/cubic field distortion drawn from the detector name."""
        ny, nx = detector.full_shape
        x_ref, y_ref = (nx - 1) / 2.0, (ny - 1) / 2.0
        rng = np.random.default_rng(sum(map(ord, detector.name)))
        half = max(nx, ny) / 2.0
        scale = detector.pixel_scale
        ideal_x = {(1, 0): scale * 1.002, (0, 1): scale * 0.001}
        ideal_y = {(1, 0): -scale * 0.0015, (0, 1): scale * 0.998}
        for power in _powers(DEGREE_OF_DISTORTION):
            order = sum(power)
            if order < 2:
                continue
            size = {2: 5.0, 3: 2.0}[order]  # pixels of displacement at the field edge
            ideal_x[power] = scale * rng.uniform(-size, size) / half ** order
            ideal_y[power] = scale * rng.uniform(-size, size) / half ** order
        angle, parity = detector.v3_yangle * DEGREE, -1
        v2 = {power: parity * ideal_x.get(power, 0.0) * np.cos(angle)
              + ideal_y.get(power, 0.0) * np.sin(angle) for power in ideal_x}
        v3 = {power: -parity * ideal_x.get(power, 0.0) * np.sin(angle)
              + ideal_y.get(power, 0.0) * np.cos(angle) for power in ideal_x}
        v2[(0, 0)], v3[(0, 0)] = detector.v2_ref, detector.v3_ref
        return cls(detector, x_ref, y_ref, v2, v3)

    def v2v3(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        u, w = np.asarray(x, float) - self.x_ref, np.asarray(y, float) - self.y_ref
        return (sum(c * u ** i * w ** j for (i, j), c in self.v2.items()),
                sum(c * u ** i * w ** j for (i, j), c in self.v3.items()))

    def jacobian(self, x, y) -> np.ndarray:
        """d(V2, V3)/d(x, y) as [..., 2, 2] (arcsec per pixel)."""
        u, w = np.asarray(x, float) - self.x_ref, np.asarray(y, float) - self.y_ref

        def partials(coefficients):
            du = sum(c * i * u ** (i - 1) * w ** j for (i, j), c in coefficients.items() if i)
            dw = sum(c * j * u ** i * w ** (j - 1) for (i, j), c in coefficients.items() if j)
            return du + 0 * u, dw + 0 * u

        row2, row3 = partials(self.v2), partials(self.v3)
        return np.stack([np.stack(row2, -1), np.stack(row3, -1)], -2)

    def pixel_area(self, x, y) -> np.ndarray:
        """Solid angle of each pixel in arcsec² (|det J|)."""
        return np.abs(np.linalg.det(self.jacobian(x, y)))

    def pixel(self, v2, v3, iterations: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """Inverse by Newton iteration from the linear solution (exact to ~1e-10 pixel)."""
        v2, v3 = np.asarray(v2, float), np.asarray(v3, float)
        x = np.full(v2.shape, self.x_ref)
        y = np.full(v2.shape, self.y_ref)
        for _ in range(iterations):
            p2, p3 = self.v2v3(x, y)
            jac = self.jacobian(x, y)
            step = np.linalg.solve(jac, np.stack([v2 - p2, v3 - p3], -1)[..., None])[..., 0]
            x, y = x + step[..., 0], y + step[..., 1]
        return x, y

    def nominal_area_arcsec2(self) -> float:
        return float(self.pixel_area(self.x_ref, self.y_ref))

    def astropy_model(self) -> models.Model:
        """The transform the DISTORTION reference carries, with a fitted polynomial inverse."""
        forward = (models.Shift(-self.x_ref) & models.Shift(-self.y_ref)) | models.Mapping(
            (0, 1, 0, 1)) | (_polynomial(self.v2) & _polynomial(self.v3))
        ny, nx = self.detector.full_shape
        y, x = np.mgrid[-1:ny + 1:16j, -1:nx + 1:16j]
        v2, v3 = self.v2v3(x, y)
        fitter = fitting.LinearLSQFitter()
        d2, d3 = v2 - self.detector.v2_ref, v3 - self.detector.v3_ref
        with warnings.catch_warnings():  # powers of arcsec offsets: conditioned well enough
            warnings.simplefilter("ignore", AstropyUserWarning)
            inverse_x = fitter(models.Polynomial2D(DEGREE_OF_INVERSE), d2, d3, x - self.x_ref)
            inverse_y = fitter(models.Polynomial2D(DEGREE_OF_INVERSE), d2, d3, y - self.y_ref)
        inverse = (models.Shift(-self.detector.v2_ref) & models.Shift(-self.detector.v3_ref)) \
            | models.Mapping((0, 1, 0, 1)) | (inverse_x & inverse_y) \
            | (models.Shift(self.x_ref) & models.Shift(self.y_ref))
        forward.inverse = inverse
        bind_bounding_box(forward, ((-0.5, nx - 0.5), (-0.5, ny - 0.5)), order="F")
        forward.name = f"{self.detector.name.lower()}_distortion"
        return forward


def _polynomial(coefficients: dict[tuple[int, int], float]) -> models.Polynomial2D:
    polynomial = models.Polynomial2D(DEGREE_OF_DISTORTION)
    for (i, j), value in coefficients.items():
        setattr(polynomial, f"c{i}_{j}", value)
    return polynomial


@dataclass(frozen=True)
class Pointing:
    """Where the V frame points: (V2_REF, V3_REF) → (RA_REF, DEC_REF), V3 at PA ROLL_REF."""

    ra_ref: float
    dec_ref: float
    roll_ref: float
    v2_ref: float  # arcsec
    v3_ref: float
    va_scale: float = 1.0

    def _attitude(self) -> np.ndarray:
        """Active rotations Rz(ra)·Ry(−dec)·Rx(−roll)·Ry(v3ref)·Rz(−v2ref)."""
        return (_rotate("z", self.ra_ref) @ _rotate("y", -self.dec_ref)
                @ _rotate("x", -self.roll_ref) @ _rotate("y", self.v3_ref / 3600.0)
                @ _rotate("z", -self.v2_ref / 3600.0))

    def sky(self, v2, v3) -> tuple[np.ndarray, np.ndarray]:
        """RA, Dec (deg) of V2/V3 (arcsec) after velocity aberration."""
        v2 = self.va_scale * np.asarray(v2, float) + (1 - self.va_scale) * self.v2_ref
        v3 = self.va_scale * np.asarray(v3, float) + (1 - self.va_scale) * self.v3_ref
        vector = np.einsum("ij,j...->i...", self._attitude(), _unit(v2 / 3600.0, v3 / 3600.0))
        return _angles(vector)

    def v2v3(self, ra, dec) -> tuple[np.ndarray, np.ndarray]:
        """The inverse of :meth:`sky`."""
        v2, v3 = _angles(np.einsum("ji,j...->i...", self._attitude(), _unit(ra, dec)))
        v2 = np.where(v2 > 180, v2 - 360, v2) * 3600.0
        v3 = v3 * 3600.0
        return ((v2 - (1 - self.va_scale) * self.v2_ref) / self.va_scale,
                (v3 - (1 - self.va_scale) * self.v3_ref) / self.va_scale)


def _rotate(axis: str, angle_deg: float) -> np.ndarray:
    c, s = np.cos(angle_deg * DEGREE), np.sin(angle_deg * DEGREE)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _unit(lon_deg, lat_deg) -> np.ndarray:
    lon, lat = np.asarray(lon_deg, float) * DEGREE, np.asarray(lat_deg, float) * DEGREE
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])


def _angles(vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lon = np.arctan2(vector[1], vector[0]) / DEGREE % 360.0
    lat = np.arcsin(np.clip(vector[2], -1, 1)) / DEGREE
    return lon, lat


@dataclass(frozen=True)
class ExposureGeometry:
    """One exposure's pixel ↔ sky mapping: subarray, filter offset, distortion, pointing."""

    distortion: Distortion
    pointing: Pointing
    xstart: int  # 1-based subarray origin
    ystart: int
    filter_offset: tuple[float, float] = (0.0, 0.0)

    @classmethod
    def from_model(cls, model) -> ExposureGeometry:
        """The simulator's truth geometry of a product, rebuilt from its header keywords."""
        from calwebb.simulate.instruments import detector as find_detector
        from calwebb.simulate.instruments import nominal_filter

        meta = model.meta
        wcsinfo = meta.wcsinfo
        pointing = Pointing(wcsinfo.ra_ref, wcsinfo.dec_ref, wcsinfo.roll_ref, wcsinfo.v2_ref,
                            wcsinfo.v3_ref, meta.velocity_aberration.scale_factor or 1.0)
        return cls(Distortion.of(find_detector(meta.instrument.detector)), pointing,
                   meta.subarray.xstart or 1, meta.subarray.ystart or 1,
                   FILTER_OFFSETS.get(nominal_filter(meta.instrument.name,
                                                     meta.instrument.filter,
                                                     meta.instrument.pupil), (0.0, 0.0)))

    def _full_frame(self, x, y):
        return (np.asarray(x, float) + self.xstart - 1 + self.filter_offset[0],
                np.asarray(y, float) + self.ystart - 1 + self.filter_offset[1])

    def sky(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """RA, Dec (deg) of 0-based subarray pixels."""
        return self.pointing.sky(*self.distortion.v2v3(*self._full_frame(x, y)))

    def pixel(self, ra, dec) -> tuple[np.ndarray, np.ndarray]:
        """0-based subarray pixel of sky positions."""
        x, y = self.distortion.pixel(*self.pointing.v2v3(ra, dec))
        return (x - self.xstart + 1 - self.filter_offset[0],
                y - self.ystart + 1 - self.filter_offset[1])

    def relative_area(self, shape: tuple[int, int]) -> np.ndarray:
        """Pixel solid angle over the nominal one for a subarray of ``shape``."""
        y, x = np.indices(shape, dtype=float)
        return (self.distortion.pixel_area(*self._full_frame(x, y))
                / self.distortion.nominal_area_arcsec2()).astype(np.float32)


def quantum_efficiency(detector: Detector, filter_name: str, seed: int) -> np.ndarray:
    """Relative pixel response: 2 % pixel-to-pixel scatter on a smooth ±3 % gradient."""
    rng = np.random.default_rng([seed, sum(map(ord, filter_name.upper()))])
    ny, nx = detector.full_shape
    y, x = np.mgrid[0:ny, 0:nx]
    smooth = 1 + 0.03 * (x / nx - 0.5) - 0.02 * (y / ny - 0.5) ** 2
    return (smooth * rng.normal(1.0, 0.02, (ny, nx))).astype(np.float32)
