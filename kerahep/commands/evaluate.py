"""Re-evaluate a trained run: reload model.keras (Keras safe mode), recompute the test
metrics and plots, print a short table.

Examples:
    kerahep evaluate                       # the newest run under results/
    kerahep evaluate --task dy_electron    # that task's LATEST run
    kerahep evaluate --run results/dy_electron/<run_id> --data other.csv
    kerahep evaluate --run results/old/<run_id> --no-data-check   # a run made before fingerprints

Nothing is written outside the run directory: a synthetic twin missing from data.data_dir
is regenerated in a temporary folder of the run (removed afterwards). A run reached by
--task/LATEST or the newest-run search that is a symbolic link out of --output-dir is
refused; name it with --run to follow it.
"""

from __future__ import annotations

import argparse

from .. import cli
from ..saving import max_model_size


def parser(prog: str = "kerahep evaluate") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    cli.add_run_arguments(p, "evaluate")
    cli.add_verbose_argument(p)
    p.add_argument("--data", nargs="+", metavar="PATH",
                   help="score these files in full as an independent sample (results go to <run>/external/)")
    p.add_argument("--backend", choices=cli.BACKENDS, help="Keras backend to score with")
    p.add_argument("--no-data-check", action="store_true",
                   help="rebuild the test split of a run whose data fingerprint is missing or damaged (made before "
                        "fingerprints) without checking that its input files are those it was trained on; a "
                        "fingerprint that shows other files is still refused")
    return p


def main(argv=None, prog: str = "kerahep evaluate") -> int:
    args = parser(prog).parse_args(argv)
    cli.select_backend(args.backend)
    cli.setup_logging()
    from kerahep.training import evaluate_run, resolve_run

    run_dir = resolve_run(args.run, args.task, args.output_dir)
    with max_model_size(args.max_model_size):
        result = evaluate_run(run_dir, data_paths=args.data, unsafe_load=args.unsafe_load,
                              no_data_check=args.no_data_check)
    print(f"run: {run_dir}\nresults written to: {result['output']}")
    cli.print_metrics(f"{result['task']} test metrics" + (" (independent sample)" if args.data else ""),
                      result["test"])
    return 0

