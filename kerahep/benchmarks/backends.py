"""Training throughput of every model builder on each Keras backend, as a ratio to
TensorFlow, measured side by side (one fresh process per backend, same machine)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from . import ratio_row


def _measure(backend: str, workdir: Path) -> dict:
    out = workdir / backend
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, KERAS_BACKEND=backend, CUDA_VISIBLE_DEVICES=os.environ.get("CUDA_VISIBLE_DEVICES", ""))
    proc = subprocess.run([sys.executable, "-m", "kerahep.backend_check", "--save", str(out), "--bench",
                           "--json", str(out / "report.json")], env=env, capture_output=True, text=True, timeout=3600)
    if not (out / "report.json").exists():
        raise RuntimeError(f"kerahep.backend_check on {backend} wrote no report ({proc.returncode}):\n"
                           f"{proc.stderr[-3000:]}")
    rep = json.loads((out / "report.json").read_text())
    return {k: v["samples_per_second"] for k, v in rep["results"].items() if "samples_per_second" in v}


def run(quick: bool = False, workdir=None) -> list:
    workdir = Path(workdir or tempfile.mkdtemp(prefix="kerahep-bench-backends-"))
    tf = _measure("tensorflow", workdir)
    rows = []
    for backend, module in (("jax", "jax"), ("torch", "torch")):
        if importlib.util.find_spec(module) is None:
            continue
        other = _measure(backend, workdir)
        for key, base in sorted(tf.items()):
            if key in other:
                rows.append(ratio_row("backends", f"{key} train {backend}/tensorflow", base, other[key],
                                      "samples/s", notes="batch 64, tiny widths"))
    return rows
