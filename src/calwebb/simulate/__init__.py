"""A synthetic JWST observatory: exposures with known truth and their references.

Imaging with NIRCam, MIRI and NIRISS (its short filters in the pupil wheel behind CLEAR, its
long ones in the filter wheel before CLEARP, read along the DMS columns); NIRSpec spectra
for Stage 1 (below).

``observation(output_dir, **options)`` (or ``simulate_observation(ObservationConfig(...),
output_dir)``) writes ``*_uncal.fits`` exposures (official names and headers), the
noiseless count rate and the true source positions of each (``truth/``), the truth source
catalog (ECSV), reference files built from the same detector truth, an offline CRDS cache
selecting them, and Level 2 / Level 3 associations. ``exposure(...)`` makes one exposure in
memory; ``reference_set(output_dir, ...)`` writes only the references and their cache.
``options`` are ``ObservationConfig`` fields; everything is deterministic for a seed.

Simulated: stars and Sérsic galaxies with a diffraction-width PSF seen through a
polynomial distortion, flat field and photometric response (with their DISTORTION,
FILTEROFFSET, FLAT, PHOTOM, AREA, APCORR and ABVEGAOFFSET references) from a pointing that
may carry guiding errors; per-frame Poisson charge from sky and dark, cosmic rays, frame
averaging into groups with the readout pattern's NFRAMES/GROUPGAP, non-linearity (exact
inverse of the LINEARITY polynomial), full-well clipping, bias, optional inter-pixel
capacitance (IPC reference), the MIRI reset anomaly (RESET reference), first-group
transient (RSCD reference) and last-frame offset, per-amplifier offsets by column (NIR) or
row (MIRI) parity and per-row drifts seen by the reference pixels, read noise, dead and hot
pixels.

NIRSpec (``instrument="NIRSPEC"``, detectors NRS1/NRS2, for Stage 1): multi-object spectra
(traces across the dispersion axis, nodded along the slits between dithers) instead of the
imaging sky, the same detector effects with the amplifiers and drifts along NIRSpec's
transposed readout, and with an IRS2 pattern (NRSIRS2, NRSIRS2RAPID) 3200-row frames whose
interleaved reference pixels and reference output see bias, offsets and noise but no light,
with the 3200-row MASK and SUPERBIAS and a REFPIX (IRS2 coefficients) reference. No optics
references or associations are written for it.
"""

from calwebb.simulate.observation import (
    ObservationConfig,
    ReferenceSet,
    SimulatedExposure,
    SimulatedObservation,
    exposure,
    observation,
    reference_set,
    simulate_observation,
)

__all__ = ["ObservationConfig", "ReferenceSet", "SimulatedExposure", "SimulatedObservation",
           "exposure", "observation", "reference_set", "simulate_observation"]
