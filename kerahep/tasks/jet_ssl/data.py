"""jet_ssl data: the jet files (or the synthetic twin) to streamed ``tf.data`` splits.

The labelled jets are split (stratified) into train, validation and test; the training
split gives the nested label-fraction subsets and, per subset, the target statistics of
the heads. The unlabelled jets (or, without an unlabelled file, the labelled training
jets) feed the SimCLR pre-training. Nothing is loaded whole: every split is a
:class:`~kerahep.data.jets.JetStream` of chunk-aligned reads (a jet image is 500 kB).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...config import Config
from ...errors import DataError
from ..base import Inputs, TaskData
from .config import downstream_schedule, tag

log = logging.getLogger("kerahep")


@dataclass(frozen=True)
class StreamSettings:
    """How a run turns a :class:`~kerahep.data.jets.JetStream` into batches (from its configuration).

    Attributes:
        seed: seed of the shuffles.
        shuffle_buffer: jets in the shuffle buffer.
        cache: keep small selections in memory after their first epoch...
        cache_mb: ...when smaller than this many MB.
        jet_mb: size of one jet image in MB.
        decode_threads: threads inflating blocks (None: one per CPU core).
    """

    seed: int
    shuffle_buffer: int
    cache: bool
    cache_mb: float
    jet_mb: float
    decode_threads: int | None = None

    def dataset(self, stream, batch_size: int, shuffle: bool = False, drop_remainder: bool = False,
                with_targets: bool = True):
        """Batches of ``stream``: ``(jet, {"y", "m", "pt"})`` (or ``jet`` alone without targets)."""
        return stream.dataset(batch_size, shuffle=shuffle, seed=self.seed, shuffle_buffer=self.shuffle_buffer,
                              drop_remainder=drop_remainder, with_targets=with_targets,
                              cache=self.cache and len(stream) * self.jet_mb <= self.cache_mb,
                              threads=self.decode_threads)


@dataclass
class LabelledJets:
    """The labelled jets of the inputs, numbered through the files in order ("positions").

    Attributes:
        files: the :class:`~kerahep.data.jets.JetFileInfo` of each labelled file.
        file_of, row_of: the file and the row in it of each position.
        targets: ``{"Y", "m", "pT"}`` of each position.
    """

    files: list
    file_of: np.ndarray
    row_of: np.ndarray
    targets: dict

    def __len__(self) -> int:
        return len(self.row_of)

    def stream(self, positions):
        """A :class:`~kerahep.data.jets.JetStream` of the jets at ``positions`` (sorted), with their targets."""
        from ...data.jets import JetStream

        pos = np.sort(np.asarray(positions, dtype=np.int64))
        sources = [(info.path, self.row_of[pos[self.file_of[pos] == i]]) for i, info in enumerate(self.files)
                   if np.any(self.file_of[pos] == i)]
        return JetStream(sources, targets={k: v[pos] for k, v in self.targets.items()})


@dataclass
class JetSSLInputs(TaskData):
    """The datasets of a jet_ssl run, with what pre-training and the downstream stages need.

    Attributes:
        labelled: the labelled jets (positions, files, targets).
        split: positions of the train, validation and test jets (empty with ``independent``).
        label_streams: ``{"train", "val", "test"}`` streams of the labelled splits
            (``test`` only with ``independent``).
        pretrain_train, pretrain_val: batches of jets alone for SimCLR (val may be None).
        streams: every stream of the run (for :func:`~kerahep.data.jets.surface_errors`).
        channel_scales: per-channel scales of the encoder's first layer.
        subsets: ``{fraction: indices into the training split}``, nested and stratified.
        target_stats: ``{fraction: {"m": (mean, std), "pt": (mean, std)}}`` of that subset.
        batching: how streams become batches (:class:`StreamSettings`).
        independent: the inputs are an independent sample (``evaluate --data``): every
            labelled jet is in ``test`` and there is no training split.
    """

    labelled: LabelledJets | None = None
    split: tuple = ()
    label_streams: dict = field(default_factory=dict)
    pretrain_train: Any = None
    pretrain_val: Any = None
    streams: list = field(default_factory=list)
    channel_scales: list | None = None
    subsets: dict = field(default_factory=dict)
    target_stats: dict = field(default_factory=dict)
    batching: StreamSettings | None = None
    independent: bool = False

    @property
    def train_targets(self) -> dict:
        """``{"Y", "m", "pT"}`` of the training split, in its order (the indices of :attr:`subsets`)."""
        return {k: v[self.split[0]] for k, v in self.labelled.targets.items()}


def twin_dir(task_name: str, config: Config) -> Path:
    return Path(config.data.data_dir) / "synthetic" / task_name


def make_twin(task_name: str, config: Config) -> dict:
    """Write (once) the synthetic twin for ``config``; returns its ``twin.json``."""
    from ...data.synthetic.jets import write_twin

    d = config.data
    return write_twin(twin_dir(task_name, config), n_unlabelled=d.synthetic_events, n_labelled=d.synthetic_labelled,
                      seed=d.synthetic_seed, chunk_rows=d.synthetic_chunk_rows, progress=config.run.verbose > 0)


def make_synthetic(task_name: str, config: Config) -> list:
    """The twin's files (unlabelled, labelled), written if missing or stale."""
    twin = make_twin(task_name, config)
    root = twin_dir(task_name, config)
    return [root / twin["files"]["unlabelled"], root / twin["files"]["labelled"]]


