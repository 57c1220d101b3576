"""higgs_mae: masked Transformer autoencoder on HIGGS low-level features, then classification.

One ``train`` run has these stages (:meth:`HiggsMae.fit`):

1. ``pretrain``: the :class:`~kerahep.models.mae.MaskedAutoencoder` learns to reconstruct
   masked objects (labels unused), with physics terms in the loss;
2. a classifier head on the FROZEN pre-trained encoder (stage ``main``, or ``frozen`` when
   fine-tuning follows);
3. optional fine-tuning of encoder and head together at a lower learning rate (``main``);
4. for the comparison table: the same Transformer classifier trained from scratch
   (``scratch``) with as many supervised epochs as stages 2 and 3 together.

Artifacts: ``model.keras`` (the final classifier: raw features -> signal probability),
``encoder.keras`` (the pre-trained encoder, before any fine-tuning: raw features ->
tokens) and ``pretrainer.keras`` (the whole autoencoder, for reconstruction).

Evaluation (:meth:`HiggsMae.evaluate`): ROC AUC with bootstrap interval and accuracy of
the final model; ``comparison.json``/``.csv`` comparing on the same test events the
frozen-encoder classifier, the fine-tuned one, the Transformer from scratch and
scikit-learn ``HistGradientBoostingClassifier`` on the same features and on all 28
stored columns; ``reconstruction.json``/``.csv`` with per-feature MSE, MAE and Pearson
correlation of reconstructed masked features, and true-against-reconstructed plots.
Re-evaluating the run later writes its (shorter) versions beside these, as
``*_evaluation`` files, and leaves training's tables as they are.

Presets: ``default`` (the synthetic twin, a few minutes on 2 CPU cores),
``realdata_small`` (train on ``../shared/realdata/higgs/binary.train``, test on
``binary.test``) and ``seed`` (the seed protocol on the real ``HIGGS.csv.gz``: first
1 million lines train, next 100k validation, last 100k test).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import Config, DataConfig, ModelConfig, RunSettings, TrainingConfig, check
from ..errors import DataError
from ..registry import register_task
from .base import Task, TaskData

log = logging.getLogger("kerahep")

REPO = Path(__file__).resolve().parents[2]


def realdata_dir() -> Path:
    """``$KERAHEP_REALDATA`` or ``../shared/realdata`` beside the checkout."""
    return Path(os.environ.get("KERAHEP_REALDATA", REPO.parent / "shared" / "realdata"))


def _range_ok(r) -> bool:
    return r is None or (isinstance(r, tuple) and len(r) == 2
                         and all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in r))


@dataclass(frozen=True)
class HiggsData(DataConfig):
    """Data settings of higgs_mae.

    Args:
        paths: empty: the synthetic twin. One file: split by ``rows_*`` when given, else a
            seeded stratified split by ``split``. Two files: the first is split into train
            and validation (in the proportions of ``split``), the second is the test set.
        features: ``low`` (21 low-level, phi as cos and sin: 27 columns) or ``all`` (plus
            the 7 high-level masses).
        rows_train, rows_val, rows_test: line ranges ``(start, stop)`` of one large file
            (Python slice rules; negative counts from the end, None is open), disjoint and
            non-empty (:meth:`resolve_ranges`). When ``rows_train`` is set the networks
            stream the file in chunks; the tree baselines read at most ``gbt_max_train``
            training lines and the whole test range into memory.
        chunksize: lines per chunk of the CSV reader (about; a few MB parse fastest).
        synthetic_events: events per class of the twin.
        twin_seed: seed of the twin (independent of ``run.seed``, so runs share one twin).
        oracle_events: events per class of the twin's reference-AUC sample (0: none).
        gbt_max_train: cap on training events for the gradient-boosted-tree baselines.
        adapt_events: events used to adapt the feature scaling when streaming.
    """

    features: str = "low"
    rows_train: tuple | None = None
    rows_val: tuple | None = None
    rows_test: tuple | None = None
    chunksize: int = 4096
    synthetic_events: int = 30000
    twin_seed: int = 20140602
    oracle_events: int = 15000
    gbt_max_train: int | None = 1_000_000
    adapt_events: int = 200_000

    def validate(self) -> None:
        super().validate()
        check(self.features in ("low", "all"), f"data.features must be low or all, got {self.features!r}")
        for name in ("rows_train", "rows_val", "rows_test"):
            check(_range_ok(getattr(self, name)),
                  f"data.{name} must be (start, stop) with integers or None, got {getattr(self, name)!r}")
        check(self.chunksize > 0, f"data.chunksize must be positive, got {self.chunksize}")
        check(self.oracle_events >= 0, f"data.oracle_events must be >= 0, got {self.oracle_events}")
        check(self.gbt_max_train is None or self.gbt_max_train > 0,
              f"data.gbt_max_train must be positive or None, got {self.gbt_max_train}")
        check(self.adapt_events > 0, f"data.adapt_events must be positive, got {self.adapt_events}")
        # row ranges come as a set: rows_train and rows_test (rows_val optional), or none
        ranges = (self.rows_train, self.rows_val, self.rows_test)
        check(all(r is None for r in ranges) or (self.rows_train is not None and self.rows_test is not None),
              f"data.rows_train and data.rows_test must be given together (rows_val optional), got "
              f"rows_train={self.rows_train}, rows_val={self.rows_val}, rows_test={self.rows_test}")

    @property
    def streaming(self) -> bool:
        return self.rows_train is not None

    def resolve_ranges(self, path) -> dict:
        """The row ranges of ``path`` as absolute, disjoint, non-empty ``(start, stop)`` lines.

        Returns ``{"train": ..., "val": ..., "test": ...}`` (``val`` only when ``rows_val``
        is set). The file's lines are counted (one pass, seconds on the 11M-line
        HIGGS.csv.gz) only when a range counts from the end, or when two ranges overlap as
        given and an open end might lie beyond the file; once counted, every ``stop`` is
        capped at the line count (an open end becomes it). The overlap check uses the lines
        actually read: the training range cut to ``max_events`` lines when that is set.

        Raises:
            ConfigError: a range empty as given (``stop <= start``).
            DataError: naming the file: a range with no line in the file, or two ranges
                sharing lines (the message gives the ranges as given and as resolved).
        """
        import math

        from ..data import higgs as hr
        from ..errors import ConfigError

        names = {"train": "data.rows_train", "val": "data.rows_val", "test": "data.rows_test"}
        given = {k: r for k, r in zip(names, (self.rows_train, self.rows_val, self.rows_test)) if r is not None}

        def resolve(total):
            out = {}
            for k, r in given.items():
                try:
                    out[k] = hr.resolve_rows(path, r, total=total)
                except DataError as exc:
                    raise DataError(path, f"{exc.expected} ({names[k]})", exc.found) from None
                except ConfigError as exc:
                    raise ConfigError(f"{names[k]}={tuple(r)}: {exc}") from None
            return out

        def read(k, rng):  # the lines a range reads, stop None: to the end
            start, stop = rng
            if k == "train" and self.max_events is not None:
                stop = start + self.max_events if stop is None else min(stop, start + self.max_events)
            return start, stop

        def overlap(res):
            keys = list(res)
            for i, a in enumerate(keys):
                for b in keys[i + 1:]:
                    (s1, e1), (s2, e2) = read(a, res[a]), read(b, res[b])
                    if s1 < (math.inf if e2 is None else e2) and s2 < (math.inf if e1 is None else e1):
                        return a, b
            return None

        total = hr.count_rows(path) if any(v is not None and v < 0 for r in given.values() for v in r) else None
        res = resolve(total)
        clash = overlap(res)
        if clash and total is None:  # an open end may lie beyond the file: count once to be sure
            total = hr.count_rows(path)
            res = resolve(total)
            clash = overlap(res)
        if clash:
            a, b = clash
            (s1, e1), (s2, e2) = read(a, res[a]), read(b, res[b])
            cut = f" (training cut to data.max_events={self.max_events})" if self.max_events is not None else ""
            raise DataError(
                path, "disjoint row ranges for training, validation and test",
                f"{names[a]}={tuple(given[a])} and {names[b]}={tuple(given[b])}, resolved on a file of {total} "
                f"lines to lines [{s1}, {e1}) and [{s2}, {e2}){cut} (0-based, stop excluded), both holding lines "
                f"[{max(s1, s2)}, {min(e1, e2)}); give ranges that do not overlap")
        return res


@dataclass(frozen=True)
class HiggsModel(ModelConfig):
    """Masked-autoencoder and classifier settings.

    Args:
        tokenization: ``object`` (one token per lepton, missing energy, jet) or ``feature``.
        dim, depth, num_heads, mlp_ratio: the Transformer encoder.
        decoder_dim, decoder_depth: the decoder of the pre-training.
        mask_ratio: fraction of tokens masked in pre-training.
        btag_embedding: embed the discrete b-tag levels (else they enter as numbers).
        pair_features: add the pairwise invariant masses of the objects to their tokens
            (computed inside the model from the low-level features; object tokens only).
            None: on for object tokens, off for feature tokens.
        pt_balance_weight, negative_pt_weight, unit_circle_weight: physics terms of the
            pre-training loss (0 switches a term off).
        pretrain_epochs: epochs of the pre-training (0: no pre-training).
        pretrain_learning_rate: peak learning rate of the pre-training (None: training.learning_rate).
        head_units: hidden widths of the classifier head.
        pooling: ``flatten`` or ``mean`` over the encoder tokens.
        dropout: dropout of the head and the Transformer blocks.
        finetune_epochs: epochs of fine-tuning encoder and head together (0: none).
        finetune_lr_factor: fine-tuning learning rate relative to training.learning_rate.
        compare_scratch: also train the same Transformer from scratch for the comparison table.
        compare_gbt: also fit gradient-boosted trees for the comparison table.
        gbt_max_iter: boosting iterations of the trees (early stopping on 10%).
        recon_events: test events used for the reconstruction table and plots.
    """

    name: str = "mae_transformer"
    tokenization: str = "object"
    dim: int = 32
    depth: int = 2
    num_heads: int = 4
    mlp_ratio: float = 2.0
    decoder_dim: int = 32
    decoder_depth: int = 1
    mask_ratio: float = 0.5
    btag_embedding: bool = True
    pair_features: bool | None = None
    pt_balance_weight: float = 0.001
    negative_pt_weight: float = 0.1
    unit_circle_weight: float = 0.1
    pretrain_epochs: int = 4
    pretrain_learning_rate: float | None = None
    head_units: tuple = (64,)
    pooling: str = "flatten"
    dropout: float = 0.1
    finetune_epochs: int = 10
    finetune_lr_factor: float = 1.0
    compare_scratch: bool = True
    compare_gbt: bool = True
    gbt_max_iter: int = 300
    recon_events: int = 5000

    def validate(self) -> None:
        super().validate()
        from ..models.mae import POOLINGS, TOKENIZATIONS

        check(self.tokenization in TOKENIZATIONS, f"model.tokenization must be one of {TOKENIZATIONS}, got {self.tokenization!r}")
        check(not (self.pair_features and self.tokenization != "object"),
              "model.pair_features=true needs model.tokenization='object' (pairs are formed between object tokens)")
        check(self.pooling in POOLINGS, f"model.pooling must be one of {POOLINGS}, got {self.pooling!r}")
        for k in ("dim", "depth", "num_heads", "decoder_dim", "decoder_depth", "gbt_max_iter", "recon_events"):
            check(getattr(self, k) >= 1, f"model.{k} must be >= 1, got {getattr(self, k)}")
        check(self.dim % self.num_heads == 0, f"model.dim ({self.dim}) must be a multiple of model.num_heads ({self.num_heads})")
        check(0.0 < self.mask_ratio < 1.0, f"model.mask_ratio must be in (0, 1), got {self.mask_ratio}")
        check(self.mlp_ratio > 0, f"model.mlp_ratio must be positive, got {self.mlp_ratio}")
        for k in ("pt_balance_weight", "negative_pt_weight", "unit_circle_weight"):
            check(getattr(self, k) >= 0, f"model.{k} must be >= 0, got {getattr(self, k)}")
        check(self.pretrain_epochs >= 0 and self.finetune_epochs >= 0,
              f"model.pretrain_epochs and model.finetune_epochs must be >= 0, got {self.pretrain_epochs}, {self.finetune_epochs}")
        check(self.pretrain_learning_rate is None or self.pretrain_learning_rate > 0,
              f"model.pretrain_learning_rate must be positive or None, got {self.pretrain_learning_rate}")
        check(all(int(u) > 0 for u in self.head_units), f"model.head_units must be positive integers, got {self.head_units!r}")
        check(self.finetune_lr_factor > 0, f"model.finetune_lr_factor must be positive, got {self.finetune_lr_factor}")

    @property
    def uses_pairs(self) -> bool:
        return self.tokenization == "object" if self.pair_features is None else bool(self.pair_features)


@register_task
class HiggsMae(Task):
    name = "higgs_mae"
    description = "HIGGS signal vs ttbar: masked Transformer autoencoder pre-training, classifier on its encoder"
    presets = ("default", "realdata_small", "seed")
    smoke = ("data.data_dir='data/smoke'", "data.synthetic_events=60", "data.oracle_events=0", "model.dim=8",
             "model.depth=1", "model.num_heads=2", "model.decoder_dim=8", "model.head_units=(8,)",
             "model.recon_events=40", "model.gbt_max_iter=20", "model.pretrain_epochs=1", "model.finetune_epochs=1",
             "training.epochs=1", "training.batch_size=32")
    monitor = "val_auc"
    monitor_mode = "max"
    artifacts = ("model", "encoder", "pretrainer")

    # ---------------------------------------------------------------- presets
    def _preset(self, name: str) -> Config:
        name = self._check_preset(name)
        run = RunSettings()
        if name == "default":
            return Config(task=self.name, preset=name, data=HiggsData(), model=HiggsModel(),
                          training=TrainingConfig(epochs=2, batch_size=256, learning_rate=2e-3, schedule="onecycle",
                                                  weight_decay=1e-4), run=run)
        if name == "realdata_small":
            root = realdata_dir() / "higgs"
            return Config(task=self.name, preset=name,
                          data=HiggsData(paths=(str(root / "binary.train"), str(root / "binary.test")),
                                         split=(0.85, 0.15)),
                          model=HiggsModel(pretrain_epochs=30, finetune_epochs=10, dropout=0.2, gbt_max_iter=300),
                          training=TrainingConfig(epochs=15, batch_size=128, learning_rate=1e-3, schedule="onecycle",
                                                  weight_decay=1e-3),
                          run=run)
        # seed protocol on the real 11M-event file
        return Config(task=self.name, preset=name,
                      data=HiggsData(paths=("data/HIGGS.csv.gz",), rows_train=(0, 1_000_000),
                                     rows_val=(1_000_000, 1_100_000), rows_test=(-100_000, None),
                                     shuffle_buffer=200_000, cache=True),
                      model=HiggsModel(dim=64, depth=4, num_heads=4, decoder_dim=64, decoder_depth=2,
                                       pretrain_epochs=20, finetune_epochs=10, head_units=(256, 64), dropout=0.1),
                      training=TrainingConfig(epochs=10, batch_size=1024, learning_rate=1e-3, schedule="onecycle",
                                              early_stopping=5),
                      run=run)

    def describe_model(self, config: Config) -> str:
        m = config.model
        return (f"{m.name} ({m.tokenization} tokens, dim {m.dim}, depth {m.depth}, mask {m.mask_ratio:g}; "
                f"pretrain {m.pretrain_epochs}, frozen {config.training.epochs}, finetune {m.finetune_epochs} epochs)")

    # ------------------------------------------------------------------- data
    def twin_dir(self, config: Config) -> Path:
        return Path(config.data.data_dir) / "synthetic" / self.name

    def make_synthetic(self, config: Config) -> list[Path]:
        """Write (or reuse) the synthetic twin; return its files (table and twin.json)."""
        from ..data.synthetic.higgs import make_twin

        d = config.data
        path = make_twin(self.twin_dir(config), events_per_class=d.synthetic_events, seed=d.twin_seed,
                         oracle_events=d.oracle_events)
        return [path, path.parent / "twin.json"]

    def data_files(self, config: Config, paths=None) -> tuple[list[Path], str]:
        d = config.data
        if paths:
            return [Path(p) for p in paths], "files"
        if d.paths and not d.force_synthetic:
            if len(d.paths) > 2:
                raise DataError(d.paths[2], "one file (split in train, validation, test) or two (train, test)",
                                f"{len(d.paths)} files")
            return [Path(p) for p in d.paths], "files"
        return [self.make_synthetic(config)[0]], "synthetic"

    def load_data(self, config: Config, paths=None, for_evaluation: bool = False) -> TaskData:
        from ..data import higgs as hr
        from ..evaluation import class_weights

        d = config.data
        files, source = self.data_files(config, paths)
        bs = config.training.batch_size
        seed = config.run.seed
        info = {"features": d.features, "n_features": len(hr.feature_names(d.features))}
        if source == "synthetic":
            from ..artifacts import read_json

            meta = files[0].parent / "twin.json"
            if meta.exists():
                twin = read_json(meta)
                info.update(oracle_auc=twin.get("oracle_auc"), oracle_method=twin.get("oracle_method"),
                            twin_events_per_class=twin.get("params", {}).get("events_per_class"))
        extras = {}
        if for_evaluation:
            raws, ys = [], []
            for f in files:
                x, y = hr.read_higgs(f, features="raw", chunksize=d.chunksize)  # scored in full: no max_events
                raws.append(x)
                ys.append(y)
            raw_te, y_te = np.concatenate(raws), np.concatenate(ys)
            info.update(n_train=0, n_val=0, n_test=int(len(y_te)), test_signal=int(y_te.sum()))
            extras.update(raw_test=raw_te, y_test=y_te)
            test = _array_dataset(hr.transform(raw_te, d.features), y_te, bs)
            return TaskData(train=None, val=None, test=test, source=source, paths=files, info=info, extras=extras)

        if d.streaming:
            return self._streaming_data(config, files, source, info)

        for f in files:
            _refuse_whole_read(f, d)
        raw, y = hr.read_higgs(files[0], features="raw", max_rows=d.max_events, chunksize=d.chunksize)
        split = tuple(d.split)
        from ..data.splits import stratified_split

        if len(files) == 2:
            f_tr = split[0] / (split[0] + split[1]) if len(split) == 3 else split[0]
            tr, va = stratified_split(y, (f_tr, 1 - f_tr), seed=seed)
            raw_te, y_te = hr.read_higgs(files[1], features="raw", chunksize=d.chunksize)
            raw_tr, y_tr, raw_va, y_va = raw[tr], y[tr], raw[va], y[va]
        else:
            fr = split if len(split) == 3 else (split[0], 0.0, split[1])
            tr, va, te = stratified_split(y, fr, seed=seed)
            raw_tr, y_tr, raw_va, y_va, raw_te, y_te = raw[tr], y[tr], raw[va], y[va], raw[te], y[te]
        if len(y_tr) == 0 or len(np.unique(y_tr)) < 2:
            raise DataError(files[0], "training events of both classes (label 0 and 1)",
                            f"{len(y_tr)} training events with labels {sorted(set(np.unique(y_tr).tolist()))}")
        x_tr = hr.transform(raw_tr, d.features)
        extras.update(raw_train=raw_tr, y_train=y_tr, raw_test=raw_te, y_test=y_te, adapt=x_tr)
        info.update(n_train=int(len(y_tr)), n_val=int(len(y_va)), n_test=int(len(y_te)),
                    train_signal=int(y_tr.sum()), val_signal=int(y_va.sum()), test_signal=int(y_te.sum()))
        train = _array_dataset(x_tr, y_tr, bs, shuffle=True, seed=seed)
        val = _array_dataset(hr.transform(raw_va, d.features), y_va, bs) if len(y_va) else None
        test = _array_dataset(hr.transform(raw_te, d.features), y_te, bs) if len(y_te) else None
        cw = class_weights(y_tr) if config.training.class_weight else None
        return TaskData(train=train, val=val, test=test, source=source, paths=files, info=info, class_weight=cw,
                        extras=extras)

    def _streaming_data(self, config, files, source, info) -> TaskData:
        """Row ranges of one large file: validate and count each range, then stream it."""
        from ..data import higgs as hr

        d = config.data
        path = files[0]
        bs = config.training.batch_size
        counts = {}
        t0 = time.perf_counter()
        for split, resolved in d.resolve_ranges(path).items():  # disjoint and non-empty
            c = hr.scan(path, resolved, max_rows=d.max_events if split == "train" else None, chunksize=d.chunksize)
            counts[split] = (resolved, c)
        log.info("checked %s row ranges in %.1f s", path, time.perf_counter() - t0)
        (tr_rows, tr), te_rows_c = counts["train"], counts["test"]
        if tr["signal"] == 0 or tr["background"] == 0:
            raise DataError(path, f"training lines {tr_rows} with both labels",
                            f"{tr['signal']} signal and {tr['background']} background")
        info.update(rows={k: [v[0][0], v[0][1]] for k, v in counts.items()},
                    n_train=tr["rows"], train_signal=tr["signal"],
                    n_val=counts["val"][1]["rows"] if "val" in counts else 0,
                    val_signal=counts["val"][1]["signal"] if "val" in counts else 0,
                    n_test=te_rows_c[1]["rows"], test_signal=te_rows_c[1]["signal"])

        def stream(split, shuffle):
            import math

            import tensorflow as tf

            rows, c = counts[split]
            cap = d.max_events if split == "train" else None
            ds = hr.higgs_dataset(path, rows, features=d.features, batch_size=bs,
                                  shuffle_buffer=d.shuffle_buffer if shuffle else 0, seed=config.run.seed,
                                  chunksize=d.chunksize, max_rows=cap, cache=d.cache and split != "test")
            # the scan counted the lines: a known length gives progress bars and learning-rate schedules
            return ds.apply(tf.data.experimental.assert_cardinality(math.ceil(c["rows"] / bs)))

        adapt, _ = hr.read_higgs(path, counts["train"][0], features=d.features,
                                 max_rows=min(d.adapt_events, tr["rows"]), chunksize=d.chunksize)
        cw = None
        if config.training.class_weight:
            n, n1 = tr["rows"], tr["signal"]
            cw = {0: n / (2.0 * (n - n1)), 1: n / (2.0 * n1)}
        extras = {"adapt": adapt, "stream_path": path, "rows": {k: v[0] for k, v in counts.items()}}
        return TaskData(train=stream("train", True), val=stream("val", False) if "val" in counts else None,
                        test=stream("test", False), source=source, paths=files, info=info, class_weight=cw,
                        extras=extras)

    # ------------------------------------------------------------------ models
    def layout(self, config: Config, data: TaskData | None = None) -> dict:
        from ..models.mae import higgs_layout

        return higgs_layout(config.data.features, config.model.tokenization)

    def build_autoencoder(self, config: Config, data: TaskData, seed_offset: int = 0):
        """The masked autoencoder of ``config``, its scaling adapted on the training features."""
        from ..models.mae import build_masked_autoencoder

        m = config.model
        return build_masked_autoencoder(
            self.layout(config, data), dim=m.dim, depth=m.depth, num_heads=m.num_heads, mlp_ratio=m.mlp_ratio,
            dropout=m.dropout, decoder_dim=m.decoder_dim, decoder_depth=m.decoder_depth, mask_ratio=m.mask_ratio,
            btag_embedding=m.btag_embedding, pair_features=m.uses_pairs, pt_balance_weight=m.pt_balance_weight,
            negative_pt_weight=m.negative_pt_weight, unit_circle_weight=m.unit_circle_weight,
            adapt_data=data.extras.get("adapt"), seed=config.run.seed + seed_offset)

    def examples(self) -> dict:
        """Tiny masked autoencoder (object and feature tokens) and its classifier."""
        import numpy as np

        from ..models.mae import build_classifier, build_masked_autoencoder, higgs_layout
        from .base import ModelExample

        rng = np.random.default_rng(0)
        out = {}
        for tok in ("object", "feature"):
            layout = higgs_layout("low", tok)
            n = len(layout["feature_names"])
            x = np.abs(rng.normal(1.0, 0.5, size=(8, n))).astype("float32")

            def build_mae(layout=layout, x=x, tok=tok):
                return build_masked_autoencoder(layout, dim=8, depth=1, num_heads=2, decoder_dim=8,
                                                pair_features=tok == "object", unit_circle_weight=0.1,
                                                adapt_data=x, seed=0)

            out[f"mae_{tok}"] = ModelExample(build=build_mae, x=x, y=None, loss=None,
                                             outputs=lambda m, x: m.encoder_model().predict(x, verbose=0))
            if tok == "object":
                out["classifier"] = ModelExample(
                    build=lambda b=build_mae: build_classifier(b().encoder_model(), hidden_units=(8,), freeze=False),
                    x=x, y=(x[:, 0] > 1).astype("float32"))
        return out

    def build_model(self, config: Config, data: TaskData):
        """The Transformer classifier without pre-training (encoder trainable)."""
        from ..models.mae import build_classifier

        mae = self.build_autoencoder(config, data, seed_offset=1)
        m = config.model
        return build_classifier(mae.encoder_model(), hidden_units=m.head_units, dropout=m.dropout,
                                pooling=m.pooling, freeze=False, name="higgs_transformer")

    def _compile_classifier(self, model, config, steps, epochs, learning_rate):
        import keras

        from ..optimizers import make_optimizer

        if config.training.loss == "focal":
            loss = keras.losses.BinaryFocalCrossentropy()
        else:
            loss = keras.losses.BinaryCrossentropy()
        model.compile(optimizer=make_optimizer(config.training, steps, epochs=epochs, learning_rate=learning_rate),
                      loss=loss, metrics=[keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")],
                      jit_compile=config.training.jit)

    # ---------------------------------------------------------------- training
    def fit(self, ctx) -> dict:
        from ..evaluation import predict_dataset
        from ..models.mae import build_classifier, copy_autoencoder
        from ..optimizers import make_optimizer

        cfg, data, m = ctx.config, ctx.data, ctx.config.model
        t = cfg.training
        lr = t.learning_rate
        scores = {}
        ctx.higgs_scores = scores

        # 1. pre-training
        mae = ctx.build(lambda: self.build_autoencoder(cfg, data))
        if m.pretrain_epochs:
            pre_lr = m.pretrain_learning_rate or lr
            ctx.fit(mae, stage="pretrain", epochs=m.pretrain_epochs, class_weight=None, monitor="val_loss", mode="min",
                    compile_fn=lambda model, steps: model.compile(
                        optimizer=make_optimizer(t, steps, epochs=m.pretrain_epochs, learning_rate=pre_lr),
                        jit_compile=t.jit))
        # the saved autoencoder and encoder keep the pre-trained weights, whatever fine-tuning does later
        pretrainer = ctx.build(lambda: copy_autoencoder(mae))
        encoder_artifact = pretrainer.encoder_model(name="encoder")

        # 2. classifier on the frozen encoder
        clf = ctx.build(lambda: build_classifier(mae.encoder_model(), hidden_units=m.head_units, dropout=m.dropout,
                                                 pooling=m.pooling, freeze=True))
        frozen_stage = "frozen" if m.finetune_epochs else "main"
        ctx.fit(clf, stage=frozen_stage, epochs=t.epochs,
                compile_fn=lambda model, steps: self._compile_classifier(model, cfg, steps, t.epochs, lr))
        if data.test is not None:
            scores["pretrained_frozen"] = predict_dataset(clf, data.test)

        # 3. fine-tuning of the whole
        if m.finetune_epochs:
            clf.get_layer("encoder").trainable = True
            steps = t.steps_per_epoch or ctx.cardinality(data.train)
            with ctx.strategy.scope():
                self._compile_classifier(clf, cfg, steps, m.finetune_epochs, lr * m.finetune_lr_factor)
            ctx.fit(clf, stage="main", epochs=m.finetune_epochs)
            if data.test is not None:
                scores["pretrained_finetuned"] = predict_dataset(clf, data.test)

        # 4. the same Transformer from scratch, as many supervised epochs
        if m.compare_scratch:
            scratch = ctx.build(lambda: self.build_model(cfg, data))
            n_ep = t.epochs + m.finetune_epochs
            ctx.fit(scratch, stage="scratch", epochs=n_ep,
                    compile_fn=lambda model, steps: self._compile_classifier(model, cfg, steps, n_ep, lr))
            if data.test is not None:
                scores["scratch"] = predict_dataset(scratch, data.test)
        return {"model": clf, "encoder": encoder_artifact, "pretrainer": pretrainer}

    # -------------------------------------------------------------- evaluation
    def evaluate(self, ctx, models: dict, data: TaskData) -> dict:
        """Test metrics of the final model, the comparison table and the reconstruction table.

        The frozen, fine-tuned and from-scratch classifiers are scored during training only
        (``ctx.higgs_scores``, set by :meth:`fit`); a later re-evaluation
        (:func:`kerahep.training.evaluate_run`) has just the saved artifacts, so its
        comparison holds the final model, the tree baselines and the twin's oracle. Rather
        than overwrite the training's complete tables with that shorter one, a re-evaluation
        in the run's own directory (it holds ``config.json``) writes its versions beside
        them under names ending in ``_evaluation``: ``comparison_evaluation.json``/``.csv``,
        ``reconstruction_evaluation.json``/``.csv`` and ``plots/roc_evaluation.png``,
        ``plots/comparison_evaluation.png``, ``plots/reconstruction_evaluation.png``
        (reading the training's rows back instead would put rows and ROC curves of
        different provenance in one table and plot). Training, and evaluation of external
        files into their own ``external/<id>/`` directory, use the plain names.
        ``plots/scores.png`` and ``plots/confusion.png`` depend on the final model alone and
        are rewritten in place, as for every task.
        """
        from .. import evaluation, plotting

        cfg = ctx.config
        seed = cfg.run.seed
        training = hasattr(ctx, "higgs_scores")
        suffix = "" if training or not (ctx.run_dir / "config.json").exists() else "_evaluation"
        y, score = evaluation.predict_dataset(models["model"], data.test)
        report = evaluation.binary_report(y, score, seed=seed)
        plotting.score_distributions(y, score, ctx.plots_dir / "scores.png")
        plotting.confusion_matrix(report["confusion_matrix"], ctx.plots_dir / "confusion.png")

        # comparison on the same test events
        curves = {}
        rows = {}
        for name, (yy, ss) in getattr(ctx, "higgs_scores", {}).items():
            rows[name] = _auc_row(yy, ss, seed, features=f"{cfg.data.features} ({data.info.get('n_features')})")
            curves[name] = (yy, ss)
        if not rows:
            rows["final_model"] = _auc_row(y, score, seed, features=f"{cfg.data.features} ({data.info.get('n_features')})")
        if cfg.model.compare_gbt and data.train is not None:
            gbt = self.gbt_baselines(cfg, data)
            for name, (yy, ss, feats) in gbt.items():
                rows[name] = _auc_row(yy, ss, seed, features=feats)
                curves[name] = (yy, ss)
        if data.info.get("oracle_auc") is not None:
            rows["twin_oracle_latent"] = {"roc_auc": data.info["oracle_auc"], "roc_auc_ci": [None, None],
                                          "accuracy": None, "n": None, "features": "latent truth (see twin.json)"}
        report["comparison"] = rows
        self._write_comparison(ctx, rows, suffix)
        final = ("final model: fine-tuned" if "pretrained_finetuned" in rows
                 else "final model: frozen encoder" if "pretrained_frozen" in rows else "model")
        plotting.roc_curve(y, score, ctx.plots_dir / f"roc{suffix}.png", label=final,
                           curves={k: v for k, v in curves.items() if k != "pretrained_finetuned"
                                   and not (k == "pretrained_frozen" and "pretrained_finetuned" not in curves)})
        if "gbt_all28" in rows:
            report["twin_check"] = {
                "low_level_classifier_auc": report["roc_auc"], "gbt_all28_auc": rows["gbt_all28"]["roc_auc"],
                "difference": report["roc_auc"] - rows["gbt_all28"]["roc_auc"],
                "target": "classifier on low-level features within 0.01 of GBT on all 28"}
        if "gbt_same_features" in rows:
            report["vs_gbt_same_features"] = report["roc_auc"] - rows["gbt_same_features"]["roc_auc"]

        # reconstruction of masked features by the pre-trained autoencoder
        pre = models.get("pretrainer")
        if pre is not None:
            report["reconstruction"] = self.reconstruction_report(ctx, pre, data, suffix)
        return report

    def gbt_baselines(self, cfg: Config, data: TaskData) -> dict:
        """HistGradientBoosting on the same features and on all 28 stored columns (same test events)."""
        from sklearn.ensemble import HistGradientBoostingClassifier
        from threadpoolctl import threadpool_limits

        from ..data import higgs as hr

        d = cfg.data
        if "raw_train" in data.extras:
            raw_tr, y_tr = data.extras["raw_train"], data.extras["y_train"]
        else:
            raw_tr, y_tr = hr.read_higgs(data.extras["stream_path"], data.extras["rows"]["train"], features="raw",
                                         max_rows=d.gbt_max_train if d.max_events is None
                                         else min(d.max_events, d.gbt_max_train or d.max_events),
                                         chunksize=d.chunksize)
        if "raw_test" in data.extras:
            raw_te, y_te = data.extras["raw_test"], data.extras["y_test"]
        else:
            raw_te, y_te = hr.read_higgs(data.extras["stream_path"], data.extras["rows"]["test"], features="raw",
                                         chunksize=d.chunksize)
        if d.gbt_max_train and len(y_tr) > d.gbt_max_train:
            raw_tr, y_tr = raw_tr[: d.gbt_max_train], y_tr[: d.gbt_max_train]
        out = {}
        sets = {"gbt_same_features": (lambda r: hr.transform(r, d.features), f"{d.features} ({data.info.get('n_features')})"),
                "gbt_all28": (lambda r: r, "all 28 stored columns")}
        for name, (fn, label) in sets.items():
            clf = HistGradientBoostingClassifier(max_iter=cfg.model.gbt_max_iter, early_stopping=True,
                                                 validation_fraction=0.1, random_state=cfg.run.seed)
            t0 = time.perf_counter()
            with threadpool_limits(1):  # OpenMP threads on a shared small CPU: one is ~30x faster
                clf.fit(fn(raw_tr), y_tr)
            log.info("%s: %d iterations in %.1f s", name, clf.n_iter_, time.perf_counter() - t0)
            with threadpool_limits(1):
                out[name] = (y_te, clf.predict_proba(fn(raw_te))[:, 1], label)
        return out

    @staticmethod
    def _write_comparison(ctx, rows: dict, suffix: str = "") -> None:
        from .. import artifacts, plotting

        artifacts.write_json(ctx.run_dir / f"comparison{suffix}.json", rows)
        cols = ["model", "roc_auc", "roc_auc_low", "roc_auc_high", "accuracy", "n", "features"]
        lines = [",".join(cols)]
        table = []
        for name, r in rows.items():
            lo, hi = r.get("roc_auc_ci") or [None, None]
            vals = [name, r.get("roc_auc"), lo, hi, r.get("accuracy"), r.get("n"), r.get("features")]
            lines.append(",".join("" if v is None else (f"{v:.6f}" if isinstance(v, float) else str(v).replace(",", ";"))
                                  for v in vals))
            table.append([name, r.get("roc_auc"), f"[{lo:.4f}, {hi:.4f}]" if lo is not None else "",
                          r.get("accuracy") if r.get("accuracy") is not None else ""])
        artifacts.write_text(ctx.run_dir / f"comparison{suffix}.csv", "\n".join(lines) + "\n")
        plotting.table_figure(table, ["model", "ROC AUC", "68% interval", "accuracy"], ctx.plots_dir / f"comparison{suffix}.png",
                              title="Same test events")

    def reconstruction_report(self, ctx, pretrainer, data: TaskData, suffix: str = "") -> dict:
        """Per-feature MSE, MAE and Pearson r of masked features (raw units); table and plots
        (``reconstruction{suffix}.json``/``.csv``, ``plots/reconstruction{suffix}.png``)."""
        from .. import artifacts

        cfg = ctx.config
        names = list(self.layout(cfg)["feature_names"])
        rng = np.random.default_rng(cfg.run.seed)
        trues, recs, masks = [], [], []
        n = 0
        for batch in data.test:
            x = np.asarray(batch[0])
            noise = rng.uniform(size=(len(x), pretrainer.num_tokens)).astype("float32")
            rec, mask = pretrainer.reconstruct(x, noise=noise)
            trues.append(x)
            recs.append(np.asarray(rec))
            masks.append(np.asarray(mask) > 0.5)
            n += len(x)
            if n >= cfg.model.recon_events:
                break
        true, rec, mask = np.concatenate(trues), np.concatenate(recs), np.concatenate(masks)
        rows = []
        for j, name in enumerate(names):
            sel = mask[:, j]
            t, r = true[sel, j], rec[sel, j]
            if len(t) < 2:
                rows.append({"feature": name, "n_masked": int(len(t))})
                continue
            var = float(np.var(t))
            pear = float(np.corrcoef(t, r)[0, 1]) if np.std(t) > 0 and np.std(r) > 0 else float("nan")
            mse = float(np.mean((r - t) ** 2))
            rows.append({"feature": name, "n_masked": int(len(t)), "mse": mse, "mae": float(np.mean(np.abs(r - t))),
                         "pearson_r": pear, "mse_over_variance": mse / var if var > 0 else float("nan")})
        artifacts.write_json(ctx.run_dir / f"reconstruction{suffix}.json", {"events": int(len(true)), "mask_ratio": cfg.model.mask_ratio,
                                                            "features": rows})
        cols = ["feature", "n_masked", "mse", "mae", "pearson_r", "mse_over_variance"]
        lines = [",".join(cols)] + [",".join("" if r.get(c) is None else (f"{r[c]:.6g}" if isinstance(r[c], float) else str(r[c]))
                                             for c in cols) for r in rows]
        artifacts.write_text(ctx.run_dir / f"reconstruction{suffix}.csv", "\n".join(lines) + "\n")
        _reconstruction_grid(true, rec, mask, names, ctx.plots_dir / f"reconstruction{suffix}.png")
        good = [r for r in rows if "mse" in r]
        return {"events": int(len(true)),
                "mean_mse_over_variance": float(np.nanmean([r["mse_over_variance"] for r in good])) if good else None,
                "mean_pearson_r": float(np.nanmean([r["pearson_r"] for r in good])) if good else None,
                "per_feature": {r["feature"]: {k: r[k] for k in ("mse", "mae", "pearson_r") if k in r} for r in rows}}


# ------------------------------------------------------------------- helpers
#: files above this (uncompressed estimate) are not split in memory without a cap
WHOLE_READ_LIMIT_BYTES = 2_000_000_000


def _refuse_whole_read(path, d: HiggsData) -> None:
    """A seeded split reads the whole file: refuse that for a file the size of the real HIGGS.csv."""
    from ..errors import ConfigError

    p = Path(path)
    if d.max_events is not None or not p.exists():
        return
    size = p.stat().st_size * (3 if str(p).endswith(".gz") else 1)
    if size > WHOLE_READ_LIMIT_BYTES:
        raise ConfigError(
            f"{p} is about {size / 1e9:.1f} GB of text: a seeded split would load it whole. Stream row ranges "
            f"instead (--preset seed, or data.rows_train/rows_val/rows_test) or cap it with data.max_events")


def _array_dataset(x, y, batch_size, shuffle=False, seed=0):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((np.asarray(x, np.float32), np.asarray(y, np.float32)))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _auc_row(y, score, seed, features="") -> dict:
    from ..evaluation import roc_auc_with_ci
    from sklearn.metrics import accuracy_score

    auc, lo, hi = roc_auc_with_ci(y, score, seed=seed)
    y = np.asarray(y).astype(int).ravel()
    return {"roc_auc": auc, "roc_auc_ci": [lo, hi],
            "accuracy": float(accuracy_score(y, (np.asarray(score).ravel() >= 0.5).astype(int))),
            "n": int(len(y)), "features": features}


def _reconstruction_grid(true, rec, mask, names, path, bins=40):
    """One panel per feature: reconstructed against true value of masked entries."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..artifacts import save_figure

    n = len(names)
    cols = 6
    rows = int(np.ceil(n / cols))
    with plt.style.context("default"):  # a plain style: 30 panels with CMS minor ticks take seconds each
        fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.4 * rows), squeeze=False)
        for j, ax in enumerate(axes.ravel()):
            if j >= n:
                ax.axis("off")
                continue
            sel = mask[:, j]
            t, r = true[sel, j], rec[sel, j]
            if len(t) > 1:
                lo, hi = np.quantile(np.concatenate([t, r]), [0.005, 0.995])
                if hi <= lo:
                    lo, hi = lo - 1, hi + 1
                h, _, _ = np.histogram2d(np.clip(t, lo, hi), np.clip(r, lo, hi), bins=bins, range=[[lo, hi], [lo, hi]])
                ax.imshow(np.ma.masked_equal(h.T, 0), origin="lower", extent=(lo, hi, lo, hi), aspect="auto",
                          cmap="viridis", interpolation="nearest")
                ax.plot([lo, hi], [lo, hi], color="red", lw=0.8)
            ax.set_title(names[j], fontsize=8)
            ax.tick_params(labelsize=6)
            ax.locator_params(nbins=3)
        fig.supxlabel("true value of the masked feature")
        fig.supylabel("reconstructed")
        fig.tight_layout()
        return save_figure(fig, path, dpi=80)
