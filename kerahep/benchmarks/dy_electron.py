"""dy_electron benchmark: NanoAOD preparation against the plain method.

The plain method is how the CMS electron project prepares its dataset: each file read
whole with ``tree.arrays(library="ak")``, the files concatenated, the jagged electron and
jet collections padded with ``ak.pad_none`` and converted to pandas column by column,
then ``DataFrame.to_csv``. :func:`kerahep.data.nanoaod.prepare_dataset` streams each
file in bounded steps, reads only the needed branches, pads with NumPy and writes the
CSV with pyarrow's streaming writer.

Both run on the same synthetic twin files with the same feature set (``seed``) and
preselection, and must write the same number of rows. Each measurement runs in a fresh
process: a small launcher starts the worker as its only child and reads
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` after it ends, so every peak-memory
number starts clean. Throughput is events read per second of the preparation call
(imports excluded), best of the repeats.

Rows: throughput ratio (target >= 1.5) at the base size and at ten times the events;
peak memory of each method when the events grow tenfold (kerahep target: at most 1.25x,
i.e. flat); peak memory of kerahep against the plain method at ten times the events.

Run with ``python -m scripts.benchmark --task dy_electron [--quick]``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from . import ratio_row, run_child

TASK = "dy_electron"


def plain_prepare(signal: list, background: list, out, spec=None) -> int:
    """The plain method (the CMS electron project's way); returns the rows written.

    Args:
        signal, background: ROOT files.
        out: CSV file.
        spec: :class:`kerahep.data.nanoaod.FeatureSpec` (its ``seed`` columns are built).
    """
    import awkward as ak
    import numpy as np
    import pandas as pd
    import uproot

    from ..data.nanoaod import ELECTRON_FIELDS, JET_FIELDS, FeatureSpec

    spec = spec or FeatureSpec(preset="seed")
    parts, targets, samples = [], [], []
    for target, files in ((1, signal), (0, background)):
        for path in files:
            with uproot.open(path) as f:
                arr = f["Events"].arrays(library="ak")
            parts.append(arr)
            targets.append(np.full(len(arr), target))
            samples.append(np.full(len(arr), Path(path).stem, dtype=object))
    events = ak.concatenate(parts)
    df = pd.DataFrame()
    for coll, fields, n in (("Electron", ELECTRON_FIELDS, spec.n_electrons), ("Jet", JET_FIELDS, spec.n_jets)):
        padded = {f: ak.fill_none(ak.pad_none(events[f"{coll}_{f}"], n, clip=True), 0) for f in fields}
        for i in range(n):
            for f in fields:
                df[f"{coll}_{f}_{i}"] = ak.to_numpy(padded[f][:, i])
    df["nElectron"] = ak.to_numpy(ak.num(events["Electron_pt"]))
    df["nJet"] = ak.to_numpy(ak.num(events["Jet_pt"]))
    df["genWeight"] = ak.to_numpy(events["genWeight"])
    df["target"] = np.concatenate(targets)
    df["sample"] = np.concatenate(samples)
    good = (events["Electron_pt"] > spec.min_pt) & (abs(events["Electron_eta"]) < spec.max_abs_eta)
    df = df[ak.to_numpy(ak.sum(good, axis=1) >= spec.min_electrons)]
    df.to_csv(out, index=False)
    return len(df)


# ------------------------------------------------------------------ subprocess plumbing
def _worker(method: str, twin: str, out: str) -> dict:
    """Run one preparation in this process and return its numbers (runs in a child)."""
    import awkward  # noqa: F401 - both methods' imports are paid before the clock starts
    import pandas  # noqa: F401
    import pyarrow.csv  # noqa: F401
    import uproot  # noqa: F401

    from ..data.nanoaod import FeatureSpec, prepare_dataset
    from ..artifacts import read_json

    if method == "imports":
        return {"seconds": 0.0, "events": 0, "rows": 0}
    meta = read_json(Path(twin) / "twin.json")
    files = meta["files"]
    spec = FeatureSpec(preset="seed")
    n_events = sum(v["events"] for v in meta["samples"].values())
    t0 = time.perf_counter()
    if method == "plain":
        rows = plain_prepare(files["signal"], files["background"], out, spec)
    elif method == "kerahep":
        rows = prepare_dataset(files["signal"], files["background"], out, spec=spec, progress=False).selected
    else:
        raise ValueError(method)
    return {"seconds": time.perf_counter() - t0, "events": n_events, "rows": int(rows)}


def _measure(method: str, twin: Path, out: Path) -> dict:
    """Run ``method`` in a fresh launcher whose only child is the worker; peak RSS in bytes."""
    return run_child(_worker, method, twin, out, env={"PYTHONHASHSEED": "0"}, timeout=1800, launcher=True)


def run(quick: bool = False, workdir=None) -> list:
    """Measure and return the dy_electron rows (see the module docstring).

    Args:
        quick: smaller twins (500 and 5000 events per sample) and one repeat.
        workdir: folder for the twins and outputs (default: a temporary folder).
    """
    from ..data.synthetic.nanoaod import make_twin

    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="kerahep-bench-dy-")
        workdir = tmp.name
    workdir = Path(workdir)
    base = 500 if quick else 2000
    repeats = 1 if quick else 2
    sizes = {"N": base, "10N": 10 * base}
    results: dict = {}
    try:
        floor = _measure("imports", workdir, workdir / "none.csv")["peak_rss"]
        for label, per_sample in sizes.items():
            twin = workdir / f"twin_{per_sample}"
            make_twin(twin, per_sample, seed=0)
            for method in ("plain", "kerahep"):
                runs = []
                for _ in range(repeats):  # alternate methods within each size
                    runs.append(_measure(method, twin, workdir / f"{method}_{per_sample}.csv"))
                results[(label, method)] = {
                    "events": runs[0]["events"], "rows": runs[0]["rows"],
                    "seconds": min(r["seconds"] for r in runs), "peak_rss": max(r["peak_rss"] for r in runs),
                }
            if results[(label, "plain")]["rows"] != results[(label, "kerahep")]["rows"]:
                raise RuntimeError(f"plain and kerahep wrote different row counts at {label}: "
                                   f"{results[(label, 'plain')]['rows']} against {results[(label, 'kerahep')]['rows']}")
    finally:
        if tmp is not None:
            tmp.cleanup()

    mb = 1024 * 1024
    rows = []
    for label in sizes:
        p, k = results[(label, "plain")], results[(label, "kerahep")]
        rows.append(ratio_row(
            TASK, f"prepare throughput, {p['events'] // 1000}k events", p["events"] / p["seconds"],
            k["events"] / k["seconds"], "events/s", target=1.5,
            notes="prepare_dataset against tree.arrays + ak.pad_none + pandas.to_csv, same twin, same rows",
            rows=k["rows"], plain_seconds=p["seconds"], kerahep_seconds=k["seconds"]))
    for method in ("kerahep", "plain"):
        a, b = results[("N", method)], results[("10N", method)]
        rows.append(ratio_row(
            TASK, f"peak RSS x10 events, {method}", a["peak_rss"] / mb,
            b["peak_rss"] / mb, "MB", target=1.25 if method == "kerahep" else None, higher_is_better=False,
            notes="peak RSS of a fresh process (ru_maxrss of the launcher's child); "
                  f"imports alone {floor / mb:.0f} MB",
            events=[a["events"], b["events"]], growth_mb=(b["peak_rss"] - a["peak_rss"]) / mb,
            imports_mb=floor / mb))
    p, k = results[("10N", "plain")], results[("10N", "kerahep")]
    rows.append(ratio_row(
        TASK, f"peak RSS vs plain, {k['events'] // 1000}k events", p["peak_rss"] / mb, k["peak_rss"] / mb, "MB",
        higher_is_better=False, notes=f"imports alone {floor / mb:.0f} MB",
        above_imports_plain_mb=(p["peak_rss"] - floor) / mb, above_imports_kerahep_mb=(k["peak_rss"] - floor) / mb))
    return rows
