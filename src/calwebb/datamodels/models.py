"""Science data models: each class declares its arrays; everything else is in the base."""

from __future__ import annotations

import numpy as np

from calwebb.datamodels.base import ArraySpec, DataModel

F32, U32, U8, U16, I32 = np.float32, np.uint32, np.uint8, np.uint16, np.int32

INT_TIMES = ArraySpec("INT_TIMES", None, (1,), allocate=None)
GROUP = ArraySpec("GROUP", None, (1,), allocate=None)
#: columns of the INT_TIMES table (dataformats.md §1.1)
INT_TIMES_DTYPE = np.dtype([
    ("integration_number", ">i4"),
    ("int_start_MJD_UTC", ">f8"), ("int_mid_MJD_UTC", ">f8"), ("int_end_MJD_UTC", ">f8"),
    ("int_start_BJD_TDB", ">f8"), ("int_mid_BJD_TDB", ">f8"), ("int_end_BJD_TDB", ">f8"),
])
INT_TIMES_STRIPE = ArraySpec("INT_TIMES_STRIPE", None, (1,), allocate=None)
#: columns of the INT_TIMES_STRIPE table of superstripe exposures: a row per stripe read
INT_TIMES_STRIPE_DTYPE = np.dtype([
    ("integration_number", ">i4"), ("stripe_number", ">i4"),
    *((name, INT_TIMES_DTYPE[name]) for name in INT_TIMES_DTYPE.names[1:]),
])
#: columns of the GROUP table (dataformats.md §1.1)
GROUP_DTYPE = np.dtype([
    ("integration_number", ">i4"), ("group_number", ">i2"), ("end_day", ">i2"),
    ("end_milliseconds", ">i4"), ("end_submilliseconds", ">i2"), ("group_end_time", "S26"),
    ("number_of_columns", ">i2"), ("number_of_rows", ">i2"), ("number_of_gaps", ">i2"),
    ("completion_code_number", ">i2"), ("completion_code_text", "S36"),
    ("bary_end_time", ">f8"), ("helio_end_time", ">f8"),
])


class Level1bModel(DataModel):
    """Raw ramps as downlinked (``uncal``): uint16 SCI [nints, ngroups, ny, nx], no DQ."""

    primary_array = "data"
    arrays = {
        "data": ArraySpec("SCI", U16, (4,)),
        "zeroframe": ArraySpec("ZEROFRAME", U16, (3,), allocate=None),
        "refout": ArraySpec("REFOUT", U16, (4,), allocate=None),
        "int_times": INT_TIMES,
        "group": GROUP,
    }


class RampModel(DataModel):
    """Ramps being corrected (``ramp``): float32 SCI, PIXELDQ [ny, nx], GROUPDQ like SCI."""

    primary_array = "data"
    arrays = {
        "data": ArraySpec("SCI", F32, (4,)),
        "pixeldq": ArraySpec("PIXELDQ", U32, (2, 3), allocate="image"),
        "groupdq": ArraySpec("GROUPDQ", U8, (4,)),
        "zeroframe": ArraySpec("ZEROFRAME", F32, (3,), allocate=None),
        "refout": ArraySpec("REFOUT", F32, (4,), allocate=None),
        "average_dark_current": ArraySpec("AVDRKCUR", F32, (2,), allocate=None),
        "int_times": INT_TIMES,
        "int_times_stripe": INT_TIMES_STRIPE,
        "group": GROUP,
    }

    def as_specific_class(self) -> DataModel:
        """A ramp of superstripes (SSTR_NST > 0) as a SuperstripeRampModel (a PIXELDQ image
        serving every stripe)."""
        nstripes = self.meta.subarray.num_superstripe or 0
        if nstripes <= 0 or isinstance(self, SuperstripeRampModel):
            return self
        replaced = {}
        if self.has_array("pixeldq") and self.pixeldq.ndim == 2:
            replaced["pixeldq"] = np.repeat(self.pixeldq[None], nstripes, axis=0)
        return SuperstripeRampModel(self, **replaced)


class SuperstripeRampModel(RampModel):
    """Superstripe ramps until refpix collates them: the integrations cycle over the
    stripes, SCI [nints × nstripes, ngroups, ny, nx]; PIXELDQ [nstripes, ny, nx], a plane
    per stripe."""

    arrays = {**RampModel.arrays, "pixeldq": ArraySpec("PIXELDQ", U32, (3,), allocate="stripes")}


def _error_arrays(ndim: int) -> dict[str, ArraySpec]:
    """ERR and DQ shaped like SCI."""
    return {"err": ArraySpec("ERR", F32, (ndim,)), "dq": ArraySpec("DQ", U32, (ndim,))}


def _variance_arrays(ndim: int) -> dict[str, ArraySpec]:
    """The variance arrays shaped like SCI (written after the other images, as official
    files have them)."""
    return {
        "var_poisson": ArraySpec("VAR_POISSON", F32, (ndim,)),
        "var_rnoise": ArraySpec("VAR_RNOISE", F32, (ndim,)),
        "var_flat": ArraySpec("VAR_FLAT", F32, (ndim,), allocate=None),
    }


class ImageModel(DataModel):
    """One 2-D image with errors and DQ (``rate``, ``cal``)."""

    primary_array = "data"
    arrays = {
        "data": ArraySpec("SCI", F32, (2,)),
        **_error_arrays(2),
        "zeroframe": ArraySpec("ZEROFRAME", F32, (2,), allocate=None),
        "area": ArraySpec("AREA", F32, (2,), allocate=None),
        "con": ArraySpec("CON", I32, (3,), allocate=None),  # resampled: context bits
        "wht": ArraySpec("WHT", F32, (2,), allocate=None),  # resampled: total weight
        **_variance_arrays(2),
    }


class CubeModel(DataModel):
    """A stack of images, one per integration (``rateints``, ``calints``)."""

    primary_array = "data"
    arrays = {
        "data": ArraySpec("SCI", F32, (3,)),
        **_error_arrays(3),
        "zeroframe": ArraySpec("ZEROFRAME", F32, (3,), allocate=None),
        "area": ArraySpec("AREA", F32, (2,), allocate=None),
        **_variance_arrays(3),
        "int_times": INT_TIMES,
        "int_times_stripe": INT_TIMES_STRIPE,
    }


def _segment_array(extname: str, ndim: int = 4) -> ArraySpec:
    return ArraySpec(extname, F32, (ndim,), allocate=None)


class RampFitOutputModel(DataModel):
    """Optional ramp-fit product (``fitopt``): per-segment fits [nints, nsegments, ny, nx],
    PEDESTAL [nints, ny, nx] and jump magnitudes CRMAG [nints, njumps, ny, nx]."""

    primary_array = "slope"
    arrays = {
        "slope": _segment_array("SLOPE"),
        "sigslope": _segment_array("SIGSLOPE"),
        "var_poisson": _segment_array("VAR_POISSON"),
        "var_rnoise": _segment_array("VAR_RNOISE"),
        "yint": _segment_array("YINT"),
        "sigyint": _segment_array("SIGYINT"),
        "pedestal": _segment_array("PEDESTAL", 3),
        "weights": _segment_array("WEIGHTS"),
        "crmag": _segment_array("CRMAG"),
    }
