"""HDF5 errors as the package's own: a damaged file never ends in an h5py traceback."""

from __future__ import annotations

import contextlib
import zlib

from ..errors import DataError, KerahepError


def _codec_errors() -> tuple:
    """Error types of the optional fast inflaters (zlib-ng, isal) when installed."""
    out = [zlib.error]
    for mod in ("zlib_ng.zlib_ng", "isal.isal_zlib"):
        try:
            module = __import__(mod, fromlist=["error"])
            out.append(module.error)
        except (ImportError, AttributeError):
            pass
    return tuple(out)


_CODEC_ERRORS = _codec_errors()


@contextlib.contextmanager
def hdf5_errors(path, expected: str = "a readable HDF5 file"):
    """Turn the errors h5py raises on damaged files into :class:`DataError` naming ``path``.

    h5py reports corrupt metadata and chunks as ``OSError``, ``RuntimeError``,
    ``KeyError`` or ``ValueError`` (and zlib as ``zlib.error``) from deep inside the library.
    """
    try:
        yield
    except KerahepError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) + _CODEC_ERRORS as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(path, expected, f"a damaged file ({type(exc).__name__}: {first[:200]})") from None
