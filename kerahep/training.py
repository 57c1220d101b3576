"""``train(config) -> RunResult``: one run of one task, start to finish.

Seeds, precision policy, distribution strategy, the standard callbacks (TensorBoard,
CSVLogger, ModelCheckpoint of the best validation score, TerminateOnNaN,
BackupAndRestore), and the run directory of DESIGN.md written atomically::

    results/<task>/<run_id>/config.json, model.keras, history.csv, metrics.json,
                             plots/*.png, tensorboard/
    results/<task>/LATEST     (names the newest complete run)

Example::

    from kerahep.registry import get_task
    from kerahep.training import train

    cfg = get_task("dy_electron").preset().override(["training.epochs=2"])
    result = train(cfg)
    print(result.metrics["test"]["roc_auc"])
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import functools
import logging
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import io
from .config import Config, TrainingConfig
from .errors import ConfigError, KerahepError

log = logging.getLogger("kerahep")


class TrainingDiverged(KerahepError):
    """The loss became NaN or infinite; the run is marked failed."""


@dataclass
class RunResult:
    """What a run leaves behind."""

    run_dir: Path
    config: Config
    metrics: dict
    models: dict = field(default_factory=dict)

    @property
    def model(self):
        return self.models.get("model")


# --------------------------------------------------------------------------- setup
def set_seed(seed: int) -> None:
    """Seed Python, NumPy and the backend (``keras.utils.set_random_seed``)."""
    import keras

    keras.utils.set_random_seed(int(seed))


def accelerator_present() -> bool:
    """True when the active Keras backend sees a GPU."""
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return bool(tf.config.list_physical_devices("GPU"))
        if backend == "jax":
            import jax

            return any(d.platform == "gpu" for d in jax.devices())
        if backend == "torch":
            import torch

            return torch.cuda.is_available()
    except Exception:  # pragma: no cover - device query failures mean "no GPU"
        return False
    return False


def resolve_precision(precision: str) -> str:
    """``auto`` -> ``mixed_bfloat16``/``mixed_float16`` on a GPU, ``float32`` on a CPU."""
    if precision != "auto":
        return precision
    if not accelerator_present():
        return "float32"
    try:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        details = tf.config.experimental.get_device_details(gpus[0]) if gpus else {}
        cc = details.get("compute_capability", (0, 0))
        if cc and cc[0] >= 8:
            return "mixed_bfloat16"
    except Exception:  # pragma: no cover
        pass
    return "mixed_float16"


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


class _Strategy:
    """A uniform face over tf.distribute strategies and Keras (JAX) distribution."""

    def __init__(self, name: str, tf_strategy=None, replicas: int = 1, processes: int = 1):
        self.name = name
        self.tf_strategy = tf_strategy
        self.num_replicas = replicas
        self.num_processes = processes

    def scope(self):
        return self.tf_strategy.scope() if self.tf_strategy is not None else contextlib.nullcontext()


def make_strategy(name: str) -> _Strategy:
    """Return the distribution strategy called ``name`` for the active backend.

    ``auto``: Mirrored over several GPUs, otherwise none (TensorFlow); DataParallel over
    several devices (JAX).

    On JAX with ``KERAS_DISTRIBUTION_NUM_PROCESSES`` set (one process per host, plus
    ``KERAS_DISTRIBUTION_JOB_ADDRESSES`` and ``KERAS_DISTRIBUTION_PROCESS_ID``), the process
    first joins the others (``keras.distribution.initialize()``; CPU-only hosts exchange
    gradients through gloo over TCP), and DataParallel spans the devices of every process.
    Keras then gives each process its share of every global batch; :meth:`RunContext.fit`
    drops a partial last batch, which would leave the processes a step apart.
    """
    import keras

    backend = keras.backend.backend()
    if name == "none":
        return _Strategy("none")
    if backend == "tensorflow":
        import tensorflow as tf

        if name == "auto":
            if len(tf.config.list_logical_devices("GPU")) > 1:
                name = "mirrored"
            else:
                return _Strategy("none")
        if name == "mirrored":
            # every local GPU, or (CPU-only machines, tests) every logical CPU device
            devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
            s = tf.distribute.MirroredStrategy(devices=[d.name for d in devices])
        elif name == "multi_worker":
            # Keras 3's fit does not yet run under this strategy (keras-team/keras#20585):
            # say so before any work instead of failing deep inside TensorFlow.
            raise ConfigError(
                "run.strategy=multi_worker: Keras 3 model.fit fails under tf.distribute."
                "MultiWorkerMirroredStrategy (keras-team/keras#20585). Use mirrored on one node, "
                "or the JAX backend with keras.distribution for several (see README, Scaling out)")
        else:
            raise ConfigError(f"run.strategy={name!r} needs the JAX backend; with TensorFlow use mirrored or multi_worker")
        return _Strategy(name, s, s.num_replicas_in_sync)
    if backend == "jax":
        _join_processes(name)
        devices = keras.distribution.list_devices()
        if name == "auto" and len(devices) < 2:
            return _Strategy("none")
        if name in ("auto", "data_parallel", "mirrored"):
            import jax

            keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
            return _Strategy("data_parallel", None, len(devices), jax.process_count())
        raise ConfigError(f"run.strategy={name!r} is not available on the JAX backend; use data_parallel")
    if name == "auto":
        return _Strategy("none")
    raise ConfigError(f"run.strategy={name!r} is not available on the {backend} backend; use none")


_JOINED = False


def _join_processes(name: str) -> None:
    """Multi-process JAX: join the other processes named by ``KERAS_DISTRIBUTION_*`` (once).

    Must run before anything initialises the JAX backend (even ``jax.devices()``), so
    :func:`train` calls it first. Cross-process collectives between CPU devices go
    through gloo over TCP, the default of ``jax_cpu_collectives_implementation`` in
    current JAX; an older JAX without that default gets it set here.
    """
    global _JOINED
    import keras

    if name == "none" or keras.backend.backend() != "jax" or not _num_processes_configured():
        return
    import jax

    is_initialized = getattr(jax.distributed, "is_initialized", lambda: False)
    if _JOINED or is_initialized():
        return
    with contextlib.suppress(AttributeError, KeyError, ValueError):
        if not getattr(jax.config, "jax_cpu_collectives_implementation", "gloo"):
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
    keras.distribution.initialize()
    _JOINED = True


def _num_processes_configured() -> int:
    """``KERAS_DISTRIBUTION_NUM_PROCESSES`` (0 when unset)."""
    try:
        return int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES") or 0)
    except ValueError:
        raise ConfigError("KERAS_DISTRIBUTION_NUM_PROCESSES must be an integer, got "
                          f"{os.environ['KERAS_DISTRIBUTION_NUM_PROCESSES']!r}") from None


# ----------------------------------------------------------------------- run dirs
def is_chief() -> bool:
    """False on the non-chief workers of a multi-worker run (they write to scratch space).

    The chief is process 0 of a multi-process JAX run (``KERAS_DISTRIBUTION_PROCESS_ID``
    with ``KERAS_DISTRIBUTION_NUM_PROCESSES``), or the chief (else worker 0) of ``TF_CONFIG``.
    """
    import json

    if _num_processes_configured() and os.environ.get("KERAS_DISTRIBUTION_PROCESS_ID"):
        try:
            return int(os.environ["KERAS_DISTRIBUTION_PROCESS_ID"]) == 0
        except ValueError:
            raise ConfigError("KERAS_DISTRIBUTION_PROCESS_ID must be an integer, got "
                              f"{os.environ['KERAS_DISTRIBUTION_PROCESS_ID']!r}") from None
    tf_config = os.environ.get("TF_CONFIG")
    if not tf_config:
        return True
    task = json.loads(tf_config).get("task", {})
    return task.get("type", "chief") == "chief" or (task.get("type") == "worker" and int(task.get("index", 0)) == 0
                                                     and "chief" not in json.loads(tf_config).get("cluster", {}))


def new_run_id() -> str:
    return f"{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{secrets.token_hex(3)}"


def task_dir(config: Config) -> Path:
    io.check_name(config.task, "task name")
    return Path(config.run.output_dir) / config.task


def latest_run(task_root: Path) -> Path | None:
    """The run named by ``<task_root>/LATEST``, or None."""
    latest = Path(task_root) / "LATEST"
    if not latest.exists():
        return None
    name = latest.read_text(encoding="utf-8").strip()
    io.check_name(name, f"run named in {latest}")
    path = Path(task_root) / name
    return path if path.is_dir() else None


def _unfinished_run(root: Path) -> Path | None:
    candidates = []
    for d in root.iterdir() if root.exists() else ():
        if d.is_dir() and (d / "config.json").exists():
            status = None
            if (d / "metrics.json").exists():
                try:
                    status = io.read_json(d / "metrics.json").get("status")
                except ValueError:
                    status = None
            if status != "complete":
                candidates.append(d)
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def make_run_dir(config: Config) -> tuple[Path, bool]:
    """Create (or, with ``run.resume``, find) the run directory; return (path, resumed)."""
    root = task_dir(config)
    root.mkdir(parents=True, exist_ok=True)
    if config.run.resume:
        run = root / config.run.run_id if config.run.run_id else _unfinished_run(root)
        if run is not None and run.is_dir():
            status = None
            with contextlib.suppress(ValueError, OSError):
                status = io.read_json(run / "metrics.json").get("status") if (run / "metrics.json").exists() else None
            if status == "complete":  # its resume state is gone: it would train again from scratch
                raise ConfigError(f"run directory {run} holds a complete run: nothing to resume (score it with "
                                  f"python -m scripts.evaluate --run {run}, or start a new run)")
            return run, True
        if config.run.run_id is None:
            log.warning("--resume: no unfinished %s run under %s; starting a new one", config.task, root)
    run_id = config.run.run_id or new_run_id()
    run = root / run_id
    try:
        run.mkdir(parents=False, exist_ok=False)
    except FileExistsError:
        raise ConfigError(f"run directory {run} already exists; pass --resume to continue it or choose another --run-id") from None
    return run, False


def resume_config(config: Config, run_dir: Path) -> Config:
    """The configuration a resumed run continues with: the run's own ``config.json``.

    Data, model and training settings (and the seed) come from the saved file, so
    ``--resume`` needs none of the original ``--set`` options; the ``run`` settings given
    now (output folder, verbosity, strategy) are kept. Given values that differ from the
    saved ones are listed in a warning, never applied half-way.
    """
    import dataclasses

    saved_path = Path(run_dir) / "config.json"
    if not saved_path.exists():
        return config
    try:
        saved = Config.from_dict(io.read_json(saved_path))
    except (ValueError, KerahepError) as exc:
        raise ConfigError(f"{saved_path}: cannot resume from this configuration: {exc}") from None
    if saved.task != config.task:
        raise ConfigError(f"{saved_path}: expected a {config.task} run, found one of task {saved.task!r}")
    given, kept = config.to_dict(), saved.to_dict()
    diffs = [f"{sec}.{k}={given[sec][k]!r} (saved: {kept[sec][k]!r})"
             for sec in ("data", "model", "training") for k in kept[sec] if given[sec].get(k) != kept[sec][k]]
    if config.run.seed != saved.run.seed:
        diffs.append(f"run.seed={config.run.seed!r} (saved: {saved.run.seed!r})")
    if diffs:
        log.warning("--resume continues %s with its saved configuration; ignoring %s", run_dir, "; ".join(diffs))
    return dataclasses.replace(saved, run=dataclasses.replace(config.run, seed=saved.run.seed))


def _stage_file(stage: str, stem: str, ext: str) -> str:
    return f"{stem}{ext}" if stage == "main" else f"{stem}_{stage}{ext}"


def dedupe_history(path: Path) -> None:
    """Keep one row per epoch (the last written) in a CSVLogger file, in epoch order."""
    if not path.exists():
        return
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        return
    header, body = rows[0], rows[1:]
    by_epoch = {}
    for r in body:
        if r and r != header:
            by_epoch[int(float(r[0]))] = r
    lines = [",".join(header)] + [",".join(by_epoch[k]) for k in sorted(by_epoch)]
    io.write_text(path, "\n".join(lines) + "\n")


def _best_in_history(path: Path, monitor: str, mode: str):
    """Best finite value of ``monitor`` in a history.csv, or None."""
    return _history_progress(path, monitor, mode)[0]


def _history_progress(path: Path, monitor: str, mode: str) -> tuple:
    """``(best finite value of monitor, epochs since it improved)`` over a history.csv, as
    Keras' EarlyStopping counts them (a non-finite or missing value is no improvement)."""
    import math

    best, wait = None, 0
    if not path.exists():
        return best, wait
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            try:
                v = float(row.get(monitor, "nan"))
            except ValueError:
                v = float("nan")
            if math.isfinite(v) and (best is None or (v > best if mode == "max" else v < best)):
                best, wait = v, 0
            else:
                wait += 1
    return best, wait


