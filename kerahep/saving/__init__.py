"""Loading ``.keras`` files: Keras safe mode on, kerahep's classes registered, memory
bounded before Keras allocates anything, and the package's own errors for a file that is
missing, damaged, too large or carries arbitrary code.

Before Keras reads a byte of weights, :func:`load_model` checks what the archive
declares against :class:`ModelLimits` (``--max-model-size``, default 1 GiB of weights):
the archive's table of contents and members (declared sizes, compression ratio), the
configuration (size, nesting, number of objects, sizes it names), every array of the
weights file (shape and dtype from its headers; nothing stored behind a declared shape
is a shape bomb) and the variables the configuration builds, measured without
allocating them (:mod:`kerahep.saving.bounds`); no array may be larger than the largest
of them. After loading, weights holding NaN or infinity are refused.

Registration belongs to the packages that define the classes: importing
:mod:`kerahep.layers` and :mod:`kerahep.models` registers every serializable class of
kerahep with Keras, so ``keras.saving.load_model`` also works after ``import kerahep.models``.

This package imports Keras only when a model is loaded.
"""

from __future__ import annotations

import contextlib
import zipfile
from pathlib import Path

from ..errors import DataError, KerahepError, UnsafeModelError, os_error
from .limits import ENV, ModelLimits, SizeError, current_limits, format_size, max_model_size, parse_size

__all__ = ["ENV", "ModelLimits", "SizeError", "current_limits", "format_size", "load_model", "max_model_size",
           "parse_size", "rebuilding"]

#: words of the exceptions that mean memory ran out, whatever the backend
OUT_OF_MEMORY = ("RESOURCE_EXHAUSTED", "OOM when allocating", "out of memory", "Out of memory",
                 "can't allocate memory", "Cannot allocate memory")


def load_model(path, safe_mode: bool = True, limits=None, compile: bool = True):
    """Load a ``.keras`` model with Keras safe mode on (the default), within size limits.

    kerahep's own layers and models are registered first. A file that needs arbitrary code
    to load (a ``Lambda`` layer) is refused with :class:`~kerahep.errors.UnsafeModelError`
    unless ``safe_mode=False`` (``--unsafe-load``).

    Args:
        path: the ``.keras`` file.
        safe_mode: Keras safe mode (refuse code in the file).
        limits: a :class:`ModelLimits`, a weights limit (bytes or a size such as ``"2GB"``;
            ``"none"`` for no limit), or None for the process-wide setting
            (``$KERAHEP_MAX_MODEL_SIZE``, which ``--max-model-size`` sets; default 1 GiB).
        compile: restore the training configuration (optimizer, losses, metrics) as Keras
            does; ``False`` for scoring only, which loads in about half the time.

    Raises:
        DataError: no such file, not a ``.keras`` archive, over a limit, damaged, a model
            Keras cannot rebuild (the cause in full), or weights holding NaN.
        UnsafeModelError: in safe mode, a file that carries code.
    """
    import keras

    from .. import layers, models  # noqa: F401 - importing them registers kerahep's classes
    from .archive import check_directory, check_members, read_config, weight_declarations
    from .bounds import built_variables, check_finite, compare

    path = Path(path)
    if not isinstance(limits, ModelLimits):
        limits = current_limits() if limits is None else ModelLimits.from_size(limits)
    if not path.exists():
        raise DataError(path, "a saved Keras model (.keras)", "no such file")
    if path.is_dir():
        raise DataError(path, "a saved Keras model (.keras)", "a directory")
    try:
        with open(path, "rb") as fp:
            if limits.bounded:
                check_directory(path, fp, limits)
            with zipfile.ZipFile(fp) as zf:
                if limits.bounded:
                    check_members(path, zf, limits)
                    config = read_config(path, zf, limits)
                    declared = weight_declarations(path, zf, limits)
                    with rebuilding(path, safe_mode):
                        built = built_variables(path, config, safe_mode)
                    compare(path, declared, built, limits)
    except zipfile.BadZipFile as exc:
        raise DataError(path, "a .keras zip archive", f"a file that is not a zip archive ({exc})") from None
    except OSError as exc:
        raise os_error(exc, path, "a readable .keras archive") from None
    with rebuilding(path, safe_mode):
        model = keras.saving.load_model(path, safe_mode=safe_mode, compile=compile)
    if not isinstance(model, keras.Model):
        raise DataError(path, "a saved Keras model", f"a {type(model).__name__}")
    check_finite(path, model)
    return model


@contextlib.contextmanager
def rebuilding(path, safe_mode: bool):
    """Within the block, every failure of Keras becomes kerahep's error naming ``path`` and
    the whole cause."""
    try:
        yield
    except KerahepError:
        raise
    except RecursionError:
        raise DataError(path, "a model configuration Keras can rebuild",
                        "a configuration nested too deeply for Python to rebuild (RecursionError)") from None
    except ImportError as exc:
        raise DataError(path, "a model whose layers can be imported",
                        f"{type(exc).__name__}: {exc} (the file needs a package that is not installed here, "
                        f"for example torch for a TorchModuleWrapper layer)") from None
    except Exception as exc:  # noqa: BLE001 - a foreign file can make Keras raise anything
        text = " ".join(str(exc).split())
        if isinstance(exc, MemoryError) or type(exc).__name__ in ("ResourceExhaustedError", "OutOfMemoryError") \
                or any(word in text for word in OUT_OF_MEMORY):
            raise DataError(path, "a model that fits in memory",
                            f"{type(exc).__name__} while building it: {text}") from None
        lowered = text.lower()
        if safe_mode and isinstance(exc, (ValueError, TypeError)) and (
                "safe_mode" in text or "unsafe" in lowered or "lambda" in lowered):
            raise UnsafeModelError(
                f"{path}: refused to load: the model carries arbitrary Python code (for example a Lambda "
                f"layer), which Keras safe mode blocks. Load it only if you trust its author, with --unsafe-load. "
                f"(Keras: {text})") from None
        if "stateless scope" in text:
            raise DataError(path, "a model whose size can be measured before it is built",
                            f"{type(exc).__name__}: {text}; if you trust the file, load it unchecked with "
                            f"--max-model-size none") from None
        raise DataError(path, "a Keras model kerahep can rebuild", f"{type(exc).__name__}: {text}") from None
