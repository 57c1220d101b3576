"""jet_ssl models: the encoder (ResNet-18 or CNN-Transformer hybrid) and its augmentations,
the SimCLR model of pre-training, the downstream models, and tiny examples for the backend
matrix. The heads themselves are in :mod:`kerahep.models.jet_heads`."""

from __future__ import annotations

import numpy as np

from ...config import Config
from ..base import ModelExample


def build_encoder(config: Config, channel_scales=None):
    """The encoder of ``config`` (raw jet -> latent), its first layer scaled by ``channel_scales``."""
    from ...models.encoders import build_encoder as build

    m = config.model
    if m.name == "resnet18":
        blocks = tuple(int(b) for b in m.blocks) or (2,) * len(m.widths)
        kw = dict(widths=tuple(int(w) for w in m.widths), blocks=blocks)
    else:
        kw = dict(stem_filters=tuple(int(f) for f in m.stem_filters), patch_size=m.patch_size, dim=m.dim,
                  depth=m.depth, num_heads=m.num_heads, mlp_ratio=m.mlp_ratio, dropout=m.dropout)
    return build(m.name, channel_scales=channel_scales, log_scale=m.log_scale, **kw)


def build_augmenter(config: Config):
    """The random views of SimCLR (flips, translations, channel drop, smearing, noise)."""
    from ...models.encoders import jet_augmenter

    m = config.model
    return jet_augmenter(flip=m.flip, translate=m.translate, channel_drop=m.channel_drop,
                         smear=tuple(m.smear) if any(m.smear) else None,
                         noise=tuple(m.noise) if all(m.noise) else None)


def build_simclr(config: Config, channel_scales=None):
    """The SimCLR model (encoder, augmentations, projection head) of the pre-training stage."""
    from ...models.simclr import SimCLR

    m = config.model
    return SimCLR(build_encoder(config, channel_scales), build_augmenter(config), projection_dim=m.projection_dim,
                  projection_hidden=m.projection_hidden, temperature=m.temperature, name="simclr")


def build_heads(config: Config, latent_dim: int, stats: dict, method: str, latent_mean=None, latent_var=None):
    """The heads of ``method`` (``linear``: the linear probe; else MLPs) on ``latent_dim`` latents."""
    from ...models import jet_heads

    m = config.model
    return jet_heads.latent_heads(latent_dim, stats, hidden=m.head_hidden, dropout=m.dropout,
                                  linear=method == "linear", latent_mean=latent_mean, latent_var=latent_var,
                                  name=f"{method}_heads")


def build_finetuned(encoder, heads):
    """Copies of the pre-trained ``encoder`` and the frozen stage's ``heads``, as one model to train."""
    import keras

    from ...models.jet_heads import jet_model

    enc = keras.models.clone_model(encoder)
    enc.set_weights(encoder.get_weights())
    hd = keras.models.clone_model(heads)
    hd.set_weights(heads.get_weights())
    return jet_model(enc, hd, name="finetuned")


def build_scratch(config: Config, channel_scales, stats: dict):
    """The fine-tuned model's architecture with random weights: the supervised baseline."""
    from ...models import jet_heads

    m = config.model
    enc = build_encoder(config, channel_scales)
    hd = jet_heads.latent_heads(int(enc.output.shape[-1]), stats, hidden=m.head_hidden, dropout=m.dropout,
                                name="scratch_heads")
    return jet_heads.jet_model(enc, hd, name="from_scratch")


def describe_model(config: Config) -> str:
    return f"simclr-{config.model.name}"


def examples() -> dict:
    """Tiny ResNet-18 and hybrid encoders (with a class head) and SimCLR, on 125x125x8 jets."""
    import keras

    from ...models.encoders import build_encoder as build
    from ...models.encoders import jet_augmenter
    from ...models.simclr import SimCLR

    rng = np.random.default_rng(0)
    x = (rng.random((4, 125, 125, 8)) < 0.02) * rng.exponential(5.0, (4, 125, 125, 8))
    x = x.astype("float32")
    y = np.array([0, 1, 0, 1], "float32")
    tiny = {"resnet18": {"widths": (4, 4, 8, 8), "blocks": (1, 1, 1, 1)},
            "hybrid": {"stem_filters": (4, 8), "dim": 8, "depth": 1, "num_heads": 2}}

    def classifier(kind):
        enc = build(kind, **tiny[kind])
        out = keras.layers.Dense(1, activation="sigmoid", dtype="float32")(enc.output)
        return keras.Model(enc.input, out)

    out = {f"{k}_classifier": ModelExample(build=lambda k=k: classifier(k), x=x, y=y) for k in tiny}
    out["simclr_resnet18"] = ModelExample(
        build=lambda: SimCLR(build("resnet18", **tiny["resnet18"]), jet_augmenter(seed=0),
                             projection_dim=4, projection_hidden=8, temperature=0.2),
        x=x, y=None, loss=None, outputs=lambda m, x: m.encoder.predict(x, verbose=0))
    return out
