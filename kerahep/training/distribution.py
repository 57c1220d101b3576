"""Devices, precision and distribution: tf.distribute strategies on TensorFlow, Keras
distribution (``DataParallel``) on JAX, behind one small :class:`Strategy` face.
"""

from __future__ import annotations

import contextlib
import os

from ..errors import ConfigError

log = __import__("logging").getLogger("kerahep")


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


class Strategy:
    """A uniform face over tf.distribute strategies and Keras (JAX) distribution."""

    def __init__(self, name: str, tf_strategy=None, replicas: int = 1, processes: int = 1):
        self.name = name
        self.tf_strategy = tf_strategy
        self.num_replicas = replicas
        self.num_processes = processes

    def scope(self):
        return self.tf_strategy.scope() if self.tf_strategy is not None else contextlib.nullcontext()


def make_strategy(name: str) -> Strategy:
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
        return Strategy("none")
    if backend == "tensorflow":
        import tensorflow as tf

        if name == "auto":
            if len(tf.config.list_logical_devices("GPU")) > 1:
                name = "mirrored"
            else:
                return Strategy("none")
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
        return Strategy(name, s, s.num_replicas_in_sync)
    if backend == "jax":
        join_processes(name)
        devices = keras.distribution.list_devices()
        if name == "auto" and len(devices) < 2:
            return Strategy("none")
        if name in ("auto", "data_parallel", "mirrored"):
            import jax

            keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
            return Strategy("data_parallel", None, len(devices), jax.process_count())
        raise ConfigError(f"run.strategy={name!r} is not available on the JAX backend; use data_parallel")
    if name == "auto":
        return Strategy("none")
    raise ConfigError(f"run.strategy={name!r} is not available on the {backend} backend; use none")


_JOINED = False


def join_processes(name: str) -> None:
    """Multi-process JAX: join the other processes named by ``KERAS_DISTRIBUTION_*`` (once).

    Must run before anything initialises the JAX backend (even ``jax.devices()``), so
    :func:`train` calls it first. Cross-process collectives between CPU devices go
    through gloo over TCP, the default of ``jax_cpu_collectives_implementation`` in
    current JAX; an older JAX without that default gets it set here.
    """
    global _JOINED
    import keras

    if name == "none" or keras.backend.backend() != "jax" or not num_processes_configured():
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


def num_processes_configured() -> int:
    """``KERAS_DISTRIBUTION_NUM_PROCESSES`` (0 when unset)."""
    try:
        return int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES") or 0)
    except ValueError:
        raise ConfigError("KERAS_DISTRIBUTION_NUM_PROCESSES must be an integer, got "
                          f"{os.environ['KERAS_DISTRIBUTION_NUM_PROCESSES']!r}") from None


def is_chief() -> bool:
    """False on the non-chief workers of a multi-worker run (they write to scratch space).

    The chief is process 0 of a multi-process JAX run (``KERAS_DISTRIBUTION_PROCESS_ID``
    with ``KERAS_DISTRIBUTION_NUM_PROCESSES``), or the chief (else worker 0) of ``TF_CONFIG``.
    """
    import json

    if num_processes_configured() and os.environ.get("KERAS_DISTRIBUTION_PROCESS_ID"):
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


def full_batches(ds):
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
