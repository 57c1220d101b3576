"""Export a trained run's model to ONNX, a TensorFlow SavedModel or an hls4ml project, checked
against Keras on the run's test events, with its provenance beside it.

Examples:
    kerahep export --run results/dy_electron/<run_id> --format onnx
    kerahep export --task dy_electron --format saved_model --out exported/dy
    kerahep export --task electron_photon --format hls4ml --precision 'ap_fixed<18,8>'
    kerahep export --run results/old/<run_id> --format onnx --no-data-check   # a run made before fingerprints

The test events are rebuilt as ``kerahep evaluate`` rebuilds them: nothing is written outside
the run directory (a synthetic twin missing from data.data_dir is regenerated in a temporary
folder of the run), and the input files must be those the run was trained on.
"""

from __future__ import annotations

import argparse

from .. import cli
from ..saving import max_model_size

FORMATS = ("onnx", "saved_model", "hls4ml")
ROUTES = ("keras", "tf2onnx", "torch")


def parser(prog: str = "kerahep export") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Needs the export extra: pip install 'kerahep[export]'")
    cli.add_run_arguments(p, "export")
    cli.add_verbose_argument(p)
    p.add_argument("--format", required=True, choices=FORMATS, help="what to export to")
    p.add_argument("--out", metavar="PATH",
                   help="target file (onnx) or folder (saved_model, hls4ml); default <run>/export/...")
    p.add_argument("--events", type=int, default=512, metavar="N",
                   help="test events the ONNX/SavedModel export is checked on (default 512)")
    p.add_argument("--atol", type=float, default=1e-5,
                   help="largest absolute difference to Keras accepted (default 1e-5)")
    p.add_argument("--no-data-check", action="store_true",
                   help="rebuild the test events of a run whose data fingerprint is missing or damaged (made before "
                        "fingerprints) without checking that its input files are those it was trained on; a "
                        "fingerprint that shows other files is still refused")
    onnx = p.add_argument_group("onnx")
    onnx.add_argument("--opset", type=int, help="ONNX opset (default: the converter's)")
    onnx.add_argument("--route", action="append", choices=ROUTES,
                      help="ONNX route(s) to try, in order (repeatable; default keras, tf2onnx, torch)")
    hls = p.add_argument_group("hls4ml")
    hls.add_argument("--precision", default="ap_fixed<16,6>", help="fixed-point type (default ap_fixed<16,6>)")
    hls.add_argument("--reuse-factor", type=int, default=1, help="hls4ml reuse factor (default 1)")
    hls.add_argument("--io-type", default="auto", choices=("auto", "io_parallel", "io_stream"),
                     help="hls4ml io type (auto: io_stream for convolutional networks, else io_parallel)")
    hls.add_argument("--hls-backend", default="Vitis", help="hls4ml backend (default Vitis)")
    hls.add_argument("--hls-events", type=int, metavar="N",
                     help="test events the emulation is scored on (default: the whole test split)")
    return p


def main(argv=None, prog: str = "kerahep export") -> int:
    args = parser(prog).parse_args(argv)
    cli.select_backend("tensorflow")  # the converters trace TensorFlow graphs
    cli.setup_logging()
    from ..export import export_run
    from ..training import resolve_run

    run_dir = resolve_run(args.run, args.task, args.output_dir)
    with max_model_size(args.max_model_size):  # the torch route's subprocess inherits it
        result = export_run(run_dir, args.format, out=args.out, unsafe_load=args.unsafe_load,
                            max_events=args.events, atol=args.atol, opset=args.opset, routes=args.route,
                            precision=args.precision, reuse_factor=args.reuse_factor, io_type=args.io_type,
                            backend=args.hls_backend, hls_events=args.hls_events,
                            no_data_check=args.no_data_check)
    print_summary(run_dir, result)
    return 0


def summary_rows(result: dict) -> list[tuple[str, str]]:
    rows = [("task", result["task"]), ("format", result["format"]), ("route", str(result.get("route"))),
            ("written to", result["path"]), ("provenance", result["provenance"])]
    if "max_abs_diff" in result:
        check = result.get("check", {})
        rows.append(("max |export - Keras|", f"{result['max_abs_diff']:.3g} (relative to each output's scale "
                                             f"{check.get('max_scaled_diff', float('nan')):.3g}, accepted up to "
                                             f"{check.get('atol', float('nan')):g}) on {check.get('events', '?')} "
                                             f"test events, batch sizes {check.get('batch_sizes', '?')}"))
    for route, why in (result.get("attempts") or {}).items():
        rows.append((f"route {route} failed", why[:160]))
    if result["format"] == "hls4ml":
        diff = result["score_difference"]
        rows += [("report", result["report"]), ("precision", f"{result['precision']}, reuse factor "
                                                             f"{result['reuse_factor']}, {result['io_type']}"),
                 ("AUC float / emulated", f"{result['auc_float']:.4f} / {result['auc_emulated']:.4f} "
                                          f"({result['events']} test events)"),
                 ("score difference", f"max {diff['max_abs']:.4g}, mean {diff['mean_abs']:.4g}"),
                 ("compile time", f"{result['compile_seconds']:.1f} s")]
    return rows


def print_summary(run_dir, result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"export of {run_dir}")
    table.add_column("")
    table.add_column("value")
    for key, value in summary_rows(result):
        table.add_row(key, value)
    Console().print(table)

