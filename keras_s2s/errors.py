"""User-facing errors.

Every problem a user can cause (a missing file, a bad line, an unknown option) is raised as a
`KerasS2SError` subclass whose message names the problem and where it is. The CLI prints the
message and exits non-zero; Python callers can catch the class.
"""


class KerasS2SError(Exception):
    """Base class of the errors keras-s2s raises for bad input."""


class DataError(KerasS2SError, ValueError):
    """A data file is missing, empty, misaligned or malformed."""


class ConfigError(KerasS2SError, ValueError):
    """A pipeline name, config key or config value is invalid."""


class RunDirectoryError(KerasS2SError, ValueError):
    """A run directory is missing files or does not match what was asked for."""


class ExportError(KerasS2SError, ValueError):
    """An export cannot be made as asked (bad option, existing version, unsupported op)."""


class TrainingDiverged(KerasS2SError, ArithmeticError):
    """The training loss became NaN or infinite; the run's last good checkpoint is kept."""
