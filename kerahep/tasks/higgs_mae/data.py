"""higgs_mae data: HIGGS tables (:mod:`kerahep.data.higgs`) to batched ``tf.data`` splits.

Three ways to read (:func:`load_inputs`): one file split by seed (or two: train and
validation, then test), held in memory; row ranges of one large file, streamed in chunks
(:func:`streaming_inputs`); and an independent sample for ``evaluate --data``, every
event in ``test``. Without files, the synthetic twin of :mod:`kerahep.data.synthetic.higgs`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...config import Config
from ...errors import ConfigError, DataError
from ..base import Inputs, TaskData

log = logging.getLogger("kerahep")

#: files above this (uncompressed estimate) are not split in memory without a cap
WHOLE_READ_LIMIT_BYTES = 2_000_000_000


@dataclass
class HiggsInputs(TaskData):
    """The datasets of a higgs_mae run, with what the model builders and baselines need.

    Attributes:
        adapt: training features (in the feature set) the scaling layers adapt to; None for
            an independent sample.
        raw_train, y_train: the 28 stored columns and labels of the training events, when
            held in memory (None when streaming or for an independent sample).
        raw_test, y_test: the same for the test events (None when streaming).
        stream_path: the file streamed by row ranges (None otherwise).
        rows: the resolved row range of each split when streaming (``{"train": (start, stop), ...}``).
        independent: an independent sample (``evaluate --data``): every event in ``test``.
    """

    adapt: np.ndarray | None = None
    raw_train: np.ndarray | None = None
    y_train: np.ndarray | None = None
    raw_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    stream_path: Path | None = None
    rows: dict = field(default_factory=dict)
    independent: bool = False


def twin_dir(task_name: str, config: Config) -> Path:
    return Path(config.data.data_dir) / "synthetic" / task_name


def make_synthetic(task_name: str, config: Config) -> list[Path]:
    """Write (or reuse) the synthetic twin; return its files (the table, then ``twin.json``)."""
    from ...data.synthetic.higgs import make_twin

    d = config.data
    path = make_twin(twin_dir(task_name, config), events_per_class=d.synthetic_events, seed=d.twin_seed,
                     oracle_events=d.oracle_events)
    return [path, path.parent / "twin.json"]


def load_inputs(config: Config, inputs: Inputs, for_evaluation: bool = False) -> HiggsInputs:
    """The datasets of ``inputs`` (see :meth:`kerahep.tasks.base.Task.load_data`)."""
    from ...data import higgs as hr

    d = config.data
    files = inputs.files[:1] if inputs.synthetic else list(inputs.files)  # the twin's table, not twin.json
    info = {"features": d.features, "n_features": len(hr.feature_names(d.features))}
    if inputs.synthetic:
        info.update(twin_info(files[0]))
    if for_evaluation:
        return independent_sample(config, files, inputs.source, info)
    if len(files) > 2:
        raise DataError(files[2], "one file (split in train, validation, test) or two (train, test)",
                        f"{len(files)} files")
    if d.streaming:
        return streaming_inputs(config, files, inputs.source, info)
    return in_memory_inputs(config, files, inputs.source, info)


def twin_info(table: Path) -> dict:
    """What ``twin.json`` beside the twin's table records: its oracle AUC and size."""
    from ...artifacts import read_json

    meta = table.parent / "twin.json"
    if not meta.exists():
        return {}
    twin = read_json(meta)
    return {"oracle_auc": twin.get("oracle_auc"), "oracle_method": twin.get("oracle_method"),
            "twin_events_per_class": twin.get("params", {}).get("events_per_class")}


def independent_sample(config: Config, files: list, source: str, info: dict) -> HiggsInputs:
    """Every event of ``files`` in ``test``, scored in full (no ``max_events``)."""
    from ...data import higgs as hr

    d = config.data
    raws, ys = [], []
    for f in files:
        x, y = hr.read_higgs(f, features="raw", chunksize=d.chunksize)
        raws.append(x)
        ys.append(y)
    raw_te, y_te = np.concatenate(raws), np.concatenate(ys)
    info.update(n_train=0, n_val=0, n_test=int(len(y_te)), test_signal=int(y_te.sum()))
    test = array_dataset(hr.transform(raw_te, d.features), y_te, config.training.batch_size)
    return HiggsInputs(train=None, val=None, test=test, source=source, paths=files, info=info,
                       raw_test=raw_te, y_test=y_te, independent=True)


