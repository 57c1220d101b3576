"""jet_ssl benchmarks: streaming memory and input-pipeline throughput.

Rows (ratios measured side by side in one run):

* ``peak memory, SimCLR pre-training, 4x larger file``: peak resident memory of a
  pre-training epoch streamed from an unlabelled file with four times the jets, against
  the smaller file (target <= 1.2: the reader streams). Each epoch runs in its own
  subprocess, whose peak its launcher reads (``run_child(..., launcher=True)``).
* ``pre-training throughput, HDF5 pipeline vs in-memory``: jets per second of SimCLR
  pre-training of the default preset's encoder fed by :class:`kerahep.data.jets.JetStream`
  against the same jets as one in-memory array in ``tf.data`` (target >= 0.95); the median
  epoch of each, timed in ABBA order so that a drift in the machine's load hits both. The
  reader's cost is mostly inflating gzip chunks: installing ``zlib-ng`` (or ``isal``) cuts
  it about three-fold (see :mod:`kerahep.data.jets`).

* the reader rows of :mod:`kerahep.benchmarks.readers`: a shuffled epoch of
  :class:`~kerahep.data.jets.JetStream` against the same batches from memory (target >= 0.9),
  its rate against direct chunk reads inflated with zlib-ng on the same threads (target
  >= 0.5), its rate with 1 and 2 decode threads, and whether this machine allows the two
  targets at all (the limit against the in-memory epoch).

Run with ``python -m scripts.benchmark --task jet_ssl [--quick]``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from . import Row, ratio_row, run_child

TASK = "jet_ssl"
#: a small encoder for the memory rows (the memory of streaming does not depend on it)
MEMORY_ENCODER = {"widths": (4, 8), "blocks": (1, 1)}


def _simclr(widths, blocks, scales=None, seed: int = 0):
    import keras

    from ..models.encoders import build_encoder, jet_augmenter
    from ..models.simclr import SimCLR

    keras.utils.set_random_seed(seed)
    enc = build_encoder("resnet18", widths=tuple(widths), blocks=tuple(blocks), channel_scales=scales)
    model = SimCLR(enc, jet_augmenter(seed=seed), projection_dim=32, projection_hidden=64, temperature=0.2)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


def pretrain_epoch(path, batch_size: int = 32, shuffle_buffer: int = 64, widths=(4, 8), blocks=(1, 1)) -> dict:
    """One streamed SimCLR epoch over an unlabelled file; returns jets and seconds (runs in a child
    under a launcher, which adds the child's peak, ``peak_rss``)."""
    from ..data.jets import JetStream

    stream = JetStream([(path, None)])
    ds = stream.dataset(batch_size, shuffle=True, seed=0, shuffle_buffer=shuffle_buffer, drop_remainder=True,
                        with_targets=False)
    model = _simclr(widths, blocks)
    t0 = time.perf_counter()
    model.fit(ds, epochs=1, verbose=0)
    dt = time.perf_counter() - t0
    return {"jets": len(stream) // batch_size * batch_size, "seconds": dt}


def memory_rows(workdir: Path, quick: bool) -> list[Row]:
    from ..data.synthetic.jets import write_jet_file

    n = 64 if quick else 256
    batch, buffer = 16, 32
    small = write_jet_file(workdir / f"unlabelled_{n}.h5", n, seed=1)
    large = write_jet_file(workdir / f"unlabelled_{4 * n}.h5", 4 * n, seed=2)
    # the launcher gives each child's own peak (its own ru_maxrss would start at this process's)
    rep_small, rep_large = (run_child(pretrain_epoch, path, batch, buffer, MEMORY_ENCODER["widths"],
                                      MEMORY_ENCODER["blocks"], launcher=True) for path in (small, large))
    rss_small, rss_large = rep_small["peak_rss"] / 2 ** 20, rep_large["peak_rss"] / 2 ** 20
    raw_small = n * 125 * 125 * 8 * 4 / 2 ** 20
    # what a reader that loads the file would show: the extra 3n jets on top of the small run
    full_load = (rss_small + 3 * raw_small) / rss_small
    return [ratio_row(TASK, "peak memory, SimCLR pre-training, 4x larger file", rss_small, rss_large, "MB",
                      target=1.2, higher_is_better=False,
                      notes=f"{n} vs {4 * n} jets ({raw_small:.0f} vs {4 * raw_small:.0f} MB as float32); "
                            f"batch {batch}, shuffle buffer {buffer}; each epoch in its own process; "
                            f"loading the files would give about {full_load:.2f}",
                      jets=[n, 4 * n], seconds=[rep_small["seconds"], rep_large["seconds"]],
                      full_load_ratio_estimate=full_load)]


def throughput_rows(workdir: Path, quick: bool) -> list[Row]:
    import numpy as np
    import tensorflow as tf

    from ..data.batches import PREFETCH, no_autotune
    from ..data.jets import JetStream, channel_scales, inflate_function
    from ..data.synthetic.jets import write_jet_file
    from ..registry import get_task

    cfg = get_task(TASK).preset()
    widths = cfg.model.widths
    blocks = tuple(cfg.model.blocks) or (2,) * len(widths)
    n = 128 if quick else 256
    batch = 32
    path = write_jet_file(workdir / f"throughput_{n}.h5", n, seed=3)
    stream = JetStream([(path, None)])
    scales = channel_scales(stream)
    piped = stream.dataset(batch, shuffle=True, seed=0, shuffle_buffer=cfg.data.shuffle_buffer, drop_remainder=True,
                           with_targets=False)
    array = stream.read_all()
    # tf.data's autotuning off on both sides (the pipeline's is, kerahep.data.batches.no_autotune):
    # its end-of-epoch wait would otherwise slow only the in-memory epochs
    memory = (tf.data.Dataset.from_tensor_slices(array).shuffle(cfg.data.shuffle_buffer, seed=0)
              .batch(batch, drop_remainder=True).prefetch(PREFETCH).with_options(no_autotune()))
    models = {"pipeline": _simclr(widths, blocks, scales), "memory": _simclr(widths, blocks, scales)}
    data = {"pipeline": piped, "memory": memory}
    for k in models:  # warm-up: tracing, first reads
        models[k].fit(data[k], epochs=1, verbose=0, steps_per_epoch=2)
    rounds = 2 if quick else 10
    times = {k: [] for k in models}
    for r in range(rounds):  # ABBA order: a drift in the machine's load hits both alike
        for k in (("pipeline", "memory") if r % 2 == 0 else ("memory", "pipeline")):
            t0 = time.perf_counter()
            models[k].fit(data[k], epochs=1, verbose=0)
            times[k].append(time.perf_counter() - t0)
    jets = n // batch * batch
    rate = {k: jets / float(np.median(v)) for k, v in times.items()}
    pairs = [m / p for p, m in zip(times["pipeline"], times["memory"])]
    del array
    return [ratio_row(TASK, "pre-training throughput, HDF5 pipeline vs in-memory", rate["memory"], rate["pipeline"],
                      "jets/s", target=0.95,
                      notes=f"SimCLR, ResNet-18 widths {tuple(widths)}, batch {batch}, {jets} jets per epoch, "
                            f"median of {rounds} epochs each in ABBA order; inflate: {inflate_function().__module__}",
                      encoder_widths=list(widths), jets=jets, pair_ratios=[round(x, 4) for x in pairs])]


def reader_rows(workdir: Path, quick: bool) -> list[Row]:
    """The reader rows of :mod:`kerahep.benchmarks.readers` on a labelled twin file (gzip, whole
    images per chunk: the layout the direct chunk reads decode)."""
    from ..data.jets import JetStream, read_targets
    from ..data.synthetic.jets import write_jet_file
    from .readers import inflate_limit
    from .readers import reader_rows as rows

    n, batch, window = (192, 32, 64) if quick else (768, 64, 256)
    path = write_jet_file(workdir / f"reader_{n}.h5", n, seed=4, labelled=True, chunk_rows=4)
    targets = read_targets(path)

    def stream(threads=None, cache=False):
        return JetStream([(path, None)], targets=targets, read_threads=threads).dataset(
            batch, shuffle=True, seed=0, shuffle_buffer=window, cache=cache)

    return rows(TASK, "jets/s", stream(), stream(cache=True), stream, lambda threads: inflate_limit([path], "jet", threads),
                quick, notes=f"{n} labelled jets (125 x 125 x 8, gzip, 4 per chunk), batch {batch}, "
                                         f"mixing window {window}",
                limit_notes="read_direct_chunk + zlib-ng inflate of every chunk of jet")


def run(quick: bool = False, workdir=None) -> list[Row]:
    """Measure the jet_ssl rows (see the module docstring); ``quick`` uses smaller files."""
    workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="kerahep-bench-jet_ssl-"))
    workdir.mkdir(parents=True, exist_ok=True)
    return reader_rows(workdir, quick) + memory_rows(workdir, quick) + throughput_rows(workdir, quick)
