"""Compare the electron_photon variants: the newest complete run of each, read from the run directories.

Nothing is written unless ``--out`` is given: then the table goes to ``FILE.csv`` and its
image to ``FILE.png`` beside it, each written atomically. Only runs on the same data as
the newest complete run are compared (:func:`kerahep.tasks.electron_photon.compare_runs`).

Examples:
    kerahep compare-variants                                 # print the table of results/electron_photon
    kerahep compare-variants --out results/variants.csv      # and write variants.csv, variants.png and variants.pdf
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
    cli.add_verbose_argument(p)
    return p


def main(argv=None, prog: str = "kerahep compare-variants") -> int:
    args = parser(prog).parse_args(argv)
    cli.setup_logging()
    from ..artifacts import write_table
    from ..errors import DataError, KerahepError, check_output_path
    from ..tasks.electron_photon import compare_runs
    from ..tasks.electron_photon.plots import comparison_figure

    out = Path(args.out) if args.out else None
    if out is not None and out.suffix != ".csv":
        raise KerahepError(f"--out must name a .csv file (its image goes beside it as .png), got {out}")
    if out is not None:  # before anything is read
        check_output_path(out, "the comparison table (--out)")
        check_output_path(out.with_suffix(".png"), "the comparison image (beside --out)")
    if Path(args.output_dir).exists() and not Path(args.output_dir).is_dir():
        raise DataError(args.output_dir, "a results folder (--output-dir) holding electron_photon/<run_id>", "a file")
    root = Path(args.output_dir) / "electron_photon"
    check_runs(root)
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


def check_runs(root: Path) -> None:
    """Refuse to compare when a run folder under ``root`` holds a damaged ``metrics.json`` or
    ``config.json`` (not JSON, not an object, or values of the wrong type), naming the file:
    a run left out silently would change the comparison without a word."""
    from ..artifacts import read_json
    from ..errors import DataError
    from ..tasks.electron_photon.report import run_row

    hint = "; move that run out of the folder to compare the others"
    for run in sorted(root.iterdir()) if root.is_dir() else ():
        if not run.is_dir() or not (run / "metrics.json").exists():
            continue
        files = {}
        for name in ("metrics.json", "config.json"):
            path = run / name
            expected = f"the {name} of a kerahep run (a JSON object)"
            if not path.exists():
                continue
            try:
                files[name] = read_json(path)
            except UnicodeDecodeError:
                raise DataError(path, expected, f"bytes that are not UTF-8 text{hint}") from None
            except ValueError as exc:
                raise DataError(path, expected, f"a damaged file ({str(exc).splitlines()[0][:100]}){hint}") from None
            except OSError as exc:
                raise DataError(path, expected, f"an unreadable file ({exc.strerror or exc}){hint}") from None
            if not isinstance(files[name], dict):
                raise DataError(path, expected, f"a JSON {type(files[name]).__name__}{hint}")
        try:
            row = run_row(run)
            if row is not None and not isinstance(row["variant"], str):
                raise TypeError(f"model.variant {row['variant']!r} is not a variant name")
        except (AttributeError, TypeError, ValueError, KeyError, IndexError) as exc:
            config = files.get("config.json", {})
            blame = "config.json" if any(not isinstance(config.get(k) or {}, dict) for k in ("model", "training")) \
                or "variant" in str(exc) else "metrics.json"
            raise DataError(run / blame, f"the {blame} of a kerahep run (values of the types kerahep writes)",
                            f"a value of another type ({type(exc).__name__}: {str(exc)[:100]}){hint}") from None


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
