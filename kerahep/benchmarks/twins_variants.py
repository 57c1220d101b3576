"""twins_variants: the electron_photon ResNet-15 input variants in the twin fidelity report (issue 19).

What is matched is the published test ROC AUC of each input choice of the ResNet-15 on
the real files (:data:`PUBLISHED`: energy only, time only, both channels, dual stream).
The twin side trains each variant with the task's ``default`` preset (3000 crops per
class of the twin, 8 epochs, 900 test crops) once per run seed of :data:`SEEDS` and
compares the mean test AUC over the seeds, within :data:`TOLERANCE` (absolute). The seed
changes the split and the initialisation, not the twin; one run's AUC moves by up to 0.04
with it, which is why one seed is not a measurement. The per-seed values and their spread
are in each row's notes and ``extra``.

Sixteen trainings take about 12 minutes on two CPU cores, so only the full report
(``python -m scripts.benchmark --task twins``, without ``--quick``) has these rows.

Use::

    from kerahep.benchmarks.twins_variants import variant_rows
    rows = variant_rows(Path("/tmp/twins/electron_photon"))            # 4 variants x 4 seeds
    rows = variant_rows(work, seeds=(1,), variants=("time",), preset="smoke")  # seconds
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import Row, closeness_row

TASK = "electron_photon"
#: published ResNet-15 test ROC AUC on the real files, by ``model.variant`` (issue 19)
PUBLISHED = {"energy": 0.816, "time": 0.667, "two_channel": 0.814, "dual_stream": 0.814}
NAMES = {"energy": "energy only", "time": "time only", "two_channel": "both channels", "dual_stream": "dual stream"}
#: run seeds each variant is trained with
SEEDS = (42, 7, 3, 11)
TOLERANCE = 0.02
SOURCE = "published ResNet-15 test AUC on the real files (issue 19)"


def variant_rows(workdir: Path, seeds=SEEDS, variants=None, preset: str = "default", overrides=()) -> list[Row]:
    """One row per variant (default: every key of :data:`PUBLISHED`, in its order): the
    published AUC (baseline) against the mean test AUC of the runs trained with ``preset``
    and each of ``seeds`` on the twin under ``workdir/data`` (made once, shared by all
    runs); the runs are kept under ``workdir/results``. ``overrides`` go to every run."""
    from ..registry import get_task
    from ..training import train

    workdir = Path(workdir)
    task = get_task(TASK)
    rows = []
    for variant in variants or tuple(PUBLISHED):
        runs = []
        for seed in seeds:
            cfg = task.preset(preset).override([
                "run.verbose=0", "run.plot_pdf=false", f"data.data_dir='{workdir / 'data'}'",
                f"run.output_dir='{workdir / 'results'}'", f"model.variant='{variant}'", f"run.seed={int(seed)}",
                *overrides])
            result = train(cfg)
            runs.append((int(seed), float(result.metrics["test"]["roc_auc"]), result.run_dir.name))
        rows.append(_row(variant, runs, preset))
    return rows


def _row(variant: str, runs: list, preset: str) -> Row:
    aucs = np.array([auc for _, auc, _ in runs], dtype=np.float64)
    spread = float(aucs.std(ddof=1)) if len(aucs) > 1 else float("nan")
    per_seed = ", ".join(f"seed {s}: {a:.3f}" for s, a, _ in runs)
    return closeness_row(
        TASK, f"ResNet-15 test ROC AUC, {NAMES[variant]} (model.variant={variant})", PUBLISHED[variant],
        float(aucs.mean()), "AUC", SOURCE, TOLERANCE,
        notes=f"twin: mean test AUC of {len(runs)} run seed(s) ({per_seed}; spread {spread:.3f}), preset {preset}",
        variant=variant, seeds=[s for s, _, _ in runs], aucs=aucs.tolist(), runs=[r for _, _, r in runs],
        spread=spread, preset=preset)
