"""ONNX export of a run's main model, checked with ONNX Runtime against Keras.

Routes, tried in this order until one gives a file that ONNX Runtime loads and that
reproduces the Keras outputs on the run's test inputs (two batch sizes) within ``atol``:

1. ``keras``: Keras' own ``model.export(path, format="onnx")`` (tf2onnx on TensorFlow).
2. ``tf2onnx``: the same tf2onnx conversion of ``model(x, training=False)``, called directly
   so that (a) only the model's inputs become graph inputs (tf2onnx 1.17 turns constants
   that a function captures, such as a ``Normalization`` layer's mean over a whole image,
   into extra graph inputs) and (b) the ops tf2onnx lacks get kerahep's handlers
   (:mod:`kerahep.export.tf2onnx_ops`), at opset 18.
3. ``torch``: the ``.keras`` file loaded with the torch backend in a subprocess
   (``KERAS_BACKEND=torch``) and exported with its ``model.export(format="onnx")``.

The file keeps the model's input names (dict keys for dict inputs) with a free batch
dimension; its outputs are renamed to the Keras output names.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from ..artifacts import sha256
from .common import (
    ExportError, check_batch_sizes, check_summary, compare_outputs, describe_failure, flat_inputs, input_specs,
    keras_outputs, remove, require,
    require_tensorflow_backend, slice_inputs, staged,
)
from .provenance import converter_versions, custom_layers, provenance, walk_layers
from .tf2onnx_ops import patch_tf2onnx, quiet_tf2onnx

log = logging.getLogger("kerahep")

ROUTES = ("keras", "tf2onnx", "torch")
ROUTE_DESCRIPTIONS = {
    "keras": "Keras model.export(format='onnx') (tf2onnx, TensorFlow backend)",
    "tf2onnx": "tf2onnx.convert.from_graph_def with kerahep's op handlers (TensorFlow backend, opset 18)",
    "torch": "Keras model.export(format='onnx') on the torch backend (torch.onnx, subprocess)",
}
TORCH_TIMEOUT_S = 600


class RouteFailed(Exception):
    """One route could not give a correct file (the next route is tried)."""


def export_onnx(run, out, opset: int | None = None, atol: float = 1e-5, routes=ROUTES) -> dict:
    """Export ``run.model`` to ``out`` (an ``.onnx`` file) with provenance at ``<out>.provenance.json``.

    Returns:
        dict with ``path``, ``provenance``, ``route``, ``max_abs_diff`` and ``attempts``
        (the failure of each route tried before).

    Raises:
        MissingDependencyError: onnx, onnxruntime or tf2onnx is not installed.
        ExportError: no route gives a correct file; the message names each route's
            reason and the layers involved.
    """
    require("onnx", "ONNX export")
    require("onnxruntime", "checking the ONNX export")
    require("tf2onnx", "ONNX export")
    require_tensorflow_backend("ONNX export")
    out = Path(out)
    specs = input_specs(run.model, run.x)
    want = keras_outputs(run.model, run.x)
    prov_path = out.with_name(out.name + ".provenance.json")
    attempts = {}
    with staged(prov_path, out) as (tmp_prov, tmp_out):
        for route in routes:
            t0 = time.perf_counter()
            try:
                build_route(route, run, specs, tmp_out, opset)
                outputs, order = finish_file(tmp_out, run, specs, want, route)
                check = verify(tmp_out, run.x, specs, want, atol)
            except RouteFailed as exc:
                attempts[route] = str(exc)
                log.debug("ONNX route %s failed: %s", route, exc)
                remove(tmp_out)
                continue
            check["seconds"] = round(time.perf_counter() - t0, 2)
            break
        else:
            raise ExportError(failure_message(run, attempts))
        versions = converter_versions(("keras", "tensorflow", "numpy", "tf2onnx", "onnx", "onnxruntime")
                                      + (("torch",) if route == "torch" else ()))
        from ..artifacts import write_json

        by_name = {sp.name: sp for sp in specs}
        record = provenance(run, "onnx", route, [by_name[n] for n in order], outputs, check, converters=versions,
                            route_description=ROUTE_DESCRIPTIONS[route], routes_failed=attempts,
                            opset=onnx_opset(tmp_out), feed="by input name (ONNX Runtime)")
        write_json(tmp_prov, record)
    return {"path": str(out), "provenance": str(prov_path), "route": route, "max_abs_diff": check["max_abs_diff"],
            "check": check, "attempts": attempts}


def failure_message(run, attempts: dict) -> str:
    custom = ", ".join(f"{c['path']} ({c['class']})" for c in custom_layers(run.model)) or "none"
    tried = "; ".join(f"[{r}] {msg}" for r, msg in attempts.items())
    return (f"{run.model_path}: cannot export to ONNX. Routes tried: {tried}. Custom layers in the model: "
            f"{custom}")


# -------------------------------------------------------------------------- routes
def build_route(route: str, run, specs, path: Path, opset) -> None:
    builders = {"keras": build_keras, "tf2onnx": build_tf2onnx, "torch": build_torch}
    if route not in builders:
        raise ExportError(f"unknown ONNX route {route!r}; routes: {', '.join(builders)}")
    with quiet_tf2onnx(), warnings.catch_warnings():
        # Keras' numpy-2 patch of tf2onnx probes np.object, which numpy 2 answers with a FutureWarning
        warnings.simplefilter("ignore", FutureWarning)
        try:
            builders[route](run, specs, path, opset)
        except RouteFailed:
            raise
        except Exception as exc:  # a converter's own error: this route cannot do it
            raise RouteFailed(f"{type(exc).__name__}: {first_line(exc)}") from None
    if not path.exists():
        raise RouteFailed("the converter wrote no file")


def build_keras(run, specs, path: Path, opset) -> None:
    run.model.export(str(path), format="onnx", verbose=False, opset_version=opset)


def build_tf2onnx(run, specs, path: Path, opset) -> None:
    import tensorflow as tf
    import tf2onnx
    from tf2onnx import tf_loader

    from .tf2onnx_ops import handlers

    patch_tf2onnx()
    model = run.model
    tensor_specs = [tf.TensorSpec(s.shape, tf.as_dtype(s.dtype), name=s.name) for s in specs]
    if isinstance(run.x, dict):
        signature = dict(zip([s.name for s in specs], tensor_specs))
    elif isinstance(run.x, (list, tuple)):
        signature = list(tensor_specs)
    else:
        signature = tensor_specs[0]
    fn = tf.function(lambda inputs: model(inputs, training=False))
    concrete = fn.get_concrete_function(signature)
    # the signature's placeholders come first; the captured tensors and variables follow
    placeholders = [t for t in concrete.inputs if t.dtype != tf.resource][:len(specs)]
    in_names = [t.name for t in placeholders]
    out_names = [t.name for t in concrete.outputs]
    rename = {t.name: s.name for t, s in zip(placeholders, specs)}
    structured = concrete.structured_outputs
    if isinstance(structured, dict):  # the output names: dict keys, else the model's
        rename.update({t.name: str(k) for k, t in structured.items() if hasattr(t, "name")})
    elif len(out_names) == len(getattr(model, "output_names", None) or ()):
        rename.update(zip(out_names, map(str, model.output_names)))
    graph_def = tf_loader.from_function(concrete, in_names, out_names)
    tf2onnx.convert.from_graph_def(graph_def, name=model.name, input_names=in_names, output_names=out_names,
                                   opset=opset or 18, custom_op_handlers=handlers(), tensors_to_rename=rename,
                                   output_path=str(path))


def build_torch(run, specs, path: Path, opset) -> None:
    import importlib.util

    import kerahep

    if importlib.util.find_spec("torch") is None:
        raise RouteFailed("torch is not installed (pip install 'kerahep[torch]')")
    with tempfile.TemporaryDirectory(prefix="kerahep-onnx-torch-") as tmp:
        sample = Path(tmp) / "sample.npz"
        feeds = flat_inputs(slice_inputs(run.x, 0, 2), specs)
        np.savez(sample, **{f"input_{i}": a for i, a in enumerate(feeds.values())})
        structure = "dict" if isinstance(run.x, dict) else "list" if isinstance(run.x, (list, tuple)) else "single"
        job = {"model": str(run.model_path), "sample": str(sample), "out": str(path), "opset": opset,
               "names": [s.name for s in specs], "structure": structure,
               "unsafe_load": run.unsafe_load}
        env = dict(os.environ, KERAS_BACKEND="torch", CUDA_VISIBLE_DEVICES="",
                   PYTHONPATH=os.pathsep.join([str(Path(kerahep.__file__).resolve().parents[1]),
                                               os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
        try:
            proc = subprocess.run([sys.executable, "-m", "kerahep.export.torch_worker", json.dumps(job)], env=env,
                                  capture_output=True, text=True, timeout=TORCH_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise RouteFailed(f"the torch export took over {TORCH_TIMEOUT_S} s") from None
        if proc.returncode != 0:
            raise RouteFailed(last_error_line(proc.stderr) or f"the torch export exited with {proc.returncode}")


# ------------------------------------------------------------------ after a route
def finish_file(path: Path, run, specs, want: dict, route: str) -> list:
    """Check the file's ops and inputs, name its outputs as Keras does, stamp the metadata.

    Returns:
        ``(outputs, inputs)``: the outputs as ``[{"name", "shape", "dtype"}]`` and the input
        names, in the file's order.
    """
    import onnx

    model = onnx.load(str(path))
    bad = unsupported_ops(model)
    if bad:
        raise RouteFailed("ops ONNX does not define at this opset: " + ", ".join(
            f"{op} (layer {layer_of(node, run.model)})" for op, node in bad))
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    names = [s.name for s in specs]
    if sorted(i.name for i in inputs) != sorted(names):
        if len(inputs) != len(names):
            extra = [i.name for i in inputs if i.name not in names]
            missing = [n for n in names if n not in {i.name for i in inputs}]
            raise RouteFailed(
                f"the file's graph inputs are not the model's {len(names)} inputs: "
                + (f"extra inputs {extra} (constants captured by the traced call, such as a Normalization "
                   "layer's mean and variance, that tf2onnx turned into graph inputs)" if extra else "")
                + (f"{'; ' if extra else ''}missing inputs {missing}" if missing else ""))
        for i, name in zip(inputs, names):  # same count, other names: the model's names, in order
            rename_value(graph, i.name, name)
    fixed = [i.name for i in graph.input if i.name not in initializers and
             i.type.tensor_type.shape.dim and i.type.tensor_type.shape.dim[0].HasField("dim_value")]
    if fixed:
        raise RouteFailed(f"the batch dimension of inputs {fixed} is fixed")
    mapping = match_outputs(model, run.x, specs, want)
    for onnx_name, keras_name in mapping.items():
        if onnx_name != keras_name:
            rename_value(graph, onnx_name, keras_name)
    meta = {"kerahep_run_id": run.run_id, "kerahep_task": run.task, "kerahep_route": route,
            "kerahep_model_sha256": sha256(run.model_path)}
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.save(model, str(path))
    outputs = [{"name": o.name, "shape": dims(o), "dtype": onnx.helper.tensor_dtype_to_np_dtype(
        o.type.tensor_type.elem_type).name} for o in graph.output]
    return outputs, [i.name for i in graph.input if i.name not in initializers]


def unsupported_ops(model) -> list:
    """``(op, node name)`` of nodes whose op ONNX does not define at the model's opset."""
    import onnx

    opsets = {o.domain or "": o.version for o in model.opset_import}
    bad = []
    for node in model.graph.node:
        domain = node.domain or ""
        try:
            onnx.defs.get_schema(node.op_type, max_inclusive_version=opsets.get(domain, 1), domain=domain)
        except Exception:  # onnx.defs.SchemaError: no such op at that version
            bad.append((node.op_type, node.name))
    return bad


