"""Score new files with a trained run: one output per input, joined to its events.

Examples:
    kerahep predict --task dy_electron nano_dy.root              # friend tree results/.../predictions/nano_dy.root
    kerahep predict --run results/dy_electron/<run_id> *.root --out scores/ --format parquet
    kerahep predict --task higgs_mae HIGGS.csv.gz --out scores/
    kerahep predict --task dy_electron files/*.root --dask --scheduler tcp://host:8786
"""

from __future__ import annotations

import argparse

from .. import cli
from ..saving import max_model_size


def parser(prog: str = "kerahep predict") -> argparse.ArgumentParser:
    from ..prediction import FORMATS

    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_run_arguments(p, "score with")
    cli.add_verbose_argument(p)
    p.add_argument("files", nargs="+", metavar="FILE", help="input files in the task's own format")
    p.add_argument("--out", metavar="DIR", help="output folder (default: <run>/predictions/)")
    p.add_argument("--format", choices=FORMATS,
                   help="output format (default: the task's: root for dy_electron, hdf5 for electron_photon "
                        "and jet_ssl, csv for higgs_mae and hcal_dqm)")
    p.add_argument("--embedding", action="store_true", help="also write the embedding / latent vector")
    p.add_argument("--batch-size", type=int, default=1024, help="events per model call (default 1024)")
    p.add_argument("--chunk-size", type=int, default=65536,
                   help="rows read from a file at a time, the memory bound (default 65536)")
    p.add_argument("--dask", action="store_true", help="score the files in parallel on a Dask cluster")
    p.add_argument("--scheduler", help="address of an existing Dask scheduler (default: a local cluster)")
    p.add_argument("--backend", choices=cli.BACKENDS, help="Keras backend to score with")
    return p


def main(argv=None, prog: str = "kerahep predict") -> int:
    args = parser(prog).parse_args(argv)
    cli.select_backend(args.backend)
    cli.setup_logging()
    from ..prediction import predict_files
    from ..training import resolve_run

    run_dir = resolve_run(args.run, args.task, args.output_dir)
    with max_model_size(args.max_model_size):
        results = predict_files(run_dir, args.files, out=args.out, fmt=args.format, dask=args.dask,
                                scheduler=args.scheduler, batch_size=args.batch_size, chunk_size=args.chunk_size,
                                embedding=args.embedding, unsafe_load=args.unsafe_load)
    print_summary(run_dir, results)
    return 0


def print_summary(run_dir, results: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"predictions of {run_dir}")
    for col in ("input", "output", "rows"):
        table.add_column(col)
    for r in results:
        table.add_row(r["input"], r["output"], str(r["rows"]))
    Console().print(table)
