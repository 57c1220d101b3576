"""Optimizers and learning-rate schedules of a :class:`~kerahep.config.TrainingConfig`.

Keras' own ``AdamW``/``Adam``/``SGD`` and ``CosineDecay`` (with warm-up for the one-cycle
schedule). This sits below the tasks, which build their stage optimizers with it.
"""

from __future__ import annotations

import logging

from .config import TrainingConfig

log = logging.getLogger("kerahep")


def make_schedule(tcfg: TrainingConfig, steps_per_epoch: int | None, epochs: int | None = None,
                  learning_rate: float | None = None):
    """The learning-rate schedule of ``tcfg`` (Keras ``CosineDecay``, with warm-up for onecycle)."""
    import keras

    lr = float(learning_rate or tcfg.learning_rate)
    epochs = tcfg.epochs if epochs is None else epochs
    if tcfg.schedule != "constant" and epochs and not steps_per_epoch:
        log.warning("training.schedule=%s needs the number of steps per epoch, which this dataset does not "
                    "know: using a constant learning rate %g (set training.steps_per_epoch)", tcfg.schedule, lr)
    if tcfg.schedule == "constant" or not steps_per_epoch or not epochs:
        return lr
    total = max(int(steps_per_epoch) * int(epochs), 1)
    if tcfg.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(lr, decay_steps=total, alpha=0.01)
    warmup = int(round(total * tcfg.warmup_fraction))
    return keras.optimizers.schedules.CosineDecay(
        lr / 25.0, decay_steps=max(total - warmup, 1), alpha=1e-3, warmup_target=lr, warmup_steps=warmup
    )


def make_optimizer(tcfg: TrainingConfig, steps_per_epoch: int | None = None, epochs: int | None = None,
                   learning_rate: float | None = None):
    """The optimizer of ``tcfg`` with its schedule and gradient clipping."""
    import keras

    lr = make_schedule(tcfg, steps_per_epoch, epochs, learning_rate)
    kw = {"learning_rate": lr}
    if tcfg.clipnorm:
        kw["global_clipnorm"] = float(tcfg.clipnorm)
    if tcfg.optimizer == "adamw":
        return keras.optimizers.AdamW(weight_decay=tcfg.weight_decay, **kw)
    if tcfg.optimizer == "adam":
        return keras.optimizers.Adam(**kw)
    return keras.optimizers.SGD(momentum=0.9, nesterov=True, **kw)
