"""The run context: what a task's ``fit`` sees of the run in progress (configuration, data,
run directory, strategy) and its one way to train a stage, :meth:`RunContext.fit`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from .. import artifacts
from ..config import Config
from ..errors import KerahepError
from .callbacks import (finite_checkpoint_class, is_finite, learning_rate_callback, resumable_early_stopping_class,
                        stage_label, stage_progbar)
from .distribution import Strategy, full_batches
from .rundir import best_in_history, dedupe_history, history_progress, read_history, stage_file

log = logging.getLogger("kerahep")


class TrainingDiverged(KerahepError):
    """The loss became NaN or infinite; the run is marked failed."""


class RunContext:
    """What a task's ``fit`` and ``evaluate`` see of the run in progress."""

    def __init__(self, config: Config, task, data, run_dir: Path, strategy=None, resumed=False):
        self.config = config
        self.task = task
        self.data = data
        self.run_dir = Path(run_dir)
        self.plots_dir = self.run_dir / "plots"
        self.plots_dir.mkdir(parents=True, exist_ok=True)
        self.strategy = strategy or Strategy("none")
        self.resumed = resumed
        self.histories: dict = {}
        #: one record per stage fitted (see :meth:`fit`), in order: the stage table of the run
        self.stages: list = []
        self.timing: dict = {"fit_seconds": 0.0, "train_samples_seen": 0}

    def build(self, fn):
        """Call ``fn()`` (which builds a model) inside the strategy scope."""
        with self.strategy.scope():
            return fn()

    @staticmethod
    def cardinality(ds) -> int | None:
        try:
            import tensorflow as tf

            n = int(ds.cardinality())
            return n if n > 0 else None if n in (tf.data.INFINITE_CARDINALITY, tf.data.UNKNOWN_CARDINALITY) else n
        except Exception:
            return None

    def callbacks(self, stage: str, monitor: str | None, mode: str, has_val: bool, label: str | None = None) -> list:
        import keras

        cb = [keras.callbacks.TerminateOnNaN(), learning_rate_callback()]
        if self.config.run.verbose != 0:
            cb.append(stage_progbar(label or stage_label(stage)))
        cb.append(keras.callbacks.BackupAndRestore(str(self.run_dir / "backup" / stage), double_checkpoint=True))
        cb.append(keras.callbacks.CSVLogger(str(self.run_dir / stage_file(stage, "history", ".csv")), append=True))
        cb.append(keras.callbacks.TensorBoard(log_dir=str(self.run_dir / "tensorboard" / stage), write_graph=False,
                                              update_freq="epoch", profile_batch=0))
        if has_val and monitor:
            # On resume, the best value so far comes from history.csv, so a worse epoch
            # after the restart never replaces the best checkpoint.
            best = best_in_history(self.run_dir / stage_file(stage, "history", ".csv"), monitor, mode) \
                if self.resumed else None
            cb.append(finite_checkpoint_class()(
                str(self.run_dir / "checkpoints" / f"{stage}.best.weights.h5"), monitor=monitor, mode=mode,
                save_best_only=True, save_weights_only=True, verbose=0, initial_value_threshold=best))
            if self.config.training.early_stopping:
                best_so_far, wait = history_progress(self.run_dir / stage_file(stage, "history", ".csv"), monitor,
                                                      mode) if self.resumed else (None, 0)
                cb.append(resumable_early_stopping_class()(monitor=monitor, mode=mode,
                                                    patience=self.config.training.early_stopping,
                                                    resume_best=best_so_far, resume_wait=wait))
        return cb

    def fit(self, model, train=None, val="default", stage: str = "main", epochs: int | None = None,
            class_weight="default", monitor: str | None = None, mode: str | None = None,
            compile_fn=None, callbacks=(), restore_best: bool = True, label: str | None = None):
        """Compile (if needed) and fit ``model`` with the standard callbacks.

        Args:
            model: a Keras model (compiled by ``compile_fn`` or the task's ``compile`` if not yet).
            train, val: datasets (default: the run's).
            stage: name of the stage; ``main`` writes ``history.csv``, others ``history_<stage>.csv``.
            epochs: default ``config.training.epochs``.
            monitor, mode: the value whose best epoch is checkpointed (default: the task's).
            restore_best: load the best checkpoint's weights at the end.
            label: the stage's name on its progress bar and in the stage table (default:
                :func:`~kerahep.training.callbacks.stage_label` of ``stage``).

        A completed stage is recorded under ``stages/``; on ``--resume`` its weights are
        loaded instead of training it again.

        Raises:
            TrainingDiverged: when the loss became NaN.
        """

        cfg = self.config
        train = self.data.train if train is None else train
        val = self.data.val if isinstance(val, str) else val
        epochs = cfg.training.epochs if epochs is None else epochs
        monitor = monitor or self.task.monitor
        mode = mode or self.task.monitor_mode
        if val is None and monitor.startswith("val_"):
            monitor = monitor[4:]
        class_weight = self.data.class_weight if isinstance(class_weight, str) else class_weight
        steps = cfg.training.steps_per_epoch or self.cardinality(train)
        if self.strategy.num_processes > 1:
            train, val = full_batches(train), full_batches(val)
        if not model.compiled:
            with self.strategy.scope():
                if compile_fn is not None:
                    compile_fn(model, steps)
                else:
                    self.task.compile(model, cfg, self.data, steps)
        done = self.run_dir / "stages" / f"{stage}.weights.h5"
        if self.resumed and done.exists():
            self._restore_stage(model, stage, done)
            self._record(stage, label, monitor, mode, None)
            return None
        t0 = time.perf_counter()
        history = model.fit(
            train, validation_data=val, epochs=epochs, class_weight=class_weight,
            steps_per_epoch=cfg.training.steps_per_epoch, verbose=cfg.run.verbose, shuffle=False,
            callbacks=self.callbacks(stage, monitor, mode, val is not None, label) + list(callbacks),
        )
        dt = time.perf_counter() - t0
        dedupe_history(self.run_dir / stage_file(stage, "history", ".csv"))
        self._check_finite(model, stage, history.history.get("loss", []))
        best = self.run_dir / "checkpoints" / f"{stage}.best.weights.h5"
        if restore_best and best.exists() and val is not None:
            model.load_weights(str(best))
        done.parent.mkdir(exist_ok=True)
        with artifacts.atomic_path(done, suffix=".weights.h5") as tmp:
            model.save_weights(str(tmp))
        self.histories[stage] = history.history
        self._count(dt, len(history.history.get("loss", [])))
        self._record(stage, label, monitor, mode, dt)
        return history

    def _record(self, stage: str, label: str | None, monitor: str, mode: str, seconds: float | None) -> None:
        """Add the stage's row to :attr:`stages`: its epochs and best ``monitor`` over its
        ``history.csv`` (the epochs before a resume included), and the seconds this process
        trained it (None: completed before a resume, its weights loaded)."""
        path = self.run_dir / stage_file(stage, "history", ".csv")
        epochs = len(read_history(path)[1]) if path.exists() else 0
        self.stages.append({"stage": stage, "label": label or stage_label(stage), "epochs": epochs,
                            "monitor": monitor, "mode": mode, "best": best_in_history(path, monitor, mode),
                            "seconds": None if seconds is None else round(seconds, 3)})

    def _restore_stage(self, model, stage: str, done: Path) -> None:
        """A stage completed before the run was interrupted: load its weights instead of training it."""
        log.info("stage %s already complete; loading its weights", stage)
        model.load_weights(str(done))
        opt = getattr(model, "optimizer", None)
        if opt is not None and not opt.built:  # so the saved .keras carries a complete optimizer
            with self.strategy.scope():
                opt.build(model.trainable_variables)

    def _check_finite(self, model, stage: str, losses: list) -> None:
        """Raise TrainingDiverged when the stage's loss became NaN or infinite."""
        if getattr(model, "stop_training", False) and losses and not all(map(is_finite, losses[-1:])):
            raise TrainingDiverged(f"stage {stage!r} of {self.config.task}: the loss became {losses[-1]} at epoch "
                                   f"{len(losses)}; start a new run with a lower training.learning_rate (--resume keeps "
                                   f"the run's saved settings) or check the inputs for NaN")
        if any(not is_finite(v) for v in losses):
            raise TrainingDiverged(f"stage {stage!r} of {self.config.task}: non-finite loss {losses}")

    def _count(self, seconds: float, epochs: int) -> None:
        """Add a stage's fit time and the training samples it saw to the run's timing."""
        cfg = self.config
        self.timing["fit_seconds"] += seconds
        n = self.data.info.get("n_train")
        if n and cfg.training.steps_per_epoch:  # a capped epoch sees at most steps x batch samples
            n = min(n, cfg.training.steps_per_epoch * cfg.training.batch_size)
        if n:
            self.timing["train_samples_seen"] += n * epochs


