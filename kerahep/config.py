"""Frozen dataclasses for data, model, training and run settings.

A :class:`Config` has four sections. Each task ships presets (``Task.preset(name)``)
whose sections may be subclasses of the base sections below with task-specific fields
(for example ``DyElectronData.n_jets``). Overrides use ``section.key=value`` strings,
parsed literally (``ast.literal_eval``; a bare word stays a string)::

    cfg = get_task("dy_electron").preset()
    cfg = cfg.override(["training.epochs=3", "model.widths=(64, 32)"])

Unknown keys are rejected with the list of valid ones. Validation has one regime: every
section has a ``validate()`` method (single-field and cross-field rules of that section,
calling ``super().validate()``), and a :class:`Config` validates all four sections once,
when it is made. Overrides of a call (``override``, ``updated``, ``from_dict``) are applied
together before that single check, so the order of ``--set`` values never matters
(``model.dim=90`` with ``model.num_heads=6`` is valid in either order). A section built
on its own is not checked until it is part of a ``Config``.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, fields
from typing import ClassVar

from .errors import ConfigError, is_user_os_error, os_error
from .overrides import coerce, parse_assignments, parse_value  # noqa: F401 - parse_value re-exported

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("auto", "none", "mirrored", "multi_worker", "data_parallel")
SCHEDULES = ("constant", "cosine", "onecycle")


def check(cond: bool, msg: str) -> None:
    """Raise :class:`~kerahep.errors.ConfigError` with ``msg`` unless ``cond`` holds (for ``validate``)."""
    if not cond:
        raise ConfigError(msg)



@dataclass(frozen=True)
class DataConfig:
    """Where the data come from and how they are split and fed.

    Args:
        paths: input files (task-specific meaning); empty means the built-in synthetic twin.
        force_synthetic: use the synthetic twin even when ``paths`` is given (whether a run
            used the twin is recorded in ``metrics.json["data"]["source"]``).
        synthetic_events: size of the synthetic twin (per class where the task has classes).
        data_dir: where synthetic twins and prepared datasets are written.
        split: train/validation/test fractions, summing to one.
        max_events: cap on events read (per file or sample, as the task documents).
        cache: keep decoded data in memory after the first epoch when it fits.
        shuffle_buffer: size of the tf.data shuffle buffer.
    """

    #: keys that were renamed, old -> new, so an old ``config.json`` still loads
    RENAMED: ClassVar[dict] = {"synthetic": "force_synthetic"}

    paths: tuple = ()
    force_synthetic: bool = False
    synthetic_events: int = 20000
    data_dir: str = "data"
    split: tuple = (0.7, 0.15, 0.15)
    max_events: int | None = None
    cache: bool = True
    shuffle_buffer: int = 10000

    def validate(self) -> None:
        check(self.synthetic_events > 0, f"data.synthetic_events must be positive, got {self.synthetic_events}")
        check(len(self.split) in (2, 3), f"data.split needs 2 or 3 fractions, got {self.split!r}")
        check(all(f >= 0 for f in self.split), f"data.split fractions must be >= 0, got {self.split!r}")
        check(abs(sum(self.split) - 1.0) < 1e-6, f"data.split must sum to 1, got {self.split!r} (sum {sum(self.split):g})")
        check(self.max_events is None or self.max_events > 0, f"data.max_events must be positive, got {self.max_events}")
        check(self.shuffle_buffer > 0, f"data.shuffle_buffer must be positive, got {self.shuffle_buffer}")


@dataclass(frozen=True)
class ModelConfig:
    """Model choice; tasks subclass this with their architecture fields.

    Args:
        name: model family or variant name understood by the task.
        dropout: dropout rate used by the task's builder.
    """

    name: str = ""
    dropout: float = 0.0

    def validate(self) -> None:
        check(0.0 <= self.dropout < 1.0, f"model.dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class TrainingConfig:
    """Optimisation settings.

    Args:
        epochs: training epochs (of the main stage).
        batch_size: global batch size (summed over replicas).
        learning_rate: peak learning rate.
        optimizer: ``adam``, ``adamw`` or ``sgd``.
        weight_decay: decoupled weight decay (adamw).
        schedule: ``constant``, ``cosine`` (CosineDecay) or ``onecycle`` (CosineDecay with warm-up).
        warmup_fraction: fraction of steps spent warming up under ``onecycle``.
        clipnorm: gradient clipping by global norm (None: off).
        loss: task-specific loss name (``binary_crossentropy``, ``focal``, ...).
        class_weight: weight classes inversely to their frequency.
        early_stopping: patience in epochs on the monitored value (0: off).
        precision: ``auto`` (mixed on GPU, float32 on CPU) or an explicit Keras policy.
        steps_per_epoch: cap on steps per epoch (None: a full pass).
        jit_compile: compile the train step (XLA on TensorFlow and JAX). None (default): on
            for JAX, whose steps are slow uncompiled; off for TensorFlow, where XLA halves the
            speed on small CPUs, and for torch. :attr:`jit` gives the resolved value.
        calibrate: fit temperature scaling of the score on the validation split after
            training and store it in the saved model as a layer
            (:class:`~kerahep.layers.TemperatureScaling`), so ``model.keras`` scores calibrated
            probabilities; needs a validation split. With ``ensemble`` the ensemble's mean is
            calibrated.
        ensemble: members of a deep ensemble (1: off). Each member is trained with seed
            ``run.seed + i``; the saved model returns the mean score and the spread (standard
            deviation over the members) per event. Only tasks with one supervised stage
            (``dy_electron``, ``electron_photon``) build ensembles.
    """

    epochs: int = 10
    batch_size: int = 256
    learning_rate: float = 1e-3
    optimizer: str = "adamw"
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_fraction: float = 0.1
    clipnorm: float | None = 1.0
    loss: str = "binary_crossentropy"
    class_weight: bool = False
    early_stopping: int = 0
    precision: str = "auto"
    steps_per_epoch: int | None = None
    jit_compile: bool | None = None
    calibrate: bool = False
    ensemble: int = 1

    @property
    def jit(self) -> bool:
        """``jit_compile`` resolved for the active Keras backend."""
        if self.jit_compile is not None:
            return bool(self.jit_compile)
        import keras

        return keras.backend.backend() == "jax"

    def validate(self) -> None:
        check(self.epochs >= 0, f"training.epochs must be >= 0, got {self.epochs}")
        check(self.batch_size > 0, f"training.batch_size must be positive, got {self.batch_size}")
        check(self.learning_rate > 0, f"training.learning_rate must be positive, got {self.learning_rate}")
        check(self.optimizer in ("adam", "adamw", "sgd"), f"training.optimizer must be adam, adamw or sgd, got {self.optimizer!r}")
        check(self.schedule in SCHEDULES, f"training.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        check(0.0 <= self.warmup_fraction < 1.0, f"training.warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        check(self.clipnorm is None or self.clipnorm > 0, f"training.clipnorm must be positive or None, got {self.clipnorm}")
        check(self.precision in PRECISIONS, f"training.precision must be one of {PRECISIONS}, got {self.precision!r}")
        check(self.steps_per_epoch is None or self.steps_per_epoch > 0, f"training.steps_per_epoch must be positive, got {self.steps_per_epoch}")
        check(self.early_stopping >= 0, f"training.early_stopping must be >= 0, got {self.early_stopping}")
        check(isinstance(self.calibrate, bool), f"training.calibrate must be true or false, got {self.calibrate!r}")
        check(isinstance(self.ensemble, int) and not isinstance(self.ensemble, bool) and 1 <= self.ensemble <= 100,
              f"training.ensemble must be an integer from 1 (off) to 100 (members of a deep ensemble), "
              f"got {self.ensemble!r}")


@dataclass(frozen=True)
class RunSettings:
    """Where and how a run executes.

    Args:
        seed: one seed for Python, NumPy and the backend: a run is repeatable.
        output_dir: the results folder; runs go to ``<output_dir>/<task>/<run_id>/``.
        run_id: name of the run folder (default: time stamp, process id and a random suffix).
        resume: continue the named (or newest unfinished) run from its last completed epoch.
        strategy: ``auto``, ``none``, ``mirrored``, ``multi_worker`` (TensorFlow) or
            ``data_parallel`` (JAX, Keras distribution).
        verbose: Keras progress output (0 silent, 1 bar, 2 one line per epoch).
        unsafe_load: allow loading ``.keras`` files that carry arbitrary code (Lambda layers).
        plot_dpi: resolution of the PNG figures (dots per inch, > 0).
        plot_pdf: also write every figure as a vector PDF beside its PNG (for papers); the
            smoke presets turn it off (each PDF is a second full draw of its figure).
    """

    seed: int = 42
    output_dir: str = "results"
    run_id: str | None = None
    resume: bool = False
    strategy: str = "auto"
    verbose: int = 1
    unsafe_load: bool = False
    plot_dpi: int = 110
    plot_pdf: bool = True

    def validate(self) -> None:
        from .artifacts import check_name

        check(self.strategy in STRATEGIES, f"run.strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        check(isinstance(self.plot_dpi, int) and not isinstance(self.plot_dpi, bool) and self.plot_dpi > 0,
              f"run.plot_dpi must be an integer > 0 (dots per inch of the PNG figures), got {self.plot_dpi!r}")
        check(isinstance(self.plot_pdf, bool),
              f"run.plot_pdf must be true or false (a vector PDF beside every PNG figure), got {self.plot_pdf!r}")
        if self.run_id is not None:
            check_name(self.run_id, "run.run_id")


SECTIONS = ("data", "model", "training", "run")


@dataclass(frozen=True)
class Config:
    """The resolved configuration of one run (written to ``config.json``)."""

    task: str
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    run: RunSettings = RunSettings()
    preset: str = "default"

    def __post_init__(self):
        for sec in SECTIONS:
            try:
                getattr(self, sec).validate()
            except (TypeError, AttributeError) as exc:  # a tuple of strings where numbers belong, ...
                raise ConfigError(f"a {sec} value of the wrong type: {exc}") from None
        self._check_uncertainty()

    def _check_uncertainty(self) -> None:
        """``training.calibrate`` needs a validation split; it and ``training.ensemble`` a task that honours them."""
        t, split = self.training, tuple(getattr(self.data, "split", ()))
        options = [o for o, on in (("calibrate", t.calibrate), ("ensemble", t.ensemble > 1)) if on]
        check(not t.calibrate or (len(split) == 3 and split[1] > 0),
              f"training.calibrate=true fits the temperature on the validation split, but data.split={split!r} "
              "has none; give three fractions with a validation share, e.g. data.split=(0.7, 0.15, 0.15)")
        from .registry import get_task

        refused = [o for o in options if o not in get_task(self.task).uncertainty_options] if options else []
        check(not refused, f"training.{(refused or [''])[0]} is not available for task {self.task!r}: its training "
                           "does not build it (calibration and deep ensembles come with the single-stage training of "
                           "dy_electron and electron_photon)")

    # ------------------------------------------------------------------ overrides
    def replace(self, **sections) -> "Config":
        """Return a copy with whole sections or ``section__key`` values replaced."""
        out = self
        for key, value in sections.items():
            if "__" in key:
                sec, field = key.split("__", 1)
                out = out.set(f"{sec}.{field}", value)
            else:
                out = dataclasses.replace(out, **{key: value})
        return out

    def set(self, key: str, value) -> "Config":
        """Return a copy with ``section.key`` set to ``value`` (already parsed)."""
        return self.updated({key: value})

    def updated(self, changes) -> "Config":
        """Return a copy with every ``{"section.key": value}`` of ``changes`` applied at once.

        Values are coerced to the field types; the new configuration is validated once, after
        all of them are in place (so no intermediate combination is checked).
        """
        per_section: dict = {}
        for key, value in dict(changes).items():
            sec_name, field_name = self._field(key)
            key = f"{sec_name}.{field_name}"
            hints = typing.get_type_hints(type(getattr(self, sec_name)))
            per_section.setdefault(sec_name, {})[field_name] = coerce(key, value, hints.get(field_name))
        sections = {}
        for sec_name, values in per_section.items():
            try:
                sections[sec_name] = dataclasses.replace(getattr(self, sec_name), **values)
            except TypeError as exc:  # pragma: no cover - defensive
                raise ConfigError(f"bad value in section {sec_name}: {exc}") from None
        return dataclasses.replace(self, **sections)

    def _field(self, key: str) -> tuple:
        """``(section, field)`` of a ``section.key`` string, or a ConfigError naming the valid keys."""
        if not isinstance(key, str) or "." not in key:
            raise ConfigError(f"override key {key!r} must look like section.key with section one of {SECTIONS}")
        sec_name, field_name = key.split(".", 1)
        if sec_name in SECTIONS:
            field_name = getattr(getattr(self, sec_name), "RENAMED", {}).get(field_name, field_name)
        if sec_name not in SECTIONS:
            hint = difflib.get_close_matches(sec_name, SECTIONS, n=1)
            raise ConfigError(
                f"unknown configuration section {sec_name!r} in {key!r}; valid sections: {', '.join(SECTIONS)}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
            )
        valid = [f.name for f in fields(getattr(self, sec_name))]
        if field_name not in valid:
            hint = difflib.get_close_matches(field_name, valid, n=1)
            raise ConfigError(
                f"unknown key {key!r} for task {self.task!r}; valid {sec_name} keys: {', '.join(sorted(valid))}"
                + (f" (did you mean {sec_name}.{hint[0]}?)" if hint else "")
            )
        return sec_name, field_name

    def override(self, assignments) -> "Config":
        """Apply ``section.key=value`` strings (as given to ``--set``), all at once.

        A key given twice takes its last value, as on a command line.
        """
        return self.updated(parse_assignments(assignments))

    # ------------------------------------------------------------ serialisation
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        """Rebuild a configuration from ``config.json`` using the task's preset classes."""
        from .registry import get_task

        if not isinstance(d, dict) or "task" not in d:
            found = f"the keys {sorted(map(str, d))}" if isinstance(d, dict) else f"a JSON {type(d).__name__}"
            raise ConfigError(f"a configuration must be an object with a 'task' entry, found {found}")
        if not isinstance(d["task"], str):
            raise ConfigError(f"a configuration's 'task' must be a task name, found {type(d['task']).__name__}")
        preset = d.get("preset", "default")
        if not isinstance(preset, str):
            raise ConfigError(f"a configuration's 'preset' must be a preset name, found {type(preset).__name__}")
        cfg = get_task(d["task"]).preset(preset)
        changes = {}
        for sec in SECTIONS:
            values = d.get(sec)
            values = {} if values is None else values
            if not isinstance(values, dict):
                raise ConfigError(f"configuration section {sec!r} must be a mapping of keys to values, "
                                  f"found {type(values).__name__}")
            changes.update({f"{sec}.{k}": v for k, v in values.items()})
        return cfg.updated(changes)

    @classmethod
    def from_file(cls, path) -> "Config":
        """Read a configuration from a run's ``config.json`` or a YAML file of the same shape.

        Raises:
            ConfigError: naming the file, for a file that is missing, unreadable, not JSON or
                YAML, or whose values are refused.
        """
        import json
        from pathlib import Path

        path = Path(path)
        expected = "a readable configuration file (config.json or YAML)"
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: expected {expected} in UTF-8 text, found bytes that are not "
                              f"(at byte {exc.start})") from None
        except OSError as exc:
            found = os_error(exc, path).found if is_user_os_error(exc) else f"{type(exc).__name__}: {exc}"
            raise ConfigError(f"{path}: expected {expected}, found {found}") from None
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml

                d = yaml.safe_load(text)
            else:
                d = json.loads(text)
        except Exception as exc:  # yaml.YAMLError, json.JSONDecodeError
            raise ConfigError(f"{path}: expected a JSON or YAML configuration, found a parse error: "
                              f"{str(exc).splitlines()[0]}") from None
        try:
            return cls.from_dict(d)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