def layer_of(node_name: str, model) -> str:
    """The Keras layer a converted node comes from (its name scope), e.g. ``encoder/pair_mass (PairInvariantMass)``."""
    paths = {path: layer for path, layer in walk_layers(model)}
    parts = [p for p in node_name.split("/") if p]
    found = None
    candidates = [""]
    for part in parts:
        options = {part, re.sub(r"_\d+$", "", part)}
        step = [f"{c}/{o}".lstrip("/") for c in candidates for o in options]
        hits = [s for s in step if s in paths]
        if hits:
            found = hits[0]
            candidates = hits
        elif found is None:
            continue  # the model's own scope (its name) comes first
        else:
            break
    if found is None:
        return f"? (node {node_name})"
    return f"{found} ({type(paths[found]).__name__})"


def match_outputs(model, x, specs, want: dict) -> dict:
    """``{onnx output: keras output}``, by closeness of values on a few events (any order of outputs)."""
    session = ort_session(model.SerializeToString())
    n = min(8, len(next(iter(want.values()))))
    got = session.run(None, flat_inputs(slice_inputs(x, 0, n), specs))
    names = [o.name for o in session.get_outputs()]
    if len(got) != len(want):
        raise RouteFailed(f"{len(got)} outputs, Keras gives {len(want)} ({list(want)})")
    mapping, free = {}, dict(want)
    for name, value in zip(names, got):
        if name in free and np.shape(value) == free[name][:n].shape:
            mapping[name] = name
            free.pop(name)
    for name, value in zip(names, got):
        if name in mapping:
            continue
        same = [k for k, ref in free.items() if ref[:n].shape == np.shape(value)]
        if not same:
            raise RouteFailed(f"output {name} of shape {np.shape(value)} matches no Keras output")
        best = min(same, key=lambda k: float(np.max(np.abs(free[k][:n] - value))) if value.size else 0.0)
        mapping[name] = best
        free.pop(best)
    return mapping


