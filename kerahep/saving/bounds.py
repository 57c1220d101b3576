"""The model a configuration builds, measured without allocating its weights, compared
with what the weights file declares; and the loaded model's weights checked for NaN.

The configuration is rebuilt inside a :class:`keras.StatelessScope` that does not
initialize variables: every layer is built and called on symbolic inputs, so each
variable gets its shape and dtype but no memory (``Dense(units=10**12)`` costs nothing).
Its compile configuration is left out (an optimizer creates variables eagerly).
"""

from __future__ import annotations

import dataclasses
import math
import re

from ..errors import DataError
from .archive import CONFIG, Declared
from .limits import ModelLimits, format_size


@dataclasses.dataclass(frozen=True)
class Built:
    """One variable of the model a configuration builds."""

    path: str
    shape: tuple
    nbytes: int


def without_compile(node):
    """A copy of a configuration with every ``compile_config`` left out."""
    if isinstance(node, dict):
        return {k: (None if k == "compile_config" else without_compile(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [without_compile(v) for v in node]
    return node


def itemsize(dtype) -> int:
    import numpy as np

    try:
        return np.dtype(dtype).itemsize
    except TypeError:  # bfloat16, float8_*: the bits are in the name
        bits = re.findall(r"\d+", str(dtype))
        return max(1, int(bits[0]) // 8) if bits else 4


def built_variables(path, config: dict, safe_mode: bool) -> list[Built]:
    """The variables (paths, shapes, bytes) of the model ``config`` describes; nothing allocated.

    Raises whatever Keras raises while rebuilding (the caller names the file and cause).
    """
    import keras
    from keras.src.backend.common import global_state  # Keras' list of uninitialized variables

    key = "uninitialized_variables"
    pending = list(global_state.get_global_attribute(key) or [])
    try:
        with keras.StatelessScope(initialize_variables=False):
            model = keras.saving.deserialize_keras_object(without_compile(config), safe_mode=safe_mode)
        if not isinstance(model, keras.Model):
            raise DataError(path, f"a {CONFIG} describing a Keras model", f"a {type(model).__name__}")
        return [Built(v.path, tuple(int(n) for n in v.shape), math.prod(v.shape) * itemsize(v.dtype))
                for v in model.variables]
    finally:
        # forget this model's variables, or the next StatelessScope would initialize (allocate) them
        global_state.set_global_attribute(key, pending)


def compare(path, declared: list[Declared], built: list[Built], limits: ModelLimits) -> None:
    """The model's variables within the limit, and no declared array larger than the largest.

    Each array of the weights file is a variable of the model or optimizer state shaped
    after one (some optimizers store factored moments, lookup layers constants), so none
    may hold more values than the model's largest variable. Keras compares exact shapes as
    it assigns each array, after reading it, which these bounds keep small.
    """
    total = sum(b.nbytes for b in built)
    if total > limits.weights:
        big = max(built, key=lambda b: b.nbytes)
        raise DataError(path, f"a model within the model size limit ({format_size(limits.weights)})",
                        f"{CONFIG} building {sum(math.prod(b.shape) for b in built):.4g} parameters "
                        f"({format_size(total)}; the largest {big.path}, shape {big.shape}); "
                        f"{limits.hint('weights', total)}")
    largest = max((math.prod(b.shape) for b in built), default=1)
    for d in declared:
        if math.prod(d.shape) > largest:
            raise DataError(path, f"weights no larger than the variables of the model {CONFIG} builds",
                            f"{d.name} of shape {d.shape} ({math.prod(d.shape)} values), larger than any of its "
                            f"{len(built)} variables (the largest holds {largest})")


def check_finite(path, model) -> None:
    """Refuse a model whose weights hold NaN or infinity (they would reach scores and metrics)."""
    import keras

    bad = [v.path for v in model.weights
           if keras.backend.is_float_dtype(v.dtype) and not bool(keras.ops.all(keras.ops.isfinite(v)))]
    if bad:
        shown = ", ".join(bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        raise DataError(path, "finite weights", f"NaN or infinite values in {len(bad)} of {len(model.weights)} "
                                                f"variables: {shown}")
