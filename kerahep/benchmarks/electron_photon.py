"""electron_photon benchmarks: streamed HDF5 crops against in-memory arrays, Keras against a
PyTorch reference ResNet-15, peak memory of a streamed epoch.

Rows (ratios measured side by side in one run, on the synthetic twin's gzip-compressed,
chunked files, which have the real files' layout):

* the reader rows of :mod:`kerahep.benchmarks.readers`: one shuffled training epoch read
  chunk by chunk from the compressed files (:class:`kerahep.data.calo.CaloReader`,
  ``cache=False``) against the same batches served from memory (``cache=True``), no model
  (target >= 0.9); the reader's rate over every crop against direct chunk reads inflated
  with zlib-ng on the same threads (target >= 0.5); the rate with 1 and 2 decode threads;
  whether this machine allows the two targets at all (the limit against the in-memory epoch).
* ``ResNet-15 training, streamed vs in-memory epoch``: crops per second of training the
  default ResNet-15 for an epoch fed by each (target >= 0.95: the pipeline hides the I/O).
* ``training throughput, Keras vs PyTorch ResNet-15``: crops per second of training steps of
  the default ResNet-15 (Keras, TensorFlow backend) against the same network written in
  PyTorch (:func:`torch_resnet15`, same layers, same parameter count, same batch, same
  optimizer; ``channels_last``, PyTorch's fast layout for CPU convolutions), both from
  in-memory arrays, augmentation off, each in its own process (target >= 1.0). Skipped
  with a note when PyTorch is not installed.
* ``peak memory, streamed vs in-memory epoch``: peak resident memory of a process that runs
  one training-split epoch streamed against one that caches the split in memory (each in
  its own process, whose peak its launcher reads: ``run_child(..., launcher=True)``); the
  memory the epoch adds (peak minus the process's resident memory before it) is in ``extra``.

Run with ``python -m scripts.benchmark --task electron_photon [--quick]``.
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
from pathlib import Path

import numpy as np

from . import Row, fit_rates, ratio_row, rss_mb, run_child, time_epoch

TASK = "electron_photon"
BATCH = 128
SHUFFLE = 10000


def twin_paths(workdir: Path, n: int) -> list[str]:
    from ..data.synthetic import electron_photon as twin

    folder = Path(workdir) / f"twin_{n}"
    twin.generate(folder, n, seed=0)
    return [str(folder / f) for f in twin.FILES]


def calo_reader(paths):
    from ..data.calo import CaloReader

    return CaloReader(paths, split=(0.7, 0.15, 0.15), seed=0)


def keras_model(seed: int = 0, augment: bool = True):
    """The task's default ResNet-15 (:func:`kerahep.tasks.electron_photon.build_resnet`), compiled
    with plain AdamW (1e-3), the optimizer of the PyTorch reference (:func:`torch_resnet15`)."""
    import keras

    from ..registry import get_task
    from ..tasks.electron_photon import build_resnet

    keras.utils.set_random_seed(seed)
    model = build_resnet(get_task(TASK).preset().model, seed=seed, augment=augment)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="binary_crossentropy")
    return model


def pipeline_rows(workdir: Path, quick: bool) -> list[Row]:
    n = 1500 if quick else 6000
    reader = calo_reader(twin_paths(workdir, n))
    data = {"streamed": reader.dataset("train", BATCH, shuffle=True, cache=False, shuffle_buffer=SHUFFLE),
            "memory": reader.dataset("train", BATCH, shuffle=True, cache=True)}
    repeats = 2 if quick else 3
    f = reader.files[0]
    layout = f"2 x {n} crops, gzip, {f.chunk_rows} rows per chunk; train split {reader.size('train')}"
    models = {k: keras_model() for k in data}
    train = fit_rates(models, data, {k: reader.size("train") for k in data}, repeats)
    return [ratio_row(TASK, "ResNet-15 training, streamed vs in-memory epoch", train["memory"], train["streamed"],
                      "crops/s", target=0.95,
                      notes=f"{layout}; default ResNet-15 with augmentation, batch {BATCH}, one epoch, "
                            f"best of {repeats}, alternating")]


def reader_rows(workdir: Path, quick: bool) -> list[Row]:
    """The reader rows of :mod:`kerahep.benchmarks.readers` on the twin's gzip-chunked files."""
    from ..data.calo import CaloReader
    from .readers import inflate_limit
    from .readers import reader_rows as rows

    n = 10000 if quick else 30000
    paths = twin_paths(workdir, n)
    reader = calo_reader(paths)

    def decode(threads):  # every crop of the files: the bytes the limit inflates
        return CaloReader(paths, split=None, seed=0, decode_threads=threads).dataset(
            "test", BATCH, shuffle=True, shuffle_buffer=SHUFFLE)

    chunk = reader.files[0].chunk_rows
    return rows(TASK, "crops/s", reader.dataset("train", BATCH, shuffle=True, cache=False, shuffle_buffer=SHUFFLE),
                reader.dataset("train", BATCH, shuffle=True, cache=True, shuffle_buffer=SHUFFLE), decode,
                lambda threads: inflate_limit(paths, "X", threads), quick,
                notes=f"2 x {n} crops, gzip, {chunk} rows per chunk; train split {reader.size('train')}, batch "
                      f"{BATCH}, mixing window {SHUFFLE}",
                limit_notes="read_direct_chunk + zlib-ng inflate of every chunk of X")


