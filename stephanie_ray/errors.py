"""Errors a user can act on.

A :class:`UserError` is printed by the CLI as one line (``stephanie: error: ...``) with a
non-zero exit and no traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input, bad configuration or an unreachable service: the user can fix it."""

    exit_code = 2


class ConfigError(UserError):
    """A configuration file, key or value is wrong."""


class DatabaseError(UserError):
    """The database URL is invalid or the database cannot be reached."""
