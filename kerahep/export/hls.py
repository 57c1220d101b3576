"""hls4ml export: a fixed-point (``ap_fixed``) HLS project of a run's model, compiled into
its C++ emulation (the machine's g++, no vendor tools) and scored on the run's test events
beside the float model.

kerahep models carry their preprocessing inside (``Normalization``, ``Log1p``,
``ChannelLog1p``, ``SelectChannels``, the ``Concatenate`` of named inputs, augmentation that
acts only in training), which hls4ml does not convert. The model is therefore cut where the
preprocessing ends (:func:`split_model`): the leading preprocessing layers run in Keras
(float32, inference mode: training-only augmentation passes inputs through) and the rest of
the network, from the one tensor they hand over, runs in the hls4ml emulation. The report
and the provenance list exactly which layers run where. A layer after the cut that hls4ml
cannot convert is refused with its name.
"""

from __future__ import annotations

import contextlib
import io
import re
import time
from pathlib import Path

import numpy as np

from .common import ExportError, input_specs, keras_outputs, require, require_tensorflow_backend, staged
from .provenance import converter_versions, is_preprocessing, is_training_only, provenance

REPORT = "hls_report.json"
PROVENANCE = "kerahep_provenance.json"
PROJECT = "project"
PRECISION = re.compile(r"^ap_u?(fixed<\s*\d+\s*,\s*-?\d+\s*(,\s*\w+\s*)*>|int<\s*\d+\s*>)$")
IO_TYPES = ("auto", "io_parallel", "io_stream")
CONV = ("Conv1D", "Conv2D", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D")


def export_hls(run, out, precision: str = "ap_fixed<16,6>", reuse_factor: int = 1, io_type: str = "auto",
               backend: str = "Vitis") -> dict:
    """Convert ``run.model`` with hls4ml into the folder ``out``, compile and score it.

    ``out`` holds the HLS project (``project/``), the report (``hls_report.json``: AUC of
    the emulated and of the float model, score differences, compile time) and the provenance.

    Raises:
        MissingDependencyError: hls4ml is not installed.
        ExportError: the model is not a single-output binary classifier, a layer after the
            preprocessing cannot be converted (named), or the compile fails.
    """
    require("hls4ml", "hls4ml export")
    require_tensorflow_backend("hls4ml export")
    import shutil

    if shutil.which("g++") is None:
        raise ExportError("the hls4ml export compiles the C++ emulation with g++, which is not on PATH "
                          "(install a C++ compiler, e.g. apt-get install g++)")
    precision = check_options(precision, reuse_factor, io_type)
    model = run.model
    y = binary_targets(run)
    pre, core, split = split_model(model)
    unsupported = unsupported_layers(core)
    if unsupported:
        raise ExportError(f"{run.model_path}: hls4ml cannot convert these layers after the preprocessing: "
                          + ", ".join(f"{name} ({cls})" for name, cls in unsupported))
    if io_type == "auto":
        io_type = "io_stream" if any(type(layer).__name__ in CONV for layer in core.layers) else "io_parallel"
    out = Path(out)
    with staged(out) as (tmp,):
        tmp.mkdir(parents=True)
        hls_model, times, log_text = convert_and_compile(core, tmp / PROJECT, precision, reuse_factor, io_type,
                                                         backend, run.task)
        import keras

        # what the emulation reads: the Keras part's output, or the model's one input as given
        x_core = np.asarray(pre.predict(run.x, verbose=0, batch_size=256) if pre is not None
                            else keras.tree.flatten(run.x)[0], dtype=np.float32)
        t0 = time.perf_counter()
        emulated = np.asarray(hls_model.predict(np.ascontiguousarray(x_core)), dtype=np.float64).reshape(len(y), -1)
        times["predict_seconds"] = round(time.perf_counter() - t0, 2)
        floats = next(iter(keras_outputs(model, run.x).values())).astype(np.float64).reshape(len(y), -1)
        report = score_report(y, floats[:, 0], emulated[:, 0], precision, reuse_factor, io_type, backend, times,
                              split)
        from ..artifacts import write_json

        write_json(tmp / REPORT, report)
        specs = input_specs(model, run.x)
        record = provenance(run, "hls4ml", "split" if pre is not None else "whole", specs,
                            [{"name": "score", "shape": [None, 1], "dtype": "float64 (emulated ap_fixed)"}],
                            {k: report[k] for k in ("auc_float", "auc_emulated", "score_difference", "events")},
                            converters=converter_versions(("keras", "tensorflow", "numpy", "hls4ml")),
                            hls={k: report[k] for k in ("precision", "reuse_factor", "io_type", "backend")},
                            what_runs_where=split, compiler=compiler_version())
        write_json(tmp / PROVENANCE, record)
    return {"path": str(out), "provenance": str(out / PROVENANCE), "report": str(out / REPORT),
            "route": record["route"], **{k: report[k] for k in ("auc_float", "auc_emulated", "score_difference",
                                                                 "compile_seconds", "events", "precision",
                                                                 "reuse_factor", "io_type")}}


def check_options(precision: str, reuse_factor: int, io_type: str) -> str:
    precision = str(precision).replace(" ", "")
    if not PRECISION.match(precision):
        raise ExportError(f"hls4ml precision must look like ap_fixed<16,6> (total bits, integer bits), "
                          f"got {precision!r}")
    if int(reuse_factor) < 1:
        raise ExportError(f"hls4ml reuse factor must be a positive integer, got {reuse_factor!r}")
    if io_type not in IO_TYPES:
        raise ExportError(f"hls4ml io type must be one of {', '.join(IO_TYPES)}, got {io_type!r}")
    return precision


def binary_targets(run) -> np.ndarray:
    """The 0/1 test targets of a single-output classifier (what the report's AUC needs)."""
    import keras

    outputs = keras.tree.flatten(run.model.outputs)
    if len(outputs) != 1 or int(outputs[0].shape[-1] or 0) != 1:
        raise ExportError(f"{run.model_path}: the hls4ml export scores single-output binary classifiers "
                          f"(one score per event); this model has outputs "
                          f"{[tuple(t.shape) for t in outputs]}")
    if run.y is None or isinstance(run.y, (dict, list, tuple)):
        raise ExportError(f"{run.model_path}: the run's test split has no single 0/1 target to score the "
                          "emulated model with")
    y = np.asarray(run.y).reshape(len(run.y), -1)[:, 0]
    if not np.isin(y, (0, 1)).all():
        raise ExportError(f"{run.model_path}: the test targets are not 0/1 labels; the hls4ml report needs a "
                          "binary classifier")
    return y.astype(int)


# ------------------------------------------------------------------- the cut
def split_model(model):
    """Cut ``model`` after its leading preprocessing.

    A layer belongs to the preprocessing when it is one (see
    :func:`kerahep.export.provenance.is_preprocessing`), or is a ``Concatenate`` of the
    model's inputs, and all its inputs are model inputs or preprocessing outputs. The
    preprocessing must hand exactly one tensor to the rest of the network.

    Returns:
        ``(pre, core, split)``: the Keras model of the preprocessing (None when there is
        none), the model of the rest (what hls4ml converts) and a description of what runs
        where.
    """
    import keras

    if not isinstance(model, keras.Model) or not hasattr(model, "_inputs_struct") or not model.inputs:
        raise ExportError(f"the hls4ml export needs a functional Keras model, got {type(model).__name__}")
    produced = {id(t) for t in model.inputs}  # tensors of the Keras part
    pre_layers = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        try:
            inputs = keras.tree.flatten(layer.input)
            outputs = keras.tree.flatten(layer.output)
        except (AttributeError, ValueError):  # a layer used more than once
            continue
        joins_inputs = isinstance(layer, keras.layers.Concatenate)
        if (is_preprocessing(layer) or joins_inputs) and all(id(t) in produced for t in inputs):
            pre_layers.append(layer)
            produced.update(id(t) for t in outputs)
    handed = []  # tensors of the Keras part used by the rest of the network
    for layer in model.layers:
        if layer in pre_layers or isinstance(layer, keras.layers.InputLayer):
            continue
        for t in keras.tree.flatten(layer.input):
            if id(t) in produced and all(t is not h for h in handed):
                handed.append(t)
    if len(handed) != 1:
        names = [getattr(t, "name", "?") for t in handed]
        raise ExportError(f"{model.name}: the preprocessing hands {len(handed)} tensors ({names}) to the rest of "
                          "the network; the hls4ml export needs exactly one")
    cut = handed[0]
    pre = keras.Model(model.input, cut, name=f"{model.name}_keras_part") if pre_layers else None
    core, removed = rebuild_after(model, cut, pre_layers, f"{model.name}_hls_part")
    split = {
        "keras_part": {"runs": "Keras, float32, inference mode (training-only layers pass inputs through)",
                       "layers": [{"name": la.name, "class": type(la).__name__} for la in pre_layers]},
        "hls_part": {"runs": "hls4ml C++ emulation of the fixed-point firmware (compiled with g++)",
                     "input_shape": [None, *[int(d) for d in cut.shape[1:]]],
                     "layers": [{"name": la.name, "class": type(la).__name__} for la in core.layers
                                if not isinstance(la, keras.layers.InputLayer)],
                     "removed": [{"name": la.name, "class": type(la).__name__,
                                  "why": "passes inputs through at inference"} for la in removed]},
        "order": "raw inputs -> Keras part -> hls4ml emulation -> score" if pre_layers
        else "raw inputs -> hls4ml emulation -> score",
    }
    return pre, core, split


def passes_through(layer) -> bool:
    """Layers that are the identity at inference: ``Identity`` and training-only augmentation."""
    import keras

    return isinstance(layer, keras.layers.Identity) or is_training_only(layer)


def rebuild_after(model, cut, pre_layers, name: str):
    """The network of ``model`` from the tensor ``cut`` on, as a model of its own.

    Its layers (weights shared with ``model``) are called again on a new input in the
    original order; the preprocessing layers and the layers that pass inputs through at
    inference (``Identity``, training-only augmentation: hls4ml has no handler for them)
    are left out. Returns ``(core, removed layers)``.
    """
    import keras

    new_input = keras.Input(tuple(cut.shape[1:]), dtype=cut.dtype, name="hls_input")
    mapping = {id(cut): new_input}
    removed = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer) or layer in pre_layers:
            continue
        try:
            args = keras.tree.map_structure(lambda t: mapping[id(t)], layer.input)
        except KeyError:
            raise ExportError(f"{model.name}: layer {layer.name} ({type(layer).__name__}) reads the model's inputs "
                              "beside the preprocessing; the hls4ml export needs one input after it") from None
        if passes_through(layer):
            removed.append(layer)
            new_out = args
        else:
            new_out = layer(args)
        for old, new in zip(keras.tree.flatten(layer.output), keras.tree.flatten(new_out)):
            mapping[id(old)] = new
    outputs = keras.tree.map_structure(lambda t: mapping[id(t)], model.output)
    return keras.Model(new_input, outputs, name=name), removed


