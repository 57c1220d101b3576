"""jet_ssl: SimCLR pre-training on unlabelled 8-channel jet images, then few-label heads.

Stages of one ``train`` run:

1. ``pretrain``: SimCLR (:class:`kerahep.models.simclr.SimCLR`) of a ResNet-18 or a
   CNN-Transformer hybrid (:mod:`kerahep.models.encoders`) on the unlabelled file
   (``Dataset_Specific_Unlabelled.h5``), streamed in chunks.
2. For each label fraction ``f`` of ``data.label_fractions`` (nested, stratified subsets
   of the labelled training split), four ways to use ``f`` of the labels, each predicting
   the class ``y`` (top against QCD), the mass ``m`` and ``pt`` (GeV):

   * ``linear``: a linear probe on the frozen encoder's latents;
   * ``frozen``: small MLP heads on the frozen latents;
   * ``finetune``: the pre-trained encoder with the frozen stage's heads, all trained
     (lower learning rate);
   * ``scratch``: the same architecture trained from random weights (the supervised
     baseline).

``encoder.keras`` is the pre-trained encoder; ``model.keras`` (raw jet -> ``y``, ``m``,
``pt``) is the ``model.export`` variant at the largest label fraction. ``evaluate`` writes
the test metrics of ``model.keras``, ROC, true-against-predicted and resolution plots,
t-SNE of the latents, and one table (``downstream_table.json`` / ``.csv``) of every
method and label fraction.

Presets: ``default`` (small widths, small synthetic twin, minutes on two CPU cores),
``hybrid`` (the same with the CNN-Transformer encoder) and ``full`` (ResNet-18 widths,
for the real 60,000 + 10,000 jets on a GPU).
"""

from __future__ import annotations

import csv
import io as _io
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import Config, DataConfig, ModelConfig, RunSettings, TrainingConfig, check
from ..errors import DataError
from ..registry import register_task
from .base import Task, TaskData

log = logging.getLogger("kerahep")

METHODS = ("linear", "frozen", "finetune", "scratch")


@dataclass(frozen=True)
class JetSSLData(DataConfig):
    """Data settings of jet_ssl.

    Args:
        paths: the jet files, in any order: files with ``Y`` are labelled (``jet``, ``Y``,
            ``m``, ``pT``), the others unlabelled (``jet``). Empty: the synthetic twin under
            ``<data_dir>/synthetic/jet_ssl``. Without an unlabelled file the encoder is
            pre-trained on the labelled training jets (their labels unused).
        synthetic_events: jets in the twin's unlabelled file.
        synthetic_labelled: jets in the twin's labelled file.
        synthetic_seed: seed of the twin (the run seed drives splits and training).
        synthetic_chunk_rows: jets per HDF5 chunk in the twin.
        split: train/validation/test fractions of the labelled file (stratified by class).
        label_fractions: fractions of the labelled training split given to the downstream
            methods (nested subsets, stratified).
        pretrain_val_fraction: unlabelled jets kept for the validation contrastive loss.
        max_events: at most this many jets per file (the first ones).
        shuffle_buffer: jets in the shuffle buffer (500 kB each).
        cache_mb: keep a selection in memory after its first epoch when smaller than this.
        scale_jets: jets read to set the per-channel scales of the encoder's first layer.
        tsne_points: test jets in the t-SNE plots (0: none).
    """

    synthetic_events: int = 2000
    synthetic_labelled: int = 1500
    synthetic_seed: int = 0
    synthetic_chunk_rows: int = 4
    label_fractions: tuple = (0.1, 1.0)
    pretrain_val_fraction: float = 0.1
    shuffle_buffer: int = 256
    cache_mb: int = 256
    scale_jets: int = 256
    tsne_points: int = 800

    def validate(self) -> None:
        super().validate()
        check(len(self.label_fractions) >= 1 and all(0 < float(f) <= 1 for f in self.label_fractions),
              f"data.label_fractions must be numbers in (0, 1], got {self.label_fractions!r}")
        check(len(set(self.label_fractions)) == len(self.label_fractions),
              f"data.label_fractions has duplicates: {self.label_fractions!r}")
        check(len(self.split) == 3 and all(f > 0 for f in self.split),
              f"data.split needs three positive fractions (train, validation, test), got {self.split!r}")
        check(0.0 <= self.pretrain_val_fraction < 0.5,
              f"data.pretrain_val_fraction must be in [0, 0.5), got {self.pretrain_val_fraction}")
        check(self.synthetic_labelled >= 20, f"data.synthetic_labelled must be >= 20, got {self.synthetic_labelled}")
        check(self.synthetic_chunk_rows >= 1, f"data.synthetic_chunk_rows must be >= 1, got {self.synthetic_chunk_rows}")
        check(self.cache_mb >= 0, f"data.cache_mb must be >= 0, got {self.cache_mb}")
        check(self.scale_jets >= 1, f"data.scale_jets must be >= 1, got {self.scale_jets}")
        check(self.tsne_points >= 0, f"data.tsne_points must be >= 0, got {self.tsne_points}")


