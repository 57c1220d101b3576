"""higgs_mae training stages (:func:`fit`):

1. ``pretrain``: the :class:`~kerahep.models.mae.MaskedAutoencoder` learns to reconstruct
   masked objects (labels unused), with physics terms in the loss;
2. a classifier head on the FROZEN pre-trained encoder (stage ``main``, or ``frozen`` when
   fine-tuning follows);
3. optional fine-tuning of encoder and head together at a lower learning rate (``main``);
4. for the comparison table: the same Transformer classifier trained from scratch
   (``scratch``) with as many supervised epochs as stages 2 and 3 together, and
   scikit-learn ``HistGradientBoostingClassifier`` on the same features and on all 28
   stored columns.

Every classifier is scored on the test events right after its stage; the rows and scores
are stored in the result (:class:`~.result.HiggsResult`), since only the final classifier
is saved.
"""

from __future__ import annotations

import logging
import time

from .data import HiggsInputs, gbt_inputs
from .models import build_autoencoder, build_classifier, build_model, compile_autoencoder, compile_classifier
from .result import HiggsResult

log = logging.getLogger("kerahep")


def comparison_row(y, score, seed: int, features: str = "") -> dict:
    """ROC AUC with its 68% bootstrap interval, accuracy at 0.5 and the event count."""
    import numpy as np
    from sklearn.metrics import accuracy_score

    from ...evaluation import roc_auc_with_ci

    auc, lo, hi = roc_auc_with_ci(y, score, seed=seed)
    y = np.asarray(y).astype(int).ravel()
    return {"roc_auc": auc, "roc_auc_ci": [lo, hi],
            "accuracy": float(accuracy_score(y, (np.asarray(score).ravel() >= 0.5).astype(int))),
            "n": int(len(y)), "features": features}


def network_features(config, data: HiggsInputs) -> str:
    """The ``features`` entry of the networks' rows: the feature set and its column count."""
    return f"{config.data.features} ({data.info.get('n_features')})"


def fit(ctx) -> HiggsResult:
    """Train every stage; the classifiers' test rows and scores go into the result."""
    cfg, data = ctx.config, ctx.data
    from ...models.mae import copy_autoencoder

    result = HiggsResult()
    mae = pretrain(ctx)
    # the saved autoencoder and encoder keep the pre-trained weights, whatever fine-tuning does later
    pretrainer = ctx.build(lambda: copy_autoencoder(mae))
    encoder = pretrainer.encoder_model(name="encoder")
    clf = frozen_and_finetuned(ctx, mae, result)
    if cfg.model.compare_scratch:
        scratch(ctx, result)
    if cfg.model.compare_gbt and data.test is not None:
        gbt_baselines(cfg, data, result)
    result.models.update(model=clf, encoder=encoder, pretrainer=pretrainer)
    return result


def score(ctx, model, name: str, result: HiggsResult) -> None:
    """Score ``model`` on the test events into ``result`` (no test events: nothing)."""
    from ...evaluation import predict_dataset

    if ctx.data.test is None:
        return
    y, s = predict_dataset(model, ctx.data.test)
    result.add(name, comparison_row(y, s, ctx.config.run.seed, network_features(ctx.config, ctx.data)), y, s)


def pretrain(ctx):
    """Stage 1: the masked autoencoder (skipped with ``model.pretrain_epochs=0``)."""
    cfg, m = ctx.config, ctx.config.model
    mae = ctx.build(lambda: build_autoencoder(cfg, ctx.data))
    if m.pretrain_epochs:
        lr = m.pretrain_learning_rate or cfg.training.learning_rate
        ctx.fit(mae, stage="pretrain", epochs=m.pretrain_epochs, class_weight=None, monitor="val_loss", mode="min",
                compile_fn=lambda model, steps: compile_autoencoder(model, cfg, steps, m.pretrain_epochs, lr))
    return mae


def frozen_and_finetuned(ctx, mae, result: HiggsResult):
    """Stages 2 and 3: the head on the frozen encoder, then (optionally) both fine-tuned."""
    cfg, m, t = ctx.config, ctx.config.model, ctx.config.training
    lr = t.learning_rate
    clf = ctx.build(lambda: build_classifier(cfg, mae.encoder_model(), freeze=True))
    ctx.fit(clf, stage="frozen" if m.finetune_epochs else "main", epochs=t.epochs,
            compile_fn=lambda model, steps: compile_classifier(model, cfg, steps, t.epochs, lr))
    score(ctx, clf, "pretrained_frozen", result)
    if m.finetune_epochs:
        clf.get_layer("encoder").trainable = True
        steps = t.steps_per_epoch or ctx.cardinality(ctx.data.train)
        with ctx.strategy.scope():
            compile_classifier(clf, cfg, steps, m.finetune_epochs, lr * m.finetune_lr_factor)
        ctx.fit(clf, stage="main", epochs=m.finetune_epochs, label="fine-tune")
        score(ctx, clf, "pretrained_finetuned", result)
    return clf


def scratch(ctx, result: HiggsResult) -> None:
    """Stage 4: the same Transformer from scratch, as many supervised epochs as stages 2 and 3."""
    cfg = ctx.config
    n_ep = cfg.training.epochs + cfg.model.finetune_epochs
    model = ctx.build(lambda: build_model(cfg, ctx.data))
    ctx.fit(model, stage="scratch", epochs=n_ep,
            compile_fn=lambda model, steps: compile_classifier(model, cfg, steps, n_ep, cfg.training.learning_rate))
    score(ctx, model, "scratch", result)


def gbt_baselines(cfg, data: HiggsInputs, result: HiggsResult) -> None:
    """HistGradientBoosting on the same features and on all 28 stored columns (same test events)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    from ...data import higgs as hr

    d = cfg.data
    raw_tr, y_tr, raw_te, y_te = gbt_inputs(cfg, data)
    sets = {"gbt_same_features": (lambda r: hr.transform(r, d.features), network_features(cfg, data)),
            "gbt_all28": (lambda r: r, "all 28 stored columns")}
    for name, (features, label) in sets.items():
        clf = HistGradientBoostingClassifier(max_iter=cfg.model.gbt_max_iter, early_stopping=True,
                                             validation_fraction=0.1, random_state=cfg.run.seed)
        t0 = time.perf_counter()
        with threadpool_limits(1):  # OpenMP threads on a shared small CPU: one is ~30x faster
            clf.fit(features(raw_tr), y_tr)
            s = clf.predict_proba(features(raw_te))[:, 1]
        log.info("%s: %d iterations in %.1f s", name, clf.n_iter_, time.perf_counter() - t0)
        result.add(name, comparison_row(y_te, s, cfg.run.seed, features=label), y_te, s)
