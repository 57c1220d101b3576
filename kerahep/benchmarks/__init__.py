"""Benchmarks as ratios measured side by side in one run (never asserted in tests).

Each task has a module ``kerahep.benchmarks.<task>`` with::

    def run(quick: bool = False, workdir: pathlib.Path = ...) -> list[Row]

``python -m scripts.benchmark [--task NAME] [--quick]`` runs them, prints one table and
writes ``results/benchmark.json``.
"""

from __future__ import annotations

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