STAGE_COLUMNS = ("stage", "epochs", "best", "seconds")


def stage_table(stages: list) -> list:
    """The rows of the stage table (:data:`STAGE_COLUMNS`) of :attr:`RunContext.stages`, as
    strings: ``("fine-tune (100% labels)", "5", "val_loss 0.4123", "12.3")``; a stage loaded
    on resume shows ``resumed`` for its seconds, a stage without the value ``-`` for its best."""
    rows = []
    for s in stages:
        best = "-" if s["best"] is None else f"{s['monitor']} {s['best']:.4g}"
        seconds = "resumed" if s["seconds"] is None else f"{s['seconds']:.1f}"
        rows.append((s["label"], str(s["epochs"]), best, seconds))
    return rows


def markdown_table(header, rows, limit: int = 200) -> str:
    """A table as Markdown (TensorBoard's text dashboard draws it), at most ``limit`` rows."""
    if not header:
        return "(empty table)"
    cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + " --- |" * len(header)]
    for row in rows[:limit]:
        row = list(row) + [""] * (len(header) - len(row))
        lines.append("| " + " | ".join(map(cell, row)) + " |")
    if len(rows) > limit:
        lines.append(f"\n({len(rows) - limit} more rows in the CSV file)")
    return "\n".join(lines)
