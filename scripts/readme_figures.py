"""``python -m scripts.readme_figures``: the README's figures, one of each kind, made again
from the tasks' smoke presets into ``results/figures/`` (kept in git, unlike the rest of
``results/``).

Each task needed is trained once on its smoke preset (tiny synthetic twins, seconds to a
minute or two each on a CPU) with PNGs at ``run.plot_dpi=80``, in a temporary folder that
is removed afterwards (``--work DIR`` keeps it); ``--runs DIR`` takes the LATEST runs of a
results folder instead of training. The figures of :data:`FIGURES` are copied from their
runs' ``plots/`` and written small: re-encoded, with an adaptive palette and scaled down
where needed, each under :data:`MAX_BYTES`. The numbers they show are those of smoke runs
(a handful of events), so the figures show what a report looks like, not a result.

Example::

    python -m scripts.readme_figures                      # train the smoke runs, write results/figures/
    python -m scripts.readme_figures --runs results       # from runs you have already trained
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

from kerahep import cli

#: README figure (in ``results/figures/``) -> (task, figure of its run's ``plots/``)
FIGURES = {
    "dy_electron_roc.png": ("dy_electron", "roc.png"),
    "dy_electron_eff_rejection.png": ("dy_electron", "eff_rejection.png"),
    "dy_electron_reliability.png": ("dy_electron", "reliability.png"),
    "dy_electron_scores_per_sample.png": ("dy_electron", "scores_per_sample.png"),
    "dy_electron_history.png": ("dy_electron", "history.png"),
    "electron_photon_confusion.png": ("electron_photon", "confusion.png"),
    "electron_photon_gradcam.png": ("electron_photon", "gradcam.png"),
    "hcal_dqm_attention_rollout.png": ("hcal_dqm", "attention_rollout.png"),
    "hcal_dqm_occupancy_mean.png": ("hcal_dqm", "occupancy_mean.png"),
    "jet_ssl_m_true_vs_pred.png": ("jet_ssl", "m_true_vs_pred.png"),
    "jet_ssl_auc_intervals.png": ("jet_ssl", "auc_intervals.png"),
    "higgs_mae_auc_intervals.png": ("higgs_mae", "auc_intervals.png"),
}
#: what each figure shows, for the README's alt text
KINDS = {
    "dy_electron_roc.png": "ROC curve", "dy_electron_eff_rejection.png": "signal efficiency against background rejection",
    "dy_electron_reliability.png": "reliability diagram", "dy_electron_scores_per_sample.png": "scores per sample",
    "dy_electron_history.png": "training history", "electron_photon_confusion.png": "confusion matrix",
    "electron_photon_gradcam.png": "Grad-CAM maps per class", "hcal_dqm_attention_rollout.png": "attention rollout",
    "hcal_dqm_occupancy_mean.png": "HCAL occupancy maps on iEta and iPhi",
    "jet_ssl_m_true_vs_pred.png": "jet mass, predicted against true",
    "jet_ssl_auc_intervals.png": "AUC with its interval per method",
    "higgs_mae_auc_intervals.png": "AUC with its interval per model",
}
#: overrides beyond the smoke preset and the figure resolution, by task: a few epochs, so
#: the history is a curve rather than one point per panel
EXTRA = {"dy_electron": ("training.epochs=4",)}
DPI = 80
MAX_BYTES = 120_000
OUT = Path("results") / "figures"


def smoke_overrides(task: str, work: Path) -> list:
    """The overrides of ``task``'s smoke run in ``work``: its own folders, quiet, PNGs at :data:`DPI`."""
    return ["run.verbose=0", f"run.output_dir='{work / 'results'}'", f"data.data_dir='{work / 'data' / task}'",
            f"run.plot_dpi={DPI}", *EXTRA.get(task, ())]


def train_smoke(task: str, work: Path) -> Path:
    """Train ``task``'s smoke preset in ``work``; its run directory."""
    from kerahep.registry import get_task
    from kerahep.training import train

    return Path(train(get_task(task).preset("smoke").override(smoke_overrides(task, work))).run_dir)


def latest(task: str, runs: Path) -> Path:
    """The LATEST run of ``task`` under ``runs``."""
    from kerahep.errors import KerahepError
    from kerahep.training.rundir import latest_run

    run = latest_run(runs / task)
    if run is None:
        raise KerahepError(f"{runs / task}: no complete {task} run (LATEST missing); train its smoke preset first")
    return run


def small_png(src: Path, limit: int = MAX_BYTES) -> bytes:
    """The PNG ``src`` re-encoded under ``limit`` bytes: as it is when it fits, else with an
    adaptive 256-colour palette, else also scaled down (by at most a third each try)."""
    from PIL import Image

    image = Image.open(src).convert("RGB")
    for _ in range(8):
        for candidate in (image, image.quantize(256, method=Image.Quantize.MEDIANCUT)):
            buf = io.BytesIO()
            candidate.save(buf, format="PNG", optimize=True, dpi=(DPI, DPI))
            if buf.tell() <= limit:
                return buf.getvalue()
        scale = max(0.67, (limit / buf.tell()) ** 0.5 * 0.95)
        image = image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))),
                             Image.Resampling.LANCZOS)
    raise ValueError(f"{src}: cannot be written under {limit} bytes")


def write_figures(runs: dict, out: Path) -> dict:
    """Copy :data:`FIGURES` from the runs ``{task: run directory}`` into ``out``, small; ``{name: bytes}``."""
    from kerahep.artifacts import atomic_path
    from kerahep.errors import DataError

    sizes = {}
    for name, (task, plot) in FIGURES.items():
        if task not in runs:
            continue
        src = runs[task] / "plots" / plot
        if not src.is_file():
            raise DataError(src, f"the {plot} figure of a {task} run", "no such file")
        data = small_png(src)
        with atomic_path(out / name) as tmp:
            tmp.write_bytes(data)
        sizes[name] = len(data)
    return sizes


def parse_args(argv=None):
    tasks = sorted({task for task, _ in FIGURES.values()})
    p = argparse.ArgumentParser(prog="python -m scripts.readme_figures",
                                description="Make the README's figures (results/figures/) again from the smoke presets.")
    p.add_argument("--out", default=str(OUT), help=f"where the figures go (default {OUT})")
    p.add_argument("--runs", default=None, help="take the LATEST runs under this results folder instead of training")
    p.add_argument("--work", default=None, help="train the smoke runs here and keep them (default: a temporary "
                                                "folder, removed afterwards)")
    p.add_argument("--task", action="append", choices=tasks, help="only this task's figures (repeatable)")
    cli.add_verbose_argument(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    cli.setup_logging(verbose=False)
    tasks = args.task or sorted({task for task, _ in FIGURES.values()})
    with tempfile.TemporaryDirectory(prefix="kerahep-readme-figures-") as tmp:
        work = Path(args.work or tmp).resolve()
        runs = {t: latest(t, Path(args.runs)) if args.runs else train_smoke(t, work) for t in tasks}
        sizes = write_figures(runs, Path(args.out))
    for name, size in sizes.items():
        print(f"{Path(args.out) / name}  {size / 1000:.0f} kB  ({KINDS[name]})")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
