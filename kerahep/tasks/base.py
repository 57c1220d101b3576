"""The task contract.

A task is a small object registered by name (:func:`kerahep.registry.register_task`).
It owns its preset configuration and answers four questions:

* which datasets: :meth:`Task.load_data` returns a :class:`TaskData` (a per-task subclass
  with typed fields) with batched ``tf.data.Dataset`` objects for train, validation and
  test. Which files it reads is decided once, by :meth:`Task.resolve_inputs`: the files
  given, else the configured files, else the task's default files, else its synthetic twin;
* which model: :meth:`Task.build_model` (a builder from :mod:`kerahep.models`);
* which losses and metrics: :meth:`Task.compile` (by default :func:`compile_model`);
* how to evaluate: :meth:`Task.evaluate` writes plots and tables into the run directory
  and returns the test metrics.

:meth:`Task.fit` trains (every stage, pre-training included) and returns a
:class:`FitResult` (:mod:`kerahep.tasks.results`, re-exported here): the models to save by artifact name, plus typed fields. Fields marked
:func:`stored` hold what only training can compute (baselines trained on the side, scores
of models that are not saved, label-fraction tables); the trainer writes them to
``fit_result.json`` in the run directory, and :func:`kerahep.training.evaluate_run` reads
them back, so re-evaluating a run passes :meth:`Task.evaluate` the same result and
reproduces training's report. Everything else evaluate recomputes from the saved models.
:func:`kerahep.training.train` drives the rest: seeds, precision, strategy, callbacks
and the run directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from ..config import Config
from .results import FIT_RESULT_FILE, FitResult, stored  # noqa: F401 - part of the task contract



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

    Tasks subclass it with typed fields for what their model builders and reports need
    (arrays for adapting layers, sample names, the split indices, ...).
    """

    train: Any
    val: Any = None
    test: Any = None
    source: str = "files"
    paths: list = field(default_factory=list)
    info: dict = field(default_factory=dict)
    class_weight: dict | None = None

    def describe(self) -> dict:
        return {"source": self.source, "paths": [str(p) for p in self.paths], **self.info}


@dataclass
class Inputs:
    """The files a run reads, as :meth:`Task.resolve_inputs` chose them.

    Attributes:
        files: the input files.
        source: ``"files"`` or ``"synthetic"`` (the task's built-in twin).
    """

    files: list
    source: str

    @property
    def synthetic(self) -> bool:
        return self.source == "synthetic"


def compile_model(model, training, steps_per_epoch: int | None = None, *, loss=None, metrics=(),
                  epochs: int | None = None, learning_rate: float | None = None, **kwargs):
    """Compile ``model`` with the optimizer and schedule of ``training`` (a TrainingConfig).

    The one compile of kerahep: every task and stage goes through it, so optimizer,
    schedule, clipping and ``jit_compile`` follow the configuration the same way.

    Args:
        model: a Keras model.
        training: the run's :class:`~kerahep.config.TrainingConfig`.
        steps_per_epoch: for the learning-rate schedule (None: constant rate).
        loss: a Keras loss (None: the model adds its own, as self-supervised models do).
        metrics: Keras metrics: a list, or a dict by output name for multi-output models.
        epochs, learning_rate: of this stage, when not the configuration's.
        **kwargs: passed to ``model.compile`` (``loss_weights``, ...).
    """
    from ..optimizers import make_optimizer

    model.compile(optimizer=make_optimizer(training, steps_per_epoch, epochs=epochs, learning_rate=learning_rate),
                  loss=loss, metrics=_metrics(metrics), jit_compile=training.jit, **kwargs)
    return model


