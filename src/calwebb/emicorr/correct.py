"""Which EMI frequencies an exposure gets, and removing them one after the other.

The EMICORR reference says, per subarray (full frame split into FULL_FAST / FULL_SLOW),
the clocking (``rowclocks``, ``frameclocks``) and the frequency names to correct: one list
for FAST read patterns, one list per detector for SLOW. Each named frequency carries its
value in Hz and one period of its reference waveform (``phase_amplitudes``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from calwebb.emicorr import clocking, joint, sequential
from calwebb.errors import ReferenceFileError

log = logging.getLogger(__name__)


@dataclass
class Plan:
    """What to remove: clocking and, per frequency, its name, value and reference waveform
    (None when the waveform is derived from the data)."""

    rowclocks: int
    frameclocks: int
    names: list[str]
    frequencies: list[float]
    waveforms: list[np.ndarray | None] = field(default_factory=list)


def reference_case(subarray_cases: dict, subarray: str, readpatt: str,
                   detector: str) -> tuple[int, int, list[str]] | None:
    """(rowclocks, frameclocks, frequency names) for the exposure, or None if the reference
    has no entry for its subarray, readout speed (and, for SLOW, detector)."""
    speed = clocking.readout_speed(readpatt)
    if speed is None:
        log.warning("Read pattern %s does not include FAST or SLOW", readpatt)
        return None
    name = f"{subarray}_{speed}" if "FULL" in str(subarray) else subarray
    case = subarray_cases.get(name)
    try:
        rowclocks, frameclocks = case["rowclocks"], case["frameclocks"]
        names = case["freqs"][speed]
        if speed == "SLOW":
            names = names[detector]
    except (KeyError, TypeError):
        log.debug("Subarray case %s not in the EMICORR reference", name)
        return None
    return int(rowclocks), int(frameclocks), [str(item) for item in names]


def reference_plan(reference, subarray: str, readpatt: str, detector: str) -> Plan | None:
    """The plan from an EMICORR reference model, or None if nothing applies."""
    case = reference_case(reference.subarray_cases, subarray, readpatt, detector)
    if case is None:
        return None
    rowclocks, frameclocks, names = case
    plan = Plan(rowclocks, frameclocks, names, [])
    for name in names:
        entry = reference.frequencies.get(name)
        if not isinstance(entry, dict) or "frequency" not in entry:
            raise ReferenceFileError(
                f"{reference.meta.filename or 'EMICORR reference'}: subarray case lists "
                f"frequency {name!r} but 'frequencies' has no such entry with 'frequency' and "
                "'phase_amplitudes'")
        plan.frequencies.append(float(entry["frequency"]))
        plan.waveforms.append(np.asarray(entry["phase_amplitudes"]))
    return plan


def on_the_fly_plan(subarray: str, readpatt: str, frequencies: list[float]) -> Plan | None:
    """The plan for user-given frequencies (waveforms from the data), clocking from the
    built-in table; None for a subarray it does not know."""
    clocks = clocking.SUBARRAY_CLOCKS.get(clocking.clocks_case_name(subarray, readpatt))
    if clocks is None:
        return None
    return Plan(clocks[0], clocks[1], [repr(float(value)) for value in frequencies],
                [float(value) for value in frequencies], [None] * len(frequencies))


def remove_emi(data: np.ndarray, pixeldq: np.ndarray, plan: Plan, algorithm: str,
               nsamples: int, readpatt: str, last_column_is_reference: bool,
               nints_to_phase: int | None = None, nbins: int | None = None,
               scale_reference: bool = True, use_n_cycles: int | None = 3,
               fit_ints_separately: bool = False) -> dict[str, np.ndarray]:
    """Remove every frequency of ``plan`` from ``data`` [nints, ngroups, ny, nx] in place,
    in the plan's order (each on the result of the previous one).

    Returns the data-derived waveforms by frequency name (sequential algorithm only).
    """
    nints, ngroups = data.shape[:2]
    between = clocking.reset_clocks(readpatt, plan.frameclocks)
    derived: dict[str, np.ndarray] = {}
    for number, (name, frequency, waveform) in enumerate(
            zip(plan.names, plan.frequencies, plan.waveforms, strict=True), start=1):
        log.info("Correcting for frequency: %s Hz (%d out of %d)", frequency, number,
                 len(plan.names))
        if algorithm == "joint":
            phases, amplitudes = joint.correct_frequency(
                data, pixeldq, waveform, frequency, nsamples, plan.rowclocks, between,
                fit_ints_separately)
            log.info("EMI %s: phase %s, amplitude %s", name, np.round(phases, 4),
                     np.round(amplitudes, 4))
            continue
        period = clocking.period_in_clocks(frequency)
        # the official code keeps the first frequency's count for the later ones
        nints_to_phase = sequential.integrations_to_phase(
            nints_to_phase, use_n_cycles, nints, ngroups, period, plan.frameclocks)
        derived[name] = sequential.correct_frequency(
            data, frequency, waveform, nsamples, plan.rowclocks, plan.frameclocks, readpatt,
            last_column_is_reference, nints_to_phase, nbins, scale_reference)
    return derived


def on_the_fly_reference_tree(derived: dict[str, np.ndarray], plan: Plan, subarray: str,
                              readpatt: str, detector: str) -> dict:
    """``frequencies`` and ``subarray_cases`` of an EMICORR reference holding the waveforms
    derived from the data (the read pattern itself, e.g. FASTR1, is the frequency key, as
    the official on-the-fly files have it)."""
    names = list(derived)
    by_pattern = {readpatt: names} if "FAST" in readpatt else {readpatt: {detector: names}}
    return {
        "frequencies": {name: {"frequency": frequency, "phase_amplitudes": derived[name]}
                        for name, frequency in zip(plan.names, plan.frequencies, strict=True)
                        if name in derived},
        "subarray_cases": {subarray: {"rowclocks": plan.rowclocks,
                                      "frameclocks": plan.frameclocks, "freqs": by_pattern}},
    }
