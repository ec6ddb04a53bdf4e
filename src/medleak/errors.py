"""User-facing errors: the CLI prints their message on one line and exits with code 2."""


class MedleakError(Exception):
    """A problem the user can fix (bad input, bad config); never a bug in medleak."""


class ConfigError(MedleakError):
    """An invalid configuration value or option."""


class DataError(MedleakError):
    """Missing, empty, corrupt or unsuitable input data."""
