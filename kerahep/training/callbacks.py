"""kerahep's Keras callbacks, each a small subclass of a Keras one (Keras is imported lazily,
so each class is made by a cached factory): checkpoints that skip diverged epochs and are
written atomically, early stopping that resumes its count, the learning rate in the logs.
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
