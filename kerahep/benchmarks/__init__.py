"""Benchmarks as ratios measured side by side in one run (never asserted in tests).

Each task has a module ``kerahep.benchmarks.<task>`` with::

    def run(quick: bool = False, workdir: pathlib.Path = ...) -> list[Row]

``python -m scripts.benchmark [--task NAME] [--quick]`` runs them, prints one table and
writes ``results/benchmark.json``.

Shared plumbing for the task modules:

* :func:`run_child` runs one measurement (a function of a benchmark module) in a fresh
  Python process and returns the dict it returns, so that every peak-memory number is a
  process of its own and frameworks do not share thread pools; every peak-memory number
  comes from ``run_child(..., launcher=True)`` (its ``peak_rss``), never from the child's own
  ``ru_maxrss``, which starts at the peak of the process that started it (see there);
* :func:`rss_mb` and :func:`maxrss_mb`, the resident and peak resident memory of the
  calling process (``maxrss_mb`` from ``VmHWM``, right in a child as well);
* :func:`time_epoch` and :func:`measure_rates`, the speed of a ``tf.data``
  pipeline alone (or of any function that handles items), sides alternating.
* :func:`fit_rates` and :func:`step_rates`, the speed of ``model.fit`` (whole epochs, or a number
  of steps) fed by different datasets, alternating.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field


@dataclass
class Row:
    """One comparison: ``candidate`` against ``baseline`` on the same machine and data.

    ``ratio`` is candidate/baseline for throughputs (higher is better) and for memory
    (lower is better); ``target`` says what the issue asks for, ``passed`` whether it holds.
    """

    task: str
    name: str
    baseline: float
    candidate: float
    unit: str
    ratio: float
    target: str = ""
    passed: bool | None = None
    notes: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self):
        return asdict(self)


def ratio_row(task, name, baseline, candidate, unit, target: float | None = None, higher_is_better=True,
              notes="", **extra) -> Row:
    r = candidate / baseline if baseline else float("nan")
    passed = None
    tgt = ""
    if target is not None:
        passed = bool(r >= target) if higher_is_better else bool(r <= target)
        tgt = f"{'>=' if higher_is_better else '<='} {target:g}"
    return Row(task, name, float(baseline), float(candidate), unit, float(r), tgt, passed, notes, extra)



def closeness_row(task, name, real: float, twin: float, unit: str, source: str, tolerance: float | None,
                  relative: bool = False, notes: str = "", **extra) -> Row:
    """A twin value (candidate) against a real one (baseline), within ``tolerance`` (absolute,
    or ``tolerance * |real|`` when ``relative``): the rows of the twin fidelity report.

    ``passed`` is None without a tolerance or when either value is not finite; the notes end
    with the absolute difference and ``source``; ``extra`` gets ``abs_diff``, ``tolerance``
    (the allowed difference) and ``real_source``.
    """
    import math

    real, twin = float(real), float(twin)
    diff = abs(twin - real)
    passed, target, allowed = None, "", None
    if tolerance is not None:
        allowed = tolerance * abs(real) if relative else tolerance
        target = f"|twin - real| <= {tolerance:.0%} of real" if relative else f"|twin - real| <= {tolerance:g}"
        passed = bool(diff <= allowed) if math.isfinite(twin) and math.isfinite(real) else None
    ratio = twin / real if real else float("nan")
    notes = "; ".join(s for s in (notes, f"|twin - real| {diff:.4g}", f"real: {source}") if s)
    return Row(task, name, real, twin, unit, float(ratio), target, passed, notes,
               dict(extra, abs_diff=diff, tolerance=allowed, real_source=source))

# ------------------------------------------------------------------ measurements in a child process
#: run in the child: import the module, call the function with the JSON-decoded arguments and
#: print what it returns as JSON on the last line of stdout
_CHILD = """\
import importlib, json, sys
module, name = sys.argv[1].rsplit(":", 1)
print(json.dumps(getattr(importlib.import_module(module), name)(*json.loads(sys.argv[2]))))
"""

#: a small launcher whose only child is the measured process: its ``RUSAGE_CHILDREN`` peak is
#: that child's, floored only by the launcher's own few MB (see :func:`run_child`)
_LAUNCHER = """\
import json, resource, subprocess, sys
res = subprocess.run(sys.argv[1:], capture_output=True, text=True)
if res.returncode != 0:
    sys.stderr.write(res.stderr)
    raise SystemExit(res.returncode)
