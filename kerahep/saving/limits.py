"""How large a ``.keras`` file kerahep accepts before anything of it is allocated.

One number a user can raise, ``--max-model-size`` (or ``$KERAHEP_MAX_MODEL_SIZE``): the
bytes of weights a file may declare. The other bounds follow from it, so raising it
lifts them together: the configuration may be 1/16 of it and the assets 1/4 (at least
64 MiB and 256 MiB), the configuration may describe 10 000 Keras objects per GiB (at
least 10 000) and the weights file ten datasets per object. No kerahep model comes near
the defaults (the largest is a few MiB of weights, 40 kB of configuration, 200 objects).

This module imports no Keras: the commands parse ``--max-model-size`` before they select
a backend.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import re

from ..errors import ConfigError

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
#: the environment variable that holds the process-wide limit (commands set it, subprocesses inherit it)
ENV = "KERAHEP_MAX_MODEL_SIZE"
DEFAULT_WEIGHTS = 1 * GiB
#: nesting of config.json (JSON levels); kerahep's deepest is 15, Keras recurses per level
MAX_DEPTH = 100
#: bytes of uncompressed member per stored byte beyond which a member is a decompression bomb
MAX_RATIO = 100
#: declared bytes of a weights dataset per stored byte beyond which it is a shape bomb
MAX_DATASET_RATIO = 1000
#: below this, a member or dataset is too small for its ratio to matter
RATIO_FLOOR = 1 * MiB

_UNITS = {"": 1, "b": 1, "k": KiB, "kb": 1000, "kib": KiB, "m": MiB, "mb": 1000**2, "mib": MiB,
          "g": GiB, "gb": 1000**3, "gib": GiB, "t": 1 << 40, "tb": 1000**4, "tib": 1 << 40}
_UNLIMITED = ("none", "unlimited", "inf")


class SizeError(ConfigError, argparse.ArgumentTypeError):
    """A size that cannot be read (argparse prints its message as it is)."""


@dataclasses.dataclass(frozen=True)
class ModelLimits:
    """Upper bounds checked before a ``.keras`` file is loaded (``math.inf``: unbounded).

    Attributes:
        weights: bytes of weights: the weights file's declared datasets (optimizer state
            included) and the variables the model's configuration builds, each.
        config: bytes of ``config.json`` (and of any other small member).
        assets: bytes of all other archive members together (Keras unpacks them to disk).
        objects: Keras objects (``class_name`` entries) in the configuration; it may hold
            100 JSON values per object.
        datasets: datasets in the weights file.
    """

    weights: float = DEFAULT_WEIGHTS
    config: float = 64 * MiB
    assets: float = 256 * MiB
    objects: float = 10_000
    datasets: float = 100_000

    @classmethod
    def from_size(cls, weights) -> ModelLimits:
        """The limits that follow from a weights limit (bytes, a size string, or None for none)."""
        w = parse_size(weights) if isinstance(weights, str) else (math.inf if weights is None else weights)
        if w <= 0:
            raise SizeError(f"a model size limit must be positive, got {weights!r}")
        if math.isinf(w):
            return cls(*(math.inf,) * 5)
        objects = max(10_000, round(10_000 * w / GiB))
        return cls(weights=int(w), config=max(64 * MiB, w // 16), assets=max(256 * MiB, w // 4),
                   objects=objects, datasets=10 * objects)

    @property
    def bounded(self) -> bool:
        return not math.isinf(self.weights)

    def archive_bytes(self) -> float:
        """The most bytes the whole archive may hold: weights, configuration, assets and HDF5 headroom."""
        return self.weights + 2 * self.config + self.assets

    def hint(self, field: str, needed: float) -> str:
        """The limit on ``field`` and the ``--max-model-size`` that would accept ``needed`` of it."""
        limit = self.archive_bytes() if field == "archive" else getattr(self, field)
        return (f"the limit is {format_size(limit, field)}; if you trust the file, raise it with "
                f"--max-model-size {format_size(needed * _SCALE[field])} (or ${ENV})")


#: how a limit follows from the weights limit (see ModelLimits.from_size), inverted
_SCALE = {"weights": 1, "archive": 1, "config": 16, "assets": 4, "objects": GiB / 10_000, "datasets": GiB / 100_000}


def parse_size(text) -> float:
    """Bytes of ``text``: ``1073741824``, ``500MB`` (powers of 1000), ``2GiB``/``2G`` (powers of
    1024), or ``none``/``unlimited`` (``math.inf``). Raises :class:`SizeError`."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        s = str(text).strip().lower().replace(" ", "")
        if s in _UNLIMITED:
            return math.inf
        m = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)(?:e(\d+))?([a-z]*)", s)
        if not m or m.group(3) not in _UNITS:
            raise SizeError(f"cannot read {text!r} as a size: expected bytes or a number with a unit "
                            f"(500MB, 2GB, 2GiB) or 'none'")
        value = float(m.group(1)) * 10 ** int(m.group(2) or 0) * _UNITS[m.group(3)]
    if not value > 0:
        raise SizeError(f"a size must be positive, got {text!r}")
    return math.inf if math.isinf(value) else math.ceil(value)


def format_size(n, field: str = "weights") -> str:
    """``n`` bytes in words (``2.0 GiB``); objects and datasets as plain counts."""
    if math.isinf(n):
        return "none"
    if field in ("objects", "datasets"):
        return f"{int(n)} {field}"
    for unit, size in (("TiB", 1 << 40), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size:
            return f"{math.ceil(n / size * 10) / 10:g}{unit}"
    return f"{int(n)}B"


def current_limits() -> ModelLimits:
    """The process-wide limits: ``$KERAHEP_MAX_MODEL_SIZE`` if set, else the defaults."""
    value = os.environ.get(ENV)
    if not value:
        return ModelLimits()
    try:
        return ModelLimits.from_size(value)
    except SizeError as exc:
        raise ConfigError(f"${ENV}: {exc}") from None


@contextlib.contextmanager
def max_model_size(value):
    """Within the block, models load under the limits of ``value`` (bytes, a size string or
    ``math.inf``; None leaves the current setting). Set through the environment, so a
    subprocess started inside the block (the torch ONNX exporter) inherits it."""
    if value is None:
        yield current_limits()
        return
    limits = ModelLimits.from_size(value)
    old = os.environ.get(ENV)
    os.environ[ENV] = "none" if not limits.bounded else str(limits.weights)
    try:
        yield limits
    finally:
        if old is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = old
