"""Training on the accelerator, fed by the streamed readers against in-memory data, with mixed
precision: the GPU check of issue 18, prepared so that a session lent a GPU runs one command,
``python -m scripts.benchmark --task device`` (never part of the default run).

Rows (ratios measured side by side in one run, on the synthetic twins' files), per model:

* ``electron_photon ResNet-15 training on the device, streamed vs in-memory``: crops per second
  of ``steps`` training steps of the default ResNet-15 fed by the streamed
  :class:`~kerahep.data.calo.CaloReader` (gzip chunks inflated on the decode threads) as
  ``model.fit`` feeds it in training, against the same training split held in memory and
  prefetched to the device (``tf.data.experimental.prefetch_to_device``), so that the baseline
  is tensors waiting in device memory (target >= 0.95: the reader keeps the device busy);
* ``electron_photon ResNet-15 training, streamed prefetched to the device vs as model.fit feeds
  it`` (no target): on one device Keras uses TensorFlow's default strategy, which does not
  prefetch to the device (each step copies its batch), so this row says whether prefetching
  to the device would close a gap in the first one;
* the same two rows for the default hcal_dqm ViT fed by the memory-mapped runs.

The precision is kerahep's ``auto`` (:func:`kerahep.training.distribution.resolve_precision`):
``mixed_bfloat16`` on a GPU of compute capability 8 or more, ``mixed_float16`` on older ones,
``float32`` without a GPU. Without an accelerator the rows are measured on the CPU and say so in
their notes (a smoke run: on two cores the networks hide the readers). Each set of sides
alternates (:func:`kerahep.benchmarks.step_rates`); steps cross epoch boundaries (``repeat``),
so a streamed epoch's start-up is in its rate. Should ``prefetch_to_device`` fail on the
machine, the first row is measured without it and its notes say so, rather than losing the
run.
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


def target_device() -> str:
    """The device the in-memory batches wait on: the first GPU, or the CPU without one."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return gpus[0].name if gpus else "/device:CPU:0"


def _notes(device: str, policy: str, batch: int, size: dict, what: str) -> str:
    from ..data.batches import decode_threads

    return (f"{device}; precision {policy}; {what}; batch {batch}, {size['steps']} steps, best of "
            f"{size['repeats']}, alternating; {decode_threads()} decode threads")


def training_rows(label: str, unit: str, models, data: dict, size: dict, batch: int, notes: str) -> list[Row]:
    """The rows of one model: ``models(names)`` builds one compiled model per side name; ``data``
    holds ``streamed`` (fed as ``model.fit`` feeds it) and ``memory``; a third side, the streamed
    batches prefetched to the device, is added here.

    Row 1 (target >= 0.95): streamed against the in-memory batches prefetched to the device, so
    the baseline is tensors in device memory. Row 2 (no target): the streamed batches prefetched
    to the device against the same fed as training feeds them, which says whether prefetching
    to the device would close a gap in row 1. Should ``prefetch_to_device`` fail on the
    machine, the two sides are measured as ``model.fit`` feeds them, row 2 is left out and row
    1's notes give the error."""
    import tensorflow as tf

    device, name = target_device(), f"{label} training on the device, streamed vs in-memory"
    sides = {**data, "streamed_on_device": data["streamed"]}
    built = models(sides)
    try:
        rate = step_rates(built, sides, size["steps"], size["repeats"], batch,
                          devices={"memory": device, "streamed_on_device": device})
    except (tf.errors.OpError, NotImplementedError, ValueError, TypeError, RuntimeError) as e:
        rate = step_rates({k: built[k] for k in data}, data, size["steps"], size["repeats"], batch)
        first = (str(e).strip().splitlines() or [""])[0]
        return [ratio_row(TASK, name, rate["memory"], rate["streamed"], unit, target=0.95,
                          notes=f"{notes}; in-memory batches fed as model.fit feeds them: prefetch_to_device"
                                f"({device}) failed ({type(e).__name__}: {first[:200]})")]
    return [ratio_row(TASK, name, rate["memory"], rate["streamed"], unit, target=0.95,
                      notes=f"{notes}; in-memory batches prefetched to {device}"),
            ratio_row(TASK, f"{label} training, streamed prefetched to the device vs as model.fit feeds it",
                      rate["streamed"], rate["streamed_on_device"], unit,
                      notes=f"{notes}; prefetch_to_device({device})")]


def electron_photon_rows(workdir: Path, size: dict, policy: str, device: str) -> list[Row]:
    import tensorflow as tf

    from ..data.batches import PREFETCH, no_autotune
    from .electron_photon import BATCH, SHUFFLE, calo_reader, keras_model, twin_paths

    reader = calo_reader(twin_paths(workdir, size["crops"]))
    x, y = reader.read("train")
    data = {"streamed": reader.dataset("train", BATCH, shuffle=True, cache=False, shuffle_buffer=SHUFFLE),
            "memory": (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0).batch(BATCH)
                       .prefetch(PREFETCH).with_options(no_autotune()))}
    with precision(policy):
        return training_rows("electron_photon ResNet-15", "crops/s", lambda sides: {k: keras_model() for k in sides},
                             data, size, BATCH,
                             _notes(device, policy, BATCH, size, f"default ResNet-15 with augmentation, train "
                                                                 f"split {len(x)} crops (gzip files)"))


def hcal_dqm_rows(workdir: Path, size: dict, policy: str, device: str) -> list[Row]:
    from .hcal_dqm import BATCH, train_datasets, twin_paths, vit_model

    _, data, x = train_datasets(twin_paths(workdir, size["maps"]))
    data = {"streamed": data["memmap"], "memory": data["memory"]}
    adapt = x[:: max(1, len(x) // 1000)]
    with precision(policy):
        return training_rows("hcal_dqm ViT", "maps/s", lambda sides: {k: vit_model("vit", adapt) for k in sides},
                             data, size, BATCH,
                             _notes(device, policy, BATCH, size, f"default ViT, 2 runs x {size['maps']} maps "
                                                                 f"(float64 .npy files, memory-mapped)"))


def run(quick: bool = False, workdir=None) -> list[Row]:
    """Measure the rows of the module docstring; ``quick`` uses the small :data:`SIZES`."""
    from ..training.distribution import resolve_precision

    workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="kerahep-bench-device-"))
    workdir.mkdir(parents=True, exist_ok=True)
    size, policy, device = SIZES[bool(quick)], resolve_precision("auto"), device_name()
    return electron_photon_rows(workdir, size, policy, device) + hcal_dqm_rows(workdir, size, policy, device)