def unsupported_layers(core) -> list:
    """``(name, class)`` of the layers of ``core`` hls4ml has no handler for (nested models searched)."""
    import keras
    from hls4ml.converters.keras_v2_to_hls import layer_handlers as v2
    from hls4ml.converters.keras_v3_to_hls import v3_layer_handlers as v3

    bad = []
    for layer in core.layers:
        cls = type(layer)
        if isinstance(layer, keras.Model) and getattr(layer, "layers", None):
            bad.extend((f"{layer.name}/{n}", c) for n, c in unsupported_layers(layer))
            continue
        if f"{cls.__module__}.{cls.__name__}" in v3 or cls.__name__ in v3 or cls.__name__ in v2:
            continue
        bad.append((layer.name, cls.__name__))
    return bad


# --------------------------------------------------------------- convert, score
def convert_and_compile(core, project: Path, precision: str, reuse_factor: int, io_type: str, backend: str,
                        task: str):
    import hls4ml

    times = {}
    text = io.StringIO()
    try:
        with contextlib.redirect_stdout(text):
            t0 = time.perf_counter()
            config = hls4ml.utils.config_from_keras_model(core, granularity="name", default_precision=precision,
                                                          default_reuse_factor=int(reuse_factor), backend=backend)
            hls_model = hls4ml.converters.convert_from_keras_model(
                core, hls_config=config, output_dir=str(project), project_name=f"kerahep_{task}", backend=backend,
                io_type=io_type, allow_da_fallback=False)
            times["convert_seconds"] = round(time.perf_counter() - t0, 2)
            t0 = time.perf_counter()
            hls_model.compile()
            times["compile_seconds"] = round(time.perf_counter() - t0, 2)
    except Exception as exc:
        tail = " | ".join(text.getvalue().strip().splitlines()[-3:])
        raise ExportError(f"hls4ml could not convert or compile {core.name}: {type(exc).__name__}: "
                          f"{str(exc).strip()[:400]}" + (f" (hls4ml said: {tail})" if tail else "")) from None
    return hls_model, times, text.getvalue()


def score_report(y, floats, emulated, precision, reuse_factor, io_type, backend, times, split) -> dict:
    from ..evaluation import weighted_roc_auc

    diff = np.abs(emulated - floats)
    auc_float, auc_emulated = float(weighted_roc_auc(y, floats)), float(weighted_roc_auc(y, emulated))
    return {
        "events": int(len(y)), "n_signal": int((y == 1).sum()), "n_background": int((y == 0).sum()),
        "auc_float": auc_float, "auc_emulated": auc_emulated, "auc_difference": auc_emulated - auc_float,
        "score_difference": {"max_abs": float(diff.max()), "mean_abs": float(diff.mean())},
        "precision": precision, "reuse_factor": int(reuse_factor), "io_type": io_type, "backend": backend,
        **times, "what_runs_where": split,
    }


def compiler_version() -> str | None:
    import shutil
    import subprocess

    cxx = shutil.which("g++")
    if cxx is None:
        return None
    try:
        return subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30).stdout.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None
