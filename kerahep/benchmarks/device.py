"""Training on the accelerator, fed by the streamed readers against in-memory data, with mixed
precision: the GPU check of issue 18, prepared so that a session lent a GPU runs one command,
``python -m scripts.benchmark --task device`` (never part of the default run).

Rows (ratios measured side by side in one run, on the synthetic twins' files):

* ``electron_photon ResNet-15 training on the device, streamed vs in-memory``: crops per second
  of ``steps`` training steps of the default ResNet-15 fed by the streamed
  :class:`~kerahep.data.calo.CaloReader` (gzip chunks inflated on the decode threads) against the
  same training split held as tensors in memory (target >= 0.95: the reader keeps the device busy);
* ``hcal_dqm ViT training on the device, memmap vs in-memory``: the same for the default ViT fed
  by the memory-mapped runs (target >= 0.95).

The precision is kerahep's ``auto`` (:func:`kerahep.training.distribution.resolve_precision`):
``mixed_bfloat16`` on a GPU of compute capability 8 or more, ``mixed_float16`` on older ones,
``float32`` without a GPU. Keras prefetches the batches of both sides to the device, so the
in-memory side is what tensors already in memory give. Without an accelerator the rows are
measured on the CPU and say so in their notes (a smoke run: on two cores the networks hide the
readers). Each pair alternates (:func:`kerahep.benchmarks.step_rates`); steps cross epoch
boundaries (``repeat``), so a streamed epoch's start-up is in its rate.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from . import Row, ratio_row, step_rates

TASK = "device"

#: sizes by ``quick``: crops per class (electron_photon), lumisections per run (hcal_dqm),
#: training steps per timing and timings (best of)
SIZES = {True: {"crops": 1500, "maps": 500, "steps": 10, "repeats": 2},
         False: {"crops": 6000, "maps": 2000, "steps": 100, "repeats": 3}}


def device_name() -> str:
    """The accelerator the rows ran on, in words (``CPU (no GPU visible)`` without one)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU (no GPU visible)"
    try:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name") or gpus[0].name
    except Exception:  # pragma: no cover - details are informative only
        name = gpus[0].name
    return f"{len(gpus)} x {name}"


@contextlib.contextmanager
def precision(policy: str):
    """Keras's global dtype policy set to ``policy`` inside the block, restored after it."""
    import keras

    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def _notes(device: str, policy: str, batch: int, size: dict, what: str) -> str:
    from ..data.batches import decode_threads

    return (f"{device}; precision {policy}; {what}; batch {batch}, {size['steps']} steps, best of "
            f"{size['repeats']}, alternating; {decode_threads()} decode threads")


def electron_photon_row(workdir: Path, size: dict, policy: str, device: str) -> Row:
    import tensorflow as tf

    from ..data.batches import PREFETCH, no_autotune
    from .electron_photon import BATCH, SHUFFLE, calo_reader, keras_model, twin_paths

    reader = calo_reader(twin_paths(workdir, size["crops"]))
    x, y = reader.read("train")
    data = {"streamed": reader.dataset("train", BATCH, shuffle=True, cache=False, shuffle_buffer=SHUFFLE),
            "memory": (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0).batch(BATCH)
                       .prefetch(PREFETCH).with_options(no_autotune()))}
    with precision(policy):
        models = {k: keras_model() for k in data}
        rate = step_rates(models, data, size["steps"], size["repeats"], BATCH)
    return ratio_row(TASK, "electron_photon ResNet-15 training on the device, streamed vs in-memory", rate["memory"],
                     rate["streamed"], "crops/s", target=0.95,
                     notes=_notes(device, policy, BATCH, size, f"default ResNet-15 with augmentation, train split "
                                                               f"{len(x)} crops (gzip files)"))


def hcal_dqm_row(workdir: Path, size: dict, policy: str, device: str) -> Row:
    from .hcal_dqm import BATCH, train_datasets, twin_paths, vit_model

    _, data, x = train_datasets(twin_paths(workdir, size["maps"]))
    adapt = x[:: max(1, len(x) // 1000)]
    with precision(policy):
        models = {k: vit_model("vit", adapt) for k in data}
        rate = step_rates(models, data, size["steps"], size["repeats"], BATCH)
    return ratio_row(TASK, "hcal_dqm ViT training on the device, memmap vs in-memory", rate["memory"],
                     rate["memmap"], "maps/s", target=0.95,
                     notes=_notes(device, policy, BATCH, size, f"default ViT, 2 runs x {size['maps']} maps "
                                                               f"(float64 .npy files)"))


def run(quick: bool = False, workdir=None) -> list[Row]:
    """Measure the rows of the module docstring; ``quick`` uses the small :data:`SIZES`."""
    from ..training.distribution import resolve_precision

    workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="kerahep-bench-device-"))
    workdir.mkdir(parents=True, exist_ok=True)
    size, policy, device = SIZES[bool(quick)], resolve_precision("auto"), device_name()
    return [electron_photon_row(workdir, size, policy, device), hcal_dqm_row(workdir, size, policy, device)]
