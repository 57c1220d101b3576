"""Compare the electron_photon variants: the newest complete run of each, read from the run directories.

Nothing is written unless ``--out`` is given: then the table goes to ``FILE.csv`` and its
image to ``FILE.png`` beside it, each written atomically. Only runs on the same data as
the newest complete run are compared (:func:`kerahep.tasks.electron_photon.compare_runs`).

Examples:
    kerahep compare-variants                                 # print the table of results/electron_photon
    kerahep compare-variants --out results/variants.csv      # and write variants.csv and variants.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import cli


def parser(prog: str = "kerahep compare-variants") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--output-dir", default="results",
                   help="results folder of the runs (default: results/ in the current folder)")
    p.add_argument("--out", metavar="FILE.csv",
                   help="write the table to FILE.csv and its image to FILE.png; default: print only")
    return p


def main(argv=None, prog: str = "kerahep compare-variants") -> int:
    args = parser(prog).parse_args(argv)
    cli.setup_logging()
    from ..artifacts import write_table
    from ..errors import KerahepError
    from ..tasks.electron_photon import compare_runs
    from ..tasks.electron_photon.plots import comparison_figure

    out = Path(args.out) if args.out else None
    if out is not None and out.suffix != ".csv":
        raise KerahepError(f"--out must name a .csv file (its image goes beside it as .png), got {out}")
    root = Path(args.output_dir) / "electron_photon"
    frame = compare_runs(root)
    if frame.empty:
        raise KerahepError(f"{root}: no complete electron_photon run found; train one first "
                           "(kerahep train --task electron_photon --set model.variant=NAME)")
    print_table(frame, f"electron_photon: newest run of each variant ({root})")
    if out is not None:
        write_table(frame, out)
        comparison_figure(frame, out.with_suffix(".png"))
        print(f"written: {out} and {out.with_suffix('.png')}")
    return 0


def print_table(frame, title: str) -> None:
    """Print ``frame`` as a rich table (numbers to 4 decimals), whole even when piped."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in frame.columns:
        table.add_column(str(col))
    for row in frame.itertuples(index=False):
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row))
    console = Console()
    if not console.is_terminal:  # a pipe or a log: the whole table, not columns cut to 80 characters
        console = Console(width=200)
    console.print(table)
