"""A gwcs whose final frame follows a moving target (stage3.md §2.2)."""

from __future__ import annotations

from astropy.modeling.models import Shift
from gwcs import WCS
from gwcs import coordinate_frames as cf

FRAME_NAME = "moving_target"


def with_moving_target_frame(wcs: WCS, delta_ra: float, delta_dec: float) -> WCS:
    """A copy of ``wcs`` ending in a ``moving_target`` frame reached from its world frame by
    adding ``delta_ra`` and ``delta_dec`` (degrees) to RA and Dec; a frame already there is
    replaced. Extra world axes (e.g. wavelength) pass through unchanged."""
    steps = [(step.frame, step.transform) for step in wcs.pipeline]
    if steps[-1][0].name == FRAME_NAME:
        steps = steps[:-1]
    world = steps[-1][0]
    extra_axes = world.naxes - 2
    shift = Shift(delta_ra) & Shift(delta_dec)
    for _ in range(extra_axes):
        shift = shift & Shift(0.0)
    frame = _renamed(world)
    steps[-1] = (world, shift)
    steps.append((frame, None))
    moved = WCS(steps)
    if wcs.bounding_box is not None:
        moved.bounding_box = wcs.bounding_box.bounding_box(order="F")
    moved.array_shape = wcs.array_shape
    return moved


def _renamed(world) -> cf.CoordinateFrame:
    if isinstance(world, cf.CelestialFrame):
        return cf.CelestialFrame(reference_frame=world.reference_frame, name=FRAME_NAME,
                                 unit=world.unit, axes_names=world.axes_names,
                                 axes_order=world.axes_order)
    if isinstance(world, cf.CompositeFrame):
        return cf.CompositeFrame(world.frames, name=FRAME_NAME)
    raise ValueError(f"cannot add a moving-target frame after a {type(world).__name__}")


def mean_position(positions: list[tuple[float, float]]) -> tuple[float, float]:
    """Plain arithmetic mean RA and Dec (degrees), as the official step takes it."""
    ras, decs = zip(*positions, strict=True)
    return sum(ras) / len(ras), sum(decs) / len(decs)
