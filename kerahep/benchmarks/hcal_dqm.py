"""hcal_dqm benchmarks: memory-mapped input pipeline, streaming memory, ViT against MoE-ViT.

Rows (ratios measured side by side in one run, on the synthetic twin's files):

* the reader rows of :mod:`kerahep.benchmarks.readers`: a shuffled epoch read from the
  memory-mapped ``.npy`` files (:func:`kerahep.data.hcal.make_dataset`, no cache) against the
  same batches from memory (its cache; target >= 0.9), its rate against a plain memory copy
  of the maps on the same threads (target >= 0.5), its rate with 1 and 2 threads, and
  whether this machine allows the two targets at all (the limit against the in-memory epoch).
* ``ViT training, memmap vs in-memory``: maps per second of training the default ViT fed
  by each (target >= 0.95: the reader is not the bottleneck).
* ``peak memory, memmap epoch, 4x more lumisections``: peak resident memory of one
  streamed epoch over runs four times longer (target <= 1.2: the reader streams;
  each epoch in its own process, whose peak its launcher reads:
  ``run_child(..., launcher=True)``).
* ``memory added, memmap epoch vs loading the runs``: peak memory added by a streamed
  epoch over the longer runs against loading them into memory as float32 (target <= 0.5):
  that peak minus the same process's resident memory before the epoch (or the load).
* ``training throughput, moe_vit vs vit``: maps per second of the default MoE-ViT
  against the default ViT (same width and depth), the price of routing on this machine.

Run with ``python -m scripts.benchmark --task hcal_dqm [--quick]``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from . import Row, ratio_row, rss_mb, run_child, step_rates, time_epoch

TASK = "hcal_dqm"
BATCH = 64
SHUFFLE = 512


def twin_paths(workdir: Path, n: int) -> list[str]:
    from ..data.synthetic.hcal import ensure_twin

    return ensure_twin(workdir / f"twin_{n}", n_lumisections=n, anomaly_fraction=0.0, seed=0)["paths"]


def train_datasets(paths):
    import tensorflow as tf

    from ..data import hcal
    from ..data.batches import PREFETCH, no_autotune

    runs = hcal.open_runs(paths, validate=False)
    segments = [(r, 0, n) for r, n in enumerate(runs.sizes)]
    streamed = hcal.make_dataset(runs, segments, BATCH, training=True, seed=0, cache=False, shuffle_buffer=SHUFFLE)
    x = np.concatenate([runs.read(r, 0, n) for r, n in enumerate(runs.sizes)])
    y = np.concatenate([np.full(n, r, np.float32) for r, n in enumerate(runs.sizes)])
    memory = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(SHUFFLE, seed=0, reshuffle_each_iteration=True)
              .batch(BATCH).prefetch(PREFETCH).with_options(no_autotune()))  # as the reader's
    return runs, {"memmap": streamed, "memory": memory}, x


def vit_model(variant: str, adapt):
    import keras

    from ..models.vit import build_moe_vit, build_vit
    from ..registry import get_task

    m = get_task(TASK).preset("moe_vit" if variant == "moe_vit" else "default").model

    keras.utils.set_random_seed(0)
    common = dict(patch_size=m.patch, dim=m.dim, depth=m.depth, num_heads=m.num_heads, mlp_ratio=m.mlp_ratio,
                  dropout=m.dropout, log_scale=m.log_scale, adapt_data=adapt)
    if variant == "moe_vit":
        model = build_moe_vit(adapt.shape[1:], num_experts=m.num_experts, top_k=m.top_k,
                              capacity_factor=m.capacity_factor, aux_loss_weight=m.aux_loss_weight,
                              moe_every=m.moe_every, **common)
    else:
        model = build_vit(adapt.shape[1:], **common)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="binary_crossentropy")
    return model


def copy_limit(runs, threads: int):
    """The physical limit of memory-mapped runs: a plain memory copy of every map (the file's own
    dtype), split over ``threads`` threads; returns a function that copies them once (the maps).

    The destinations are allocated once, here, and touched, as the reader reuses its window
    buffers: a fresh allocation per copy would time the kernel zeroing new pages (and glibc's
    choice of whether to reuse freed memory), not the copy."""
    from concurrent.futures import ThreadPoolExecutor

    outs = [np.ones(r.array.shape, r.array.dtype) for r in runs.runs]

    def run() -> int:
        with ThreadPoolExecutor(threads) as pool:
            for r, out in zip(runs.runs, outs):
                step = -(-len(r) // threads)
                list(pool.map(lambda s, r=r, out=out, k=step: np.copyto(out[s:s + k], r.array[s:s + k]),
                              range(0, len(r), step)))
        return int(sum(runs.sizes))

    return run


def reader_rows(workdir: Path, quick: bool) -> list[Row]:
    """The reader rows of :mod:`kerahep.benchmarks.readers` on the twin's memory-mapped runs."""
    from ..data import hcal
    from .readers import reader_rows as rows

    n = 1000 if quick else 4000
    runs = hcal.open_runs(twin_paths(workdir, n), validate=False)
    segments = [(r, 0, k) for r, k in enumerate(runs.sizes)]

    def stream(threads=None, cache=False):
        return hcal.make_dataset(runs, segments, BATCH, training=True, seed=0, cache=cache, shuffle_buffer=SHUFFLE,
                                 decode_threads=threads)

    return rows(TASK, "maps/s", stream(), stream(cache=True), stream, lambda threads: copy_limit(runs, threads),
                quick, notes=f"2 runs x {n} maps (64 x 72, float64 files read as float32), batch {BATCH}, "
                                         f"mixing window {SHUFFLE}",
                limit_notes="np.copyto of every map out of the memory maps")