def refuse_whole_read(path, d) -> None:
    """A seeded split reads the whole file: refuse that for a file the size of the real HIGGS.csv."""
    p = Path(path)
    if d.max_events is not None or not p.exists():
        return
    size = p.stat().st_size * (3 if str(p).endswith(".gz") else 1)
    if size > WHOLE_READ_LIMIT_BYTES:
        raise ConfigError(
            f"{p} is about {size / 1e9:.1f} GB of text: a seeded split would load it whole. Stream row ranges "
            f"instead (--preset seed, or data.rows_train/rows_val/rows_test) or cap it with data.max_events")


def in_memory_inputs(config: Config, files: list, source: str, info: dict) -> HiggsInputs:
    """One file split by seed into train, validation and test; or two: train and validation, then test."""
    from ...data import higgs as hr
    from ...data.splits import stratified_split
    from ...evaluation import class_weights

    d = config.data
    bs, seed = config.training.batch_size, config.run.seed
    for f in files:
        refuse_whole_read(f, d)
    raw, y = hr.read_higgs(files[0], features="raw", max_rows=d.max_events, chunksize=d.chunksize)
    split = tuple(d.split)
    if len(files) == 2:
        f_tr = split[0] / (split[0] + split[1]) if len(split) == 3 else split[0]
        tr, va = stratified_split(y, (f_tr, 1 - f_tr), seed=seed)
        raw_te, y_te = hr.read_higgs(files[1], features="raw", chunksize=d.chunksize)
    else:
        tr, va, te = stratified_split(y, split if len(split) == 3 else (split[0], 0.0, split[1]), seed=seed)
        raw_te, y_te = raw[te], y[te]
    raw_tr, y_tr, raw_va, y_va = raw[tr], y[tr], raw[va], y[va]
    if len(y_tr) == 0 or len(np.unique(y_tr)) < 2:
        raise DataError(files[0], "training events of both classes (label 0 and 1)",
                        f"{len(y_tr)} training events with labels {sorted(set(np.unique(y_tr).tolist()))}")
    x_tr = hr.transform(raw_tr, d.features)
    info.update(n_train=int(len(y_tr)), n_val=int(len(y_va)), n_test=int(len(y_te)),
                train_signal=int(y_tr.sum()), val_signal=int(y_va.sum()), test_signal=int(y_te.sum()))
    return HiggsInputs(
        train=array_dataset(x_tr, y_tr, bs, shuffle=True, seed=seed),
        val=array_dataset(hr.transform(raw_va, d.features), y_va, bs) if len(y_va) else None,
        test=array_dataset(hr.transform(raw_te, d.features), y_te, bs) if len(y_te) else None,
        source=source, paths=files, info=info,
        class_weight=class_weights(y_tr) if config.training.class_weight else None,
        adapt=x_tr, raw_train=raw_tr, y_train=y_tr, raw_test=raw_te, y_test=y_te)


def scan_ranges(config: Config, path) -> dict:
    """Resolve the row ranges of ``path`` (disjoint, non-empty) and check every line of each.

    Returns:
        ``{split: ((start, stop), counts)}`` with the counts of :func:`kerahep.data.higgs.scan`.
    """
    from ...data import higgs as hr

    d = config.data
    counts = {}
    t0 = time.perf_counter()
    for split, resolved in d.resolve_ranges(path).items():
        c = hr.scan(path, resolved, max_rows=d.max_events if split == "train" else None, chunksize=d.chunksize)
        counts[split] = (resolved, c)
    log.info("checked %s row ranges in %.1f s", path, time.perf_counter() - t0)
    tr_rows, tr = counts["train"]
    if tr["signal"] == 0 or tr["background"] == 0:
        raise DataError(path, f"training lines {tr_rows} with both labels",
                        f"{tr['signal']} signal and {tr['background']} background")
    return counts


