"""An observation: exposures on a dither pattern, their headers, reference files and truth.

Imaging (NIRCam, MIRI, NIRISS): a sky of stars and galaxies seen through the optics; NIRSpec:
multi-object spectra on the detector, for Stage 1 (no optics references or associations).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import Table
from astropy.time import Time

from calwebb import datamodels
from calwebb.associations import asn_from_list
from calwebb.errors import SimulationError
from calwebb.simulate import instruments
from calwebb.simulate.detector import cut, make_detector, simulate_ramps
from calwebb.simulate.optics import (
    FILTER_OFFSETS,
    Distortion,
    ExposureGeometry,
    Pointing,
    quantum_efficiency,
)
from calwebb.simulate.references import (
    write_cache,
    write_catalog_references,
    write_detector_references,
    write_optics_references,
)
from calwebb.simulate.sky import dn_per_s, make_catalog, make_spectra, render, render_spectra

ARCSEC2_PER_SR = 206264.80624709636 ** 2
#: NIRSpec: count rate of the light scattered over the whole detector (DN/s)
SPECTROSCOPIC_BACKGROUND_DN_S = 0.02
VA_SCALE = 1.0000312  # velocity aberration scale (about Earth's orbital speed / c · cos)


@dataclass
class ObservationConfig:
    """What to observe and how; the defaults make a small, fast NIRCam observation."""

    instrument: str = "NIRCAM"
    detectors: tuple[str, ...] = ("NRCA1",)
    filter: str = "F200W"
    pupil: str = "CLEAR"
    grating: str = "PRISM"  # NIRSpec
    readpatt: str = "MEDIUM8"
    ngroups: int = 6
    nints: int = 1
    subarray: str = "SUB320"
    n_dithers: int = 2
    dither_step_arcsec: float = 0.7
    ra: float = 53.1625
    dec: float = -27.7914
    roll: float = 0.0
    n_stars: int = 40  # NIRSpec: point-source spectra
    n_galaxies: int = 15  # NIRSpec: extended-source spectra
    background_mjy_sr: float = 0.15
    cosmic_ray_rate: float = 2e-5  # hits per pixel per second
    pointing_jitter_mas: float = 0.0  # σ of each exposure's header pointing error (RA, Dec)
    roll_jitter_arcsec: float = 0.0  # σ of each exposure's header roll error
    ipc_alpha: float = 0.0  # inter-pixel capacitance: coupling to each nearest neighbour
    seed: int = 1
    program: str = "01234"
    observation: int = 1
    date: str = "2024-03-01T12:00:00"


@dataclass
class SimulatedObservation:
    uncal_files: list[Path] = field(default_factory=list)
    truth_rates: list[Path] = field(default_factory=list)
    truth_sources: list[Path] = field(default_factory=list)
    reference_files: list[Path] = field(default_factory=list)
    truth_catalog: Path | None = None
    crds_path: Path | None = None
    level2_asn: Path | None = None
    level3_asn: Path | None = None
    cosmic_rays: dict[str, list] = field(default_factory=dict)


@dataclass
class SimulatedExposure:
    """One exposure in memory: the raw ramps, the rate a perfect Stage 1 recovers (DN/s,
    with the true pointing in its headers), the sources with their true pixel positions in
    this exposure (0-based x, y) and the cosmic rays (integration, group, y, x, electrons)."""

    uncal: datamodels.Level1bModel
    truth_rate: datamodels.ImageModel
    sources: Table
    cosmic_rays: list
    basename: str


@dataclass
class ReferenceSet:
    """Reference files written for the simulated detectors and the CRDS cache selecting them."""

    files: list[Path]
    crds_path: Path


def _config(config: ObservationConfig | None, options: dict) -> ObservationConfig:
    return replace(config or ObservationConfig(), **options)


def observation(output_dir: str | Path, config: ObservationConfig | None = None, *,
                crds_path: str | Path | None = None, **options) -> SimulatedObservation:
    """Simulate an observation into ``output_dir``: ``config`` (default
    ``ObservationConfig()``) with ``options`` (its field names) replaced."""
    return simulate_observation(_config(config, options), output_dir, crds_path)


def exposure(config: ObservationConfig | None = None, *, detector: str | None = None,
             dither: int = 0, catalog: Table | None = None,
             rng: np.random.Generator | None = None, **options) -> SimulatedExposure:
    """One exposure of ``detector`` (default: the configuration's first) at dither position
    ``dither``, in memory. ``catalog``: the sky (default: the configuration's own random sky
    around the first dither's field). Deterministic: its random draws come from ``rng``, by
    default a generator seeded by (seed, detector, dither)."""
    config = _config(config, options)
    name = (detector or config.detectors[0]).upper()
    if name not in [item.upper() for item in config.detectors]:
        config = replace(config, detectors=(*config.detectors, name))
    index = [item.upper() for item in config.detectors].index(name)
    if catalog is None:
        catalog = _sky(config, np.random.default_rng(config.seed))
    if rng is None:
        rng = np.random.default_rng([config.seed, index, dither])
    return _DetectorSetup(config, index).exposure(catalog, dither, rng)


def reference_set(output_dir: str | Path, config: ObservationConfig | None = None, *,
                  crds_path: str | Path | None = None, **options) -> ReferenceSet:
    """Write every reference file of the configuration's detectors (built from the same
    detector truth as its exposures) to ``output_dir``/refs and a CRDS cache selecting them
    (``crds_path``, default ``output_dir``/crds)."""
    config = _config(config, options)
    output_dir = Path(output_dir)
    files = []
    for index in range(len(config.detectors)):
        files += _DetectorSetup(config, index).write_references(output_dir / "refs")
    return ReferenceSet(files, write_cache(files, Path(crds_path) if crds_path
                                           else output_dir / "crds"))


def simulate_observation(config: ObservationConfig, output_dir: str | Path,
                         crds_path: str | Path | None = None) -> SimulatedObservation:
    """Write uncal exposures, truth, reference files, a CRDS cache and associations."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    result = SimulatedObservation()
    catalog = _sky(config, rng)
    result.truth_catalog = output_dir / "truth_catalog.ecsv"
    catalog.write(result.truth_catalog, overwrite=True)
    for detector_index in range(len(config.detectors)):
        setup = _DetectorSetup(config, detector_index)
        result.reference_files += setup.write_references(output_dir / "refs")
        for dither in range(config.n_dithers):
            simulated = setup.exposure(catalog, dither, rng)
            path = output_dir / f"{simulated.basename}_uncal.fits"
            simulated.uncal.save(path)
            truth = output_dir / "truth" / f"{simulated.basename}_truth_rate.fits"
            simulated.truth_rate.save(truth)
            sources = output_dir / "truth" / f"{simulated.basename}_truth_sources.ecsv"
            simulated.sources.write(sources, overwrite=True)
            result.uncal_files.append(path)
            result.truth_rates.append(truth)
            result.truth_sources.append(sources)
            result.cosmic_rays[path.name] = simulated.cosmic_rays
    result.crds_path = write_cache(result.reference_files,
                                   Path(crds_path) if crds_path else output_dir / "crds")
    if _spectroscopic(config):
        return result
    rates = [path.name.replace("_uncal", "_rate") for path in result.uncal_files]
    level2 = asn_from_list(rates, rule="DMSLevel2bBase", acid="o001")
    result.level2_asn = level2.save(output_dir / f"jw{config.program}-o001_image2_asn.json")
    cals = [path.name.replace("_uncal", "_cal") for path in result.uncal_files]
    product = f"jw{config.program}-o{config.observation:03d}_t001_" \
              f"{config.instrument.lower()}_{config.filter.lower()}"
    level3 = asn_from_list(cals, product_name=product)
    result.level3_asn = level3.save(output_dir / f"jw{config.program}-o001_image3_asn.json")
    return result


def _spectroscopic(config: ObservationConfig) -> bool:
    return config.instrument.upper() == "NIRSPEC"


def _sky(config: ObservationConfig, rng: np.random.Generator) -> Table:
    """The configuration's random sources around the first detector's field at dither 0
    (NIRSpec: their spectra on the subarray, ``make_spectra``)."""
    instrument = config.instrument.upper()
    if _spectroscopic(config):
        window = instruments.subarray(instrument, config.subarray)
        return make_spectra(config.n_stars, config.n_galaxies, (window[3], window[2]), rng)
    nframes, groupgap = instruments.readout(instrument, config.readpatt)
    window = instruments.subarray(instrument, config.subarray)
    first = instruments.detector(config.detectors[0])
    radius = 0.7 * max(window[2], window[3]) * first.pixel_scale  # covers the field
    geometry = _Exposure(config, first, window, 0, nframes, groupgap).geometry
    centre = geometry.sky((window[2] - 1) / 2.0, (window[3] - 1) / 2.0)
    return make_catalog(float(centre[0]), float(centre[1]), radius, config.n_stars,
                        config.n_galaxies, rng)


class _DetectorSetup:
    """One detector of a configuration: its drawn truth and spectral response (both
    deterministic for the configuration's seed), its references and its exposures."""

    def __init__(self, config: ObservationConfig, index: int):
        self.config, self.index = config, index
        instrument = config.instrument.upper()
        self.detector = instruments.detector(config.detectors[index])
        self.readout = instruments.readout(instrument, config.readpatt)
        self.window = instruments.subarray(instrument, config.subarray)
        if self.detector.instrument != instrument:
            raise SimulationError(f"detector {self.detector.name} is not a {instrument} one")
        self.truth = make_detector(self.detector, config.seed * 1000 + index, config.ipc_alpha,
                                   irs2=instruments.is_irs2(config.readpatt))
        self.spectroscopic = _spectroscopic(config)
        self.response = None if self.spectroscopic else quantum_efficiency(
            self.detector, config.filter, config.seed)

    def write_references(self, directory: Path) -> list[Path]:
        config, truth = self.config, self.truth
        serial = 9000 + 40 * self.index
        files = write_detector_references(
            truth, directory, serial, config.readpatt, self.detector.exposure_type,
            {config.subarray.upper(): self.window})
        if self.spectroscopic:
            return files
        files += write_optics_references(truth, self.response, config.filter, config.pupil,
                                         directory, serial + 20)
        return files + write_catalog_references(truth, directory, serial + 30)

    def exposure(self, catalog: Table, dither: int,
                 rng: np.random.Generator) -> SimulatedExposure:
        config, window = self.config, self.window
        exposure = _Exposure(config, self.detector, window, dither, *self.readout)
        if self.spectroscopic:
            rate, x, y = exposure.spectra_rate(catalog)
        else:
            rate, x, y = exposure.sky_rate(catalog, self.response)
        ramps = simulate_ramps(rate, self.truth, window, *self.readout, config.ngroups,
                               config.nints, exposure.frame_time, config.cosmic_ray_rate, rng)
        uncal = exposure.level1b(ramps.data)
        # reference pixels see no light: a perfect Stage 1 gives 0 there
        truth_rate = datamodels.ImageModel(data=np.where(cut(self.truth.reference, window),
                                                         0.0, rate).astype(np.float32))
        truth_rate.tree["meta"] = copy.deepcopy(uncal.tree["meta"])
        truth_rate.meta.bunit_data = "DN/s"
        # the truth carries the true pointing (the uncal headers may have a guiding error)
        truth_rate.meta.wcsinfo.ra_ref, truth_rate.meta.wcsinfo.dec_ref = exposure.ra, \
            exposure.dec
        truth_rate.meta.wcsinfo.roll_ref = config.roll
        sources = catalog.copy()
        sources["x"], sources["y"] = x, y
        return SimulatedExposure(uncal, truth_rate, sources, ramps.cosmic_rays,
                                 exposure.basename)


class _Exposure:
    """One exposure of one detector at one dither position: pointing, WCS, headers."""

    def __init__(self, config, detector, window, dither, nframes, groupgap):
        self.config, self.detector, self.window = config, detector, window
        self.dither, self.nframes, self.groupgap = dither, nframes, groupgap
        x0, y0, nx, ny = window
        full = (nx, ny) == detector.full_shape[::-1]
        self.noutputs = 4 if full and detector.instrument != "MIRI" else 1
        self.frame_time = instruments.frame_time(detector.instrument, nx, ny, self.noutputs,
                                                 config.readpatt)
        self.group_time = (nframes + groupgap) * self.frame_time
        step = config.dither_step_arcsec / 3600.0
        self.ra = config.ra + dither * step / np.cos(np.radians(config.dec))
        self.dec = config.dec + 0.5 * dither * step
        # guiding error: the headers record a pointing off the true one by this much; one draw
        # per exposure, shared by its detectors (the focal plane moves as a whole)
        errors = np.random.default_rng([config.seed, 101, dither]).normal(size=3)
        self.header_ra = self.ra + errors[0] * config.pointing_jitter_mas / 3.6e6 / np.cos(
            np.radians(config.dec))
        self.header_dec = self.dec + errors[1] * config.pointing_jitter_mas / 3.6e6
        self.header_roll = config.roll + errors[2] * config.roll_jitter_arcsec / 3600.0
        self.basename = (f"jw{config.program}{config.observation:03d}001_03101_"
                         f"{dither + 1:05d}_{detector.name.lower()}")

    @property
    def reference_pixel(self) -> tuple[float, float]:
        """1-based full-frame science pixel of the aperture reference point (the centre)."""
        ny, nx = self.detector.full_shape
        return (nx + 1) / 2.0, (ny + 1) / 2.0

    @property
    def geometry(self) -> ExposureGeometry:
        """This exposure's true pixel ↔ sky mapping."""
        detector = self.detector
        pointing = Pointing(self.ra, self.dec, self.config.roll, detector.v2_ref,
                            detector.v3_ref, VA_SCALE)
        return ExposureGeometry(Distortion.of(detector), pointing, self.window[0],
                                self.window[1],
                                FILTER_OFFSETS.get(self.config.filter.upper(), (0.0, 0.0)))

    def sky_rate(self, catalog, response: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                np.ndarray]:
        """Noiseless DN/s: (background·Ω + sources) / (PHOTMJSR·PIXAR_SR) × pixel response;
        and the sources' 0-based pixel positions x, y."""
        instrument, geometry = self.detector.instrument, self.geometry
        photmjsr = instruments.photmjsr(instrument, self.config.filter)
        fwhm = instruments.psf_fwhm_pixels(instrument, self.config.filter,
                                           self.detector.pixel_scale)
        shape = (self.window[3], self.window[2])
        nominal_sr = geometry.distortion.nominal_area_arcsec2() / ARCSEC2_PER_SR
        x, y = geometry.pixel(np.asarray(catalog["ra"]), np.asarray(catalog["dec"]))
        totals = dn_per_s(np.asarray(catalog["flux_ujy"]), photmjsr, nominal_sr)
        sources = render(catalog, x, y, shape, fwhm, self.detector.pixel_scale, totals)
        background = self.config.background_mjy_sr / photmjsr * geometry.relative_area(shape)
        x0, y0, nx, ny = self.window
        cut = response[y0 - 1:y0 - 1 + ny, x0 - 1:x0 - 1 + nx]
        return ((sources + background) * cut).astype(np.float32), x, y

    def spectra_rate(self, spectra: Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Noiseless DN/s of the spectra nodded ``dither_step_arcsec`` along the slits per
        dither position, on a faint scattered-light background; and the traces' 0-based
        middle columns x and rows y in this exposure."""
        shape = (self.window[3], self.window[2])
        offset = self.dither * self.config.dither_step_arcsec / self.detector.pixel_scale
        rate = render_spectra(spectra, shape, offset) + SPECTROSCOPIC_BACKGROUND_DN_S
        x = 0.5 * (np.asarray(spectra["x_start"]) + np.asarray(spectra["x_end"]))
        return rate.astype(np.float32), x, np.asarray(spectra["y"]) + offset

    def level1b(self, data: np.ndarray) -> datamodels.Level1bModel:
        config, detector = self.config, self.detector
        model = datamodels.Level1bModel(data=data)
        meta = model.meta
        meta.telescope, meta.origin = "JWST", "calwebb.simulate"
        meta.instrument.name, meta.instrument.detector = detector.instrument, detector.name
        meta.instrument.filter, pupil = instruments.wheels(detector.instrument, config.filter,
                                                           config.pupil)
        if pupil is not None:
            meta.instrument.pupil = pupil
        if detector.instrument == "NIRCAM":
            meta.instrument.channel, meta.instrument.module = detector.channel, detector.module
        if detector.instrument == "NIRSPEC":
            meta.instrument.grating = config.grating.upper()
            if instruments.is_irs2(config.readpatt):
                meta.exposure.nrs_normal = instruments.IRS2_NORMAL
                meta.exposure.nrs_reference = instruments.IRS2_REFERENCE
        start = Time(config.date, format="isot", scale="utc") + self.dither * 600.0 * u.s
        duration = self.group_time * config.ngroups * config.nints
        meta.observation.date, meta.observation.time = start.isot.split("T")
        meta.observation.program_number = config.program
        meta.observation.observation_number = f"{config.observation:03d}"
        meta.observation.visit_number = "001"
        meta.observation.visit_group, meta.observation.sequence_id = "03", "1"
        meta.observation.activity_id, meta.observation.exposure_number = "01", (
            f"{self.dither + 1:05d}")
        meta.target.ra, meta.target.dec = config.ra, config.dec
        exposure = meta.exposure
        exposure.type, exposure.readpatt = detector.exposure_type, config.readpatt.upper()
        exposure.nints, exposure.ngroups = config.nints, config.ngroups
        exposure.nframes, exposure.groupgap = self.nframes, self.groupgap
        exposure.frame_divisor, exposure.drop_frames1 = self.nframes, 0
        exposure.frame_time, exposure.group_time = self.frame_time, self.group_time
        exposure.integration_time = self.group_time * (config.ngroups - 1)
        exposure.exposure_time = exposure.integration_time * config.nints
        exposure.duration = duration
        exposure.noutputs = self.noutputs
        exposure.integration_start, exposure.integration_end = 1, config.nints
        exposure.start_time = start.mjd
        exposure.mid_time = start.mjd + duration / 2 / 86400.0
        exposure.end_time = start.mjd + duration / 86400.0
        x0, y0, nx, ny = self.window
        sub = meta.subarray
        sub.name, sub.xstart, sub.ystart, sub.xsize, sub.ysize = (
            self.config.subarray.upper(), x0, y0, nx, ny)
        sub.fastaxis, sub.slowaxis = detector.fastaxis, detector.slowaxis
        wcsinfo = meta.wcsinfo
        wcsinfo.ra_ref, wcsinfo.dec_ref = self.header_ra, self.header_dec
        wcsinfo.v2_ref, wcsinfo.v3_ref = detector.v2_ref, detector.v3_ref
        wcsinfo.roll_ref, wcsinfo.v3yangle, wcsinfo.vparity = (self.header_roll,
                                                               detector.v3_yangle, -1)
        wcsinfo.siaf_xref_sci, wcsinfo.siaf_yref_sci = self.reference_pixel
        meta.velocity_aberration.scale_factor = VA_SCALE
        meta.aperture.name = f"{detector.name}_{self.config.subarray.upper()}"
        meta.visit.tsovisit = False
        meta.dither.primary_type, meta.dither.position_number = "NONE", self.dither + 1
        meta.dither.total_points = config.n_dithers
        times = start.mjd + (np.arange(config.nints) + 0.5) * self.group_time * config.ngroups \
            / 86400.0
        table = np.zeros(config.nints, dtype=datamodels.INT_TIMES_DTYPE)
        table["integration_number"] = np.arange(1, config.nints + 1)
        for column in ("MJD_UTC", "BJD_TDB"):
            table[f"int_mid_{column}"] = times
            table[f"int_start_{column}"] = times - self.group_time * config.ngroups / 2 / 86400
            table[f"int_end_{column}"] = times + self.group_time * config.ngroups / 2 / 86400
        model.int_times = table
        model.group = self._group_table(start, nx, ny)
        return model

    def _group_table(self, start: Time, nx: int, ny: int) -> np.ndarray:
        """The GROUP table: when each group of each integration ended."""
        nints, ngroups = self.config.nints, self.config.ngroups
        integration, group = np.divmod(np.arange(nints * ngroups), ngroups)
        end = start + (integration * ngroups + group + 1) * self.group_time * u.s
        table = np.zeros(nints * ngroups, dtype=datamodels.GROUP_DTYPE)
        table["integration_number"], table["group_number"] = integration + 1, group + 1
        end.precision = 6
        table["end_day"] = [int(day.split(":")[1]) for day in end.yday]  # day of the year
        seconds_of_day = (end.mjd % 1.0) * 86400.0
        microseconds = np.round(seconds_of_day * 1e6).astype(np.int64)
        table["end_milliseconds"], table["end_submilliseconds"] = np.divmod(microseconds, 1000)
        table["group_end_time"] = [text.encode() for text in end.isot]
        table["number_of_columns"], table["number_of_rows"] = nx, ny
        table["completion_code_text"] = b"COMPLETE"
        table["bary_end_time"] = table["helio_end_time"] = end.mjd
        return table
