"""electron_photon configuration: its data and model sections, its presets and the smoke overrides."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from ...config import Config, DataConfig, ModelConfig, RunSettings, TrainingConfig, check
from ...data.decoding import decode_threads
from ...errors import ConfigError

PRESETS = ("default", "full")
#: overrides that make the smoke preset from the default one
SMOKE = ("data.data_dir='data/smoke'", "data.synthetic_events=60", "data.explain_samples=4",
         "data.tsne_samples=30", "model.widths=(4, 8)", "model.blocks=(1, 1)", "model.embedding_dim=8",
         "training.epochs=1", "training.steps_per_epoch=2", "training.batch_size=16", "run.plot_pdf=false")


@dataclass(frozen=True)
class ElectronPhotonData(DataConfig):
    """Data settings of electron_photon.

    Args:
        paths: the photon and electron files (or one file holding both classes); empty:
            the synthetic twin under ``<data_dir>/synthetic/electron_photon``.
        test_paths: independent test files; then every crop of them is the test set and
            the files in ``paths`` give training and validation only.
        split: ``(train, val, test)`` fractions, or ``(train, test)`` (the ML4SCI 80/20
            protocol: no validation set, the last epoch's weights are tested).
        synthetic_events: crops per class of the synthetic twin.
        max_events: use only the first crops of each file.
        cache: read each split into memory once when it fits (half of the free memory);
            False always streams from the files.
        block_rows: rows per read (default: the files' HDF5 chunk rows).
        explain_samples: test crops per class for saliency and Grad-CAM maps (0: none).
        tsne_samples: test crops for the t-SNE of the embeddings (0: none).
        decode_threads: threads decoding chunks for the streamed reader (None: one per CPU
            core, ``os.cpu_count()``).
    """

    synthetic_events: int = 3000
    test_paths: tuple = ()
    block_rows: int | None = None
    explain_samples: int = 100
    tsne_samples: int = 500
    decode_threads: int | None = None

    def validate(self) -> None:
        super().validate()
        check(len(self.paths) <= 2 or all(str(p) for p in self.paths),
              f"data.paths must name HDF5 files, got {self.paths!r}")
        check(self.block_rows is None or self.block_rows > 0, f"data.block_rows must be positive, got {self.block_rows}")
        check(self.explain_samples >= 0, f"data.explain_samples must be >= 0, got {self.explain_samples}")
        check(self.tsne_samples >= 0, f"data.tsne_samples must be >= 0, got {self.tsne_samples}")
        check(self.split[0] > 0, f"data.split needs a positive training fraction, got {self.split!r}")
        decode_threads(self.decode_threads)  # ConfigError unless None or a positive integer


@dataclass(frozen=True)
class ResNetModel(ModelConfig):
    """ResNet-15 settings (see :func:`kerahep.models.resnet.build_resnet15`).

    Args:
        variant: ``two_channel``, ``energy``, ``time`` or ``dual_stream``.
        widths: filters per stage.
        blocks: residual blocks per stage (2 + 2 + 3 blocks of two convolutions and the
            stem: ResNet-15).
        stem_kernel: kernel of the input convolution.
        stem_pool: 2x2 max pooling after the stem.
        preact: pre-activation residual blocks.
        se: squeeze-and-excitation in every block.
        pool: ``avg``, ``max`` or ``attention`` pooling before the head.
        attention_heads: heads of the attention pooling.
        groups: grouped convolutions in the residual blocks.
        dropout: dropout around the embedding layer.
        embedding_dim: width of the ``embedding`` layer.
        flip: random flips in eta and phi in training.
        erasing: probability of random erasing of a patch in training.
        mixup: MixUp alpha on training batches (0: off; applied in the input pipeline).
        time_width_factor: ``dual_stream``: width of the time trunk relative to the energy trunk.
        energy_log: scale of the ``log1p(E / scale)`` energy transform inside the model (0: off).
    """

    name: str = "resnet15"
    variant: str = "two_channel"
    widths: tuple = (8, 16, 32)
    blocks: tuple = (2, 2, 3)
    stem_kernel: int = 5
    stem_pool: bool = False
    preact: bool = False
    se: bool = False
    pool: str = "avg"
    attention_heads: int = 2
    groups: int = 1
    embedding_dim: int = 64
    flip: bool = True
    erasing: float = 0.0
    mixup: float = 0.0
    time_width_factor: float = 1.0
    energy_log: float = 0.002

    def validate(self) -> None:
        super().validate()
        from ...models.resnet import POOLS, VARIANTS

        if self.variant not in VARIANTS:
            hint = difflib.get_close_matches(str(self.variant), VARIANTS, n=1)
            raise ConfigError(f"model.variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}"
                              + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        check(self.pool in POOLS, f"model.pool must be one of {', '.join(POOLS)}, got {self.pool!r}")
        check(len(self.widths) >= 1 and len(self.blocks) >= 1, "model.widths and model.blocks must not be empty")
        check(all(isinstance(w, int) and w > 0 for w in self.widths), f"model.widths must be positive integers, got {self.widths!r}")
        check(all(isinstance(b, int) and b > 0 for b in self.blocks), f"model.blocks must be positive integers, got {self.blocks!r}")
        check(self.stem_kernel >= 1, f"model.stem_kernel must be >= 1, got {self.stem_kernel}")
        check(self.attention_heads >= 1, f"model.attention_heads must be >= 1, got {self.attention_heads}")
        check(self.groups >= 1, f"model.groups must be >= 1, got {self.groups}")
        check(self.embedding_dim > 0, f"model.embedding_dim must be positive, got {self.embedding_dim}")
        check(0.0 <= self.erasing <= 1.0, f"model.erasing must be a probability in [0, 1], got {self.erasing}")
        check(self.mixup >= 0.0, f"model.mixup must be >= 0 (0: off), got {self.mixup}")
        check(self.energy_log >= 0, f"model.energy_log must be >= 0 (0: off), got {self.energy_log}")
        check(self.time_width_factor > 0, f"model.time_width_factor must be positive, got {self.time_width_factor}")
        check(len(self.widths) == len(self.blocks),
              f"model.widths {self.widths!r} and model.blocks {self.blocks!r} need the same length (one per stage)")
        check(all(w % self.groups == 0 for w in self.widths),
              f"model.groups={self.groups} must divide every width in model.widths={self.widths!r}")


def preset(task_name: str, name: str) -> Config:
    """The configuration of preset ``name``: ``default`` (a small twin, a few minutes on two
    CPU cores) or ``full`` (the real files: more epochs, a bigger batch)."""
    if name == "full":
        return Config(
            task=task_name, preset=name,
            data=ElectronPhotonData(synthetic_events=100000, shuffle_buffer=20000, explain_samples=500,
                                    tsne_samples=2000),
            model=ResNetModel(),
            training=TrainingConfig(epochs=30, batch_size=512, learning_rate=2e-3, schedule="onecycle",
                                    optimizer="adamw", weight_decay=1e-4, clipnorm=1.0, early_stopping=6),
            run=RunSettings(),
        )
    return Config(
        task=task_name, preset=name,
        data=ElectronPhotonData(),
        model=ResNetModel(),
        training=TrainingConfig(epochs=8, batch_size=128, learning_rate=3e-3, schedule="onecycle",
                                optimizer="adamw", weight_decay=1e-4, clipnorm=1.0),
        run=RunSettings(),
    )