def counts(y) -> dict:
    """``{"qcd": n, "top": n}`` of labels ``y``."""
    y = np.asarray(y)
    return {"qcd": int((y == 0).sum()), "top": int((y == 1).sum())}


def target_stats(m, pt) -> dict:
    """``{"m": (mean, std), "pt": (mean, std)}`` in GeV of the labelled jets ``m``, ``pt``.

    The downstream heads of a label fraction get the statistics of that fraction's jets
    only (their ``Rescaling`` and ``1/std^2`` loss weights), so a run with 1% of the
    labels uses no other regression labels. A subset too small for a spread (one jet, or
    all values equal: std 0) falls back to ``max(|mean|, 1)`` GeV as the scale, the size
    of the values themselves, which keeps the standardised outputs and the loss weight of
    order one (a 1 GeV scale would weight a mass error a thousand-fold); an empty one to
    ``(0, 1)``. A warning says when that happens.

    Example:
        >>> target_stats([100.0, 200.0], [500.0, 500.0])
        {'m': (150.0, 50.0), 'pt': (500.0, 500.0)}
    """
    out = {}
    for key, v in (("m", m), ("pt", pt)):
        v = np.asarray(v, np.float64).reshape(-1)
        mean = float(v.mean()) if v.size else 0.0
        std = float(v.std()) if v.size > 1 else 0.0
        if not std > 0:
            fallback = max(abs(mean), 1.0)
            log.warning("jet_ssl: %d labelled jet(s) give no spread of %s; scaling its head by %.4g GeV instead",
                        v.size, key, fallback)
            std = fallback
        out[key] = (mean, std)
    return out


def nested_subsets(labels, fractions, seed: int = 0) -> dict:
    """Nested, stratified subsets of ``range(len(labels))`` for each fraction (sorted indices).

    Each class keeps its share; a smaller fraction's subset lies inside a larger one's;
    every class gets at least one example.
    """
    labels = np.asarray(labels).ravel()
    rng = np.random.default_rng(seed)
    perms = {c: np.flatnonzero(labels == c)[rng.permutation(int((labels == c).sum()))] for c in np.unique(labels)}
    out = {}
    for f in sorted(fractions):
        parts = [p[: max(1, int(round(f * len(p))))] for p in perms.values()]
        out[f] = np.sort(np.concatenate(parts))
    return out