@dataclass(frozen=True)
class JetSSLModel(ModelConfig):
    """Encoder, SimCLR and downstream settings.

    Args:
        name: encoder, ``resnet18`` or ``hybrid``.
        widths, blocks: ResNet-18 stage widths and basic blocks per stage (``blocks`` empty:
            two per stage, as in ResNet-18; when given, one entry per width).
        stem_filters, patch_size, dim, depth, num_heads, mlp_ratio: the hybrid's stride-2
            stem convolutions, patch side, token width, Transformer blocks, heads, MLP ratio.
        log_scale: signed log compression after the per-channel scaling.
        projection_dim, projection_hidden: SimCLR projection head.
        temperature: NT-Xent temperature.
        flip, translate, channel_drop, smear, noise: augmentations
            (:func:`kerahep.models.encoders.jet_augmenter`); ``smear`` is
            ``(global, per-pixel)``, ``noise`` ``(rate, amplitude)``; zeros switch them off.
        head_hidden: hidden widths of the MLP heads.
        head_epochs, head_learning_rate, head_batch_size: training of heads on latents.
        downstream_steps: optimizer steps for fine-tuning and for the from-scratch
            baseline at every label fraction (epochs follow from the subset size, between
            2 and ``downstream_max_epochs``), so both see the same number of updates.
        downstream_max_epochs: cap on those epochs.
        downstream_batch_size: batch size of fine-tuning and from-scratch training.
        finetune_lr_scale: fine-tuning learning rate relative to ``training.learning_rate``.
        regression_weight: weight of each standardised regression loss against the
            classification loss.
        methods: downstream methods to run (``linear``, ``frozen``, ``finetune``, ``scratch``).
        export: the method saved as ``model.keras`` (``finetune``: the pre-trained encoder
            fine-tuned with its heads; ``frozen``: the pre-trained encoder with MLP heads).
    """

    name: str = "resnet18"
    widths: tuple = (16, 32, 64, 128)
    blocks: tuple = ()
    stem_filters: tuple = (16, 32)
    patch_size: int = 4
    dim: int = 64
    depth: int = 2
    num_heads: int = 4
    mlp_ratio: float = 2.0
    log_scale: bool = True
    projection_dim: int = 64
    projection_hidden: int = 128
    temperature: float = 0.2
    flip: bool = True
    translate: float = 0.02
    channel_drop: float = 0.1
    smear: tuple = (0.05, 0.05)
    noise: tuple = (0.002, 0.05)
    head_hidden: tuple = (64,)
    head_epochs: int = 25
    head_learning_rate: float = 3e-3
    head_batch_size: int = 64
    downstream_steps: int = 100
    downstream_max_epochs: int = 40
    downstream_batch_size: int = 32
    finetune_lr_scale: float = 0.3
    regression_weight: float = 1.0
    methods: tuple = METHODS
    export: str = "finetune"

    def validate(self) -> None:
        super().validate()
        from ..models.encoders import ENCODERS

        check(self.name in ENCODERS, f"model.name must be one of {ENCODERS}, got {self.name!r}")
        check(len(self.widths) >= 1 and all(int(w) > 0 for w in self.widths),
              f"model.widths must be positive integers, got {self.widths!r}")
        check(not self.blocks or (len(self.blocks) == len(self.widths) and all(int(b) > 0 for b in self.blocks)),
              f"model.blocks needs one positive entry per width {self.widths!r} (or () for two each), got {self.blocks!r}")
        check(len(self.stem_filters) >= 1 and all(int(f) > 0 for f in self.stem_filters),
              f"model.stem_filters must be positive integers, got {self.stem_filters!r}")
        check(self.patch_size >= 1 and self.dim >= 1 and self.depth >= 1 and self.num_heads >= 1,
              "model.patch_size, model.dim, model.depth and model.num_heads must be >= 1")
        check(self.temperature > 0, f"model.temperature must be positive, got {self.temperature}")
        check(self.projection_dim >= 1 and self.projection_hidden >= 1, "model.projection_dim and projection_hidden must be >= 1")
        check(0 <= self.channel_drop < 1, f"model.channel_drop must be in [0, 1), got {self.channel_drop}")
        check(0 <= self.translate < 0.5, f"model.translate must be in [0, 0.5), got {self.translate}")
        check(len(self.smear) == 2 and all(float(s) >= 0 for s in self.smear),
              f"model.smear must be (global, per_pixel) spreads >= 0, got {self.smear!r}")
        check(len(self.noise) == 2 and 0 <= float(self.noise[0]) <= 1 and float(self.noise[1]) >= 0,
              f"model.noise must be (rate in [0, 1], amplitude >= 0), got {self.noise!r}")
        check(all(int(w) > 0 for w in self.head_hidden), f"model.head_hidden must be positive, got {self.head_hidden!r}")
        check(self.head_epochs >= 1 and self.head_batch_size >= 1 and self.head_learning_rate > 0,
              "model.head_epochs, head_batch_size and head_learning_rate must be positive")
        check(self.downstream_steps >= 1 and self.downstream_max_epochs >= 1 and self.downstream_batch_size >= 1,
              "model.downstream_steps, downstream_max_epochs and downstream_batch_size must be positive")
        check(self.finetune_lr_scale > 0, f"model.finetune_lr_scale must be positive, got {self.finetune_lr_scale}")
        check(self.regression_weight >= 0, f"model.regression_weight must be >= 0, got {self.regression_weight}")
        check(len(self.methods) >= 1 and all(m in METHODS for m in self.methods),
              f"model.methods must be a subset of {METHODS}, got {self.methods!r}")
        check(self.export in ("frozen", "finetune") and self.export in self.methods,
              f"model.export must be frozen or finetune and be listed in model.methods, got {self.export!r}")


