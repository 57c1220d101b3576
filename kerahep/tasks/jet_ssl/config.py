"""jet_ssl configuration: its data and model sections, its presets and the smoke overrides."""

from __future__ import annotations

from dataclasses import dataclass

from ...config import Config, DataConfig, ModelConfig, RunSettings, TrainingConfig, check
from ...data.decoding import decode_threads

#: the downstream methods, in the order of the table
METHODS = ("linear", "frozen", "finetune", "scratch")
PRESETS = ("default", "hybrid", "full")
#: names of the classes ``Y = 0`` and ``Y = 1``
CLASS_NAMES = ("QCD", "top")
#: overrides that make the smoke preset from the default one
SMOKE = ("data.data_dir='data/smoke'", "data.synthetic_events=24", "data.synthetic_labelled=40",
         "data.label_fractions=(1.0,)", "data.split=(0.5, 0.25, 0.25)", "data.tsne_points=12",
         "model.widths=(4, 8)", "model.blocks=(1, 1)", "model.head_hidden=(4,)", "model.projection_dim=4",
         "model.projection_hidden=8", "model.head_epochs=1", "model.downstream_steps=1",
         "model.downstream_max_epochs=1", "training.epochs=1", "training.batch_size=8", "run.plot_pdf=false")


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
        shuffle_buffer: jets mixed at a time, the reader's mixing window (500 kB each; about
            three windows are held).
        cache_mb: keep a selection in memory after its first epoch when smaller than this.
        scale_jets: jets read to set the per-channel scales of the encoder's first layer.
        tsne_points: test jets in the t-SNE plots (0: none).
        decode_threads: threads decoding chunks for the streamed reader (None: one per CPU
            core, ``os.cpu_count()``).
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
    decode_threads: int | None = None

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
        decode_threads(self.decode_threads)  # ConfigError unless None or a positive integer


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
        from ...models.encoders import ENCODERS

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


def preset(task_name: str, name: str) -> Config:
    """The configuration of preset ``name``.

    ``default``: small widths, small synthetic twin, minutes on two CPU cores; ``hybrid``:
    the same with the CNN-Transformer encoder; ``full``: ResNet-18 widths, for the real
    60,000 + 10,000 jets on a GPU.
    """
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
    return Config(task=task_name, preset=name, data=data, model=model, training=training, run=RunSettings())


def tag(f: float) -> str:
    """A label fraction's name in stage names and tables: ``0.1`` -> ``10pct``.

    Example:
        >>> tag(0.01), tag(1.0)
        ('1pct', '100pct')
    """
    pct = float(f) * 100
    return (f"{pct:g}".replace(".", "p")) + "pct"


def downstream_schedule(model: JetSSLModel, n_labels: int) -> tuple:
    """``(batch_size, epochs)`` of fine-tuning and from-scratch training on ``n_labels`` jets.

    Both see about ``model.downstream_steps`` optimizer steps: the epochs follow from the
    subset size, between 2 and ``model.downstream_max_epochs``.
    """
    import math

    batch = min(model.downstream_batch_size, int(n_labels))
    steps_per_epoch = math.ceil(int(n_labels) / batch)
    epochs = int(min(model.downstream_max_epochs, max(2, math.ceil(model.downstream_steps / steps_per_epoch))))
    return batch, epochs
