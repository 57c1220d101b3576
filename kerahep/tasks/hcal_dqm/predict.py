"""hcal_dqm ``predict``: score one LHC run file, one output row per lumisection.

Input: one ``.npy`` file per run, ``(lumisections, iEta, iPhi)`` hit counts, opened as
training opens its runs (:func:`kerahep.data.hcal.open_run`: memory-mapped, the layout
checked, and with ``data.scan_values`` every value of a chunk checked for NaN, infinities,
negative counts and values beyond float32 as it is read, before it is scored: a bad value
stops the file, whose partial output is removed). Its maps must have the shape the run was
trained on. The file is read ``run.chunk_size`` lumisections at a time
as float32 (:meth:`kerahep.data.hcal.RunFile.read`), every lumisection of it (no
``data.max_events`` cut). A file of zero lumisections (shape ``(0, iEta, iPhi)``) gives the
columns and no rows.

Output columns, in file order:

* ``lumisection`` (int64): the 0-based index of the map along the file's first axis (the
  numbering of the report and of ``anomalies.json``);
* ``p_<run>`` (float32), one per class the classifier was trained on, named after the
  training runs as the report names the classes (:func:`.data.training_runs`, a repeated
  name made unique as ``<name>[<position>]`` as the reader does): the probability that the
  lumisection belongs to that run (two runs: ``1 - p`` and ``p`` of the sigmoid output, as
  the report builds them; more: the softmax);
* ``anomaly_score`` (float64) and ``flag`` (bool), when the run has the autoencoder: the
  score of :func:`kerahep.models.ae.anomaly_scores` with ``model.anomaly_score``, and
  whether it exceeds training's alarm threshold (:func:`training_threshold`);
* ``latent`` (float32, ``(n, model.ae_latent)``; ``latent_0 ..`` in CSV and Parquet), with
  ``run.embedding`` only: the autoencoder's bottleneck.
"""

from __future__ import annotations

import logging

import numpy as np

from ...errors import DataError, KerahepError
from .data import training_runs

log = logging.getLogger("kerahep")


# ---------------------------------------------------------------------- threshold
def training_threshold(run) -> float:
    """The alarm threshold on anomaly scores that training derived.

    Training does not store it among its fit results: its report computes it
    (:func:`.monitoring.robust_threshold` of the validation lumisections' scores) and
    writes it to ``metrics.json`` (``test.monitoring.autoencoder.threshold``). In order:
    a stored ``anomaly_threshold`` field of the run's result, if a later version stores
    one; else the report's value in ``metrics.json``. A run without either is refused:
    scoring never reloads the training data behind the user's back (which could rebuild a
    synthetic twin under a relative ``data_dir``); :func:`recompute_threshold` redoes the
    report's computation on request.

    Raises:
        KerahepError: the run records no threshold.
    """
    stored = getattr(run.result, "anomaly_threshold", None)
    if stored is not None:
        return float(stored)
    reported = reported_threshold(run)
    if reported is not None:
        return reported
    raise KerahepError(f"{run.run_dir / 'metrics.json'}: expected the alarm threshold training derived "
                       "(test.monitoring.autoencoder.threshold), found none; is the run complete? "
                       "(kerahep.tasks.hcal_dqm.predict.recompute_threshold(run) recomputes it from the run's data)")


def reported_threshold(run) -> float | None:
    """``test.monitoring.autoencoder.threshold`` of the run's ``metrics.json`` (None when absent)."""
    from ...artifacts import read_json

    path = run.run_dir / "metrics.json"
    if not path.exists():
        return None
    try:
        ae = read_json(path)["test"]["monitoring"]["autoencoder"]
    except (ValueError, KeyError, TypeError, OSError):
        return None
    if ae.get("score") not in (None, run.config.model.anomaly_score) or ae.get("threshold") is None:
        return None
    return float(ae["threshold"])


def recompute_threshold(run) -> float:
    """The report's threshold, recomputed: the run's data loaded from its configuration, the
    autoencoder's scores of the validation lumisections (of the test ones without a
    validation split), and :func:`.monitoring.robust_threshold` at ``model.false_alarm_rate``."""
    from ...models.ae import anomaly_scores
    from .monitoring import robust_threshold

    m = run.config.model
    data = run.task.load_data(run.config)
    reference = data.val if data.val is not None else data.test
    return robust_threshold(anomaly_scores(run.models["autoencoder"], reference, how=m.anomaly_score),
                            m.false_alarm_rate)


