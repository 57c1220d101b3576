"""kerahep's Keras callbacks, each a small subclass of a Keras one (Keras is imported lazily,
so each class is made by a cached factory): checkpoints that skip diverged epochs and are
written atomically, early stopping that resumes its count, the learning rate in the logs,
and a progress bar that names its stage (:func:`stage_label`).
"""

from __future__ import annotations

import functools
import os


@functools.cache
def finite_checkpoint_class():  # Keras is imported lazily, so the class is made on first use
    import keras

    class FiniteCheckpoint(keras.callbacks.ModelCheckpoint):
        """ModelCheckpoint that never saves an epoch whose training loss is not finite, and
        replaces the best checkpoint atomically.

        A diverged epoch can still score a "better" monitored value (an AUC from NaN
        scores, say); its weights must never replace the best checkpoint. Keras writes
        the weights in place; here they go to ``<name>.partial.weights.h5`` and are renamed
        over ``filepath`` once written, so a crash mid-write leaves the previous best intact.
        """

        def __init__(self, filepath, **kwargs):
            self.final_path = str(filepath)
            super().__init__(self.final_path[: -len(".weights.h5")] + ".partial.weights.h5", **kwargs)

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None and "loss" in logs and not is_finite(logs["loss"]):
                return
            super().on_epoch_end(epoch, logs)
            if os.path.exists(self.filepath):
                os.replace(self.filepath, self.final_path)

    return FiniteCheckpoint


@functools.cache
def resumable_early_stopping_class():  # Keras is imported lazily, so the class is made on first use
    import keras

    class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
        """EarlyStopping that continues from a resumed stage's best value and wait count
        (``history.csv``), so a resumed run stops where an uninterrupted one would."""

        def __init__(self, *args, resume_best=None, resume_wait: int = 0, **kwargs):
            super().__init__(*args, **kwargs)
            self.resume_best, self.resume_wait = resume_best, int(resume_wait)

        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            if self.resume_best is not None:
                self.best, self.wait = self.resume_best, self.resume_wait

    return ResumableEarlyStopping


def learning_rate_callback():
    import keras

    class LearningRateToLogs(keras.callbacks.Callback):
        """Put the current learning rate into the epoch logs (for history.csv)."""

        def on_epoch_end(self, epoch, logs=None):
            opt = getattr(self.model, "optimizer", None)
            if logs is not None and opt is not None and hasattr(opt, "learning_rate"):
                logs["learning_rate"] = float(keras.ops.convert_to_numpy(opt.learning_rate))

    return LearningRateToLogs()


def is_finite(v) -> bool:
    import math

    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


#: readable names of the stage ids tasks give :meth:`~kerahep.training.context.RunContext.fit`
#: (the part before ``_<label fraction>``); another id is shown with its ``_`` as spaces
STAGE_NAMES = {"main": "training", "pretrain": "pretrain", "linear": "linear probe", "frozen": "frozen-encoder heads",
               "finetune": "fine-tune", "scratch": "from scratch", "heads": "heads", "autoencoder": "autoencoder"}


def stage_label(stage: str) -> str:
    """The name of a stage id on its progress bar and in the stage table.

    Example:
        >>> stage_label("finetune_1p0"), stage_label("linear_10pct"), stage_label("pretrain")
        ('fine-tune (100% labels)', 'linear probe (10% labels)', 'pretrain')
    """
    base, _, rest = stage.partition("_")
    name = STAGE_NAMES.get(base)
    if name is None:
        return stage.replace("_", " ")
    if not rest:
        return name
    pct = label_percent(rest)
    return f"{name} ({pct} labels)" if pct else f"{name} ({rest.replace('_', ' ')})"


def label_percent(tag: str) -> str | None:
    """A label fraction as a stage id writes it, as a percentage: ``100pct`` and ``1p0``
    give ``100%``, ``0p5pct`` gives ``0.5%``, ``0p1`` gives ``10%``; None for anything else."""
    import re

    m = re.fullmatch(r"(\d+(?:p\d+)?)(pct)?", tag)
    if m is None:
        return None
    value = float(m.group(1).replace("p", "."))
    if not m.group(2):
        if value > 1:
            return None
        value *= 100
    return f"{round(value, 6):g}%"


def stage_progbar(label: str):
    """Keras' progress bar with the stage's name on each epoch's line (``fine-tune (100%
    labels): epoch 2/5``, in place of Keras' ``Epoch 2/5``)."""
    import keras

    class StageProgbar(keras.callbacks.ProgbarLogger):
        def on_epoch_begin(self, epoch, logs=None):
            epochs, self.epochs = self.epochs, 1  # Keras prints "Epoch i/n" only for more than one epoch
            try:
                super().on_epoch_begin(epoch, logs)
            finally:
                self.epochs = epochs
            if self.verbose:
                print(f"{label}: epoch {epoch + 1}/{epochs}", flush=True)

    return StageProgbar()
