"""A synthetic JWST imaging observatory: exposures with known truth and their references.

``simulate_observation(ObservationConfig(...), output_dir)`` writes ``*_uncal.fits``
exposures (official names and headers), the noiseless count rate of each (``truth/``), the
truth source catalog (ECSV), reference files built from the same detector truth, an offline
CRDS cache selecting them, and Level 2 / Level 3 associations.

Simulated: stars and Sérsic galaxies with a diffraction-width PSF on a tangent-plane WCS;
per-frame Poisson charge from sky and dark, cosmic rays, frame averaging into groups with
the readout pattern's NFRAMES/GROUPGAP, non-linearity (exact inverse of the LINEARITY
polynomial), full-well clipping, bias, per-amplifier and per-row drifts seen by the
reference pixels, read noise, dead and hot pixels. Not yet: geometric distortion, flat
field and photometric references, IPC, MIRI first/last-frame and reset effects.
"""

from calwebb.simulate.observation import (
    ObservationConfig,
    SimulatedObservation,
    simulate_observation,
)

__all__ = ["ObservationConfig", "SimulatedObservation", "simulate_observation"]
