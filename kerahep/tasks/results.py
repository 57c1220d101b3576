"""What :meth:`kerahep.tasks.base.Task.fit` returns: :class:`FitResult`, and the fields
marked :func:`stored` that the trainer writes to ``fit_result.json`` for re-evaluation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: the file of a run directory that holds a FitResult's stored fields
FIT_RESULT_FILE = "fit_result.json"


def stored(default=dataclasses.MISSING, *, default_factory=dataclasses.MISSING):
    """A :class:`FitResult` field that only training can compute: written to the run directory."""
    kw = {"default": default} if default is not dataclasses.MISSING else {}
    if default_factory is not dataclasses.MISSING:
        kw["default_factory"] = default_factory
    return field(metadata={"stored": True}, **kw)


@dataclass
class FitResult:
    """What :meth:`Task.fit` hands to :meth:`Task.evaluate`.

    Attributes:
        models: the trained models by artifact name (``model`` -> ``model.keras``); only
            those named in :attr:`Task.artifacts` are saved.

    Tasks subclass it with typed fields. Mark with :func:`stored` the fields that only
    training can compute; they must be JSON values (numbers, strings, lists, dicts) or
    NumPy arrays (stored as lists, read back as arrays). Unmarked fields are for training's
    own evaluation only and come back at their defaults on re-evaluation, so evaluate
    must not depend on them for anything it reports.

    Example::

        @dataclass
        class MyResult(FitResult):
            scratch_auc: float | None = stored(None)
    """

    models: dict = field(default_factory=dict)

    @classmethod
    def stored_fields(cls) -> list:
        return [f.name for f in dataclasses.fields(cls) if f.metadata.get("stored")]

    def save(self, run_dir) -> Path | None:
        """Write the stored fields to ``<run_dir>/fit_result.json`` (atomically); None if there are none."""
        from ..artifacts import write_json

        names = self.stored_fields()
        if not names:
            return None
        values = {n: _to_json(getattr(self, n)) for n in names}
        arrays = [n for n in names if isinstance(getattr(self, n), np.ndarray)]
        # one line: the stored scores of a large test set are hundreds of thousands of numbers
        return write_json(Path(run_dir) / FIT_RESULT_FILE, {"type": type(self).__name__, "fields": values,
                                                           "arrays": arrays}, indent=None)

    @classmethod
    def load(cls, run_dir, models: dict) -> "FitResult":
        """The result of the run in ``run_dir``: ``models`` plus the stored fields written by training.

        Raises:
            DataError: the stored file is present but unreadable.
        """
        from ..artifacts import read_json
        from ..errors import DataError

        path = Path(run_dir) / FIT_RESULT_FILE
        values = {}
        if cls.stored_fields() and path.exists():
            try:
                saved = read_json(path)  # strict JSON, its non-finite numbers restored
                fields_ = saved["fields"]
                arrays = set(saved.get("arrays", ()))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise DataError(path, "the stored training results of the run (JSON)",
                                f"{type(exc).__name__}: {exc}") from None
            for n in cls.stored_fields():
                if n in fields_:
                    values[n] = np.asarray(fields_[n]) if n in arrays else fields_[n]
        return cls(models=dict(models), **values)


def _to_json(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, dict):
        return {str(k): _to_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_to_json(x) for x in v]
    return v
