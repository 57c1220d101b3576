"""hcal_dqm configuration: its data and model sections, its presets and the smoke overrides."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import ClassVar

from ...config import Config, DataConfig, ModelConfig, RunSettings, TrainingConfig, check
from ...data.decoding import decode_threads

VARIANTS = ("vit", "moe_vit")
ANOMALY_SCORES = ("mse", "max", "top")
PRESETS = ("default", "moe_vit", "hard", "full")
#: overrides that make the smoke preset from the default one
SMOKE = ("data.data_dir='data/smoke'", "data.synthetic_events=200", "data.anomaly_fraction=0.1",
         "data.adapt_samples=200", "model.dim=16", "model.depth=2", "model.num_heads=2", "model.ae_hidden=64",
         "model.ae_latent=8", "model.ae_epochs=1", "training.epochs=1", "training.batch_size=32", "run.plot_pdf=false")


@dataclass(frozen=True)
class HcalData(DataConfig):
    """Data settings of hcal_dqm.

    Args:
        paths: one ``.npy`` file per run (class = position); empty: the synthetic twin.
        synthetic_events: lumisections per run of the twin.
        n_runs: runs (classes) of the twin.
        separation: relative intensity difference between consecutive runs of the twin
            (real runs: about 0.15; 0.02 is a hard regime).
        anomaly_fraction: fraction of the twin's lumisections with injected dead or hot channels.
        n_blocks: contiguous blocks per run for the block split.
        chunk_size: lumisections per read from the memory-mapped files.
        scan_values: scan the files for NaN, infinities and negative counts when opening them
            (was ``data.validate``).
        adapt_samples: training maps used to adapt the per-cell standardisation.
        max_events: keep the first ``max_events`` lumisections of each run.
        decode_threads: threads decoding chunks for the streamed reader (None: one per CPU
            core, ``os.cpu_count()``).
    """

    synthetic_events: int = 1000
    n_runs: int = 2
    separation: float = 0.15
    anomaly_fraction: float = 0.05
    n_blocks: int = 20
    chunk_size: int = 256
    RENAMED: ClassVar[dict] = {**DataConfig.RENAMED, "validate": "scan_values"}

    scan_values: bool = True
    adapt_samples: int = 2000
    decode_threads: int | None = None

    def validate(self) -> None:
        super().validate()
        check(self.n_runs >= 2, f"data.n_runs must be >= 2 (one class per run), got {self.n_runs}")
        check(self.separation >= 0, f"data.separation must be >= 0, got {self.separation}")
        check(0 <= self.anomaly_fraction < 0.5, f"data.anomaly_fraction must be in [0, 0.5), got {self.anomaly_fraction}")
        check(self.n_blocks >= 2, f"data.n_blocks must be >= 2, got {self.n_blocks}")
        check(self.chunk_size >= 1, f"data.chunk_size must be >= 1, got {self.chunk_size}")
        check(self.adapt_samples >= 1, f"data.adapt_samples must be >= 1, got {self.adapt_samples}")
        decode_threads(self.decode_threads)  # ConfigError unless None or a positive integer


@dataclass(frozen=True)
class HcalModel(ModelConfig):
    """Model settings of hcal_dqm.

    Args:
        name: ``vit`` or ``moe_vit``.
        patch_size: ``(iEta, iPhi)`` cells per patch (8x8: 8 x 9 patches over 64 x 72).
        dim, depth, num_heads, mlp_ratio: Transformer width, blocks, heads and MLP ratio.
        dropout: dropout in embeddings, blocks and head.
        log_scale: factor after ``log(1 + counts)`` (classifier and autoencoder).
        normalize: per-cell standardisation after the logarithm.
        num_experts, top_k, capacity_factor, aux_loss_weight, moe_every: the
            mixture-of-experts blocks of ``moe_vit``.
        autoencoder: train the anomaly autoencoder too (the monitoring view needs it).
        ae_latent, ae_hidden, ae_epochs: its bottleneck, hidden width and epochs.
        anomaly_score: ``top`` (mean of the 8 largest squared residuals: a failing channel
            group stands out even when the rest of the map is reconstructed imperfectly),
            ``mse`` (mean squared residual, the classic reconstruction error) or ``max``.
        false_alarm_rate: fraction of good lumisections the monitoring may flag.
    """

    name: str = "vit"
    patch_size: tuple = (8, 8)
    dim: int = 64
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 2.0
    dropout: float = 0.1
    log_scale: float = 0.15
    normalize: bool = True
    num_experts: int = 4
    top_k: int = 2
    capacity_factor: float | None = 1.25
    aux_loss_weight: float = 0.01
    moe_every: int = 2
    autoencoder: bool = True
    ae_latent: int = 16
    ae_hidden: int = 128
    ae_epochs: int = 5
    anomaly_score: str = "top"
    false_alarm_rate: float = 0.01

    def validate(self) -> None:
        super().validate()
        if self.name not in VARIANTS:
            hint = difflib.get_close_matches(str(self.name), VARIANTS, n=1)
            check(False, f"model.name must be one of {VARIANTS}, got {self.name!r}"
                          + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        ps = tuple(self.patch_size)
        check(len(ps) in (1, 2) and all(isinstance(v, int) and v >= 1 for v in ps),
              f"model.patch_size must be one or two positive integers, got {self.patch_size!r}")
        check(self.dim >= 1 and self.depth >= 1 and self.num_heads >= 1,
              f"model.dim, model.depth and model.num_heads must be >= 1, got {self.dim}, {self.depth}, {self.num_heads}")
        check(self.dim % self.num_heads == 0, f"model.dim ({self.dim}) must be a multiple of model.num_heads "
                                               f"({self.num_heads})")
        check(self.mlp_ratio > 0 and self.log_scale > 0, "model.mlp_ratio and model.log_scale must be positive")
        check(self.num_experts >= 1, f"model.num_experts must be >= 1, got {self.num_experts}")
        check(1 <= self.top_k <= self.num_experts,
              f"model.top_k must be between 1 and model.num_experts ({self.num_experts}), got {self.top_k}")
        check(self.aux_loss_weight >= 0, f"model.aux_loss_weight must be >= 0, got {self.aux_loss_weight}")
        check(self.moe_every >= 1, f"model.moe_every must be >= 1, got {self.moe_every}")
        check(self.ae_latent >= 1 and self.ae_hidden >= 1 and self.ae_epochs >= 0,
              "model.ae_latent and model.ae_hidden must be >= 1 and model.ae_epochs >= 0")
        check(self.anomaly_score in ANOMALY_SCORES,
              f"model.anomaly_score must be one of {ANOMALY_SCORES}, got {self.anomaly_score!r}")
        check(0 < self.false_alarm_rate < 0.5, f"model.false_alarm_rate must be in (0, 0.5), got {self.false_alarm_rate}")

    @property
    def patch(self) -> tuple[int, int]:
        ps = tuple(int(v) for v in self.patch_size)
        return (ps[0], ps[0]) if len(ps) == 1 else ps


def preset(task_name: str, name: str) -> Config:
    """The configuration of preset ``name`` (one of :data:`PRESETS`)."""
    data = HcalData()
    model = HcalModel()
    training = TrainingConfig(epochs=5, batch_size=64, learning_rate=1e-3, optimizer="adamw", weight_decay=1e-4,
                              schedule="onecycle", warmup_fraction=0.1, loss="binary_crossentropy")
    if name == "moe_vit":
        model = HcalModel(name="moe_vit")
    elif name == "hard":  # overlapping runs: more lumisections, no dropout (the signal is a 2% intensity shift)
        data = HcalData(separation=0.02, synthetic_events=10000)
        model = HcalModel(dropout=0.0)
        training = TrainingConfig(epochs=6, batch_size=64, learning_rate=1e-3, schedule="onecycle")
    elif name == "full":
        data = HcalData(synthetic_events=10000)
        model = HcalModel(dim=128, depth=6, num_heads=8, ae_epochs=20)
        training = TrainingConfig(epochs=30, batch_size=128, learning_rate=5e-4, schedule="onecycle",
                                  early_stopping=5)
    return Config(task=task_name, preset=name, data=data, model=model, training=training, run=RunSettings())


def describe_model(config: Config) -> str:
    m = config.model
    ph, pw = m.patch
    text = f"{m.name}(patch {ph}x{pw}, dim {m.dim}, depth {m.depth}, heads {m.num_heads}"
    if m.name == "moe_vit":
        text += f", {m.num_experts} experts top-{m.top_k} every {m.moe_every} blocks, capacity {m.capacity_factor}"
    return text + ")"
