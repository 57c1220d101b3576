"""jet_ssl training: the stages of ``fit``.

1. ``pretrain``: SimCLR of the encoder on the unlabelled jets (:func:`pretrain`).
2. The frozen encoder's latents of the labelled splits (:func:`latents`).
3. For each label fraction (smallest first): ``linear`` and ``frozen`` heads on the
   latents (:func:`latent_stage`), then ``finetune`` (the pre-trained encoder with the
   frozen heads, all trained at a lower learning rate) and ``scratch`` (the same
   architecture from random weights) on the raw jets (:func:`jet_stage`).

Every stage is compiled by :func:`kerahep.tasks.base.compile_model`. The test scores of
the models that are not saved (every method and fraction but the exported one) are
scored here, as table rows and ROC scores of :class:`~.report.JetSSLResult`: only
training can compute them.
"""

from __future__ import annotations

import numpy as np

from ..base import compile_model
from .config import downstream_schedule, tag
from .data import JetSSLInputs
from .models import build_finetuned, build_heads, build_scratch, build_simclr
from .report import JetSSLResult, table_row

#: batch of the validation latents, and of the prediction of the test latents
LATENT_BATCH, PREDICT_BATCH = 256, 1024


def compiler(config, stats: dict, learning_rate: float | None = None, epochs: int | None = None):
    """``compile_fn`` of a downstream stage: heads' losses and metrics for ``stats``, the run's optimizer."""
    from ...models import jet_heads

    def compile_fn(model, steps):
        compile_model(model, config.training, steps, epochs=epochs, learning_rate=learning_rate,
                      **jet_heads.head_compile_args(stats, config.model.regression_weight))
    return compile_fn


def pretrain(ctx, data: JetSSLInputs):
    """SimCLR pre-training (stage ``pretrain``); returns the encoder."""
    from ...data.jets import surface_errors

    cfg = ctx.config
    simclr = ctx.build(lambda: build_simclr(cfg, data.channel_scales))
    val = data.pretrain_val
    with surface_errors(*data.streams):
        ctx.fit(simclr, train=data.pretrain_train, val=val, stage="pretrain", class_weight=None,
                monitor="val_loss" if val is not None else "loss", mode="min",
                compile_fn=lambda model, steps: compile_model(model, cfg.training, steps))
    return simclr.encoder


def latents(encoder, data: JetSSLInputs) -> tuple:
    """``(z, t)``: the encoder's latents and the targets ``{"y", "m", "pt"}`` of each labelled split."""
    from ...data.jets import surface_errors

    with surface_errors(*data.streams):
        z = {k: np.asarray(encoder.predict(data.batching.dataset(s, 64, with_targets=False), verbose=0))
             for k, s in data.label_streams.items()}
    t = {k: {"y": s.targets["Y"], "m": s.targets["m"], "pt": s.targets["pT"]} for k, s in data.label_streams.items()}
    return z, t


