"""The provenance written beside every export: which run and model file it came from, its
inputs (names, shapes, dtypes, order), the preprocessing carried inside the model, and
the versions of kerahep and of every converter involved."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
from pathlib import Path

#: Keras preprocessing layers live in this module tree
KERAS_PREPROCESSING = "keras.src.layers.preprocessing"
#: kerahep layers that transform raw inputs inside a model
KERAHEP_PREPROCESSING = ("Log1p", "ChannelLog1p", "ChannelScale", "SelectChannels")
#: kerahep layers (and Keras wrappers) that act only in training: identities in an export
TRAINING_ONLY = ("TrainingOnly", "EnergySmearing", "ChannelDropout", "SparseNoise")
#: the distributions whose versions each export records (a missing one is recorded as None)
PACKAGES = {
    "keras": ("keras",), "tensorflow": ("tensorflow", "tensorflow-cpu"), "numpy": ("numpy",),
    "onnx": ("onnx",), "onnxruntime": ("onnxruntime",), "tf2onnx": ("tf2onnx",), "hls4ml": ("hls4ml",),
    "torch": ("torch",),
}


def package_version(name: str) -> str | None:
    for dist in PACKAGES.get(name, (name,)):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def converter_versions(names=("keras", "tensorflow", "numpy", "tf2onnx", "onnx", "onnxruntime", "hls4ml")) -> dict:
    return {n: package_version(n) for n in names}


def is_training_only(layer) -> bool:
    """Layers that pass inputs through at inference: augmentation (``Random*``) and kerahep's."""
    cls = type(layer)
    return cls.__name__ in TRAINING_ONLY or (cls.__module__.startswith(KERAS_PREPROCESSING)
                                              and cls.__name__.startswith("Random"))


def is_preprocessing(layer) -> bool:
    """Keras preprocessing layers and kerahep's input transforms and training-only augmentation."""
    cls = type(layer)
    return (cls.__module__.startswith(KERAS_PREPROCESSING) or cls.__name__ in KERAHEP_PREPROCESSING
            or is_training_only(layer))


def walk_layers(model, prefix: str = ""):
    """``(path, layer)`` of every layer of ``model``, nested models included (``encoder/scaling``)."""
    for layer in getattr(model, "layers", ()):
        path = f"{prefix}{layer.name}"
        yield path, layer
        if getattr(layer, "layers", None):
            yield from walk_layers(layer, prefix=path + "/")


def preprocessing_layers(model) -> list[dict]:
    """The preprocessing inside ``model``: path, name, class and what it does at inference."""
    out = []
    for path, layer in walk_layers(model):
        if is_preprocessing(layer):
            cls = type(layer)
            entry = {"path": path, "name": layer.name, "class": cls.__name__, "module": cls.__module__,
                     "at_inference": "identity (acts only in training)" if is_training_only(layer) else "transform"}
            inner = getattr(layer, "layer", None)
            if inner is not None and hasattr(inner, "name"):
                entry["wraps"] = type(inner).__name__
            out.append(entry)
    return out


def custom_layers(model) -> list[dict]:
    """Layers whose class is not Keras' own (kerahep's layers, other packages' classes)."""
    out = []
    for path, layer in walk_layers(model):
        cls = type(layer)
        if not cls.__module__.startswith("keras."):
            out.append({"path": path, "class": cls.__name__, "module": cls.__module__})
    return out


def provenance(run, fmt: str, route: str, inputs, outputs, check: dict, converters=None, **extra) -> dict:
    """The provenance record of one export of ``run`` (a :class:`~kerahep.export.common.RunInputs`)."""
    import kerahep

    from ..artifacts import sha256

    model = run.model
    cfg = run.config
    record = {
        "format": fmt,
        "route": route,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "kerahep_version": kerahep.__version__,
        "run": {"run_dir": str(run.run_dir), "run_id": run.run_id, "task": run.task,
                "preset": getattr(cfg, "preset", None), "seed": getattr(getattr(cfg, "run", None), "seed", None)},
        "model": {"file": Path(run.model_path).name, "sha256": sha256(run.model_path), "name": model.name,
                  "class": type(model).__name__, "parameters": int(model.count_params())},
        "inputs": [s.as_dict() for s in inputs],
        "input_order": [s.name for s in inputs],
        "keras_input_order": [t.name for t in (getattr(model, "inputs", None) or [])],
        "outputs": outputs,
        "preprocessing": preprocessing_layers(model),
        "custom_layers": custom_layers(model),
        "converters": converter_versions() if converters is None else converters,
        "check": check,
    }
    record.update(extra)
    return record