def _tag(f: float) -> str:
    """``0.1`` -> ``10pct``; used in stage names and the table."""
    pct = float(f) * 100
    return (f"{pct:g}".replace(".", "p")) + "pct"


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


@register_task
class JetSSL(Task):
    name = "jet_ssl"
    description = ("SimCLR pre-training of a ResNet-18 or CNN-Transformer on unlabelled 8-channel jet images, "
                   "then few-label heads for top/QCD class, jet mass and pT")
    presets = ("default", "hybrid", "full")
    smoke = ("data.data_dir='data/smoke'", "data.synthetic_events=24", "data.synthetic_labelled=40",
             "data.label_fractions=(1.0,)", "data.split=(0.5, 0.25, 0.25)", "data.tsne_points=12",
             "model.widths=(4, 8)", "model.blocks=(1, 1)", "model.head_hidden=(4,)", "model.projection_dim=4",
             "model.projection_hidden=8", "model.head_epochs=1", "model.downstream_steps=1",
             "model.downstream_max_epochs=1", "training.epochs=1", "training.batch_size=8")
    monitor = "val_auc"
    monitor_mode = "max"
    artifacts = ("model", "encoder")

    # ------------------------------------------------------------ configuration
    def _preset(self, name: str) -> Config:
        name = self._check_preset(name)
        data = JetSSLData()
        model = JetSSLModel()
        training = TrainingConfig(epochs=6, batch_size=64, learning_rate=1e-3, optimizer="adamw",
                                  weight_decay=1e-4, schedule="cosine", loss="nt_xent")
        if name == "hybrid":
            model = JetSSLModel(name="hybrid")
        elif name == "full":
            data = JetSSLData(label_fractions=(0.01, 0.1, 1.0), shuffle_buffer=1024, cache_mb=2048, scale_jets=1024,
                              tsne_points=3000)
            model = JetSSLModel(widths=(64, 128, 256, 512), projection_dim=128, projection_hidden=512,
                                temperature=0.1, head_hidden=(256, 64), head_epochs=100, downstream_steps=3000,
                                downstream_max_epochs=100, downstream_batch_size=128, dropout=0.1)
            training = TrainingConfig(epochs=100, batch_size=256, learning_rate=1e-3, optimizer="adamw",
                                      weight_decay=1e-4, schedule="onecycle", loss="nt_xent")
        return Config(task=self.name, preset=name, data=data, model=model, training=training, run=RunSettings())

    def examples(self) -> dict:
        """Tiny ResNet-18 and hybrid encoders (with a class head) and SimCLR, on 125x125x8 jets."""
        import keras
        import numpy as np

        from ..models.encoders import build_encoder, jet_augmenter
        from ..models.simclr import SimCLR
        from .base import ModelExample

        rng = np.random.default_rng(0)
        x = (rng.random((4, 125, 125, 8)) < 0.02) * rng.exponential(5.0, (4, 125, 125, 8))
        x = x.astype("float32")
        y = np.array([0, 1, 0, 1], "float32")
        tiny = {"resnet18": {"widths": (4, 4, 8, 8), "blocks": (1, 1, 1, 1)},
                "hybrid": {"stem_filters": (4, 8), "dim": 8, "depth": 1, "num_heads": 2}}

        def classifier(kind):
            enc = build_encoder(kind, **tiny[kind])
            out = keras.layers.Dense(1, activation="sigmoid", dtype="float32")(enc.output)
            return keras.Model(enc.input, out)

        out = {f"{k}_classifier": ModelExample(build=lambda k=k: classifier(k), x=x, y=y) for k in tiny}
        out["simclr_resnet18"] = ModelExample(
            build=lambda: SimCLR(build_encoder("resnet18", **tiny["resnet18"]), jet_augmenter(seed=0),
                                 projection_dim=4, projection_hidden=8, temperature=0.2),
            x=x, y=None, loss=None, outputs=lambda m, x: m.encoder.predict(x, verbose=0))
        return out

    def describe_model(self, config: Config) -> str:
        return f"simclr-{config.model.name}"

    # -------------------------------------------------------------------- data
    def twin_dir(self, config: Config) -> Path:
        return Path(config.data.data_dir) / "synthetic" / self.name

    def make_twin(self, config: Config) -> dict:
        """Write (once) the synthetic twin for ``config``; returns its ``twin.json``."""
        from ..data.synthetic.jets import write_twin

        d = config.data
        return write_twin(self.twin_dir(config), n_unlabelled=d.synthetic_events, n_labelled=d.synthetic_labelled,
                          seed=d.synthetic_seed, chunk_rows=d.synthetic_chunk_rows,
                          progress=config.run.verbose > 0)

    def resolve_files(self, config: Config, paths=None):
        """``(unlabelled, labelled, source, twin)``: the files to read, sorted by kind."""
        from ..data.jets import inspect_jet_file

        d = config.data
        given = list(paths) if paths else ([] if d.force_synthetic else list(d.paths))
        twin = None
        if given:
            source = "files"
        else:
            twin = self.make_twin(config)
            root = self.twin_dir(config)
            given = [root / twin["files"]["unlabelled"], root / twin["files"]["labelled"]]
            source = "synthetic"
        unlabelled, labelled = [], []
        for p in given:
            info = inspect_jet_file(p)
            (labelled if info.labelled else unlabelled).append(info)
        return unlabelled, labelled, source, twin

    def load_data(self, config: Config, paths=None, for_evaluation: bool = False) -> TaskData:
        from ..data.jets import JetStream, channel_scales, read_targets
        from ..data.splits import random_split, stratified_split

        d = config.data
        seed = config.run.seed
        unl_files, lab_files, source, twin = self.resolve_files(config, paths)
        if not lab_files:
            where = ", ".join(str(i.path) for i in unl_files) or "(no files)"
            raise DataError(where, "a labelled jet file (datasets jet, Y, m, pT) among the inputs",
                            "only unlabelled files (dataset jet without Y)")
        cap = d.max_events
        # labelled jets: positions through the files in order
        rows, targets = [], {}
        for info in lab_files:
            t = read_targets(info.path)
            n = info.n if cap is None else min(info.n, cap)
            rows.append(np.arange(n))
            for k, v in t.items():
                targets.setdefault(k, []).append(v[:n])
        targets = {k: np.concatenate(v) for k, v in targets.items()}
        file_of = np.concatenate([np.full(len(r), i) for i, r in enumerate(rows)])
        row_of = np.concatenate(rows)
        y = targets["Y"]
        bs = config.training.batch_size
        jet_mb = int(np.prod(lab_files[0].shape)) * 4 / 2 ** 20

        def lab_stream(pos):
            pos = np.sort(np.asarray(pos, dtype=np.int64))
            sources = [(info.path, row_of[pos[file_of[pos] == i]]) for i, info in enumerate(lab_files)
                       if np.any(file_of[pos] == i)]
            return JetStream(sources, targets={k: v[pos] for k, v in targets.items()})

        def ds(stream, batch, shuffle, drop=False, with_targets=True):
            return stream.dataset(batch, shuffle=shuffle, seed=seed, shuffle_buffer=d.shuffle_buffer,
                                  drop_remainder=drop, with_targets=with_targets,
                                  cache=d.cache and len(stream) * jet_mb <= d.cache_mb)

        info = {"labelled_files": [str(i.path) for i in lab_files],
                "unlabelled_files": [str(i.path) for i in unl_files],
                "chunk_rows": {str(i.path): i.chunk_rows for i in unl_files + lab_files}}
        if twin is not None:
            info["twin"] = {k: twin.get(k) for k in ("params", "oracle_auc", "oracle_method", "m", "pT",
                                                      "labelled_class_counts")}
            info["oracle_auc"] = twin.get("oracle_auc")
        paths_read = [i.path for i in unl_files + lab_files]
        if for_evaluation:
            test_stream = lab_stream(np.arange(len(y)))
            info.update({"n_train": 0, "n_val": 0, "n_test": len(y),
                         "class_counts": {"test": _counts(y)}})
            return TaskData(train=None, val=None, test=ds(test_stream, bs, False), source=source, paths=paths_read,
                            info=info, extras={"streams": [test_stream], "test_stream": test_stream})
        tr, va, te = stratified_split(y, tuple(d.split), seed=seed)
        for name_, part in (("train", tr), ("validation", va), ("test", te)):
            if len(part) < 2 or len(np.unique(y[part])) < 2:
                raise DataError(lab_files[0].path, f"both classes in the {name_} split of the labelled jets",
                                f"{len(part)} jets ({_counts(y[part])}); give more labelled jets or change data.split")
        streams = {"train": lab_stream(tr), "val": lab_stream(va), "test": lab_stream(te)}
        # unlabelled jets for pre-training
        if unl_files:
            unl_sources = [(i.path, np.arange(i.n if cap is None else min(i.n, cap))) for i in unl_files]
        else:
            log.warning("jet_ssl: no unlabelled file among the inputs; pre-training on the labelled training jets "
                        "(labels unused)")
            unl_sources = [(info_.path, idx) for info_, idx in streams["train"].sources]
        flat = unl_sources
        n_unl = sum(len(r) for _, r in flat)
        pre_tr_sel, pre_va_sel = random_split(n_unl, (1 - d.pretrain_val_fraction, d.pretrain_val_fraction), seed=seed)
        offsets = np.cumsum([0] + [len(r) for _, r in flat])

        def unl_stream(sel):
            srcs = []
            for i, (p, r) in enumerate(flat):
                local = sel[(sel >= offsets[i]) & (sel < offsets[i + 1])] - offsets[i]
                if local.size:
                    srcs.append((p, r[local]))
            return JetStream(srcs)

        pre_bs = min(bs, max(2, len(pre_tr_sel)))
        pre_train = unl_stream(pre_tr_sel)
        pre_val = unl_stream(pre_va_sel) if len(pre_va_sel) >= 2 else None
        scales = channel_scales(pre_train, max_jets=d.scale_jets)
        y_tr = y[tr]
        subsets = nested_subsets(y_tr, d.label_fractions, seed=seed)
        # the heads' Rescaling and 1/std^2 loss weights at a label fraction come from that
        # fraction's jets only: a 1% run must not see the regression labels of the other 99%
        stats = {f: target_stats(targets["m"][tr][s], targets["pT"][tr][s]) for f, s in subsets.items()}
        info.update({
            "n_train": len(tr), "n_val": len(va), "n_test": len(te),
            "n_unlabelled_train": len(pre_tr_sel), "n_unlabelled_val": len(pre_va_sel),
            "class_counts": {"train": _counts(y[tr]), "val": _counts(y[va]), "test": _counts(y[te])},
            "label_fractions": {_tag(f): int(len(s)) for f, s in subsets.items()},
            "channel_scales": [round(s, 6) for s in scales],
            "target_stats": {_tag(f): {k: {"mean": v[0], "std": v[1]} for k, v in st.items()}
                             for f, st in stats.items()},
        })
        pre_val_ds = None
        if pre_val is not None:
            vb = min(pre_bs, len(pre_val))
            pre_val_ds = ds(pre_val, vb, False, drop=True, with_targets=False)
        extras = {
            "streams": [pre_train, pre_val] + list(streams.values()),
            "label_streams": streams,
            "pretrain_train": ds(pre_train, pre_bs, True, drop=True, with_targets=False),
            "pretrain_val": pre_val_ds,
            "channel_scales": scales,
            "target_stats": stats,
            "subsets": subsets,
            "train_targets": {k: v[tr] for k, v in targets.items()},
            "lab_stream": lab_stream,
            "train_positions": tr,
            "make_dataset": ds,
        }
        return TaskData(train=ds(streams["train"], bs, True), val=ds(streams["val"], bs, False),
                        test=ds(streams["test"], bs, False), source=source, paths=paths_read, info=info,
                        extras=extras)

    # ------------------------------------------------------------------- model
    def build_encoder(self, config: Config, channel_scales=None):
        from ..models.encoders import build_encoder

        m = config.model
        if m.name == "resnet18":
            blocks = tuple(int(b) for b in m.blocks) or (2,) * len(m.widths)
            kw = dict(widths=tuple(int(w) for w in m.widths), blocks=blocks)
        else:
            kw = dict(stem_filters=tuple(int(f) for f in m.stem_filters), patch_size=m.patch_size, dim=m.dim,
                      depth=m.depth, num_heads=m.num_heads, mlp_ratio=m.mlp_ratio, dropout=m.dropout)
        return build_encoder(m.name, channel_scales=channel_scales, log_scale=m.log_scale, **kw)

    def build_augmenter(self, config: Config):
        from ..models.encoders import jet_augmenter

        m = config.model
        return jet_augmenter(flip=m.flip, translate=m.translate, channel_drop=m.channel_drop,
                             smear=tuple(m.smear) if any(m.smear) else None,
                             noise=tuple(m.noise) if all(m.noise) else None)

    def build_model(self, config: Config, data: TaskData):
        """The SimCLR model (encoder, augmentations, projection head) of the pre-training stage."""
        from ..models.simclr import SimCLR

        m = config.model
        encoder = self.build_encoder(config, data.extras.get("channel_scales"))
        return SimCLR(encoder, self.build_augmenter(config), projection_dim=m.projection_dim,
                      projection_hidden=m.projection_hidden, temperature=m.temperature, name="simclr")

    # ---------------------------------------------------------------- training
    def fit(self, ctx) -> dict:
        import keras
        import tensorflow as tf

        from ..data.jets import surface_errors
        from ..models.jet_heads import compile_heads, jet_model, latent_heads
        from ..optimizers import make_optimizer

        cfg, data = ctx.config, ctx.data
        m = cfg.model
        ex = data.extras
        streams = ex["streams"]

        # 1. SimCLR pre-training
        simclr = ctx.build(lambda: self.build_model(cfg, data))
        pre_val = ex["pretrain_val"]
        with surface_errors(*streams):
            ctx.fit(simclr, train=ex["pretrain_train"], val=pre_val, stage="pretrain", class_weight=None,
                    monitor="val_loss" if pre_val is not None else "loss", mode="min",
                    compile_fn=lambda model, steps: model.compile(
                        optimizer=make_optimizer(cfg.training, steps), jit_compile=cfg.training.jit))
        encoder = simclr.encoder

        # 2. latents of the labelled jets from the frozen encoder
        lab = ex["label_streams"]
        mk = ex["make_dataset"]
        with surface_errors(*streams):
            z = {k: np.asarray(encoder.predict(mk(s, 64, False, with_targets=False), verbose=0))
                 for k, s in lab.items()}
        t = {k: {"y": s.targets["Y"], "m": s.targets["m"], "pt": s.targets["pT"]} for k, s in lab.items()}
        z_mean, z_var = z["train"].mean(0), z["train"].var(0)
        z_var = np.maximum(z_var, 1e-2 * float(np.median(z_var)) + 1e-8)  # no blow-up of near-constant latents
        ex["latents"] = z
        ex["latent_targets"] = t

        def arrays_ds(zz, tt, batch, shuffle):
            d = tf.data.Dataset.from_tensor_slices((zz.astype(np.float32),
                                                    {k: v.reshape(-1, 1).astype(np.float32) for k, v in tt.items()}))
            if shuffle:
                d = d.shuffle(len(zz), seed=cfg.run.seed, reshuffle_each_iteration=True)
            return d.batch(batch)

        def heads_compile(lr, epochs, stats):
            def fn(model, steps):
                compile_heads(model, make_optimizer(cfg.training, steps, epochs=epochs, learning_rate=lr), stats,
                              regression_weight=m.regression_weight, jit_compile=cfg.training.jit)
            return fn

        val_latent = arrays_ds(z["val"], t["val"], 256, False)
        predictions, exported = {}, {}
        latent_dim = z["train"].shape[1]
        for f, sub in ex["subsets"].items():
            tag = _tag(f)
            stats = ex["target_stats"][f]  # of this subset's m and pT only
            z_sub = z["train"][sub]
            t_sub = {k: v[sub] for k, v in t["train"].items()}
            train_latent = arrays_ds(z_sub, t_sub, m.head_batch_size, True)
            frozen_heads = None
            for method in ("linear", "frozen"):
                if method not in m.methods and not (method == "frozen" and "finetune" in m.methods):
                    continue
                heads = ctx.build(lambda method=method, stats=stats: latent_heads(
                    latent_dim, stats, hidden=m.head_hidden, dropout=m.dropout, linear=method == "linear",
                    latent_mean=z_mean, latent_var=z_var, name=f"{method}_heads"))
                ctx.fit(heads, train=train_latent, val=val_latent, stage=f"{method}_{tag}", epochs=m.head_epochs,
                        class_weight=None, monitor="val_loss", mode="min",
                        compile_fn=heads_compile(m.head_learning_rate, m.head_epochs, stats))
                if method in m.methods:
                    predictions[(method, f)] = _predict_arrays(heads, z["test"])
                if method == "frozen":
                    frozen_heads = heads
            n_sub = len(sub)
            bsz = min(m.downstream_batch_size, n_sub)
            steps_per_epoch = math.ceil(n_sub / bsz)
            epochs = int(min(m.downstream_max_epochs, max(2, math.ceil(m.downstream_steps / steps_per_epoch))))
            if "finetune" in m.methods or "scratch" in m.methods:
                sub_stream = ex["lab_stream"](ex["train_positions"][sub])
                sub_ds = mk(sub_stream, bsz, True)
                val_ds = mk(lab["val"], 64, False)
                streams.append(sub_stream)
            if "finetune" in m.methods:
                def build_ft(heads=frozen_heads):
                    enc = keras.models.clone_model(encoder)
                    enc.set_weights(encoder.get_weights())
                    hd = keras.models.clone_model(heads)
                    hd.set_weights(heads.get_weights())
                    return jet_model(enc, hd, name="finetuned")

                ft = ctx.build(build_ft)
                with surface_errors(*streams):
                    ctx.fit(ft, train=sub_ds, val=val_ds, stage=f"finetune_{tag}", epochs=epochs, class_weight=None,
                            monitor="val_loss", mode="min",
                            compile_fn=heads_compile(cfg.training.learning_rate * m.finetune_lr_scale, epochs,
                                                             stats))
                    predictions[("finetune", f)] = _predict_dataset(ft, data.test)
                if f == max(ex["subsets"]):
                    exported[("finetune", f)] = ft
            if "scratch" in m.methods:
                def build_scratch(stats=stats):
                    enc = self.build_encoder(cfg, ex["channel_scales"])
                    hd = latent_heads(int(enc.output.shape[-1]), stats, hidden=m.head_hidden, dropout=m.dropout,
                                      name="scratch_heads")
                    return jet_model(enc, hd, name="from_scratch")

                sc = ctx.build(build_scratch)
                with surface_errors(*streams):
                    ctx.fit(sc, train=sub_ds, val=val_ds, stage=f"scratch_{tag}", epochs=epochs, class_weight=None,
                            monitor="val_loss", mode="min",
                            compile_fn=heads_compile(cfg.training.learning_rate, epochs, stats))
                    predictions[("scratch", f)] = _predict_dataset(sc, data.test)
            if frozen_heads is not None:
                exported[("frozen", f)] = frozen_heads
            data.info.setdefault("downstream", {})[tag] = {"labels": int(n_sub), "head_epochs": m.head_epochs,
                                                           "finetune_scratch_epochs": epochs,
                                                           "finetune_scratch_batch": bsz}
        ex["predictions"] = predictions
        top = max(ex["subsets"])
        if m.export == "finetune":
            model = exported[("finetune", top)]
        else:
            model = jet_model(encoder, exported[("frozen", top)], name="frozen_encoder_heads")
        ex["export"] = f"{m.export} at {_tag(top)} of the labels"
        return {"model": model, "encoder": encoder}

    # --------------------------------------------------------------- evaluation
    def evaluate(self, ctx, models: dict, data: TaskData) -> dict:
        from .. import evaluation, explain, artifacts, plotting
        from ..data.jets import surface_errors

        cfg = ctx.config
        ex = data.extras
        plots = ctx.plots_dir
        streams = ex.get("streams", [])
        with surface_errors(*streams):
            pred = _predict_dataset(models["model"], data.test)
        y, score = pred["true"]["y"], pred["pred"]["y"]
        report = evaluation.binary_report(y, score, seed=cfg.run.seed, class_names=("QCD", "top"))
        out = {"roc_auc": report["roc_auc"], "roc_auc_ci": report["roc_auc_ci"], "accuracy": report["accuracy"],
               "n": report["n"], "confusion_matrix": report["confusion_matrix"]}
        for key, unit_name in (("m", "m"), ("pt", "pT")):
            reg = evaluation.regression_report(pred["true"][key], pred["pred"][key])
            out.update({f"{key}_mse": reg["mse"], f"{key}_mae": reg["mae"], f"{key}_r2": reg["r2"],
                        f"{key}_resolution_rel": reg["resolution_rel"]})
            plotting.true_vs_pred(pred["true"][key], pred["pred"][key], plots / f"{key}_true_vs_pred.png",
                                  name=unit_name, unit="GeV")
            plotting.resolution(pred["true"][key], pred["pred"][key], plots / f"{key}_resolution.png", name=unit_name)
        out["model_variant"] = ex.get("export", "model.keras")
        if data.info.get("oracle_auc") is not None:
            out["oracle_auc"] = data.info["oracle_auc"]
        # table of every method and label fraction
        curves = {}
        rows = []
        test_truth = ex.get("latent_targets", {}).get("test")
        for (method, f), p in sorted(ex.get("predictions", {}).items(), key=lambda kv: (kv[0][1], METHODS.index(kv[0][0]))):
            truth = p.get("true") or test_truth
            row = {"label_fraction": f, "labels": int(len(ex["subsets"][f])), "method": method}
            row["roc_auc"] = evaluation.roc_auc_with_ci(truth["y"], p["pred"]["y"], n_boot=0)[0]
            row["accuracy"] = float(np.mean((p["pred"]["y"] >= 0.5) == (truth["y"] > 0.5)))
            for key in ("m", "pt"):
                reg = evaluation.regression_report(truth[key], p["pred"][key])
                row.update({f"{key}_mse": reg["mse"], f"{key}_mae": reg["mae"], f"{key}_r2": reg["r2"]})
            rows.append(row)
            if f == max(ex["subsets"]):
                curves[f"{method} ({_tag(f)})"] = (truth["y"], p["pred"]["y"])
        plotting.roc_curve(y, score, plots / "roc.png", label=f"model.keras: {out['model_variant']}", curves=curves)
        plotting.score_distributions(y, score, plots / "scores.png", class_names=("QCD", "top"))
        plotting.confusion_matrix(report["confusion_matrix"], plots / "confusion.png", class_names=("QCD", "top"))
        if rows:
            cols = list(rows[0])
            artifacts.write_json(ctx.run_dir / "downstream_table.json", rows)
            buf = _io.StringIO()
            w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
            artifacts.write_text(ctx.run_dir / "downstream_table.csv", buf.getvalue())
            shown = ["label_fraction", "method", "roc_auc", "accuracy", "m_mse", "pt_mse", "m_r2", "pt_r2"]
            plotting.table_figure([[r[c] for c in shown] for r in rows], shown, plots / "downstream_table.png",
                                  title="test metrics per label fraction and method")
            _fraction_plot(rows, plots / "label_fractions.png")
            out["table"] = rows
            out["comparison"] = _comparison(rows)
        # t-SNE of the encoder's latents, coloured by class and by mass
        n_tsne = cfg.data.tsne_points
        if n_tsne and "encoder" in models:
            z_test = ex.get("latents", {}).get("test")
            truth = test_truth
            if z_test is None:
                with surface_errors(*streams):
                    z_test = explain.embeddings(models["encoder"], "latent", data.test.map(lambda x, t: x))
                truth = pred["true"]
            k = min(n_tsne, len(z_test))
            if k >= 5:  # t-SNE needs a few points more than its perplexity
                # a seeded random subset: the first k jets of a file sorted by class or pT would be biased
                rows = explain.sample_rows(len(z_test), k, seed=cfg.run.seed)
                pts = explain.tsne(z_test[rows], seed=cfg.run.seed, max_points=k)
                plotting.embedding_scatter(pts, np.where(truth["y"][rows] > 0.5, "top", "QCD"),
                                           plots / "tsne_class.png",
                                           title="t-SNE of encoder latents (test jets)", label="")
                plotting.embedding_scatter(pts, truth["m"][rows], plots / "tsne_mass.png",
                                           title="t-SNE of encoder latents (test jets)", label="jet mass [GeV]",
                                           categorical=False)
        return out