def verify(path: Path, x, specs, want: dict, atol: float) -> dict:
    """Run the file with ONNX Runtime at two batch sizes; raise RouteFailed beyond ``atol``
    (see :func:`kerahep.export.common.output_scale`)."""
    session = ort_session(str(path))
    n = len(next(iter(want.values())))
    per_output, sizes = {}, check_batch_sizes(n)
    for size in sizes:
        got = dict(zip([o.name for o in session.get_outputs()],
                       session.run(None, flat_inputs(slice_inputs(x, 0, size), specs))))
        ref = {k: v[:size] for k, v in want.items()}
        if set(got) != set(ref):
            raise RouteFailed(f"outputs {sorted(got)} are not the Keras outputs {sorted(ref)}")
        compare_outputs(got, ref, per_output)
    check = check_summary(per_output, atol, n, sizes, "onnxruntime CPUExecutionProvider")
    if not check["passed"]:
        raise RouteFailed(f"ONNX Runtime differs from Keras beyond {atol:g} on {n} test events: "
                          + describe_failure(check))
    return check


# --------------------------------------------------------------------------- helpers
def ort_session(model):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise RouteFailed(f"ONNX Runtime cannot load the file: {first_line(exc)}") from None


def rename_value(graph, old: str, new: str) -> None:
    """Rename the value ``old`` to ``new`` everywhere in ``graph`` (inputs, outputs, node edges)."""
    if old == new:
        return
    taken = {o for n in graph.node for o in n.output} | {i.name for i in graph.input}
    if new in taken:
        rename_value(graph, new, f"{new}__inner")  # free the name for the graph's input or output
    for node in graph.node:
        node.input[:] = [new if i == old else i for i in node.input]
        node.output[:] = [new if o == old else o for o in node.output]
    for coll in (graph.input, graph.output, graph.value_info):
        for v in coll:
            if v.name == old:
                v.name = new


def dims(value_info) -> list:
    return [d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim]


def onnx_opset(path) -> int | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if (o.domain or "") == ""), None)


def first_line(exc) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:400]


def last_error_line(stderr: str) -> str:
    lines = [ln.strip() for ln in (stderr or "").splitlines() if ln.strip()]
    for ln in reversed(lines):
        if re.match(r"^[A-Za-z_.]*(Error|Exception)\b", ln) or ln.startswith("kerahep-export-error:"):
            return ln.removeprefix("kerahep-export-error:").strip()[:400]
    return lines[-1][:400] if lines else ""
