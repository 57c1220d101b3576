"""The task contract.

A task is a small object registered by name (:func:`kerahep.registry.register_task`).
It owns its preset configuration and answers four questions:

* which datasets: :meth:`Task.load_data` returns a :class:`TaskData` with batched
  ``tf.data.Dataset`` objects for train, validation and test (from files, or from the
  built-in synthetic twin when the configuration names no files);
* which model: :meth:`Task.build_model` (a builder from :mod:`kerahep.models`);
* which losses and metrics: :meth:`Task.compile`;
* how to evaluate: :meth:`Task.evaluate` writes plots into the run directory and returns
  the test metrics.

Tasks with several stages (pre-training, then a classifier) override :meth:`Task.fit`,
which returns every model to save by artifact name (``{"model": ..., "encoder": ...}``).
:func:`kerahep.training.train` drives the rest: seeds, precision, strategy, callbacks
and the run directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import Config


@dataclass
class TaskData:
    """The datasets of one run.

    Attributes:
        train, val, test: batched ``tf.data.Dataset`` of ``(x, y)`` or ``(x, y, sample_weight)``
            (``x`` may be a dict for multi-input models); ``val``/``test`` may be None.
        source: ``"files"`` or ``"synthetic"``.
        paths: the input files actually read.
        info: anything worth recording in ``metrics.json["data"]`` (counts per split and
            class, oracle AUC of a synthetic twin, events failing preselection, ...).
        class_weight: ``{class: weight}`` for ``model.fit``, or None.
        extras: task-private objects (NumPy arrays for adapting layers, sample names, ...).
    """

    train: Any
    val: Any = None
    test: Any = None
    source: str = "files"
    paths: list = field(default_factory=list)
    info: dict = field(default_factory=dict)
    class_weight: dict | None = None
    extras: dict = field(default_factory=dict)

    def describe(self) -> dict:
        return {"source": self.source, "paths": [str(p) for p in self.paths], **self.info}


@dataclass
class ModelExample:
    """A tiny instance of one of a task's model builders, for the backend matrix.

    Attributes:
        build: ``() -> keras.Model`` (uncompiled, tiny widths).
        x: example inputs (NumPy array or dict of arrays), a handful of rows.
        y: matching targets for one training step.
        loss: a Keras loss for that step (None: the model adds its own losses).
        outputs: ``(model, x) -> array(s)`` compared across round trips and backends
            (default ``model.predict``); for models whose call is random (masking), a
            deterministic view such as the encoder's output.
    """

    build: Any
    x: Any
    y: Any = None
    loss: Any = "binary_crossentropy"
    outputs: Any = None


class Task:
    """Base class of all tasks. Subclass, set ``name`` and ``description``, register."""

    name: str = ""
    description: str = ""
    #: names accepted by :meth:`preset`; the first is the default
    presets: tuple = ("default",)
    #: the Keras metric used to pick the best checkpoint ("val_" + name), and its mode
    monitor: str = "val_loss"
    monitor_mode: str = "min"
    #: models this task saves, by artifact name (``model`` -> ``model.keras``)
    artifacts: tuple = ("model",)

    #: overrides that turn the default preset into the ``smoke`` preset: every stage of the
    #: task on tiny data with a tiny model, in seconds, to check an installation or a backend
    #: (``python -m scripts.train --task NAME --preset smoke --backend jax``)
    smoke: tuple = ()

    # ----------------------------------------------------------- configuration
    def preset(self, name: str | None = None) -> Config:
        """Return the preset configuration ``name`` (default: the task's default).

        ``smoke`` is accepted by every task that defines :attr:`smoke`.
        """
        name = self._check_preset(name)
        if name == "smoke":
            import dataclasses

            cfg = self._preset(self.presets[0]).override(list(self.smoke))
            return dataclasses.replace(cfg, preset="smoke")
        return self._preset(name)

    def preset_names(self) -> tuple:
        """Every preset name accepted by :meth:`preset`."""
        return self.presets + (("smoke",) if self.smoke else ())

    def _preset(self, name: str) -> Config:
        """Build the configuration of the preset ``name`` (one of :attr:`presets`)."""
        raise NotImplementedError

    def _check_preset(self, name: str | None) -> str:
        from ..errors import ConfigError
        import difflib

        name = name or self.presets[0]
        if name == "default":
            name = self.presets[0]
        known = self.preset_names()
        if name not in known:
            hint = difflib.get_close_matches(name, known, n=1)
            raise ConfigError(
                f"unknown preset {name!r} for task {self.name!r}; presets: {', '.join(known)}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
            )
        return name

    # -------------------------------------------------------------------- data
    def load_data(self, config: Config, paths=None, for_evaluation: bool = False) -> TaskData:
        """Return the datasets for ``config``.

        Args:
            config: the run configuration (``config.data.paths`` empty: synthetic twin).
            paths: files to read instead of ``config.data.paths`` (``evaluate --data``).
            for_evaluation: the files are an independent sample: put every event in
                ``test`` (``train``/``val`` may then be None).
        """
        raise NotImplementedError

    def make_synthetic(self, config: Config) -> list:
        """Write the synthetic twin of this task's data (if missing) and return its files."""
        cfg = config.set("data.force_synthetic", True)
        return list(self.load_data(cfg).paths)

    # ------------------------------------------------------------------- model
    def build_model(self, config: Config, data: TaskData):
        """Return an uncompiled Keras model that takes raw inputs."""
        raise NotImplementedError

    def compile(self, model, config: Config, data: TaskData, steps_per_epoch: int | None = None):
        """Compile ``model``. Default: binary cross-entropy (or focal) with AUC and accuracy."""
        import keras

        from ..optimizers import make_optimizer

        if config.training.loss == "focal":
            loss = keras.losses.BinaryFocalCrossentropy(apply_class_balancing=False)
        else:
            loss = keras.losses.BinaryCrossentropy()
        model.compile(
            optimizer=make_optimizer(config.training, steps_per_epoch),
            loss=loss,
            metrics=[keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")],
            jit_compile=config.training.jit,
        )
        return model

    # --------------------------------------------------------------- training
    def fit(self, ctx) -> dict:
        """Train and return ``{artifact_name: model}``. Default: one supervised stage."""
        model = ctx.build(lambda: self.build_model(ctx.config, ctx.data))
        ctx.fit(model, stage="main")
        return {"model": model}

    # ------------------------------------------------------------- evaluation
    def evaluate(self, ctx, models: dict, data: TaskData) -> dict:
        """Evaluate on ``data.test``; write plots under ``ctx.plots_dir``; return test metrics.

        Default: binary classification report (ROC AUC with bootstrap interval, accuracy,
        confusion matrix, ROC and score plots).
        """
        from .. import evaluation, plotting

        y, score = evaluation.predict_dataset(models["model"], data.test)
        report = evaluation.binary_report(y, score, seed=ctx.config.run.seed)
        plotting.roc_curve(y, score, ctx.plots_dir / "roc.png", label=self.name)
        plotting.score_distributions(y, score, ctx.plots_dir / "scores.png")
        plotting.confusion_matrix(report["confusion_matrix"], ctx.plots_dir / "confusion.png")
        return report

    def examples(self) -> dict:
        """``{name: ModelExample}``: every model builder of the task at a tiny size.

        :mod:`kerahep.backend_check` builds each on every Keras backend, runs a forward
        pass, trains one step and round-trips it through ``.keras``.
        """
        return {}

    def describe_model(self, config: Config) -> str:
        return config.model.name or self.name