def pipeline_rows(workdir: Path, quick: bool) -> list[Row]:
    n = 500 if quick else 2000
    runs, data, x = train_datasets(twin_paths(workdir, n))
    rows = []
    steps = 10 if quick else 30
    adapt = x[:: max(1, len(x) // 1000)]
    models = {"memmap": vit_model("vit", adapt), "memory": vit_model("vit", adapt)}
    repeats = 2 if quick else 3
    train = step_rates(models, data, steps, repeats, BATCH)
    rows.append(ratio_row(TASK, "ViT training, memmap vs in-memory", train["memory"], train["memmap"], "maps/s",
                          target=0.95, notes=f"default ViT, batch {BATCH}, {steps} steps, best of {repeats}"))
    vit_vs_moe = {"vit": vit_model("vit", adapt), "moe_vit": vit_model("moe_vit", adapt)}
    rate = step_rates(vit_vs_moe, {"vit": data["memory"], "moe_vit": data["memory"]}, steps, repeats, BATCH)
    rows.append(ratio_row(TASK, "training throughput, moe_vit vs vit", rate["vit"], rate["moe_vit"], "maps/s",
                          notes=f"default presets (dim 64, depth 4; MoE: 4 experts, top-2, every 2nd block), "
                                f"in-memory data, batch {BATCH}, {steps} steps, best of {repeats}",
                          params={k: int(m.count_params()) for k, m in vit_vs_moe.items()}))
    return rows


# ------------------------------------------------------------------------ memory rows
def stream_epoch(paths) -> dict:
    """One streamed training epoch over ``paths`` (no model); this process's resident memory
    before the epoch in MB (runs in a child under a launcher, which adds the peak, ``peak_rss``)."""
    from ..data import hcal

    runs = hcal.open_runs(paths, validate=False)
    segments = [(r, 0, n) for r, n in enumerate(runs.sizes)]
    ds = hcal.make_dataset(runs, segments, BATCH, training=True, seed=0, cache=False, shuffle_buffer=SHUFFLE)
    before = rss_mb()
    n, dt = time_epoch(ds)
    return {"maps": n, "seconds": dt, "rss_before_mb": before}


def load_all(paths) -> dict:
    """Load ``paths`` whole into memory as float32 (what a reader without memory maps does);
    resident memory before the load in MB (runs in a child under a launcher, like :func:`stream_epoch`)."""
    import tensorflow as tf  # noqa: F401  (same imports as the streamed child)

    from ..data import hcal  # noqa: F401

    before = rss_mb()
    arrays = [np.load(p).astype(np.float32) for p in paths]
    return {"maps": int(sum(len(a) for a in arrays)), "rss_before_mb": before}


def memory_rows(workdir: Path) -> list[Row]:
    # the same sizes in quick mode: a streamed epoch adds a fixed ~50 MB of tf.data buffers and
    # threads, so over quick-sized files (70 MB) the "memory added" row compared that overhead
    # with the data (0.82) and said nothing about streaming; 2 x 4000 maps take a few seconds
    n = 1000
    small, large = twin_paths(workdir, n), twin_paths(workdir, 4 * n)
    # the launcher gives each child's own peak (its own ru_maxrss would start at this process's)
    s, big = run_child(stream_epoch, small, launcher=True), run_child(stream_epoch, large, launcher=True)
    loaded = run_child(load_all, large, launcher=True)
    raw_large = 2 * 4 * n * 64 * 72 * 8 / 2 ** 20
    runs = (("small", s), ("large", big), ("loaded", loaded))
    peak = {k: r["peak_rss"] / 2 ** 20 for k, r in runs}
    added = {k: max(peak[k] - r["rss_before_mb"], 1.0) for k, r in runs}
    files = f"2 runs x {n} vs x {4 * n} lumisections ({raw_large / 4:.0f} vs {raw_large:.0f} MB of float64 files)"
    return [
        ratio_row(TASK, "peak memory, memmap epoch, 4x more lumisections", peak["small"], peak["large"],
                  "MB", target=1.2, higher_is_better=False,
                  notes=f"{files}; shuffle buffer {SHUFFLE}; each epoch in its own process (peak includes the "
                        f"imports, about {s['rss_before_mb']:.0f} MB)",
                  added_mb=[added["small"], added["large"]], seconds=[s["seconds"], big["seconds"]]),
        ratio_row(TASK, "memory added, memmap epoch vs loading the runs", added["loaded"], added["large"], "MB",
                  target=0.5, higher_is_better=False,
                  notes=f"peak minus resident memory before the epoch (or the load), 2 runs x {4 * n} lumisections "
                        f"({raw_large:.0f} MB of float64 files, kept as float32 when loaded)"),
    ]


def run(quick: bool = False, workdir=None) -> list[Row]:
    """Measure the hcal_dqm rows (see the module docstring); ``quick`` uses smaller twins."""
    workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="kerahep-bench-hcal_dqm-"))
    workdir.mkdir(parents=True, exist_ok=True)
    return reader_rows(workdir, quick) + memory_rows(workdir) + pipeline_rows(workdir, quick)