# --------------------------------------------------------------- PyTorch reference
def torch_resnet15(widths=(8, 16, 32), blocks=(2, 2, 3), stem_kernel=5, embedding_dim=64, energy_log=0.002):
    """The default Keras ResNet-15 (:func:`kerahep.models.resnet.build_resnet15`, augmentation
    off) written in PyTorch: same layers, same parameter count, channels first."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c_out, momentum=0.1)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(c_out, momentum=0.1)
            self.proj = None
            if stride != 1 or c_in != c_out:
                self.proj = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return torch.relu(y + (x if self.proj is None else self.proj(x)))

    class ResNet15(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(2, widths[0], stem_kernel, 1, stem_kernel // 2, bias=False),
                                      nn.BatchNorm2d(widths[0]), nn.ReLU())
            layers, c = [], widths[0]
            for s, (w, nb) in enumerate(zip(widths, blocks)):
                for b in range(nb):
                    layers.append(Block(c, w, 2 if (s > 0 and b == 0) else 1))
                    c = w
            self.blocks = nn.Sequential(*layers)
            self.embedding = nn.Linear(c, embedding_dim)
            self.score = nn.Linear(embedding_dim, 1)

        def forward(self, x):
            e = torch.log1p(torch.clamp(x[:, :1], min=0) / energy_log)
            x = torch.cat([e, x[:, 1:]], dim=1)
            x = self.blocks(self.stem(x)).mean(dim=(2, 3))
            return self.score(torch.relu(self.embedding(x)))

    return ResNet15()


def train_in_child(framework: str, paths, steps: int, repeats: int) -> dict:
    """Crops per second of ``steps`` training steps (best of ``repeats``) of the default ResNet-15
    in ``framework`` (``keras`` or ``torch``) on the training split held in memory (runs in a child)."""
    x, y = calo_reader(paths).read("train")
    rates = []
    if framework == "keras":
        import keras
        import tensorflow as tf

        model = keras_model(augment=False)
        ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0).repeat().batch(BATCH)
        ds = ds.prefetch(tf.data.AUTOTUNE)
        model.fit(ds, epochs=1, steps_per_epoch=3, verbose=0)
        for _ in range(repeats):
            t0 = time.perf_counter()
            model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0)
            rates.append(steps * BATCH / (time.perf_counter() - t0))
        params = int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))
        version = f"Keras {keras.__version__} on TensorFlow {tf.__version__}"
    else:
        import torch

        torch.manual_seed(0)
        model = torch_resnet15().to(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        yt = torch.from_numpy(y).reshape(-1, 1)
        gen = torch.Generator().manual_seed(0)

        def run_steps(k):
            model.train()
            for _ in range(k):
                idx = torch.randint(0, len(xt), (BATCH,), generator=gen)
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(xt[idx].contiguous(memory_format=torch.channels_last)), yt[idx])
                loss.backward()
                opt.step()

        run_steps(3)
        for _ in range(repeats):
            t0 = time.perf_counter()
            run_steps(steps)
            rates.append(steps * BATCH / (time.perf_counter() - t0))
        params = int(sum(p.numel() for p in model.parameters()))
        version = f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads, channels_last)"
    return {"rates": rates, "params": params, "version": version}


def torch_rows(workdir: Path, quick: bool) -> list[Row]:
    name = "training throughput, Keras vs PyTorch ResNet-15"
    if importlib.util.find_spec("torch") is None:
        return [Row(TASK, name, float("nan"), float("nan"), "crops/s", float("nan"), ">= 1", None,
                    "skipped: PyTorch is not installed (pip install torch==2.13.0, the 'torch' extra)")]
    n = 1500 if quick else 4000
    paths = twin_paths(workdir, n)
    steps, repeats, rounds = (15, 2, 1) if quick else (40, 3, 2)
    out = {"keras": [], "torch": []}
    info = {}
    for _ in range(rounds):  # each framework in its own process (no shared thread pools), alternating
        for fw in ("keras", "torch"):
            r = run_child(train_in_child, fw, paths, steps, repeats)
            out[fw] += r["rates"]
            info[fw] = r
    best = {k: max(v) for k, v in out.items()}
    return [ratio_row(TASK, name, best["torch"], best["keras"], "crops/s", target=1.0,
                      notes=f"default ResNet-15 ({info['keras']['params']} trainable parameters in Keras, "
                            f"{info['torch']['params']} in PyTorch), augmentation off, AdamW, batch {BATCH}, "
                            f"{steps} steps from memory, best of {repeats * rounds}, each framework in its own "
                            f"process, alternating; {info['keras']['version']} vs {info['torch']['version']}",
                      keras_params=info["keras"]["params"], torch_params=info["torch"]["params"],
                      keras_rates=out["keras"], torch_rates=out["torch"])]


# ------------------------------------------------------------------------ memory rows
def epoch_in_child(paths, cache: bool) -> dict:
    """One training-split epoch (no model), streamed or cached; this process's resident memory
    before the epoch in MB (runs in a child under a launcher, which adds the peak, ``peak_rss``)."""
    import tensorflow as tf  # noqa: F401  (imported before the baseline is taken)

    reader = calo_reader(paths)
    time_epoch(reader.dataset("test", BATCH, cache=False).take(2))  # start the tf.data runtime first
    before = rss_mb()
    ds = reader.dataset("train", BATCH, shuffle=True, cache=cache, shuffle_buffer=SHUFFLE)
    n, dt = time_epoch(ds)
    return {"crops": n, "seconds": dt, "rss_before_mb": before}


def memory_rows(workdir: Path, quick: bool) -> list[Row]:
    n = 10000 if quick else 30000
    paths = twin_paths(workdir, n)
    # the launcher gives each child's own peak (its own ru_maxrss would start at this process's)
    streamed, cached = (run_child(epoch_in_child, paths, cache, launcher=True) for cache in (False, True))
    peak = {k: r["peak_rss"] / 2 ** 20 for k, r in (("streamed", streamed), ("cached", cached))}
    added = {k: max(peak[k] - r["rss_before_mb"], 1.0) for k, r in (("streamed", streamed), ("cached", cached))}
    raw = 0.7 * 2 * n * 32 * 32 * 2 * 4 / 2 ** 20
    return [ratio_row(TASK, "peak memory, streamed vs in-memory epoch", peak["cached"],
                      peak["streamed"], "MB", higher_is_better=False,
                      notes=f"one training-split epoch of 2 x {n} crops ({raw:.0f} MB as float32), shuffle buffer "
                            f"{SHUFFLE}, each in its own process (peaks include the imports, about "
                            f"{streamed['rss_before_mb']:.0f} MB); memory added by the epoch: streamed "
                            f"{added['streamed']:.0f} MB, in-memory {added['cached']:.0f} MB",
                      added_mb={"streamed": added["streamed"], "in_memory": added["cached"]})]


def run(quick: bool = False, workdir=None) -> list[Row]:
    """All electron_photon rows; the twins are written under ``workdir`` (default: a temporary folder)."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="kerahep-bench-ep-") as tmp:
            return run(quick, Path(tmp))
    workdir = Path(workdir)
    return (reader_rows(workdir, quick) + pipeline_rows(workdir, quick) + torch_rows(workdir, quick)
            + memory_rows(workdir, quick))