def _metrics(metrics):
    """``metrics`` as ``model.compile`` takes them: None, a list, or a dict by output (kept as is)."""
    if not metrics:
        return None
    return dict(metrics) if isinstance(metrics, dict) else list(metrics)


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
    #: the :class:`FitResult` subclass :meth:`fit` returns (what :meth:`evaluate` receives)
    result_type: type = FitResult

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

    def resolve_inputs(self, config: Config, paths=None) -> Inputs:
        """Which files a run reads: the one implementation for every task.

        In order: ``paths`` (given to ``evaluate --data`` or ``predict``), else
        ``config.data.paths`` (unless ``data.force_synthetic``), else
        :meth:`default_files` (a prepared dataset in its usual place), else the synthetic
        twin made by :meth:`make_synthetic`.
        """
        d = config.data
        if paths:
            return Inputs([Path(p) for p in paths], "files")
        if d.paths and not d.force_synthetic:
            return Inputs([Path(p) for p in d.paths], "files")
        if not d.force_synthetic:
            default = self.default_files(config)
            if default:
                return Inputs([Path(p) for p in default], "files")
        return Inputs([Path(p) for p in self.make_synthetic(config)], "synthetic")

    def default_files(self, config: Config) -> list | None:
        """Files used when none are given or configured (None: use the synthetic twin)."""
        return None

    def make_synthetic(self, config: Config) -> list:
        """Write the synthetic twin of this task's data (if missing or stale) and return its files."""
        raise NotImplementedError(f"task {self.name!r} has no synthetic twin; give input files")

    # ------------------------------------------------------------------- model
    def build_model(self, config: Config, data: TaskData):
        """Return an uncompiled Keras model that takes raw inputs."""
        raise NotImplementedError

    def compile(self, model, config: Config, data: TaskData, steps_per_epoch: int | None = None):
        """Compile ``model``. Default: binary cross-entropy (or focal) with AUC and accuracy."""
        import keras

        if config.training.loss == "focal":
            loss = keras.losses.BinaryFocalCrossentropy(apply_class_balancing=False)
        else:
            loss = keras.losses.BinaryCrossentropy()
        return compile_model(model, config.training, steps_per_epoch, loss=loss,
                             metrics=[keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")])

    # --------------------------------------------------------------- training
    @property
    def uncertainty_options(self) -> tuple:
        """The ``training`` options of :mod:`.uncertainty` this task honours (checked by Config): both
        with the default :meth:`fit`; a task with its own ``fit`` sets those it builds."""
        return ("calibrate", "ensemble") if type(self).fit is Task.fit else ()

    def fit(self, ctx) -> FitResult:
        """Train every stage; return a :attr:`result_type`. Default: :func:`.uncertainty.fit_classifier`."""
        from .uncertainty import fit_classifier

        return self.result_type(models={"model": fit_classifier(ctx, lambda seed: self.build_model(ctx.config, ctx.data))})

    # ------------------------------------------------------------- evaluation
    def evaluate(self, ctx, result: FitResult, data: TaskData) -> dict:
        """Evaluate on ``data.test``; write plots under ``ctx.plots_dir``; return test metrics.

        Called by training with :meth:`fit`'s result, and by ``evaluate_run`` with the result
        rebuilt from the run directory (saved models and stored fields): both must give
        the same report.

        Default: binary classification report (ROC AUC with bootstrap interval, accuracy,
        working points, calibration, confusion matrix; ROC, efficiency-rejection,
        reliability, score and confusion plots at ``run.plot_dpi``; :func:`.uncertainty.uncertainty_report`).
        """
        from .. import evaluation, plotting
        from .uncertainty import predict_test, uncertainty_report

        model, seed, plots = result.models["model"], ctx.config.run.seed, ctx.plots_dir
        y, score, _, extra = predict_test(model, data.test)
        report = evaluation.binary_report(y, score, seed=seed)
        with plotting.figure_settings(ctx.config):
            report.update(uncertainty_report(model, y, score, None, extra, plots, seed=seed))
            plotting.roc_curve(y, score, plots / "roc.png", label=self.name)
            plotting.classifier_views(y, score, plots, label=self.name, seed=seed)
            plotting.score_distributions(y, score, plots / "scores.png")
            plotting.confusion_matrix(report["confusion_matrix"], plots / "confusion.png")
        return report

    def examples(self) -> dict:
        """``{name: ModelExample}``: every model builder of the task at a tiny size.

        :mod:`kerahep.backend_check` builds each on every Keras backend, runs a forward
        pass, trains one step and round-trips it through ``.keras``.
        """
        return {}

    def describe_model(self, config: Config) -> str:
        return config.model.name or self.name

    # -------------------------------------------------------------- prediction
    #: output formats of ``kerahep predict`` (:mod:`kerahep.prediction.writers`), the first is
    #: the default; empty: the task cannot score new files
    predict_formats: tuple = ()

    def predict_file(self, run, path):
        """Score one input file for ``kerahep predict``: a generator of chunks.

        Args:
            run: the :class:`kerahep.prediction.PredictRun` (models, configuration, stored
                fit results, ``batch_size``, ``chunk_size``, ``embedding``).
            path: an input file in the task's own format, unlabelled or labelled.

        Yields:
            ``{column: array}`` chunks of at most ``run.chunk_size`` rows: the same columns,
            dtypes and trailing shapes in every chunk, together exactly the input's rows in
            its order (identifiers to join on included, labels copied when the file has
            them), at least one chunk (zero rows allowed). Preprocessing is training's.

        Raises:
            DataError: the file is not what the task reads (named with what was expected
                and what was found).
        """
        raise NotImplementedError(f"task {self.name!r} cannot score new files")