# --------------------------------------------------------------------- run context
class RunContext:
    """What a task's ``fit`` and ``evaluate`` see of the run in progress."""

    def __init__(self, config: Config, task, data, run_dir: Path, strategy=None, resumed=False):
        self.config = config
        self.task = task
        self.data = data
        self.run_dir = Path(run_dir)
        self.plots_dir = self.run_dir / "plots"
        self.plots_dir.mkdir(parents=True, exist_ok=True)
        self.strategy = strategy or _Strategy("none")
        self.resumed = resumed
        self.histories: dict = {}
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

    def callbacks(self, stage: str, monitor: str | None, mode: str, has_val: bool) -> list:
        import keras

        cb = [keras.callbacks.TerminateOnNaN(), _learning_rate_callback()]
        cb.append(keras.callbacks.BackupAndRestore(str(self.run_dir / "backup" / stage), double_checkpoint=True))
        cb.append(keras.callbacks.CSVLogger(str(self.run_dir / _stage_file(stage, "history", ".csv")), append=True))
        cb.append(keras.callbacks.TensorBoard(log_dir=str(self.run_dir / "tensorboard" / stage), write_graph=False,
                                              update_freq="epoch", profile_batch=0))
        if has_val and monitor:
            # On resume, the best value so far comes from history.csv, so a worse epoch
            # after the restart never replaces the best checkpoint.
            best = _best_in_history(self.run_dir / _stage_file(stage, "history", ".csv"), monitor, mode) \
                if self.resumed else None
            cb.append(_FiniteCheckpoint()(
                str(self.run_dir / "checkpoints" / f"{stage}.best.weights.h5"), monitor=monitor, mode=mode,
                save_best_only=True, save_weights_only=True, verbose=0, initial_value_threshold=best))
            if self.config.training.early_stopping:
                best_so_far, wait = _history_progress(self.run_dir / _stage_file(stage, "history", ".csv"), monitor,
                                                      mode) if self.resumed else (None, 0)
                cb.append(_ResumableEarlyStopping()(monitor=monitor, mode=mode,
                                                    patience=self.config.training.early_stopping,
                                                    resume_best=best_so_far, resume_wait=wait))
        return cb

    def fit(self, model, train=None, val="default", stage: str = "main", epochs: int | None = None,
            class_weight="default", monitor: str | None = None, mode: str | None = None,
            compile_fn=None, callbacks=(), restore_best: bool = True):
        """Compile (if needed) and fit ``model`` with the standard callbacks.

        Args:
            model: a Keras model (compiled by ``compile_fn`` or the task's ``compile`` if not yet).
            train, val: datasets (default: the run's).
            stage: name of the stage; ``main`` writes ``history.csv``, others ``history_<stage>.csv``.
            epochs: default ``config.training.epochs``.
            monitor, mode: the value whose best epoch is checkpointed (default: the task's).
            restore_best: load the best checkpoint's weights at the end.

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
            train, val = _full_batches(train), _full_batches(val)
        if not model.compiled:
            with self.strategy.scope():
                if compile_fn is not None:
                    compile_fn(model, steps)
                else:
                    self.task.compile(model, cfg, self.data, steps)
        done = self.run_dir / "stages" / f"{stage}.weights.h5"
        if self.resumed and done.exists():
            log.info("stage %s already complete; loading its weights", stage)
            model.load_weights(str(done))
            opt = getattr(model, "optimizer", None)
            if opt is not None and not opt.built:  # so the saved .keras carries a complete optimizer
                with self.strategy.scope():
                    opt.build(model.trainable_variables)
            return None
        t0 = time.perf_counter()
        history = model.fit(
            train, validation_data=val, epochs=epochs, class_weight=class_weight,
            steps_per_epoch=cfg.training.steps_per_epoch, verbose=cfg.run.verbose, shuffle=False,
            callbacks=self.callbacks(stage, monitor, mode, val is not None) + list(callbacks),
        )
        dt = time.perf_counter() - t0
        dedupe_history(self.run_dir / _stage_file(stage, "history", ".csv"))
        losses = history.history.get("loss", [])
        if getattr(model, "stop_training", False) and losses and not all(map(_finite, losses[-1:])):
            raise TrainingDiverged(f"stage {stage!r} of {cfg.task}: the loss became {losses[-1]} at epoch "
                                   f"{len(losses)}; start a new run with a lower training.learning_rate (--resume keeps "
                                   f"the run's saved settings) or check the inputs for NaN")
        if any(not _finite(v) for v in losses):
            raise TrainingDiverged(f"stage {stage!r} of {cfg.task}: non-finite loss {losses}")
        best = self.run_dir / "checkpoints" / f"{stage}.best.weights.h5"
        if restore_best and best.exists() and val is not None:
            model.load_weights(str(best))
        done.parent.mkdir(exist_ok=True)
        with io.atomic_path(done, suffix=".weights.h5") as tmp:
            model.save_weights(str(tmp))
        self.histories[stage] = history.history
        self.timing["fit_seconds"] += dt
        n = self.data.info.get("n_train")
        if n and cfg.training.steps_per_epoch:  # a capped epoch sees at most steps x batch samples
            n = min(n, cfg.training.steps_per_epoch * cfg.training.batch_size)
        if n:
            self.timing["train_samples_seen"] += n * len(losses)
        return history


def _full_batches(ds):
    """``ds`` without a partial last batch (multi-process runs; None stays None).

    Keras splits each global batch between the processes; a short last batch would give
    one process a step the others never take, and the collective would wait forever.
    """
    if ds is None:
        return None
    try:
        from tensorflow.python.data.experimental.ops.distribute import compute_batch_size

        batch = int(compute_batch_size(ds))
    except Exception as exc:  # not a batched tf.data dataset: Keras reports what it needs
        batch, reason = -1, f"{type(exc).__name__}: {exc}"
    else:
        reason = "its batch size is unknown"
    if batch <= 0:
        log.warning("multi-process run: cannot drop the partial last batch of %s (%s); a short last batch "
                    "would leave the processes a step apart", ds, reason)
        return ds
    return ds.rebatch(batch, drop_remainder=True)


@functools.cache
def _FiniteCheckpoint():  # noqa: N802 - returns a class (Keras is imported lazily)
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
            if logs is not None and "loss" in logs and not _finite(logs["loss"]):
                return
            super().on_epoch_end(epoch, logs)
            if os.path.exists(self.filepath):
                os.replace(self.filepath, self.final_path)

    return FiniteCheckpoint


@functools.cache
def _ResumableEarlyStopping():  # noqa: N802 - returns a class (Keras is imported lazily)
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


def _learning_rate_callback():
    import keras

    class LearningRateToLogs(keras.callbacks.Callback):
        """Put the current learning rate into the epoch logs (for history.csv)."""

        def on_epoch_end(self, epoch, logs=None):
            opt = getattr(self.model, "optimizer", None)
            if logs is not None and opt is not None and hasattr(opt, "learning_rate"):
                logs["learning_rate"] = float(keras.ops.convert_to_numpy(opt.learning_rate))

    return LearningRateToLogs()



def _finite(v) -> bool:
    import math

    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------------- train
def train(config: Config) -> RunResult:
    """Run the task of ``config`` end to end and write its run directory.

    Returns:
        RunResult with the run directory, metrics and the trained models.

    Raises:
        KerahepError: for user mistakes (bad data, bad configuration) and diverged runs.
    """
    import keras

    from .registry import get_task

    task = get_task(config.task)
    _join_processes(config.run.strategy)  # before anything touches the JAX backend
    if config.run.resume and _num_processes_configured() > 1:
        raise ConfigError("--resume of a multi-process run is not supported: only process 0 keeps resume state, "
                          "so the other workers would start afresh and the processes would drift apart; start a "
                          "new run (or resume it as a single process)")
    if not is_chief():  # other workers of a multi-worker run: same work, artifacts in scratch space
        import tempfile

        config = config.set("run.output_dir", tempfile.mkdtemp(prefix="kerahep-worker-"))
    run_dir, resumed = make_run_dir(config)
    if resumed:
        config = resume_config(config, run_dir)
    set_seed(config.run.seed)
    precision = resolve_precision(config.training.precision)
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    status = {"status": "running"}
    try:
        io.write_json(run_dir / "config.json", config.to_dict())
        strategy = make_strategy(config.run.strategy)
        data = task.load_data(config)
        from .data.fingerprint import data_fingerprint

        fingerprint = data_fingerprint(data)  # checked by evaluate_run before rebuilding the test split
        if data.source == "synthetic":
            log.warning("No input files given: training %s on its built-in SYNTHETIC twin (%s).",
                        config.task, ", ".join(str(p) for p in data.paths))
        ctx = RunContext(config, task, data, run_dir, strategy, resumed)
        t0 = time.perf_counter()
        try:
            models = task.fit(ctx)
        except TrainingDiverged as exc:
            status = {"status": "failed", "reason": str(exc)}
            raise
        wall = time.perf_counter() - t0
        for name, model in models.items():
            io.save_model(model, run_dir / f"{name}.keras")
        t1 = time.perf_counter()
        test = task.evaluate(ctx, models, data)
        eval_s = time.perf_counter() - t1
        from . import plotting

        for stage, hist in ctx.histories.items():
            plotting.history(hist, ctx.plots_dir / _stage_file(stage, "history", ".png"))
        timing = {
            "train_seconds": round(wall, 3),
            "fit_seconds": round(ctx.timing["fit_seconds"], 3),
            "evaluate_seconds": round(eval_s, 3),
            "train_samples_per_second": round(ctx.timing["train_samples_seen"] / ctx.timing["fit_seconds"], 2)
            if ctx.timing["fit_seconds"] > 0 and ctx.timing["train_samples_seen"] else None,
        }
        metrics = {
            "task": config.task,
            "model": task.describe_model(config),
            "preset": config.preset,
            "status": "complete",
            "data": {**data.describe(), "fingerprint": fingerprint},
            "test": _plain(test),
            "timing": timing,
            "environment": {"backend": keras.backend.backend(), "precision": precision,
                            "strategy": strategy.name, "replicas": strategy.num_replicas,
                            "processes": strategy.num_processes,
                            "keras": keras.__version__, "seed": config.run.seed, "resumed": resumed},
        }
        io.write_json(run_dir / "metrics.json", metrics)
        _log_plots_to_tensorboard(run_dir)
        io.write_text(run_dir.parent / "LATEST", run_dir.name + "\n")
        status = {"status": "complete"}
        for scratch in ("backup", "stages"):  # resume state, useless once the run is complete
            shutil.rmtree(run_dir / scratch, ignore_errors=True)
        return RunResult(run_dir=run_dir, config=config, metrics=metrics, models=models)
    except BaseException as exc:
        if status.get("status") != "complete":
            failed = {"task": config.task, "status": "failed",
                      "reason": status.get("reason") or f"{type(exc).__name__}: {exc}"}
            with contextlib.suppress(Exception):
                if not (run_dir / "metrics.json").exists() or io.read_json(run_dir / "metrics.json").get("status") != "complete":
                    io.write_json(run_dir / "metrics.json", failed)
        raise
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _plain(d):
    """Metrics as plain JSON values (drop arrays that belong in plots)."""
    import numpy as np

    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out[k] = _plain(v)
        elif isinstance(v, np.ndarray):
            out[k] = v.tolist()
        elif isinstance(v, np.generic):
            out[k] = v.item()
        else:
            out[k] = v
    return out


def _log_plots_to_tensorboard(run_dir: Path) -> None:
    """Write every plot of the run into TensorBoard as an image summary."""
    plots = sorted((run_dir / "plots").glob("*.png"))
    if not plots:
        return
    try:
        import numpy as np
        import tensorflow as tf
        from PIL import Image
    except ImportError:  # pragma: no cover
        return
    writer = tf.summary.create_file_writer(str(run_dir / "tensorboard" / "evaluation"))
    with writer.as_default():
        for p in plots:
            img = np.asarray(Image.open(p).convert("RGBA"))[None]
            tf.summary.image(p.stem, img, step=0)
    writer.flush()
    writer.close()
