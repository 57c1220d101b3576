"""higgs_mae configuration: its data and model sections, the row ranges of one large file,
and the presets."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from ...config import Config, DataConfig, ModelConfig, RunSettings, TrainingConfig, check
from ...data.decoding import decode_threads

REPO = Path(__file__).resolve().parents[3]

PRESETS = ("default", "realdata_small", "seed")
#: overrides that make the smoke preset from the default one
SMOKE = ("data.data_dir='data/smoke'", "data.synthetic_events=60", "data.oracle_events=0", "model.dim=8",
         "model.depth=1", "model.num_heads=2", "model.decoder_dim=8", "model.head_units=(8,)",
         "model.recon_events=40", "model.gbt_max_iter=20", "model.pretrain_epochs=1", "model.finetune_epochs=1",
         "training.epochs=1", "training.batch_size=32", "run.plot_pdf=false")

#: the configuration key of each row range
RANGE_KEYS = {"train": "data.rows_train", "val": "data.rows_val", "test": "data.rows_test"}


def realdata_dir() -> Path:
    """``$KERAHEP_REALDATA`` or ``../shared/realdata`` beside the checkout."""
    return Path(os.environ.get("KERAHEP_REALDATA", REPO.parent / "shared" / "realdata"))


def range_ok(r) -> bool:
    """Whether ``r`` is a row range as configured: None or ``(start, stop)`` of integers or None."""
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
        decode_threads: threads decoding chunks for the streamed reader (None: one per CPU
            core, ``os.cpu_count()``).
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
    decode_threads: int | None = None

    def validate(self) -> None:
        super().validate()
        check(self.features in ("low", "all"), f"data.features must be low or all, got {self.features!r}")
        for name in ("rows_train", "rows_val", "rows_test"):
            check(range_ok(getattr(self, name)),
                  f"data.{name} must be (start, stop) with integers or None, got {getattr(self, name)!r}")
        check(self.chunksize > 0, f"data.chunksize must be positive, got {self.chunksize}")
        check(self.oracle_events >= 0, f"data.oracle_events must be >= 0, got {self.oracle_events}")
        check(self.gbt_max_train is None or self.gbt_max_train > 0,
              f"data.gbt_max_train must be positive or None, got {self.gbt_max_train}")
        check(self.adapt_events > 0, f"data.adapt_events must be positive, got {self.adapt_events}")
        decode_threads(self.decode_threads)  # ConfigError unless None or a positive integer
        # row ranges come as a set: rows_train and rows_test (rows_val optional), or none
        ranges = (self.rows_train, self.rows_val, self.rows_test)
        check(all(r is None for r in ranges) or (self.rows_train is not None and self.rows_test is not None),
              f"data.rows_train and data.rows_test must be given together (rows_val optional), got "
              f"rows_train={self.rows_train}, rows_val={self.rows_val}, rows_test={self.rows_test}")

    @property
    def streaming(self) -> bool:
        return self.rows_train is not None

    def given_ranges(self) -> dict:
        """The row ranges set, by split (``train``, ``val``, ``test``), as configured."""
        ranges = zip(RANGE_KEYS, (self.rows_train, self.rows_val, self.rows_test))
        return {k: r for k, r in ranges if r is not None}

    def read_span(self, split: str, rng: tuple) -> tuple:
        """The lines a resolved range reads (stop None: to the end): training is cut to ``max_events``."""
        start, stop = rng
        if split == "train" and self.max_events is not None:
            stop = start + self.max_events if stop is None else min(stop, start + self.max_events)
        return start, stop

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
        from ...data import higgs as hr

        given = self.given_ranges()
        counts_from_end = any(v is not None and v < 0 for r in given.values() for v in r)
        total = hr.count_rows(path) if counts_from_end else None
        res = _resolve(path, given, total)
        clash = self._overlap(res)
        if clash and total is None:  # an open end may lie beyond the file: count once to be sure
            total = hr.count_rows(path)
            res = _resolve(path, given, total)
            clash = self._overlap(res)
        if clash:
            self._refuse_overlap(path, given, res, clash, total)
        return res

    def _overlap(self, res: dict) -> tuple | None:
        """The first two splits whose lines overlap, or None."""
        keys = list(res)
        for i, a in enumerate(keys):
            for b in keys[i + 1:]:
                (s1, e1), (s2, e2) = self.read_span(a, res[a]), self.read_span(b, res[b])
                if s1 < (math.inf if e2 is None else e2) and s2 < (math.inf if e1 is None else e1):
                    return a, b
        return None

    def _refuse_overlap(self, path, given: dict, res: dict, clash: tuple, total) -> None:
        from ...errors import DataError

        a, b = clash
        (s1, e1), (s2, e2) = self.read_span(a, res[a]), self.read_span(b, res[b])
        cut = f" (training cut to data.max_events={self.max_events})" if self.max_events is not None else ""
        raise DataError(
            path, "disjoint row ranges for training, validation and test",
            f"{RANGE_KEYS[a]}={tuple(given[a])} and {RANGE_KEYS[b]}={tuple(given[b])}, resolved on a file of {total} "
            f"lines to lines [{s1}, {e1}) and [{s2}, {e2}){cut} (0-based, stop excluded), both holding lines "
            f"[{max(s1, s2)}, {min(e1, e2)}); give ranges that do not overlap")


def _resolve(path, given: dict, total) -> dict:
    """Each given range resolved on ``path`` (``total`` lines, None: not counted), errors naming its key."""
    from ...data import higgs as hr
    from ...errors import ConfigError, DataError

    out = {}
    for k, r in given.items():
        try:
            out[k] = hr.resolve_rows(path, r, total=total)
        except DataError as exc:
            raise DataError(path, f"{exc.expected} ({RANGE_KEYS[k]})", exc.found) from None
        except ConfigError as exc:
            raise ConfigError(f"{RANGE_KEYS[k]}={tuple(r)}: {exc}") from None
    return out


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
        from ...models.mae import POOLINGS, TOKENIZATIONS

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

    @property
    def final_stage(self) -> str:
        """The comparison row of the final classifier (``model.keras``): fine-tuned, or frozen without fine-tuning."""
        return "pretrained_finetuned" if self.finetune_epochs else "pretrained_frozen"


def preset(task_name: str, name: str) -> Config:
    """The configuration of preset ``name`` (one of :data:`PRESETS`)."""
    run = RunSettings()
    if name == "default":
        return Config(task=task_name, preset=name, data=HiggsData(), model=HiggsModel(),
                      training=TrainingConfig(epochs=2, batch_size=256, learning_rate=2e-3, schedule="onecycle",
                                              weight_decay=1e-4), run=run)
    if name == "realdata_small":
        root = realdata_dir() / "higgs"
        return Config(task=task_name, preset=name,
                      data=HiggsData(paths=(str(root / "binary.train"), str(root / "binary.test")),
                                     split=(0.85, 0.15)),
                      model=HiggsModel(pretrain_epochs=30, finetune_epochs=10, dropout=0.2, gbt_max_iter=300),
                      training=TrainingConfig(epochs=15, batch_size=128, learning_rate=1e-3, schedule="onecycle",
                                              weight_decay=1e-3),
                      run=run)
    # seed protocol on the real 11M-event file
    return Config(task=task_name, preset=name,
                  data=HiggsData(paths=("data/HIGGS.csv.gz",), rows_train=(0, 1_000_000),
                                 rows_val=(1_000_000, 1_100_000), rows_test=(-100_000, None),
                                 shuffle_buffer=200_000, cache=True),
                  model=HiggsModel(dim=64, depth=4, num_heads=4, decoder_dim=64, decoder_depth=2,
                                   pretrain_epochs=20, finetune_epochs=10, head_units=(256, 64), dropout=0.1),
                  training=TrainingConfig(epochs=10, batch_size=1024, learning_rate=1e-3, schedule="onecycle",
                                          early_stopping=5),
                  run=run)


def describe_model(config: Config) -> str:
    m = config.model
    return (f"{m.name} ({m.tokenization} tokens, dim {m.dim}, depth {m.depth}, mask {m.mask_ratio:g}; "
            f"pretrain {m.pretrain_epochs}, frozen {config.training.epochs}, finetune {m.finetune_epochs} epochs)")
