"""dy_electron predict: score NanoAOD files directly, one output row per entry of their ``Events`` tree.

:func:`predict_file` reads the ``Events`` tree of a NanoAOD file in steps of
``run.chunk_size`` entries, and applies to each step what ``scripts.prepare_dataset``
applies (:func:`kerahep.data.nanoaod.process_chunk`: its preselection and features, with
the run's :func:`~kerahep.tasks.dy_electron.config.feature_spec`). The events passing the
preselection are scored by the run's model; every entry, selected or not, gives one row,
in the file's order, so the output is a friend of the input tree:

* ``kerahep_score`` (float32): the model's score, P(signal), or :data:`NOT_SELECTED`
  (-1, which no sigmoid score takes) for events failing the preselection;
* ``kerahep_score_spread`` (float32), for a deep ensemble (``training.ensemble=N``) only:
  the spread of its members' scores, or :data:`NOT_SELECTED` for events failing the
  preselection;
* ``kerahep_selected`` (bool): whether the event passed the preselection;
* ``run``, ``luminosityBlock``, ``event``: the event's identifiers, copied from the file
  (with the file's integer types: uint32, uint32, uint64 in NanoAOD).

NanoAOD files carry no labels, so there is no label column; the dense network has no
embedding, so ``run.embedding`` adds nothing.

Example::

    from kerahep.prediction import open_run
    run = open_run("results/dy_electron/RUN")
    for chunk in run.task.predict_file(run, "nano_dy.root"):
        print(chunk["kerahep_score"][chunk["kerahep_selected"]])
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ...data.nanoaod import EVENT_ID_BRANCHES, TREE, FeatureSpec, inspect_file, process_chunk
from ...errors import ConfigError, DataError
from ...models.ensemble import has_spread
from ...scoring import input_spec
from .config import feature_spec

SCORE = "kerahep_score"
SELECTED = "kerahep_selected"
SPREAD = "kerahep_score_spread"
#: the score of an event failing the preselection (a sigmoid score is in [0, 1])
NOT_SELECTED = -1.0
#: the columns of every chunk, in order (:data:`SPREAD` after the score for an ensemble)
COLUMNS = (SCORE, SELECTED) + EVENT_ID_BRANCHES


def predict_file(run, path) -> Iterator[dict]:
    """Yield ``{column: array}`` chunks for every entry of ``path``'s ``Events`` tree, in order.

    Args:
        run: a :class:`kerahep.prediction.PredictRun` of a dy_electron run.
        path: a NanoAOD ROOT file (or URL).

    Yields:
        dicts with the :data:`COLUMNS`, at most ``run.chunk_size`` rows each; at least one
        chunk (zero rows for a file without entries).

    Raises:
        DataError: not a ROOT file, no ``Events`` tree, a branch the features or the event
            identifiers need is absent (named), unreadable baskets; or a model whose inputs
            are not the features of the run's configuration. Everything the file's header
            shows is checked before the first chunk.
    """
    path = os.fspath(path)
    chunk_size = _chunk_size(run)
    spec = feature_spec(run.config.data)
    features = model_features(run, spec)
    spread = has_spread(run.models["model"])
    info = inspect_file(path, spec, keep_open=True)
    f, tree = info.handle
    info.handle = None
    try:
        id_types = id_dtypes(tree, path)
        it = tree.iterate(info.branches, step_size=chunk_size, library="ak", how=dict)
        rows = 0
        while True:
            try:
                chunk = next(it)
            except StopIteration:
                break
            except Exception as exc:  # noqa: BLE001 - corrupt baskets, truncated files
                raise DataError(path, "readable NanoAOD baskets", f"a read error ({type(exc).__name__}: {exc})") \
                    from None
            out = score_chunk(run, chunk, spec, features, id_types, path, spread)
            rows += len(out[SCORE])
            yield out
        if rows == 0:
            yield empty_chunk(id_types, spread)
        elif rows != info.num_entries:
            raise DataError(path, f"{info.num_entries} entries in the {TREE!r} tree (as its header says)",
                            f"{rows} entries read")
    finally:
        f.close()


def score_chunk(run, chunk, spec: FeatureSpec, features: list, id_types: dict, path: str,
                spread: bool = False) -> dict:
    """The output columns of one step of the tree (every entry of it): training's preselection
    and features, then the model on the selected events (with ``spread``: an ensemble's
    mean and spread)."""
    import awkward as ak

    mask, cols = process_chunk(chunk, spec, path)
    n = len(mask)
    out = {SCORE: np.full(n, NOT_SELECTED, np.float32)}
    if spread:
        out[SPREAD] = np.full(n, NOT_SELECTED, np.float32)
    out[SELECTED] = np.asarray(mask, bool)
    if mask.any():
        x = {name: cols[name] for name in features}
        pred = run.score(x, output="all") if spread else {"output_0": run.score(x)}
        out[SCORE][mask] = np.asarray(pred["output_0"], np.float32).reshape(int(mask.sum()))
        if spread:
            out[SPREAD][mask] = np.asarray(pred["output_1"], np.float32).reshape(int(mask.sum()))
    for name in EVENT_ID_BRANCHES:
        out[name] = np.asarray(ak.to_numpy(chunk[name])).astype(id_types[name], copy=False)
    return out


def empty_chunk(id_types: dict, spread: bool = False) -> dict:
    """A chunk of zero rows with the columns and types of every other."""
    out = {SCORE: np.zeros(0, np.float32), **({SPREAD: np.zeros(0, np.float32)} if spread else {}),
           SELECTED: np.zeros(0, bool)}
    out.update({name: np.zeros(0, id_types[name]) for name in EVENT_ID_BRANCHES})
    return out


def model_features(run, spec: FeatureSpec) -> list[str]:
    """The model's input names, every one a feature of ``spec`` (the run's data settings)."""
    model = run.models["model"]
    where = Path(run.run_dir) / "model.keras"
    inputs = input_spec(model)
    if not isinstance(inputs, dict):
        raise DataError(where, "a dy_electron model with one named input per feature", f"one input of shape {inputs}")
    missing = [name for name in inputs if name not in spec.columns]
    if missing:
        raise DataError(where, f"a model taking the features of the run's data settings "
                               f"(data.features={spec.preset}, n_electrons={spec.n_electrons}, n_jets={spec.n_jets})",
                        f"inputs {missing[:8]} that these settings do not build")
    return list(inputs)


def id_dtypes(tree, path: str) -> dict:
    """The NumPy type of each event identifier branch (one integer per event), native byte order."""
    out = {}
    for name in EVENT_ID_BRANCHES:
        interp = tree[name].interpretation
        dtype = getattr(interp, "to_dtype", None)
        if dtype is None or np.dtype(dtype).kind not in "ui" or np.dtype(dtype).shape:
            raise DataError(path, f"the branch {name!r} with one integer per event", f"{interp}")
        out[name] = np.dtype(dtype).newbyteorder("=")
    return out


def _chunk_size(run) -> int:
    size = getattr(run, "chunk_size", None)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ConfigError(f"chunk_size must be a positive number of entries, got {size!r}")
    return int(size)
