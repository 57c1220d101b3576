"""Prepare a task's dataset.

dy_electron: read CMS NanoAOD files (local files, directories, globs or CERN Open Data
``*_file_index.txt`` lists), flatten electrons and jets to fixed-width features, and
write one row per selected event to ``data/processed/electron_dataset.csv``: the
features, genWeight, target, sample, and where the row comes from (run, luminosityBlock,
event, file, entry), so it joins back to its NanoAOD event.

Examples:
    kerahep prepare --task dy_electron --signal DY.root --background TT.root WW.root
    kerahep prepare --task dy_electron --synthetic
    kerahep prepare --task dy_electron --signal dy_index.txt --background tt_index.txt --dask
    kerahep prepare --task electron_photon --synthetic   # writes the twin files
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import cli


def parser(prog: str = "kerahep prepare") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("Examples:")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="dy_electron", help="task name (default dy_electron)")
    p.add_argument("--signal", nargs="+", default=[], metavar="PATH", help="signal samples (dy_electron)")
    p.add_argument("--background", nargs="+", default=[], metavar="PATH", help="background samples (dy_electron)")
    p.add_argument("--max-events", type=int, help="cap on events read per sample")
    p.add_argument("--out", help="output file (default: data/processed/electron_dataset.csv in the current folder)")
    p.add_argument("--format", choices=("csv", "parquet"), help="output format (default from --out, else csv)")
    p.add_argument("--synthetic", action="store_true", help="make the built-in synthetic twin and prepare it")
    p.add_argument("--preset", help="feature preset: physics (default) or seed")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="configuration override, e.g. --set data.n_jets=6")
    p.add_argument("--seed", type=int, default=None, help="seed of the synthetic twin")
    p.add_argument("--dask", action="store_true", help="prepare with uproot.dask on a Dask cluster")
    p.add_argument("--scheduler", help="address of an existing Dask scheduler (default: a local cluster)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    cli.add_verbose_argument(p)
    return p


def main(argv=None, prog: str = "kerahep prepare") -> int:
    args = parser(prog).parse_args(argv)
    cli.setup_logging()
    from kerahep.errors import ConfigError, check_output_path, user_os_errors
    from kerahep.registry import get_task

    task = get_task(args.task)
    cfg = task.preset(args.preset).override(args.overrides)
    if args.seed is not None:
        cfg = cfg.set("run.seed", args.seed)
    if args.task != "dy_electron":
        if not args.synthetic:
            raise ConfigError(f"task {args.task!r} reads its files directly at training time "
                              f"(python -m scripts.train --task {args.task} --data ...); "
                              f"prepare_dataset only writes its synthetic twin (--synthetic)")
        with user_os_errors(f"a folder kerahep may write into (data.data_dir={cfg.data.data_dir!r}, where the "
                            "synthetic twin is written)"):
            files = task.make_synthetic(cfg)
        print("synthetic twin files:\n  " + "\n  ".join(map(str, files)))
        return 0

    from kerahep.data.nanoaod import prepare_dataset
    from kerahep.data.synthetic.nanoaod import make_twin
    from kerahep.artifacts import write_json
    from kerahep.tasks.dy_electron import DEFAULT_DATASET, feature_spec, report_as_dict

    if args.max_events is not None and args.max_events <= 0:
        raise ConfigError(f"--max-events must be positive, got {args.max_events}")
    signal, background = list(args.signal), list(args.background)
    if args.synthetic and (signal or background):
        raise ConfigError("--synthetic makes its own samples; do not pass --signal/--background with it")
    if not args.synthetic and (not signal or not background):
        raise ConfigError("dy_electron needs --signal and --background samples (or --synthetic)")
    out = Path(args.out) if args.out else Path(cfg.data.data_dir) / DEFAULT_DATASET
    # the outputs are checked before any input is read or made (a mistake costs no processing)
    where = "--out" if args.out else f"the default under data.data_dir={cfg.data.data_dir!r}"
    check_output_path(out, f"the prepared dataset ({where})")
    check_output_path(Path(str(out) + ".report.json"), f"the preparation report (beside the dataset, {where})")
    if args.synthetic:
        with user_os_errors(f"a folder kerahep may write into (data.data_dir={cfg.data.data_dir!r}, where the "
                            "synthetic twin is written)"):
            files = make_twin(Path(cfg.data.data_dir) / "synthetic" / "dy_electron" / "nanoaod",
                              cfg.data.synthetic_events, seed=cfg.run.seed)
        signal, background = files["signal"], files["background"]
    # --format unset: by the suffix (.parquet or .pq: Parquet), as the reader decides
    report = prepare_dataset(signal, background, out, spec=feature_spec(cfg.data), max_events=args.max_events,
                             fmt=args.format, progress=not args.quiet, dask=args.dask, scheduler=args.scheduler)
    meta = report_as_dict(report)
    meta["source"] = "synthetic" if args.synthetic else "files"
    write_json(Path(str(out) + ".report.json"), meta)
    print(report.summary() if hasattr(report, "summary") else meta)
    print(f"wrote {out}")
    return 0

