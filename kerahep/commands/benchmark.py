"""Measure speed and memory as ratios, side by side in one run, and write
results/benchmark.json. Timing never goes into a pass/fail test.

Examples:
    kerahep benchmark                 # every task
    kerahep benchmark --task dy_electron --quick
    kerahep benchmark --task device   # on a GPU machine: training fed by the readers
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
from pathlib import Path

from .. import cli

TASKS = ("dy_electron", "electron_photon", "higgs_mae", "jet_ssl", "hcal_dqm", "backends", "predict", "twins")
#: run only when named with --task: ``device`` trains on the accelerator (kerahep.benchmarks.device)
ON_REQUEST = ("device",)


def parser(prog: str = "kerahep benchmark") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--task", action="append", choices=TASKS + ON_REQUEST,
                   help="benchmark only this task (repeatable); 'device' (training on the GPU with mixed "
                        "precision, streamed vs in-memory) runs only when named")
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    p.add_argument("--out", default="results/benchmark.json",
                   help="JSON output (default: results/benchmark.json in the current folder)")
    p.add_argument("--workdir", help="where benchmark data are written (default: a temporary folder)")
    cli.add_verbose_argument(p)
    return p


def main(argv=None, prog: str = "kerahep benchmark") -> int:
    args = parser(prog).parse_args(argv)
    cli.setup_logging()
    from rich.console import Console
    from rich.table import Table

    rows, failures = [], {}
    with tempfile.TemporaryDirectory(prefix="kerahep-bench-") as tmp:
        base = Path(args.workdir or tmp)
        for name in args.task or TASKS:
            try:
                mod = importlib.import_module(f"kerahep.benchmarks.{name}")
            except ModuleNotFoundError:
                failures[name] = "no benchmark module"
                continue
            work = base / name
            work.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            try:
                rows.extend(mod.run(quick=args.quick, workdir=work))
            except Exception as exc:  # a failing benchmark is reported, the others still run
                failures[name] = f"{type(exc).__name__}: {exc}"
            print(f"[{name}] {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    table = Table(title="kerahep benchmark (ratios measured side by side)")
    for col in ("task", "comparison", "baseline", "candidate", "unit", "ratio", "target", "ok"):
        table.add_column(col)
    for r in rows:
        ok = "" if r.passed is None else ("yes" if r.passed else "NO")
        table.add_row(r.task, r.name, f"{r.baseline:.4g}", f"{r.candidate:.4g}", r.unit, f"{r.ratio:.3f}", r.target, ok)
    Console(width=200).print(table)
    for name, why in failures.items():
        print(f"[{name}] not measured: {why}", file=sys.stderr)
    out = Path(args.out)
    from kerahep.artifacts import write_json

    write_json(out, {"quick": args.quick, "rows": [r.to_dict() for r in rows], "not_measured": failures})
    print(f"wrote {out}")
    return 0

