"""dy_electron data: prepared datasets (CSV or Parquet) to batched ``tf.data`` splits.

The default input is ``<data_dir>/processed/electron_dataset.csv`` (written by
``scripts.prepare_dataset``); without it, the NanoAOD synthetic twin is made, prepared
and read (:func:`synthetic_dataset`). The model takes exactly the feature columns of the
data settings (:func:`~kerahep.tasks.dy_electron.config.feature_spec`: ``data.features``,
``n_electrons``, ``n_jets``): a file lacking one is refused (DataError naming the file and
the columns), and a column that is neither a feature nor bookkeeping (:data:`META_COLUMNS`)
is ignored with a warning naming it. With ``data.weights`` other than ``none``, every
split's batches are ``(x, y, w)`` (:mod:`.weights`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...config import Config
from ...errors import DataError
from ..base import Inputs, TaskData
from .config import feature_spec

log = logging.getLogger("kerahep")

DEFAULT_DATASET = Path("processed") / "electron_dataset.csv"
META_COLUMNS = ("target", "sample", "weight", "genWeight", "event", "run", "luminosityBlock", "file", "entry")
#: the layout of the prepared twin (2: with the event identifiers and the sums of generator weights)
TWIN_LAYOUT = 2


@dataclass
class DyElectronInputs(TaskData):
    """The datasets of a dy_electron run, with the arrays the model and report need.

    Attributes:
        X: all events' features ``(n, n_features)`` float32, in file order.
        y: all events' targets (0 background, 1 signal).
        samples: the sample name of each event.
        features: the feature column names (the model's input names), in order.
        split: event indices of train, validation and test.
        weights: the physical weight of every event (file order; None with ``data.weights=none``):
            genWeight or cross-section normalised, negative ones kept (:mod:`.weights`).
    """

    X: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    y: np.ndarray = field(default_factory=lambda: np.zeros(0))
    samples: np.ndarray = field(default_factory=lambda: np.zeros(0, str))
    features: list = field(default_factory=list)
    split: tuple = ()
    weights: np.ndarray | None = None


def default_files(config: Config) -> list | None:
    """The prepared real dataset under ``data_dir``, when it exists."""
    default = Path(config.data.data_dir) / DEFAULT_DATASET
    return [default] if default.exists() else None


def synthetic_dataset(task_name: str, config: Config) -> Path:
    """Make (once) the NanoAOD twin under ``<data_dir>/synthetic/dy_electron`` and prepare it."""
    from ...artifacts import read_json, write_json
    from ...data.nanoaod import prepare_dataset
    from ...data.synthetic.nanoaod import make_twin, twin_params

    d = config.data
    root = Path(d.data_dir) / "synthetic" / task_name
    out = root / f"electron_dataset_{d.features}_e{d.n_electrons}_j{d.n_jets}.csv"
    params = {"events_per_sample": d.synthetic_events, "seed": config.run.seed, "layout": TWIN_LAYOUT,
              "spec": [d.n_electrons, d.n_jets, d.features, d.min_pt, d.max_abs_eta, d.min_electrons],
              "twin": twin_params(d.synthetic_events, config.run.seed)}  # a new generator remakes it
    stamp = out.with_suffix(".json")
    if out.exists() and stamp.exists() and read_json(stamp).get("params") == params:
        return out
    log.warning("Making the synthetic NanoAOD twin of dy_electron under %s", root)
    files = make_twin(root / "nanoaod", d.synthetic_events, seed=config.run.seed)
    report = prepare_dataset(files["signal"], files["background"], out, spec=feature_spec(d), progress=False)
    twin = read_json(root / "nanoaod" / "twin.json") if (root / "nanoaod" / "twin.json").exists() else {}
    write_json(stamp, {"params": params, "source": "synthetic", "oracle_auc": twin.get("oracle_auc"),
                       "report": report_as_dict(report)})
    return out


def load_frame(paths, spec=None):
    """Read and concatenate prepared datasets that share one column layout.

    With ``spec`` (a :class:`~kerahep.data.nanoaod.FeatureSpec`), each file must hold every
    feature of it (DataError naming the file and the missing columns), and its other
    columns that are not bookkeeping (:data:`META_COLUMNS`) are dropped with a warning
    naming them (:func:`kerahep.data.nanoaod.load_prepared`).
    """
    import pandas as pd

    from ...data.nanoaod import load_prepared

    frames = [load_prepared(p, spec=spec, bookkeeping=META_COLUMNS) for p in paths]
    for p, f in zip(paths[1:], frames[1:]):
        if list(f.columns) != list(frames[0].columns):
            diff = sorted(set(f.columns) ^ set(frames[0].columns))
            raise DataError(p, f"the columns of {paths[0]} (files prepared with the same settings)",
                            f"columns differing in {diff[:8]}" if diff else "the same columns in another order")
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    for col in ("target", "sample"):
        if col not in df.columns:
            raise DataError(paths[0], f"a prepared dataset with a '{col}' column", f"columns {list(df.columns)[:12]}")
    return df


def feature_columns(df, spec=None) -> list[str]:
    """The model features of a prepared dataset: exactly ``spec.columns`` (in the preset's order)
    when a :class:`~kerahep.data.nanoaod.FeatureSpec` is given, else its numeric columns that
    are not bookkeeping."""
    if spec is not None:
        return list(spec.columns)
    return [c for c in df.columns if c not in META_COLUMNS and np.issubdtype(df[c].dtype, np.number)]


def load_inputs(config: Config, inputs: Inputs, for_evaluation: bool = False) -> DyElectronInputs:
    """The datasets of ``inputs`` (see :meth:`kerahep.tasks.base.Task.load_data`)."""
    from ...evaluation import class_weights
    from .weights import event_weights, split_weights

    files, source = inputs.files, inputs.source
    meta = dataset_meta(files)
    if meta and all(m.get("source") == "synthetic" for m in meta.values()):
        source = "synthetic"  # a prepared copy of the twin (prepare_dataset --synthetic)
    spec = feature_spec(config.data)
    df = load_frame(files, spec)  # exactly the preset's features: extra columns warned of, missing ones refused
    feats = feature_columns(df, spec)
    y = df["target"].to_numpy()
    if not np.isin(y, (0, 1)).all():
        bad = sorted(set(np.unique(y)) - {0, 1})[:5]
        raise DataError(files[0], "target values 0 (background) or 1 (signal)", f"{bad}")
    X = df[feats].to_numpy(dtype=np.float32)
    if not np.isfinite(X).all():
        col = feats[int(np.flatnonzero(~np.isfinite(X).all(axis=0))[0])]
        raise DataError(files[0], "finite feature values", f"NaN or infinity in column {col!r}")
    samples = df["sample"].astype(str).to_numpy()
    parts = split_events(config, samples, y, for_evaluation)
    tr, va, te = parts
    info = {
        "n_train": int(len(tr)), "n_val": int(len(va)), "n_test": int(len(te)),
        "n_signal": int((y == 1).sum()), "n_background": int((y == 0).sum()),
        "features": feats,
        "samples": {s: int(c) for s, c in zip(*np.unique(samples, return_counts=True))},
    }
    if meta:
        info["preparation"] = meta
        oracle = [m.get("oracle_auc") for m in meta.values() if m.get("oracle_auc")]
        if source == "synthetic" and oracle:
            info["oracle_auc"] = float(oracle[0])
    w, info["weights"] = event_weights(config.data, df, samples, meta, files[0])
    balance = bool(config.training.class_weight and len(tr))
    batch, seed = config.training.batch_size, config.run.seed
    if w is None:  # data.weights=none: (x, y) batches and Keras' class_weight, as before weights existed
        w_tr = w_va = w_te = None
        class_weight = class_weights(y[tr]) if balance else None
    else:  # weights in the batches; class balancing folded into them (Keras refuses both at once)
        sw = split_weights(w, y, samples, parts, config.data.negative_weights, balance, files[0])
        w_tr, w_va, w_te, class_weight = sw.train, sw.val, sw.test, None
        info["weights"]["class_weight"] = sw.class_weight
    return DyElectronInputs(
        train=batches(X, y, feats, tr, batch, seed, shuffle=True, w=w_tr),
        val=batches(X, y, feats, va, batch, seed, w=w_va), test=batches(X, y, feats, te, batch, seed, w=w_te),
        source=source, paths=[str(p) for p in files],
        info=info, class_weight=class_weight, X=X, y=y, samples=samples, features=feats, split=parts, weights=w,
    )


def split_events(config: Config, samples: np.ndarray, y: np.ndarray, for_evaluation: bool) -> tuple:
    """Event indices of train, validation and test: stratified by sample and class, or every
    event in test for an independent sample (``for_evaluation``)."""
    from ...data.splits import stratified_split

    if for_evaluation:
        return np.zeros(0, int), np.zeros(0, int), np.arange(len(y))
    strat = np.char.add(samples.astype(str), y.astype(int).astype(str))
    split = config.data.split
    return tuple(stratified_split(strat, tuple(split) if len(split) == 3 else (split[0], 0.0, split[1]),
                                  seed=config.run.seed))


def batches(X, y, feats, idx, batch_size: int, seed: int, shuffle: bool = False, w=None):
    """Batches ``({feature: (b, 1)}, target)`` of the events ``idx``, or ``(x, target, weight)``
    with ``w`` (one weight per event of ``idx``); None for no events.

    Training reshuffles all of them every epoch: the prepared file holds one sample after
    another and the split keeps file order, so a shuffle buffer smaller than the split
    (``data.shuffle_buffer``) left most batches of one class; shuffling the event indices
    (cheap) mixes them all.
    """
    import tensorflow as tf

    from ...data.batches import PREFETCH, no_autotune

    if len(idx) == 0:
        return None
    xs, ys = tf.constant(X[idx]), tf.constant(y[idx].astype(np.float32))
    ws = None if w is None else tf.constant(np.asarray(w, np.float32))

    def take(i):
        xb = tf.gather(xs, i)
        x = {f: xb[:, k:k + 1] for k, f in enumerate(feats)}
        return (x, tf.gather(ys, i)) if ws is None else (x, tf.gather(ys, i), tf.gather(ws, i))

    ds = tf.data.Dataset.range(len(idx))
    if shuffle:
        ds = ds.shuffle(len(idx), seed=seed, reshuffle_each_iteration=True)
    # autotuning off (kerahep.data.batches.no_autotune: its end-of-epoch wait); the map on a thread per core
    return (ds.batch(batch_size).map(take, num_parallel_calls=tf.data.AUTOTUNE).prefetch(PREFETCH)
            .with_options(no_autotune()))


def report_as_dict(report) -> dict:
    """A preparation report (dataclass or object) as a JSON-friendly dict."""
    import dataclasses

    if dataclasses.is_dataclass(report):
        d = dataclasses.asdict(report)
    else:
        d = dict(getattr(report, "__dict__", {}))
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}


def dataset_meta(files) -> dict:
    """What is known of each prepared dataset: the twin's stamp (``.json``) and the preparation
    report (``.report.json``) written beside it, merged."""
    from ...artifacts import read_json

    out = {}
    for f in files:
        meta = {}
        # the twin's stamp (source, oracle AUC) and prepare_dataset's report: both, report last
        for cand in (Path(f).with_suffix(".json"), Path(str(f) + ".report.json")):
            if cand.exists():
                try:
                    meta.update(read_json(cand))
                except ValueError:
                    pass
        if meta:
            out[str(f)] = meta
    return out
