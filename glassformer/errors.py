"""Errors a user can cause; the CLI prints their message on one line and exits with status 2."""


class UserError(Exception):
    """A mistake in the user's input (a bad file, flag, preset or model folder)."""


class ConfigError(UserError, ValueError):
    """A model or training configuration that cannot be built."""


class DataError(UserError, ValueError):
    """A data file that cannot be read; the message names the file and, where known, the line."""
