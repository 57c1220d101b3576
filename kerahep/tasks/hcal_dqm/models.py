"""hcal_dqm models and training stages: the ViT or MoE-ViT classifier (stage ``main``), then
the anomaly autoencoder (stage ``autoencoder``), both with the log scaling and per-cell
standardisation inside, adapted on training maps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...config import Config
from ..base import FitResult, ModelExample, compile_model
from .data import HcalInputs, adapt_maps


@dataclass
class HcalResult(FitResult):
    """The trained models: ``model`` (the classifier) and, with ``model.autoencoder``,
    ``autoencoder``.

    Nothing is stored beside them: evaluation recomputes its whole report from the two
    saved models (the band-means baseline is a seeded, deterministic logistic regression
    on the training split, refitted there).
    """

    @property
    def classifier(self):
        return self.models["model"]

    @property
    def autoencoder(self):
        return self.models.get("autoencoder")


def build_model(config: Config, data: HcalInputs):
    """The ViT or MoE-ViT classifier of ``config`` (uncompiled)."""
    from ...models.vit import build_moe_vit, build_vit

    m = config.model
    common = dict(num_classes=data.n_classes, patch_size=m.patch, dim=m.dim, depth=m.depth,
                  num_heads=m.num_heads, mlp_ratio=m.mlp_ratio, dropout=m.dropout, log_scale=m.log_scale,
                  normalize=m.normalize, adapt_data=adapt_maps(config, data) if m.normalize else None)
    if m.name == "moe_vit":
        return build_moe_vit(data.runs.shape, num_experts=m.num_experts, top_k=m.top_k,
                             capacity_factor=m.capacity_factor, aux_loss_weight=m.aux_loss_weight,
                             moe_every=m.moe_every, **common)
    return build_vit(data.runs.shape, **common)


def build_autoencoder(config: Config, data: HcalInputs):
    """The anomaly autoencoder of ``config`` (uncompiled): raw maps to residual maps."""
    from ...models.ae import build_autoencoder as build

    m = config.model
    return build(data.runs.shape, latent_dim=m.ae_latent, hidden=m.ae_hidden, log_scale=m.log_scale,
                 normalize=m.normalize, adapt_data=adapt_maps(config, data) if m.normalize else None)


def compile_multiclass(model, config: Config, steps_per_epoch: int | None = None):
    """Categorical (or focal) cross-entropy with AUC and accuracy, for three runs or more."""
    import keras

    loss = (keras.losses.CategoricalFocalCrossentropy() if config.training.loss == "focal"
            else keras.losses.CategoricalCrossentropy())
    return compile_model(model, config.training, steps_per_epoch, loss=loss,
                         metrics=[keras.metrics.AUC(name="auc"), keras.metrics.CategoricalAccuracy(name="accuracy")])


def fit(ctx) -> HcalResult:
    """Train the classifier, then (``model.autoencoder``) the autoencoder on the same maps."""
    from ...models.ae import zero_targets

    cfg, data = ctx.config, ctx.data
    model = ctx.build(lambda: build_model(cfg, data))
    ctx.fit(model, stage="main")
    models = {"model": model}
    if cfg.model.autoencoder:
        epochs = cfg.model.ae_epochs
        ae = ctx.build(lambda: build_autoencoder(cfg, data))
        ctx.fit(ae, train=zero_targets(data.train), val=zero_targets(data.val) if data.val is not None else None,
                stage="autoencoder", epochs=epochs, class_weight=None, monitor="val_loss", mode="min",
                compile_fn=lambda m, steps: compile_model(m, cfg.training, steps, loss="mse", epochs=epochs))
        models["autoencoder"] = ae
    return HcalResult(models=models)


def examples() -> dict:
    """Tiny ViT, MoE-ViT (three runs) and autoencoder instances for the backend matrix."""
    from ...models.ae import build_autoencoder as build_ae
    from ...models.vit import build_moe_vit, build_vit

    rng = np.random.default_rng(0)
    x = rng.poisson(40.0, size=(6, 16, 24)).astype("float32")
    x[:, 5:10] = 0.0
    tiny = dict(patch_size=(8, 8), dim=16, depth=2, num_heads=2, adapt_data=x)
    return {
        "hcal_vit": ModelExample(lambda: build_vit((16, 24), **tiny), x, np.array([0, 1] * 3, "float32")),
        "hcal_moe_vit": ModelExample(
            lambda: build_moe_vit((16, 24), num_classes=3, num_experts=3, top_k=2, moe_every=1, **tiny), x,
            np.eye(3, dtype="float32")[[0, 1, 2] * 2], loss="categorical_crossentropy"),
        "hcal_autoencoder": ModelExample(lambda: build_ae((16, 24), latent_dim=4, hidden=16, adapt_data=x),
                                         x, np.zeros_like(x), loss="mse"),
    }
