"""Loading ``.keras`` files: Keras safe mode on, kerahep's classes registered, and the
package's own errors for a file that is missing, damaged or carries arbitrary code.

Registration belongs to the packages that define the classes: importing
:mod:`kerahep.layers` and :mod:`kerahep.models` registers every serializable class of
kerahep with Keras, so ``keras.saving.load_model`` also works after ``import kerahep.models``.
"""

from __future__ import annotations

from pathlib import Path


def load_model(path, safe_mode: bool = True):
    """Load a ``.keras`` model with Keras safe mode on (the default).

    kerahep's own layers and models are registered first. A file that needs arbitrary code
    to load (a ``Lambda`` layer) is refused with :class:`~kerahep.errors.UnsafeModelError`
    unless ``safe_mode=False`` (``--unsafe-load``).
    """
    import zipfile

    import keras

    from . import layers, models  # noqa: F401 - importing them registers kerahep's classes
    from .errors import DataError, UnsafeModelError

    path = Path(path)
    if not path.exists():
        raise DataError(path, "a saved Keras model (.keras)", "no such file")
    if not zipfile.is_zipfile(path):
        raise DataError(path, "a .keras zip archive", "a file that is not a zip archive")
    try:
        return keras.saving.load_model(path, safe_mode=safe_mode)
    except (ValueError, TypeError) as exc:
        text = str(exc)
        if "safe_mode" in text or "unsafe" in text.lower() or "lambda" in text.lower():
            raise UnsafeModelError(
                f"{path}: refused to load: the model carries arbitrary Python code (for example a Lambda "
                f"layer), which Keras safe mode blocks. Load it only if you trust its author, with --unsafe-load."
            ) from None
        raise DataError(path, "a Keras model kerahep can rebuild", f"{type(exc).__name__}: {text[:300]}") from None
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise DataError(path, "a readable .keras archive", f"{type(exc).__name__}: {str(exc)[:200]}") from None