def sort_files(files) -> tuple:
    """``(unlabelled, labelled)``: the :class:`~kerahep.data.jets.JetFileInfo` of each file, by kind.

    Raises:
        DataError: a file is missing or malformed, or none is labelled.
    """
    from ...data.jets import inspect_jet_file

    unlabelled, labelled = [], []
    for p in files:
        info = inspect_jet_file(p)
        (labelled if info.labelled else unlabelled).append(info)
    if not labelled:
        where = ", ".join(str(i.path) for i in unlabelled) or "(no files)"
        raise DataError(where, "a labelled jet file (datasets jet, Y, m, pT) among the inputs",
                        "only unlabelled files (dataset jet without Y)")
    return unlabelled, labelled


def read_labelled(files, cap: int | None) -> LabelledJets:
    """The labelled jets of ``files`` (at most ``cap`` per file, the first ones) and their targets."""
    from ...data.jets import read_targets

    rows, targets = [], {}
    for info in files:
        t = read_targets(info.path)
        n = info.n if cap is None else min(info.n, cap)
        rows.append(np.arange(n))
        for k, v in t.items():
            targets.setdefault(k, []).append(v[:n])
    return LabelledJets(files=list(files), file_of=np.concatenate([np.full(len(r), i) for i, r in enumerate(rows)]),
                        row_of=np.concatenate(rows), targets={k: np.concatenate(v) for k, v in targets.items()})


def files_info(unlabelled, labelled, inputs: Inputs) -> dict:
    """What ``metrics.json["data"]`` records of the files (and of the twin, when it was read)."""
    info = {"labelled_files": [str(i.path) for i in labelled],
            "unlabelled_files": [str(i.path) for i in unlabelled],
            "chunk_rows": {str(i.path): i.chunk_rows for i in unlabelled + labelled}}
    if inputs.synthetic:
        from ...artifacts import read_json

        twin = read_json(Path(inputs.files[0]).parent / "twin.json")
        info["twin"] = {k: twin.get(k) for k in ("params", "oracle_auc", "oracle_method", "m", "pT",
                                                  "labelled_class_counts")}
        info["oracle_auc"] = twin.get("oracle_auc")
    return info


def split_labelled(labelled: LabelledJets, config: Config) -> tuple:
    """Stratified train, validation and test positions; each split must hold both classes."""
    from ...data.splits import stratified_split

    y = labelled.targets["Y"]
    parts = tuple(stratified_split(y, tuple(config.data.split), seed=config.run.seed))
    for name, part in zip(("train", "validation", "test"), parts):
        if len(part) < 2 or len(np.unique(y[part])) < 2:
            raise DataError(labelled.files[0].path, f"both classes in the {name} split of the labelled jets",
                            f"{len(part)} jets ({counts(y[part])}); give more labelled jets or change data.split")
    return parts


def pretrain_streams(unlabelled, train_stream, config: Config) -> tuple:
    """``(train, val, n_val)``: streams of jets for SimCLR and the jets set aside for
    validation (``val`` is None when they are fewer than two).

    The unlabelled files (at most ``data.max_events`` jets each), split at random; without
    any, the labelled training jets (labels unused).
    """
    from ...data.jets import JetStream
    from ...data.splits import random_split

    d, cap = config.data, config.data.max_events
    if unlabelled:
        flat = [(i.path, np.arange(i.n if cap is None else min(i.n, cap))) for i in unlabelled]
    else:
        log.warning("jet_ssl: no unlabelled file among the inputs; pre-training on the labelled training jets "
                    "(labels unused)")
        flat = [(info.path, idx) for info, idx in train_stream.sources]
    n = sum(len(r) for _, r in flat)
    train_sel, val_sel = random_split(n, (1 - d.pretrain_val_fraction, d.pretrain_val_fraction), seed=config.run.seed)
    offsets = np.cumsum([0] + [len(r) for _, r in flat])

    def stream(sel):
        sources = []
        for i, (p, r) in enumerate(flat):
            local = sel[(sel >= offsets[i]) & (sel < offsets[i + 1])] - offsets[i]
            if local.size:
                sources.append((p, r[local]))
        return JetStream(sources)

    return stream(train_sel), (stream(val_sel) if len(val_sel) >= 2 else None), len(val_sel)


