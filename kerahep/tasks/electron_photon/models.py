"""electron_photon models: the ResNet-15 family (:func:`kerahep.models.resnet.build_resnet15`)
built from the model section, and its one supervised stage."""

from __future__ import annotations

import contextlib

import numpy as np

from ...config import Config
from ..base import FitResult, ModelExample
from .config import ResNetModel


def build_resnet(m: ResNetModel, seed: int | None = None, augment: bool = True):
    """The ResNet-15 of the model section ``m``, uncompiled; ``augment=False`` turns off the
    training-time flips and erasing (the benchmarks' reference network)."""
    from ...models.resnet import build_resnet15

    return build_resnet15(
        variant=m.variant, widths=tuple(m.widths), blocks=tuple(m.blocks), stem_kernel=m.stem_kernel,
        stem_pool=m.stem_pool, preact=m.preact, se=m.se, pool=m.pool, attention_heads=m.attention_heads,
        groups=m.groups, dropout=m.dropout, embedding_dim=m.embedding_dim, flip=augment and m.flip,
        erasing=m.erasing if augment else 0.0, time_width_factor=m.time_width_factor,
        energy_log=m.energy_log or None, seed=seed)


def build_model(config: Config, seed: int | None = None):
    """The run's ResNet-15, seeded with ``seed`` (default the run seed)."""
    return build_resnet(config.model, seed=config.run.seed if seed is None else seed)


def describe_model(config: Config) -> str:
    """``resnet15/<variant>`` plus the options that are on (``+preact+se+attentionpool``)."""
    m = config.model
    opts = [o for o, on in (("preact", m.preact), ("se", m.se), (f"{m.pool}pool", m.pool != "avg"),
                            (f"groups{m.groups}", m.groups > 1)) if on]
    return "resnet15/" + m.variant + ("+" + "+".join(opts) if opts else "")


def fit(ctx) -> FitResult:
    """The one supervised stage, or ``training.ensemble`` members each seeded with ``run.seed + i``,
    then ``training.calibrate`` (:func:`kerahep.tasks.uncertainty.fit_classifier`); an error met
    while streaming the files surfaces as the reader's DataError."""
    from ..uncertainty import fit_classifier

    reader = ctx.data.reader
    with reader.data_errors() if reader is not None else contextlib.nullcontext():
        model = fit_classifier(ctx, lambda seed: build_model(ctx.config, seed))
    return FitResult(models={"model": model})


def examples() -> dict:
    """Tiny instances of every ResNet-15 variant and of all options together (backend matrix)."""
    from ...data.synthetic import electron_photon as twin
    from ...models.resnet import VARIANTS, build_resnet15

    rng = np.random.default_rng(0)
    x = twin.make_crops(rng, twin.sample_latent(rng, 6, 1))
    y = np.array([0, 1] * 3, dtype="float32")
    tiny = dict(widths=(4, 8), blocks=(1, 1), embedding_dim=8)
    out = {f"resnet15_{v}": ModelExample(lambda v=v: build_resnet15(v, **tiny, seed=0), x, y) for v in VARIANTS}
    out["resnet15_options"] = ModelExample(
        lambda: build_resnet15("two_channel", **tiny, preact=True, se=True, pool="attention", groups=2,
                               dropout=0.1, erasing=0.5, seed=0), x, y)
    return out
