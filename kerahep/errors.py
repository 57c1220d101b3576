"""The package's one exception type for mistakes a user can make.

Every error a user can cause (a missing file, a wrong HDF5 key, a wrong shape, NaN
in inputs, an unknown task or configuration key, a branch absent from a ROOT file)
raises :class:`KerahepError` (or one of its subclasses) with a message that names the
file or setting, what was expected and what was found. Command lines catch it and
print the message without a traceback.

File-system mistakes (a file without read permission, a directory given for a file, an
output folder that is a file or cannot be written, a full disk) become a
:class:`DataError` too: :func:`os_error` words an OSError that way, :class:`user_os_errors`
does it for a block of code, and :func:`check_output_path` refuses an output path before
any work is done.
"""

from __future__ import annotations

import errno
import os


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


# ------------------------------------------------------------------ file-system mistakes

#: errno values an OSError carries when the mistake is in the user's files or folders
#: (permissions, a directory where a file belongs or the reverse, a full or read-only disk)
USER_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.EEXIST,
                         errno.ENOENT, errno.ENOSPC, errno.EROFS, errno.ENAMETOOLONG, errno.ELOOP,
                         getattr(errno, "EDQUOT", errno.ENOSPC)})


def is_user_os_error(exc: BaseException) -> bool:
    """Whether ``exc`` is an OSError about a path the user gave or owns (see :data:`USER_ERRNOS`)."""
    return isinstance(exc, OSError) and exc.errno in USER_ERRNOS and exc.filename is not None


def _first_existing(path: str) -> str:
    """``path`` or its nearest ancestor that exists (``.`` for a relative path with none)."""
    while path and not os.path.lexists(path):
        parent = os.path.dirname(path.rstrip(os.sep))
        if parent == path:
            break
        path = parent
    return path or "."


def os_error(exc: OSError, path=None, expected: str | None = None) -> DataError:
    """The :class:`DataError` of an OSError met while reading or writing a user's path.

    Names the path (``path``, else the error's own file name; for "not a directory", the
    file that stands where a folder is needed), what was expected (``expected``, else
    inferred from the error and the path) and what was found (in words, never the file's
    contents).
    """
    where = str(path if path is not None else (exc.filename if exc.filename is not None else "?"))
    code = exc.errno
    if code == errno.EISDIR:
        return DataError(where, expected or "a file", "a directory")
    if code == errno.ENOTDIR:
        blocker = _first_existing(str(exc.filename or where))
        if os.path.exists(blocker) and not os.path.isdir(blocker):
            return DataError(blocker, expected or "a folder (or nothing, so that it can be made)", "a file")
        return DataError(where, expected or "a folder", "something that is not a folder")
    if code in (errno.EACCES, errno.EPERM):
        if os.path.isdir(where):
            return DataError(where, expected or "a folder kerahep may read and write", "permission denied")
        if os.path.lexists(where):
            return DataError(where, expected or "a file kerahep may read", "permission denied")
        parent = _first_existing(os.path.dirname(where) or ".")
        return DataError(parent, expected or "a folder kerahep may write into", "permission denied")
    if code == errno.EEXIST:
        return DataError(where, expected or "a path not taken yet", "one that exists")
    if code == errno.ENOENT:
        return DataError(where, expected or "an existing file or folder", "no such file or folder")
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return DataError(where, expected or "room to write", "a full disk (or quota)")
    if code == errno.EROFS:
        return DataError(where, expected or "a writable location", "a read-only file system")
    return DataError(where, expected or "a usable path", exc.strerror or type(exc).__name__)


class user_os_errors:  # noqa: N801 - used as a context manager: ``with user_os_errors(...):``
    """Turn the OSErrors of :func:`is_user_os_error` raised inside into :func:`os_error`'s DataError.

    ``expected(path) -> str | None`` (or a string) describes what the path should have
    been; other errors pass through unchanged.
    """

    def __init__(self, expected=None, path=None):
        self.expected, self.path = expected, path

    def __enter__(self):
        return self

    def __exit__(self, typ, exc, tb):
        if exc is None or not is_user_os_error(exc):
            return False
        expected = self.expected(str(exc.filename)) if callable(self.expected) else self.expected
        raise os_error(exc, self.path, expected) from None


def check_output_path(path, what: str, folder: bool = False) -> None:
    """Refuse, before any work is done, an output path that cannot be written.

    ``path`` must be a file path (``folder=False``: not an existing directory) or a folder
    (``folder=True``: not an existing file), and its nearest existing ancestor must be a
    folder kerahep may write into.

    Raises:
        DataError: naming the path (or the ancestor in the way), ``what`` it is for, and
            what stands there.
    """
    p = str(path)
    if folder:
        if os.path.lexists(p) and not os.path.isdir(p):
            raise DataError(p, f"a folder for {what}", "a file" if os.path.isfile(p) else "something else")
    elif os.path.isdir(p):
        raise DataError(p, f"a file path for {what}", "an existing directory")
    elif os.path.lexists(p) and not os.path.isfile(p):
        raise DataError(p, f"a file path for {what}", "a special file (not a regular file)")
    if os.path.isdir(p):
        base = p
    else:
        base = _first_existing(os.path.dirname(p) or ".")
        if not os.path.isdir(base):
            raise DataError(base, f"a folder for {what}", "a file")
    if not os.access(base, os.W_OK | os.X_OK):
        raise DataError(base, f"a folder kerahep may write into, for {what}", "no write permission")