def load_inputs(config: Config, inputs: Inputs, for_evaluation: bool = False) -> JetSSLInputs:
    """The datasets of ``inputs`` (see :meth:`kerahep.tasks.base.Task.load_data`)."""
    from ...data.jets import channel_scales

    unlabelled, labelled_files = sort_files(inputs.files)
    labelled = read_labelled(labelled_files, config.data.max_events)
    d, bs = config.data, config.training.batch_size
    batching = StreamSettings(seed=config.run.seed, shuffle_buffer=d.shuffle_buffer, cache=d.cache,
                              cache_mb=d.cache_mb, jet_mb=int(np.prod(labelled_files[0].shape)) * 4 / 2 ** 20,
                              decode_threads=d.decode_threads)
    info = files_info(unlabelled, labelled_files, inputs)
    common = dict(source=inputs.source, paths=[i.path for i in unlabelled + labelled_files], labelled=labelled,
                  batching=batching)
    if for_evaluation:
        test = labelled.stream(np.arange(len(labelled)))
        info.update({"n_train": 0, "n_val": 0, "n_test": len(labelled),
                     "class_counts": {"test": counts(labelled.targets["Y"])}})
        return JetSSLInputs(train=None, val=None, test=batching.dataset(test, bs), info=info, streams=[test],
                            label_streams={"test": test}, independent=True, **common)
    split = split_labelled(labelled, config)
    streams = {k: labelled.stream(p) for k, p in zip(("train", "val", "test"), split)}
    pre_train, pre_val, n_pre_val = pretrain_streams(unlabelled, streams["train"], config)
    scales = channel_scales(pre_train, max_jets=d.scale_jets)
    y, m, pt = (labelled.targets[k][split[0]] for k in ("Y", "m", "pT"))
    subsets = nested_subsets(y, d.label_fractions, seed=config.run.seed)
    # the heads' Rescaling and 1/std^2 loss weights at a label fraction come from that
    # fraction's jets only: a 1% run must not see the regression labels of the other 99%
    stats = {f: target_stats(m[s], pt[s]) for f, s in subsets.items()}
    y_all = labelled.targets["Y"]
    info.update({
        "n_train": len(split[0]), "n_val": len(split[1]), "n_test": len(split[2]),
        "n_unlabelled_train": len(pre_train), "n_unlabelled_val": n_pre_val,
        "class_counts": {k: counts(y_all[p]) for k, p in zip(("train", "val", "test"), split)},
        "label_fractions": {tag(f): int(len(s)) for f, s in subsets.items()},
        "channel_scales": [round(s, 6) for s in scales],
        "target_stats": {tag(f): {k: {"mean": v[0], "std": v[1]} for k, v in st.items()} for f, st in stats.items()},
        "downstream": downstream_info(config, subsets),
    })
    pre_bs = min(bs, max(2, len(pre_train)))
    pre_val_ds = None if pre_val is None else batching.dataset(pre_val, min(pre_bs, len(pre_val)),
                                                               drop_remainder=True, with_targets=False)
    return JetSSLInputs(
        train=batching.dataset(streams["train"], bs, shuffle=True), val=batching.dataset(streams["val"], bs),
        test=batching.dataset(streams["test"], bs), info=info, split=split, label_streams=streams,
        pretrain_train=batching.dataset(pre_train, pre_bs, shuffle=True, drop_remainder=True, with_targets=False),
        pretrain_val=pre_val_ds, streams=[pre_train, pre_val] + list(streams.values()), channel_scales=scales,
        subsets=subsets, target_stats=stats, **common)


def downstream_info(config: Config, subsets: dict) -> dict:
    """Per label fraction: the labels, and the epochs and batch of each downstream stage."""
    out = {}
    for f, sub in subsets.items():
        batch, epochs = downstream_schedule(config.model, len(sub))
        out[tag(f)] = {"labels": int(len(sub)), "head_epochs": config.model.head_epochs,
                       "finetune_scratch_epochs": epochs, "finetune_scratch_batch": batch}
    return out
