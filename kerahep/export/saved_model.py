"""TensorFlow SavedModel export with a serving signature (Keras' ``model.export(path,
format="tf_saved_model")``), reloaded with ``tf.saved_model.load`` and checked against
Keras through both its ``serve`` endpoint and its ``serving_default`` signature."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .common import (
    ExportError, check_batch_sizes, check_summary, compare_outputs, describe_failure, flat_inputs, input_specs,
    keras_outputs, require_tensorflow_backend, slice_inputs, staged,
)
from .provenance import converter_versions, custom_layers, provenance

#: the provenance file inside the SavedModel folder (TensorFlow ignores other files there)
PROVENANCE = "kerahep_provenance.json"
SIGNATURE = "serving_default"


def export_saved_model(run, out, atol: float = 1e-5) -> dict:
    """Export ``run.model`` as a SavedModel folder ``out`` (provenance inside it).

    Returns:
        dict with ``path``, ``provenance``, ``route``, ``max_abs_diff`` and ``check``.

    Raises:
        ExportError: Keras cannot export the model, or the reloaded model differs by more than ``atol``.
    """
    require_tensorflow_backend("SavedModel export")
    out = Path(out)
    specs = input_specs(run.model, run.x)
    want = keras_outputs(run.model, run.x)
    t0 = time.perf_counter()
    with staged(out) as (tmp,):
        try:
            run.model.export(str(tmp), format="tf_saved_model", verbose=False)
        except Exception as exc:
            custom = ", ".join(f"{c['path']} ({c['class']})" for c in custom_layers(run.model)) or "none"
            raise ExportError(f"{run.model_path}: Keras cannot export a SavedModel: {type(exc).__name__}: "
                              f"{str(exc).strip()[:400]}. Custom layers in the model: {custom}") from None
        check, signature = verify(tmp, run.x, specs, want, atol, run.model_path)
        check["seconds"] = round(time.perf_counter() - t0, 2)
        from ..artifacts import write_json

        outputs = [{"name": k, "shape": [None, *v.shape[1:]], "dtype": str(v.dtype)} for k, v in want.items()]
        record = provenance(run, "saved_model", "keras", specs, outputs, check,
                            converters=converter_versions(("keras", "tensorflow", "numpy")),
                            route_description="Keras model.export(format='tf_saved_model')",
                            endpoint="serve", serving_signature=signature)
        write_json(tmp / PROVENANCE, record)
    return {"path": str(out), "provenance": str(out / PROVENANCE), "route": "keras",
            "max_abs_diff": check["max_abs_diff"], "check": check}


def verify(path: Path, x, specs, want: dict, atol: float, model_path) -> tuple[dict, dict]:
    """Reload the SavedModel and compare ``serve`` and the serving signature with Keras at two batch sizes."""
    import keras
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    if SIGNATURE not in loaded.signatures:
        raise ExportError(f"{path}: the SavedModel has no {SIGNATURE!r} signature ({list(loaded.signatures)})")
    sig = loaded.signatures[SIGNATURE]
    arg_specs = sig.structured_input_signature[1]
    n = len(next(iter(want.values())))
    per_output, mapping = {}, None
    for size in check_batch_sizes(n):
        ref = {k: v[:size] for k, v in want.items()}
        part = slice_inputs(x, 0, size)
        served = loaded.serve(keras.tree.map_structure(tf.constant, part))
        got_serve = dict(zip(ref, [np.asarray(t) for t in keras.tree.flatten(served)]))
        feeds = flat_inputs(part, specs)
        if sorted(arg_specs) != sorted(feeds):
            if len(arg_specs) != len(feeds):
                raise ExportError(f"{path}: signature inputs {sorted(arg_specs)} are not the model's {list(feeds)}")
            feeds = dict(zip(sorted(arg_specs), feeds.values()))
        got_sig = {k: np.asarray(v) for k, v in sig(**{k: tf.constant(v) for k, v in feeds.items()}).items()}
        if mapping is None:
            mapping = match_signature_outputs(got_sig, ref)
        compare_outputs(got_serve, ref, per_output)
        compare_outputs({mapping[k]: v for k, v in got_sig.items()}, ref, per_output)
    check = check_summary(per_output, atol, n, check_batch_sizes(n),
                          "tf.saved_model.load: serve and " + SIGNATURE)
    if not check["passed"]:
        raise ExportError(f"{model_path}: the reloaded SavedModel differs from Keras beyond {atol:g} on {n} test "
                          "events: " + describe_failure(check))
    signature = {"name": SIGNATURE, "inputs": sorted(arg_specs), "outputs": mapping}
    return check, signature


def match_signature_outputs(got: dict, want: dict) -> dict:
    """``{signature output key: keras output name}`` (same name first, else the closest values)."""
    if len(got) != len(want):
        raise ExportError(f"the serving signature has {len(got)} outputs, Keras gives {len(want)}")
    mapping, free = {}, dict(want)
    for k in got:
        if k in free:
            mapping[k] = k
            free.pop(k)
    for k, v in got.items():
        if k in mapping:
            continue
        same = [name for name, ref in free.items() if ref.shape == v.shape]
        if not same:
            raise ExportError(f"signature output {k} of shape {v.shape} matches no Keras output")
        best = min(same, key=lambda name: float(np.max(np.abs(free[name] - v))) if v.size else 0.0)
        mapping[k] = best
        free.pop(best)
    return mapping