report = json.loads(res.stdout.strip().splitlines()[-1])
report["peak_rss"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
print(json.dumps(report))
"""


def run_child(function, *args, env: dict | None = None, timeout: float | None = None,
              launcher: bool = False) -> dict:
    """Call ``function(*args)`` in a fresh Python interpreter and return what it returns.

    The child imports the function's module, calls the function and prints the result as JSON on its last stdout line,
    which is parsed here.

    Args:
        function: a module-level function of an importable module; it returns a JSON-able dict.
        *args: its positional arguments, sent as JSON (paths become strings, tuples lists).
        env: variables added to this process's environment for the child, on top of
            ``TF_CPP_MIN_LOG_LEVEL=3`` (TensorFlow's C++ logging silenced).
        timeout: seconds before the child is killed (:class:`subprocess.TimeoutExpired`).
        launcher: start the child from a small launcher process, which adds ``peak_rss`` to the
            result: the child's peak resident memory in bytes, read by the launcher as
            ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` once its only child has ended.

    Peak memory -- the pitfall: a child must not report its own ``ru_maxrss``
    (``getrusage(RUSAGE_SELF)``) as its peak. ``subprocess`` starts it with ``vfork`` + ``exec``,
    and at ``exec`` Linux keeps the high-water mark of the address space being replaced --
    after ``vfork`` the parent's, i.e. this process's peak so far -- as the floor of the child's
    ``ru_maxrss`` (after a plain ``fork`` it would be this process's resident memory at the
    fork: not the child's either). Measured: a child started from a process that had peaked at
    411 MB reports 411 MB while it never held more than 11 MB. In ``scripts.benchmark`` such a
    row sits at the peak of whatever ran before it in the same process (seen: "peak memory,
    streamed vs in-memory 1349 vs 1349 MB, ratio 1.000"), and "peak minus resident memory
    before" is inflated by the same amount. So every memory number uses ``launcher=True``: the
    launcher is a fresh interpreter (about 11 MB) whose only child is the measured process, so
    the ``RUSAGE_CHILDREN`` peak it reads after the child ends is the child's peak over its
    whole life (imports, work, exit), floored only by the launcher's own ~11 MB. (This
    process's ``RUSAGE_CHILDREN`` would not do: it is the largest of every child it ever
    waited for.) Also correct, but not used here: ``VmHWM`` in the child's
    ``/proc/self/status`` (:func:`maxrss_mb`), the high-water mark of its own address space,
    which starts afresh at ``exec`` (the same 11 MB above); it only covers what happened
    before the child reads it, and is Linux-only, whereas the launcher also sees the end.
    (Checked on the benchmarks' children: the launcher's ``peak_rss`` and the child's final
    ``VmHWM`` agree to 0.1 MB.)

    Raises:
        RuntimeError: the child (or its launcher) failed; the message ends with its stderr.
    """
    cmd = [sys.executable, "-c", _CHILD, f"{function.__module__}:{function.__qualname__}", json.dumps(list(args), default=str)]
    if launcher:
        cmd = [sys.executable, "-c", _LAUNCHER, *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env or {})))
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child {function.__qualname__}{tuple(args)!r} failed "
                           f"({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rss_mb() -> float:
    """This process's resident memory now, in MB (2**20 bytes)."""
    import psutil

    return psutil.Process().memory_info().rss / 2 ** 20


def maxrss_mb() -> float:
    """This process's peak resident memory so far, in MB: ``VmHWM`` of ``/proc/self/status``.

    ``VmHWM`` is the high-water mark of this process's own address space, reset at ``exec``,
    so it is right in a child too. Not ``getrusage(RUSAGE_SELF).ru_maxrss``: in a process
    started by ``subprocess`` that starts at the peak of the parent (see :func:`run_child`,
    whose ``launcher=True`` gives the peak that the benchmark rows use). Without ``/proc``
    (not Linux) it falls back to ``ru_maxrss``, with that caveat.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2 ** 20 if sys.platform == "darwin" else peak / 1024.0  # bytes on macOS, KiB elsewhere


# ------------------------------------------------------------------------------ tf.data speed
def time_epoch(ds) -> tuple[int, float]:
    """Iterate ``ds`` (batches of ``(x, y)``) once; return the samples seen and the seconds it took."""
    t0 = time.perf_counter()
    n = 0
    for xb, _ in ds:
        n += int(xb.shape[0])
    return n, time.perf_counter() - t0


@dataclass
class Rate:
    """Items per second of one side of :func:`measure_rates`: the best and the median of its
    ``epochs`` timed calls (``seconds`` of them in all)."""

    best: float
    median: float
    epochs: int
    seconds: float


def measure_rates(sides: dict, repeats: int, min_seconds: float = 0.0, max_rounds: int = 200,
                  clock=time.perf_counter) -> dict[str, Rate]:
    """Items per second of each of ``sides`` (name -> a function that does one epoch and returns
    the items it handled), measured side by side.

    One warm-up call each (tracing, first reads, caches filled), then rounds in which every
    side runs once, the sides alternating so that load changes on a shared machine hit them
    alike, until there have been at least ``repeats`` rounds *and* every side has been timed
    for ``min_seconds`` in all (at most ``max_rounds`` rounds). A short epoch (a few ms) is
    thus timed many times: its best rate is not one lucky or unlucky call.
    """
    import statistics

    for fn in sides.values():
        fn()
    times = {k: [] for k in sides}
    items = dict.fromkeys(sides, 0)
    rounds = 0
    while rounds < max(int(repeats), 1) or (rounds < max_rounds and min(sum(t) for t in times.values()) < min_seconds):
        for k, fn in sides.items():
            t0 = clock()
            items[k] = fn()
            times[k].append(max(clock() - t0, 1e-12))
        rounds += 1
    return {k: Rate(items[k] / min(t), statistics.median(items[k] / x for x in t), len(t), sum(t))
            for k, t in times.items()}



def fit_rates(models: dict, data: dict, epochs_of: dict, repeats: int) -> dict:
    """Samples per second of one ``model.fit`` epoch for each (model, data) pair (name -> compiled
    Keras model, name -> its dataset; ``epochs_of[name]``: the samples of one epoch): one warm-up
    of two batches each (tracing, first reads), then the best of ``repeats`` epochs, the pairs
    alternating so that load changes on the machine hit them alike."""
    for k in models:
        models[k].fit(data[k].take(2), epochs=1, verbose=0)
    best = {k: float("inf") for k in models}
    for _ in range(repeats):
        for k in models:
            t0 = time.perf_counter()
            models[k].fit(data[k], epochs=1, verbose=0)
            best[k] = min(best[k], time.perf_counter() - t0)
    return {k: epochs_of[k] / v for k, v in best.items()}


def step_rates(models: dict, data: dict, steps: int, repeats: int, batch_size: int,
               devices: dict | None = None) -> dict:
    """Samples per second of ``steps`` training steps for each (model, data) pair (name -> compiled
    Keras model, name -> its dataset of ``batch_size`` batches, repeated here), best of ``repeats``
    after a warm-up of two steps each (tracing, first reads), the pairs alternating so that load
    changes on the machine hit them alike.

    ``devices`` (name -> device, e.g. ``"/GPU:0"``): those datasets are prefetched to that device
    (``tf.data.experimental.prefetch_to_device``, after the repeat), so their batches wait in
    device memory; the others are fed as ``model.fit`` feeds them (on one device, TensorFlow's
    default strategy copies each batch to the device inside its step)."""
    def feed(k):
        ds = data[k].repeat()
        if devices and k in devices:
            import tensorflow as tf

            from ..data.batches import PREFETCH

            ds = ds.apply(tf.data.experimental.prefetch_to_device(devices[k], buffer_size=PREFETCH))
        return ds

    for k in models:
        models[k].fit(feed(k), epochs=1, steps_per_epoch=2, verbose=0)
    best = {k: float("inf") for k in models}
    for _ in range(repeats):
        for k in models:
            t0 = time.perf_counter()
            models[k].fit(feed(k), epochs=1, steps_per_epoch=steps, verbose=0)
            best[k] = min(best[k], time.perf_counter() - t0)
    return {k: steps * batch_size / v for k, v in best.items()}
