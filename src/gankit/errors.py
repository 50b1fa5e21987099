"""Errors gankit raises for problems a user can fix.

Every message says what was wrong and how to fix it; the CLI prints it without a traceback.
"""


class GankitError(Exception):
    """Base class: a problem with the user's input, files or run, not a bug in gankit."""


class ConfigError(GankitError):
    """A recipe or override names an unknown key, a wrong type or an unknown component."""


class DataError(GankitError):
    """A data file or folder is missing, corrupt, truncated or of the wrong shape."""


class CheckpointError(GankitError):
    """A checkpoint is missing, incomplete or belongs to another run."""


class TrainingError(GankitError):
    """Training cannot continue (for example the losses became NaN)."""


class Terminated(KeyboardInterrupt):
    """A SIGTERM stopped a command that passed it on to its runs (a sweep); like Ctrl-C, but
    the CLI exits with 143 (128 + SIGTERM) so a scheduler sees why."""
