"""Export a trained run's main model (``model.keras``) for use outside Keras.

Modules:

* :mod:`~kerahep.export.onnx`: ONNX, checked with ONNX Runtime (routes: Keras' own
  exporter, tf2onnx with kerahep's op handlers, the torch backend's exporter);
* :mod:`~kerahep.export.saved_model`: TensorFlow SavedModel with a serving signature;
* :mod:`~kerahep.export.hls`: hls4ml C++ emulation of a fixed-point FPGA firmware, scored
  on the run's test events against the float model;
* :mod:`~kerahep.export.provenance`: the provenance record written beside every export;
* :mod:`~kerahep.export.common`: errors, optional imports, the run's test inputs, atomic
  writing.

Every export is checked before it is kept, written under a temporary name beside the target
and renamed into place, so a failure leaves nothing behind. Example::

    from kerahep.export import export_run
    result = export_run("results/dy_electron/<run_id>", "onnx")
    result["path"], result["route"], result["max_abs_diff"]

or ``python -m scripts.export --run DIR --format onnx``. The converters are the optional
``export`` extra: ``pip install 'kerahep[export]'``.
"""

from __future__ import annotations

from pathlib import Path

from .common import INSTALL_HINT, ExportError, MissingDependencyError, RunInputs, load_run  # noqa: F401

FORMATS = ("onnx", "saved_model", "hls4ml")
#: where an export goes without ``out``: inside the run directory
DEFAULT_NAMES = {"onnx": "model.onnx", "saved_model": "saved_model", "hls4ml": "hls4ml"}


def default_output(run_dir, fmt: str) -> Path:
    """``<run>/export/model.onnx``, ``<run>/export/saved_model`` or ``<run>/export/hls4ml``."""
    return Path(run_dir) / "export" / DEFAULT_NAMES[fmt]


def export_run(run_dir, fmt: str, out=None, *, unsafe_load: bool = False, max_events: int | None = 512,
               atol: float = 1e-5, opset: int | None = None, routes=None, precision: str = "ap_fixed<16,6>",
               reuse_factor: int = 1, io_type: str = "auto", backend: str = "Vitis",
               hls_events: int | None = None, no_data_check: bool = False) -> dict:
    """Export the main model of the run in ``run_dir`` to ``fmt`` and check it.

    Args:
        run_dir: a run directory (config.json and model.keras).
        fmt: ``onnx``, ``saved_model`` or ``hls4ml``.
        out: the target (a file for ONNX, a folder otherwise); default :func:`default_output`.
        unsafe_load: allow models that carry arbitrary code (Lambda layers).
        max_events: test events the ONNX/SavedModel export is checked on.
        atol: largest absolute difference to Keras accepted (ONNX, SavedModel).
        opset: ONNX opset (None: the converter's default).
        routes: ONNX routes to try, in order (default all of :data:`kerahep.export.onnx.ROUTES`).
        precision, reuse_factor, io_type, backend: the hls4ml configuration (``io_type`` ``auto``:
            ``io_stream`` for convolutional networks, else ``io_parallel``).
        hls_events: test events the hls4ml emulation is scored on (None: the whole test split).
        no_data_check: export a run whose data fingerprint is missing or damaged (see
            :func:`~kerahep.export.common.load_run`); other data is refused even then.

    Returns:
        dict with ``format``, ``path``, ``provenance``, ``route``, the check's numbers and,
        for hls4ml, ``report``.

    Raises:
        MissingDependencyError: a converter is not installed (the message gives the install line).
        ExportError: the model cannot be exported in this format (the message names the layer).
        KerahepError: no run, no model.keras, or data other than the run was trained on
            (DataError; also a missing or damaged fingerprint without ``no_data_check``).
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; formats: {', '.join(FORMATS)}")
    out = Path(out) if out is not None else default_output(run_dir, fmt)
    if fmt == "onnx":
        from .common import require

        for module in ("onnx", "onnxruntime", "tf2onnx"):  # before the run is loaded: fail fast
            require(module, "ONNX export")
        from .onnx import ROUTES, export_onnx

        run = load_run(run_dir, unsafe_load=unsafe_load, max_events=max_events, no_data_check=no_data_check)
        result = export_onnx(run, out, opset=opset, atol=atol, routes=tuple(routes or ROUTES))
    elif fmt == "saved_model":
        from .saved_model import export_saved_model

        run = load_run(run_dir, unsafe_load=unsafe_load, max_events=max_events, no_data_check=no_data_check)
        result = export_saved_model(run, out, atol=atol)
    else:
        from .common import require

        require("hls4ml", "hls4ml export")
        from .hls import export_hls

        run = load_run(run_dir, unsafe_load=unsafe_load, max_events=hls_events, no_data_check=no_data_check)
        result = export_hls(run, out, precision=precision, reuse_factor=reuse_factor, io_type=io_type,
                            backend=backend)
    return {"format": fmt, "run_dir": str(run_dir), "task": run.task, **result}
