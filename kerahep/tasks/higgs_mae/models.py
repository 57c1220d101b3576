"""higgs_mae models: the masked autoencoder, the Transformer classifier on its encoder, their
compile, and tiny instances for the backend matrix (builders in :mod:`kerahep.models.mae`)."""

from __future__ import annotations

import numpy as np

from ...config import Config
from ..base import ModelExample, compile_model
from .data import HiggsInputs


def layout(config: Config) -> dict:
    """The token layout of the configured feature set and tokenization."""
    from ...models.mae import higgs_layout

    return higgs_layout(config.data.features, config.model.tokenization)


def build_autoencoder(config: Config, data: HiggsInputs, seed_offset: int = 0):
    """The masked autoencoder of ``config``, its scaling adapted on the training features."""
    from ...models.mae import build_masked_autoencoder

    m = config.model
    return build_masked_autoencoder(
        layout(config), dim=m.dim, depth=m.depth, num_heads=m.num_heads, mlp_ratio=m.mlp_ratio,
        dropout=m.dropout, decoder_dim=m.decoder_dim, decoder_depth=m.decoder_depth, mask_ratio=m.mask_ratio,
        btag_embedding=m.btag_embedding, pair_features=m.uses_pairs, pt_balance_weight=m.pt_balance_weight,
        negative_pt_weight=m.negative_pt_weight, unit_circle_weight=m.unit_circle_weight,
        adapt_data=data.adapt, seed=config.run.seed + seed_offset)


def build_classifier(config: Config, encoder, freeze: bool, name: str | None = None):
    """The classifier head of ``config`` on ``encoder`` (frozen or trainable)."""
    from ...models import mae

    m = config.model
    kw = {"name": name} if name else {}
    return mae.build_classifier(encoder, hidden_units=m.head_units, dropout=m.dropout, pooling=m.pooling,
                                freeze=freeze, **kw)


def build_model(config: Config, data: HiggsInputs):
    """The Transformer classifier without pre-training (encoder trainable)."""
    mae = build_autoencoder(config, data, seed_offset=1)
    return build_classifier(config, mae.encoder_model(), freeze=False, name="higgs_transformer")


def compile_classifier(model, config: Config, steps, epochs: int, learning_rate: float):
    """Binary cross-entropy (or focal) with AUC and accuracy, at this stage's epochs and rate."""
    import keras

    loss = (keras.losses.BinaryFocalCrossentropy() if config.training.loss == "focal"
            else keras.losses.BinaryCrossentropy())
    return compile_model(model, config.training, steps, loss=loss, epochs=epochs, learning_rate=learning_rate,
                         metrics=[keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")])


def compile_autoencoder(model, config: Config, steps, epochs: int, learning_rate: float):
    """The pre-training compile: the autoencoder adds its own losses."""
    return compile_model(model, config.training, steps, epochs=epochs, learning_rate=learning_rate)


def examples() -> dict:
    """Tiny masked autoencoder (object and feature tokens) and its classifier."""
    from ...models.mae import build_classifier as classifier
    from ...models.mae import build_masked_autoencoder, higgs_layout

    rng = np.random.default_rng(0)
    out = {}
    for tok in ("object", "feature"):
        lay = higgs_layout("low", tok)
        n = len(lay["feature_names"])
        x = np.abs(rng.normal(1.0, 0.5, size=(8, n))).astype("float32")

        def build_mae(lay=lay, x=x, tok=tok):
            return build_masked_autoencoder(lay, dim=8, depth=1, num_heads=2, decoder_dim=8,
                                            pair_features=tok == "object", unit_circle_weight=0.1,
                                            adapt_data=x, seed=0)

        out[f"mae_{tok}"] = ModelExample(build=build_mae, x=x, y=None, loss=None,
                                         outputs=lambda m, x: m.encoder_model().predict(x, verbose=0))
        if tok == "object":
            out["classifier"] = ModelExample(
                build=lambda b=build_mae: classifier(b().encoder_model(), hidden_units=(8,), freeze=False),
                x=x, y=(x[:, 0] > 1).astype("float32"))
    return out
