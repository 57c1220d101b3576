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
from ..saving import max_model_size


def parser(prog: str = "kerahep evaluate") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    cli.add_run_arguments(p, "evaluate")
    p.add_argument("--data", nargs="+", metavar="PATH",
                   help="score these files in full as an independent sample (results go to <run>/external/)")
    p.add_argument("--backend", choices=cli.BACKENDS, help="Keras backend to score with")
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

