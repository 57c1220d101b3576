"""Benchmarks as ratios measured side by side in one run (never asserted in tests).

Each task has a module ``kerahep.benchmarks.<task>`` with::

    def run(quick: bool = False, workdir: pathlib.Path = ...) -> list[Row]

``python -m scripts.benchmark [--task NAME] [--quick]`` runs them, prints one table and
writes ``results/benchmark.json``.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass, field

import psutil


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


class PeakRSS:
    """Context manager sampling this process's resident memory; ``.peak`` (bytes) and ``.delta``."""

    def __init__(self, interval: float = 0.01):
        self.interval = interval
        self.proc = psutil.Process(os.getpid())

    def __enter__(self):
        self.start = self.proc.memory_info().rss
        self.peak = self.start
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._sample, daemon=True)
        self._t.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        self.delta = self.peak - self.start
        return False


def timed(fn, *args, repeat: int = 1, **kwargs):
    """Best wall time of ``repeat`` calls and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        best = min(best, time.perf_counter() - t0)
    return best, out