def latent_batches(z, t, batch_size: int, shuffle: bool = False, seed: int = 0):
    """A batched ``tf.data`` of latents and their targets ``{"y", "m", "pt"}`` of shape ``(n, 1)``."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((z.astype(np.float32),
                                             {k: v.reshape(-1, 1).astype(np.float32) for k, v in t.items()}))
    if shuffle:
        ds = ds.shuffle(len(z), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size)


def predict_latents(heads, z) -> dict:
    """``{"y", "m", "pt"}`` of ``heads`` on the latents ``z`` (1-D arrays).

    Plain arrays go through ``model.predict`` (compiled, in batches of ``PREDICT_BATCH``):
    scoring them eagerly, as :func:`kerahep.evaluation.predict_dataset` does, differs in
    the last float32 bits on JAX, which moved the table's MSE in GeV^2 by 1e-3.
    """
    out = heads.predict(z, batch_size=PREDICT_BATCH, verbose=0)
    return {k: np.asarray(v, np.float32).reshape(-1) for k, v in out.items()}


def latent_stage(ctx, method: str, f: float, train, val, latent_dim: int, norm: tuple):
    """Train the ``method`` heads (``linear`` or ``frozen``) at label fraction ``f`` on latents."""
    cfg, m = ctx.config, ctx.config.model
    stats = ctx.data.target_stats[f]  # of this subset's m and pT only
    heads = ctx.build(lambda: build_heads(cfg, latent_dim, stats, method, *norm))
    ctx.fit(heads, train=train, val=val, stage=f"{method}_{tag(f)}", epochs=m.head_epochs, class_weight=None,
            monitor="val_loss", mode="min", compile_fn=compiler(cfg, stats, m.head_learning_rate, m.head_epochs))
    return heads


def jet_stage(ctx, model, method: str, f: float, train, val, learning_rate: float, epochs: int, streams=()):
    """Train ``model`` (raw jets -> heads) as stage ``<method>_<fraction>``; returns its test predictions.

    ``streams``: the streams the datasets read, whose errors :func:`~kerahep.data.jets.surface_errors` raises.
    """
    from ... import evaluation
    from ...data.jets import surface_errors

    data = ctx.data
    with surface_errors(*streams):
        ctx.fit(model, train=train, val=val, stage=f"{method}_{tag(f)}", epochs=epochs, class_weight=None,
                monitor="val_loss", mode="min", compile_fn=compiler(ctx.config, data.target_stats[f], learning_rate,
                                                                     epochs))
        return evaluation.predict_dataset(model, data.test, output="all")


def fit(ctx) -> JetSSLResult:
    """Every stage of a jet_ssl run (see the module docstring)."""
    cfg, data = ctx.config, ctx.data
    m = cfg.model
    encoder = pretrain(ctx, data)
    z, t = latents(encoder, data)
    z_var = z["train"].var(0)
    # the heads standardise the latents; no blow-up of near-constant ones
    norm = (z["train"].mean(0), np.maximum(z_var, 1e-2 * float(np.median(z_var)) + 1e-8))
    val_latent = latent_batches(z["val"], t["val"], LATENT_BATCH)
    predictions, kept = {}, {}
    streams = list(data.streams)  # and each subset's, as they come
    for f, sub in data.subsets.items():
        train_latent = latent_batches(z["train"][sub], {k: v[sub] for k, v in t["train"].items()},
                                      m.head_batch_size, shuffle=True, seed=cfg.run.seed)
        frozen = None
        for method in ("linear", "frozen"):
            if method in m.methods or (method == "frozen" and "finetune" in m.methods):
                heads = latent_stage(ctx, method, f, train_latent, val_latent, z["train"].shape[1], norm)
                if method in m.methods:
                    predictions[(method, f)] = (t["test"], predict_latents(heads, z["test"]))
                frozen = heads if method == "frozen" else frozen
        if frozen is not None:
            kept[("frozen", f)] = frozen
        if "finetune" not in m.methods and "scratch" not in m.methods:
            continue
        batch, epochs = downstream_schedule(m, len(sub))
        sub_stream = data.labelled.stream(data.split[0][sub])
        streams.append(sub_stream)
        sub_ds = data.batching.dataset(sub_stream, batch, shuffle=True)
        val_ds = data.batching.dataset(data.label_streams["val"], 64)
        if "finetune" in m.methods:
            ft = ctx.build(lambda frozen=frozen: build_finetuned(encoder, frozen))
            predictions[("finetune", f)] = jet_stage(ctx, ft, "finetune", f, sub_ds, val_ds,
                                                     cfg.training.learning_rate * m.finetune_lr_scale, epochs, streams)
            if f == max(data.subsets):
                kept[("finetune", f)] = ft
        if "scratch" in m.methods:
            sc = ctx.build(lambda f=f: build_scratch(cfg, data.channel_scales, data.target_stats[f]))
            predictions[("scratch", f)] = jet_stage(ctx, sc, "scratch", f, sub_ds, val_ds, cfg.training.learning_rate,
                                                    epochs, streams)
    return result(ctx, encoder, predictions, kept)


def result(ctx, encoder, predictions: dict, kept: dict) -> JetSSLResult:
    """The saved models (``model``: the exported method at the largest fraction; ``encoder``)
    and the stored test rows and ROC scores of every other model."""
    from ...models.jet_heads import jet_model

    data, m = ctx.data, ctx.config.model
    top = max(data.subsets)
    if m.export == "finetune":
        model = kept[("finetune", top)]
    else:
        model = jet_model(encoder, kept[("frozen", top)], name="frozen_encoder_heads")
    rows, scores = [], {}
    for (method, f), (truth, pred) in predictions.items():
        if (method, f) == (m.export, top):
            continue  # the saved model: evaluate scores it
        rows.append(table_row(method, f, len(data.subsets[f]), truth, pred))
        if f == top:
            scores[method] = pred["y"]
    return JetSSLResult(models={"model": model, "encoder": encoder}, rows=rows, roc_scores=scores)
