"""Re-evaluate a trained run: reload model.keras (Keras safe mode), recompute the test
metrics and plots, print a short table.

Examples:
    kerahep evaluate                       # the newest run under results/
    kerahep evaluate --task dy_electron    # that task's LATEST run
    kerahep evaluate --run results/dy_electron/<run_id> --data other.csv
"""

from __future__ import annotations

import argparse

from .. import cli
from ..saving import max_model_size, parse_size


def parser(prog: str = "kerahep evaluate") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--run", metavar="DIR", help="run directory (results/<task>/<run_id>)")
    g.add_argument("--task", help="evaluate the task's LATEST run")
    p.add_argument("--data", nargs="+", metavar="PATH",
                   help="score these files in full as an independent sample (results go to <run>/external/)")
    p.add_argument("--output-dir", default="results", help="results folder to search (default: results/ in the current folder)")
    p.add_argument("--backend", choices=cli.BACKENDS, help="Keras backend to score with")
    p.add_argument("--unsafe-load", action="store_true",
                   help="allow models that carry arbitrary code (Lambda layers); only for files you trust")
    p.add_argument("--max-model-size", type=parse_size, metavar="SIZE",
                   help="largest model file loaded: bytes of weights, e.g. 2GB or 2GiB, or 'none' (the configuration "
                        "may be 1/16 and the assets 1/4 of it, at least 64 MiB and 256 MiB; default 1GiB or "
                        "$KERAHEP_MAX_MODEL_SIZE); raise it only for files you trust")
    return p


def main(argv=None, prog: str = "kerahep evaluate") -> int:
    args = parser(prog).parse_args(argv)
    cli.select_backend(args.backend)
    cli.setup_logging()
    from kerahep.training import evaluate_run, resolve_run

    run_dir = resolve_run(args.run, args.task, args.output_dir)
    with max_model_size(args.max_model_size):
        result = evaluate_run(run_dir, data_paths=args.data, unsafe_load=args.unsafe_load)
    print(f"run: {run_dir}\nresults written to: {result['output']}")
    cli.print_metrics(f"{result['task']} test metrics" + (" (independent sample)" if args.data else ""),
                      result["test"])
    return 0

