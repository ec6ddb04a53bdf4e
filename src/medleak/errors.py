"""Errors the CLI turns into one line: bad input exits 2, a failed run exits 3."""


class MedleakError(Exception):
    """A problem the user can fix (bad input, bad config); never a bug in medleak. Exit code 2."""


class ConfigError(MedleakError):
    """An invalid configuration value or option."""


class DataError(MedleakError):
    """Missing, empty, corrupt or unsuitable input data."""


class RunFailed(Exception):
    """A valid run that did not finish: the attack diverged, memory ran out. Exit code 3.

    Deliberately not a ``MedleakError``: a sweep must tell "this configuration is wrong" (fix the
    input, do not retry) from "this run failed" (record the failure, carry on with the others).
    """