# ------------------------------------------------------------------------- inputs
def class_columns(run) -> list[str]:
    """``p_<run>`` for every class of the classifier, in class order."""
    names = training_runs(run.config)
    if len(set(names)) != len(names):  # as the reader makes the run names of one data set unique
        names = [f"{n}[{i}]" for i, n in enumerate(names)]
    return [f"p_{n}" for n in names]


def open_file(run, path):
    """Memory-map ``path`` with training's reader and checks (the map shape checked before the
    value scan); None for a file of no lumisections."""
    from ...data import hcal

    try:
        rf = hcal.open_run(path, validate=False)
    except DataError:
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError):
            arr = None
        if isinstance(arr, np.ndarray) and arr.ndim == 3 and arr.shape[0] == 0 and arr.dtype.kind in "iuf":
            check_shape(run, path, arr.shape[1:])
            return None
        raise
    check_shape(run, path, rf.array.shape[1:])
    return rf


def check_shape(run, path, shape) -> None:
    """Refuse maps of another shape than the models take."""
    want = tuple(int(v) for v in run.models["model"].input.shape[1:])
    if tuple(int(v) for v in shape) != want:
        raise DataError(path, f"maps of shape {want} (iEta, iPhi), as the run {run.run_dir.name} was trained on",
                        f"maps of shape {tuple(shape)}")


# ------------------------------------------------------------------------ scoring
def probabilities(run, x: np.ndarray, columns: list) -> dict:
    """``{p_<run>: (n,)}``: the classifier's class probabilities, as the report builds them."""
    p = np.asarray(run.score(x, "model"), dtype=np.float32) if len(x) else np.zeros((0,), np.float32)
    if len(columns) == 2:
        p = p.reshape(len(x))
        proba = np.stack([1.0 - p, p], axis=1)
    else:
        proba = p.reshape(len(x), len(columns))
    return {c: proba[:, i].astype(np.float32) for i, c in enumerate(columns)}


def batches(x: np.ndarray, batch_size: int):
    for s in range(0, len(x), batch_size):
        yield (x[s:s + batch_size],)


def latent_model(ae):
    """A model of the autoencoder's layers: raw maps to its bottleneck ``(n, model.ae_latent)``."""
    import keras

    return keras.Model(ae.input, ae.get_layer("latent").output, name="autoencoder_latent")


def latent(run, sub, x: np.ndarray) -> np.ndarray:
    """The bottleneck of ``x`` by ``sub`` (:func:`latent_model`), ``run.batch_size`` maps per call."""
    from ...scoring import score

    if not len(x):
        return np.zeros((0, int(sub.output.shape[-1])), np.float32)
    return np.asarray(score(sub, x, batch_size=run.batch_size), np.float32).reshape(len(x), -1)


def score_chunk(run, x: np.ndarray, start: int, columns: list, threshold: float | None, sub=None) -> dict:
    """The output columns of lumisections ``start .. start + len(x)``."""
    from ...models.ae import anomaly_scores
    from ...scoring import compiled_forward

    out = {"lumisection": np.arange(start, start + len(x), dtype=np.int64), **probabilities(run, x, columns)}
    ae = run.models.get("autoencoder")
    if ae is not None:
        score = anomaly_scores(ae, batches(x, run.batch_size), how=run.config.model.anomaly_score,
                               forward=compiled_forward(ae))
        score = np.asarray(score, dtype=np.float64).reshape(len(x))
        out["anomaly_score"] = score
        out["flag"] = score > threshold
        if sub is not None:
            out["latent"] = latent(run, sub, x)
    return out


def predict_file(run, path):
    """Yield the output chunks of one run file (see the module docstring)."""
    if run.embedding and "autoencoder" not in run.models:
        raise KerahepError(f"{run.run_dir}: --embedding writes the autoencoder's latent, and this run has no "
                           "autoencoder.keras (trained with model.autoencoder=false)")
    columns = class_columns(run)
    units = int(run.models["model"].output.shape[-1])
    if units != (1 if len(columns) == 2 else len(columns)):
        raise KerahepError(f"{run.run_dir}: model.keras has {units} outputs, the configuration {len(columns)} "
                           f"training runs ({', '.join(columns)}): the run's files do not belong together")
    rf = open_file(run, path)
    ae = run.models.get("autoencoder")
    threshold = training_threshold(run) if ae is not None else None
    sub = latent_model(ae) if run.embedding else None
    if rf is None:
        empty = np.zeros((0, *run.models["model"].input.shape[1:]), np.float32)
        yield score_chunk(run, empty, 0, columns, threshold, sub)
        return
    n, step = len(rf), int(run.chunk_size)
    for start in range(0, n, step):
        x = rf.read(start, min(start + step, n), check=run.config.data.scan_values)
        yield score_chunk(run, x, start, columns, threshold, sub)
