"""The package's one exception type for mistakes a user can make.

Every error a user can cause (a missing file, a wrong HDF5 key, a wrong shape, NaN
in inputs, an unknown task or configuration key, a branch absent from a ROOT file)
raises :class:`KerahepError` (or one of its subclasses) with a message that names the
file or setting, what was expected and what was found. Command lines catch it and
print the message without a traceback.
"""

from __future__ import annotations


class KerahepError(Exception):
    """A mistake in user input: files, configuration or command-line arguments."""


class ConfigError(KerahepError, ValueError):
    """A configuration key or value that cannot be used."""


class DataError(KerahepError, ValueError):
    """An input file that is missing, unreadable, or not in the expected format."""

    def __init__(self, path, expected: str, found: str):
        self.path = str(path)
        self.expected = expected
        self.found = found
        super().__init__(f"{self.path}: expected {expected}, found {found}")


class UnsafeModelError(KerahepError):
    """A saved model that needs arbitrary code to load and was refused in safe mode."""