# ------------------------------------------------------------------ helpers
def _counts(y) -> dict:
    y = np.asarray(y)
    return {"qcd": int((y == 0).sum()), "top": int((y == 1).sum())}


def _predict_arrays(model, z) -> dict:
    out = model.predict(z, batch_size=1024, verbose=0)
    return {"pred": {k: np.asarray(v, np.float64).reshape(-1) for k, v in out.items()}}


def _predict_dataset(model, dataset) -> dict:
    """Predictions and truth of a model with outputs y, m, pt over a dataset of (jet, targets)."""
    preds = {"y": [], "m": [], "pt": []}
    truth = {"y": [], "m": [], "pt": []}
    import keras

    for x, t in dataset:
        p = model(x, training=False)
        for k in preds:
            preds[k].append(np.asarray(keras.ops.convert_to_numpy(p[k]), np.float64).reshape(-1))
            truth[k].append(np.asarray(t[k], np.float64).reshape(-1))
    cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in preds.items()}
    tru = {k: np.concatenate(v) if v else np.zeros(0) for k, v in truth.items()}
    return {"pred": cat, "true": tru}


def _comparison(rows) -> dict:
    """Per label fraction: test ROC AUC of each pre-trained method (frozen, fine-tuned, linear
    probe) minus that of the from-scratch baseline, and whether it beats it (AUC only; the
    regression metrics are in the table)."""
    by = {}
    for r in rows:
        by.setdefault(r["label_fraction"], {})[r["method"]] = r
    out = {}
    for f, d in by.items():
        if "scratch" not in d:
            continue
        entry = {}
        for method in ("frozen", "finetune", "linear"):
            if method in d:
                entry[f"{method}_minus_scratch_auc"] = d[method]["roc_auc"] - d["scratch"]["roc_auc"]
                entry[f"{method}_beats_scratch_auc"] = bool(d[method]["roc_auc"] > d["scratch"]["roc_auc"])
        out[_tag(f)] = entry
    return out


def _fraction_plot(rows, path):
    """Three panels against the label fraction, one line per method: test ROC AUC, mass MSE
    and pT MSE (GeV^2)."""
    import matplotlib.pyplot as plt

    from ..artifacts import save_figure
    from ..plotting import _style

    _style()
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.5))
    for method in METHODS:
        rs = sorted((r for r in rows if r["method"] == method), key=lambda r: r["label_fraction"])
        if not rs:
            continue
        fr = [r["label_fraction"] for r in rs]
        axes[0].plot(fr, [r["roc_auc"] for r in rs], marker="o", label=method)
        axes[1].plot(fr, [r["m_mse"] for r in rs], marker="o", label=method)
        axes[2].plot(fr, [r["pt_mse"] for r in rs], marker="o", label=method)
    for ax, lab in zip(axes, ("test ROC AUC", "mass MSE [GeV$^2$]", "pT MSE [GeV$^2$]")):
        ax.set_xscale("log")
        ax.set_xlabel("fraction of labelled training jets")
        ax.set_ylabel(lab)
        ax.legend(fontsize=11)
    return save_figure(fig, path)
