"""Train one task and write its run directory under results/.

Examples:
    kerahep train --task dy_electron
    kerahep train --task electron_photon --data photons.hdf5 electrons.hdf5 --epochs 20
    kerahep train --task hcal_dqm --set model.name=moe_vit --set data.separation=0.05
    kerahep train --config results/dy_electron/RUN/config.json --set training.epochs=20
    kerahep train --task dy_electron --resume            # the newest unfinished run, as it was
    kerahep train --task dy_electron --resume --run-id ID
"""

from __future__ import annotations

import argparse

from .. import cli


def parser(prog: str = "kerahep train") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Train a kerahep task. Without --data, the task's built-in synthetic twin is "
                    "generated under data/ and used (recorded as source 'synthetic'). Relative paths, "
                    "data/ and results/ included, are taken from the current folder.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Tasks: dy_electron, electron_photon, higgs_mae, jet_ssl, hcal_dqm (--list for details).\n"
               "Overrides: --set section.key=value with section in data, model, training, run;\n"
               "an unknown key lists the valid ones. Values are parsed literally: 3, 0.1, (64, 32), true, none.\n"
               "--config FILE starts from a saved configuration (the config.json of any run, or a YAML\n"
               "file of the same shape) instead of a preset; the other options and --set apply on top,\n"
               "so kerahep train --config results/TASK/RUN/config.json reproduces that run\n"
               "in a new run directory.")
    p.add_argument("--task", help="task name (with --config: optional, must match the file's)")
    p.add_argument("--config", metavar="FILE",
                   help="start from a saved configuration (a run's config.json, or YAML of the same shape)")
    p.add_argument("--preset", default=None, help="task preset (default: the task's first)")
    p.add_argument("--data", nargs="+", metavar="PATH", help="input files (task-specific; see README)")
    p.add_argument("--synthetic", action="store_true", help="use the synthetic twin even if data exist")
    p.add_argument("--epochs", type=int, help="training epochs")
    p.add_argument("--batch-size", type=int, help="global batch size (summed over replicas)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a configuration value, e.g. --set model.dropout=0.2 (repeatable)")
    p.add_argument("--seed", type=int, help="one seed for a repeatable run")
    p.add_argument("--precision", choices=("auto", "float32", "mixed_float16", "mixed_bfloat16"),
                   help="auto: mixed precision on a GPU, float32 on a CPU")
    p.add_argument("--backend", choices=cli.BACKENDS, help="Keras backend (default: KERAS_BACKEND or tensorflow)")
    p.add_argument("--strategy", choices=("auto", "none", "mirrored", "multi_worker", "data_parallel"),
                   help="distribution strategy (see README, Scaling out)")
    p.add_argument("--output-dir", help="results folder (default: results/ in the current folder)")
    p.add_argument("--run-id", help="name of the run folder (default: time stamp)")
    p.add_argument("--resume", action="store_true",
                   help="continue the newest unfinished run of the task on the same data (or --run-id) from its "
                        "last epoch; with --data, a run started on other files is not continued (skipped, or "
                        "refused with --run-id); a complete run stopped before it was published is published")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    cli.add_verbose_argument(p)
    p.add_argument("--list", action="store_true", help="list tasks and presets and exit")
    return p


def build_config(args):
    from kerahep.config import Config, parse_assignments
    from kerahep.errors import ConfigError
    from kerahep.registry import get_task

    if args.config:
        if args.preset:
            raise ConfigError(f"--preset {args.preset} and --config {args.config}: the file already holds a "
                              "complete configuration (its preset included); give one of the two")
        cfg = Config.from_file(args.config)
        if args.task and args.task != cfg.task:
            raise ConfigError(f"{args.config}: expected a configuration of task {args.task!r} (--task), "
                              f"found one of task {cfg.task!r}")
        # a new run: the saved run's folder name and resume flag belong to that run
        cfg = cfg.updated({"run.run_id": None, "run.resume": False})
    else:
        cfg = get_task(args.task).preset(args.preset)
    sets = []
    if args.data:
        sets.append(("data.paths", tuple(args.data)))
    if args.synthetic:
        sets.append(("data.force_synthetic", True))
    for key, val in (("training.epochs", args.epochs), ("training.batch_size", args.batch_size),
                     ("run.seed", args.seed), ("training.precision", args.precision),
                     ("run.strategy", args.strategy), ("run.output_dir", args.output_dir),
                     ("run.run_id", args.run_id)):
        if val is not None:
            sets.append((key, val))
    if args.resume:
        sets.append(("run.resume", True))
    if args.quiet:
        sets.append(("run.verbose", 2))
    # one update: the options and every --set value are validated together, in any order
    return cfg.updated({**dict(sets), **parse_assignments(args.overrides)})


def main(argv=None, prog: str = "kerahep train") -> int:
    args = parser(prog).parse_args(argv)
    cli.select_backend(args.backend)
    cli.setup_logging()
    from kerahep.registry import get_task, list_tasks

    if args.list:
        rows = [(name, ", ".join(get_task(name).preset_names()), get_task(name).description) for name in list_tasks()]
        width = max(len(r[1]) for r in rows)
        for name, presets, description in rows:
            print(f"{name:16s} presets: {presets:{width}s}  {description}")
        return 0
    if not args.task and not args.config:
        parser().error("--task (or --config FILE) is required (see --list)")
    from kerahep.training import train

    cfg = build_config(args)
    result = train(cfg)
    m = result.metrics
    if not args.quiet and result.stages:
        print_stages(result.stages)
    print(f"\nrun directory: {result.run_dir}")
    print(f"data: {m['data']['source']}" + (" (built-in synthetic twin)" if m["data"]["source"] == "synthetic" else ""))
    cli.print_metrics(f"{cfg.task} test metrics", m["test"])
    return 0


def print_stages(stages: list) -> None:
    """Print the stage table of a run (:func:`kerahep.training.context.stage_table`) with rich."""
    from rich.console import Console
    from rich.table import Table

    from kerahep.training.context import STAGE_COLUMNS, stage_table

    table = Table(title="training stages")
    for name in STAGE_COLUMNS:
        table.add_column(name, justify="left" if name == "stage" else "right")
    for row in stage_table(stages):
        table.add_row(*row)
    Console(stderr=False).print(table)