def streaming_inputs(config: Config, files: list, source: str, info: dict) -> HiggsInputs:
    """Row ranges of one large file: validate and count each range, then stream it."""
    from ...data import higgs as hr

    d = config.data
    path = files[0]
    counts = scan_ranges(config, path)
    tr = counts["train"][1]
    val = counts["val"][1] if "val" in counts else {"rows": 0, "signal": 0}
    info.update(rows={k: [v[0][0], v[0][1]] for k, v in counts.items()},
                n_train=tr["rows"], train_signal=tr["signal"], n_val=val["rows"], val_signal=val["signal"],
                n_test=counts["test"][1]["rows"], test_signal=counts["test"][1]["signal"])
    adapt, _ = hr.read_higgs(path, counts["train"][0], features=d.features,
                             max_rows=min(d.adapt_events, tr["rows"]), chunksize=d.chunksize)
    cw = None
    if config.training.class_weight:
        n, n1 = tr["rows"], tr["signal"]
        cw = {0: n / (2.0 * (n - n1)), 1: n / (2.0 * n1)}
    return HiggsInputs(
        train=stream(config, path, counts, "train", shuffle=True),
        val=stream(config, path, counts, "val", shuffle=False) if "val" in counts else None,
        test=stream(config, path, counts, "test", shuffle=False), source=source, paths=files, info=info,
        class_weight=cw, adapt=adapt, stream_path=path, rows={k: v[0] for k, v in counts.items()})


def stream(config: Config, path, counts: dict, split: str, shuffle: bool):
    """The batched stream of one scanned row range, with its known length."""
    import tensorflow as tf

    from ...data import higgs as hr

    d = config.data
    bs = config.training.batch_size
    rows, c = counts[split]
    ds = hr.higgs_dataset(path, rows, features=d.features, batch_size=bs,
                          shuffle_buffer=d.shuffle_buffer if shuffle else 0, seed=config.run.seed,
                          chunksize=d.chunksize, max_rows=d.max_events if split == "train" else None,
                          cache=d.cache and split != "test", threads=d.decode_threads)
    # the scan counted the lines: a known length gives progress bars and learning-rate schedules
    return ds.apply(tf.data.experimental.assert_cardinality(math.ceil(c["rows"] / bs)))


def array_dataset(x, y, batch_size, shuffle=False, seed=0):
    """Batches of in-memory ``(x, y)``, reshuffled every epoch with ``shuffle``."""
    import tensorflow as tf

    from ...data.batches import PREFETCH, no_autotune

    ds = tf.data.Dataset.from_tensor_slices((np.asarray(x, np.float32), np.asarray(y, np.float32)))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(PREFETCH).with_options(no_autotune())  # see kerahep.data.batches.no_autotune


def gbt_inputs(config: Config, data: HiggsInputs) -> tuple:
    """``(raw_train, y_train, raw_test, y_test)`` for the tree baselines, all 28 stored columns.

    In memory as loaded; when streaming, read from the row ranges: at most
    ``gbt_max_train`` training lines (and ``max_events``), the whole test range.
    """
    from ...data import higgs as hr

    d = config.data
    if data.raw_train is not None:
        raw_tr, y_tr = data.raw_train, data.y_train
    else:
        cap = d.gbt_max_train if d.max_events is None else min(d.max_events, d.gbt_max_train or d.max_events)
        raw_tr, y_tr = hr.read_higgs(data.stream_path, data.rows["train"], features="raw", max_rows=cap,
                                     chunksize=d.chunksize)
    if data.raw_test is not None:
        raw_te, y_te = data.raw_test, data.y_test
    else:
        raw_te, y_te = hr.read_higgs(data.stream_path, data.rows["test"], features="raw", chunksize=d.chunksize)
    if d.gbt_max_train and len(y_tr) > d.gbt_max_train:
        raw_tr, y_tr = raw_tr[: d.gbt_max_train], y_tr[: d.gbt_max_train]
    return raw_tr, y_tr, raw_te, y_te
