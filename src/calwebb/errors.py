"""The exceptions calwebb raises for bad input.

Every error names the file, keyword or array at fault and what was expected,
so that the command line can print it as one line instead of a traceback.
"""


class CalwebbError(Exception):
    """Base class of every error caused by the user's input or configuration."""

    exit_code = 2


class DataModelError(CalwebbError):
    """A file or model is unreadable, incomplete or has arrays of the wrong kind."""


class ParameterError(CalwebbError):
    """A step parameter, parameter file or command-line option is invalid."""


class ReferenceFileError(CalwebbError):
    """A reference file is missing, unreadable or does not match the science data."""


class AssociationError(CalwebbError):
    """An association file is malformed or names members that cannot be found."""


class SimulationError(CalwebbError):
    """The simulator was asked for an instrument set-up it cannot produce."""


class NoDataOnDetectorError(CalwebbError):
    """The exposure has no science data on this detector (the official exit status 64)."""

    exit_code = 64
