"""Shared serialization checks for kerahep's layers and models (in the spirit of keras-hub's
``run_layer_test`` and ``run_model_saving_test``).

``from helpers import run_layer_test, run_model_saving_test`` (``tests/`` is on ``sys.path``:
pytest's default ``prepend`` import mode puts the folder of these rootless test modules there).

* :func:`run_model_saving_test` saves a model to ``.keras``, loads it back (in this process, and
  optionally in a fresh Python process) and compares the outputs, any structure of them.
* :func:`run_layer_test` builds a layer, calls it, checks that ``get_config`` covers every
  constructor argument, that ``from_config(get_config())`` gives the same config and (weights
  copied) the same outputs, then wraps the layer in a functional model and runs
  :func:`run_model_saving_test` on it.

Every check raises ``AssertionError`` (tests/test_helpers.py shows that each can fail).

This module imports no kerahep code: the fresh process imports it to read its inputs, and a
kerahep import here would register kerahep's classes behind the test's back.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
FRESH_TIMEOUT_S = 300


# ------------------------------------------------------------------ outputs as flat arrays
def call_model(model, x, training: bool = False):
    """The default outputs of :func:`run_model_saving_test`: ``model(x, training=training)``."""
    return model(x, training=training)


def call_modes(model, x, modes=(False,)):
    """Outputs for each training mode, inference first (it draws no random numbers)."""
    return {f"training={bool(mode)}": model(x, training=bool(mode)) for mode in modes}


def flat_outputs(outputs) -> dict[str, np.ndarray]:
    """``{path: array}`` of any nest of tensors (dicts, lists, tuples); a bare tensor is ``"."``."""
    flat = {}
    for path, leaf in keras.tree.flatten_with_path(outputs):
        if leaf is None:
            continue
        key = "/".join(str(p) for p in path) or "."
        flat[key] = np.asarray(keras.ops.convert_to_numpy(leaf))
    return flat


def assert_outputs_close(got: dict, want: dict, *, rtol: float, atol: float, what: str) -> None:
    """Same outputs (names, shapes, dtypes) and values within ``rtol``/``atol`` (NaN equals NaN)."""
    assert want, f"{what}: the model has no outputs to compare"
    assert sorted(got) == sorted(want), f"{what}: outputs {sorted(got)} != {sorted(want)}"
    for key in want:
        a, b = got[key], want[key]
        assert a.shape == b.shape, f"{what}: output {key!r} has shape {a.shape}, expected {b.shape}"
        assert a.dtype == b.dtype, f"{what}: output {key!r} has dtype {a.dtype}, expected {b.dtype}"
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"{what}: output {key!r}")


def json_config(config):
    """A config as the ``.keras`` file stores it (JSON: tuples become lists), to compare a
    reloaded config with the saved one."""
    return json.loads(json.dumps(config, default=_json_default))


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable: {obj!r}")


# ------------------------------------------------------------------------- model saving
@dataclasses.dataclass
class SavingResult:
    """What :func:`run_model_saving_test` checked, for further assertions."""

    path: Path  # the saved .keras file
    loaded: keras.Model  # the model loaded in this process
    reference: dict  # {path: array} of the original model
    fresh: dict | None = None  # from the fresh process: {"class", "modules", "imported_before_load"}


def run_model_saving_test(model, x, tmp_path, *, outputs: Callable | None = None, training: bool = False,
                          rtol: float = 1e-6, atol: float = 1e-6, fresh_process: bool = False,
                          imports=("kerahep.layers",), loader: str = "keras.saving.load_model",
                          custom_objects: dict | None = None, check_config: bool = True) -> SavingResult:
    """Save ``model`` to ``.keras``, load it back and compare outputs on ``x``.

    Args:
        model: a built Keras model.
        x: its input: an array, a list/tuple of arrays or a dict of arrays (whatever
            ``outputs`` accepts).
        tmp_path: pytest's folder; the file goes to a new sub-folder.
        outputs: ``outputs(model, x) -> nest of tensors``, deterministic (for a model whose
            call is random, pass the noise in ``x`` and use it here). Default
            ``model(x, training=training)``. With ``fresh_process`` it must be picklable: a
            module-level function (or a ``functools.partial`` of one), not a lambda.
        training: the mode of the default ``outputs``.
        rtol, atol: tolerance of the comparison (``0, 0``: equal arrays).
        fresh_process: also load the file in a new Python process that imports only
            ``imports`` (and ``loader``'s module) before loading, and compare its outputs:
            custom classes register when their module is imported, so this is what a user
            loading the file from a script sees.
        imports: modules the fresh process imports before loading.
        loader: dotted name of the loading function (``"kerahep.saving.load_model"`` to test
            kerahep's own loader); used in both processes.
        custom_objects: passed to the loader in this process.
        check_config: also compare the loaded model's ``get_config()`` with the saved one.

    The reference outputs are computed after saving. The file keeps a random layer's seed
    (in its config) but not its random-generator state: a reloaded layer draws like a newly
    built one, so compare training outputs only of a model whose random layers have not
    drawn yet.
    """
    outputs = outputs or functools.partial(call_model, training=training)
    folder = Path(tempfile.mkdtemp(prefix="saving_", dir=tmp_path))
    path = folder / f"{model.name}.keras"
    model.save(path)
    assert path.is_file(), f"{path} was not written"
    reference = flat_outputs(outputs(model, x))
    load = _resolve(loader)
    loaded = load(path, custom_objects=custom_objects) if custom_objects else load(path)
    assert type(loaded) is type(model), f"reloaded a {type(loaded).__name__}, saved a {type(model).__name__}"
    if check_config:
        assert json_config(loaded.get_config()) == json_config(model.get_config()), (
            "the reloaded model's config differs")
    assert_outputs_close(flat_outputs(outputs(loaded, x)), reference, rtol=rtol, atol=atol,
                         what=f"{model.name} reloaded in this process")
    fresh = None
    if fresh_process:
        fresh = _load_in_fresh_process(path, x, outputs, folder, imports=imports, loader=loader)
        assert fresh["class"] == f"{type(model).__module__}.{type(model).__qualname__}", (
            f"the fresh process loaded a {fresh['class']}")
        assert_outputs_close(fresh["outputs"], reference, rtol=rtol, atol=atol,
                             what=f"{model.name} reloaded in a fresh process")
    return SavingResult(path=path, loaded=loaded, reference=reference, fresh=fresh)


def _resolve(dotted: str):
    import importlib

    module, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def _load_in_fresh_process(path, x, outputs, folder, *, imports, loader) -> dict:
    job = folder / "fresh_job.pkl"
    result = folder / "fresh_outputs.npz"
    try:
        fn = pickle.dumps(outputs)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise TypeError("fresh_process needs a picklable `outputs` (a module-level function, not a lambda)") from exc
    with open(job, "wb") as f:
        pickle.dump({"model": str(path), "x": x, "outputs": fn, "imports": list(imports), "loader": loader,
                     "result": str(result)}, f)
    code = (f"import sys; sys.path[:0] = [{str(TESTS)!r}, {str(REPO)!r}]; "
            f"import helpers; helpers._fresh_main(sys.argv[1])")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
    proc = subprocess.run([sys.executable, "-c", code, str(job)], capture_output=True, text=True,
                          timeout=FRESH_TIMEOUT_S, env=env, cwd=folder)
    assert proc.returncode == 0, f"loading {path.name} in a fresh process failed:\n{proc.stderr[-4000:]}"
    with np.load(result, allow_pickle=False) as data:
        info = json.loads(str(data["__info__"]))
        arrays = [data[f"arr_{i}"] for i in range(len(info["paths"]))]
    info["outputs"] = dict(zip(info.pop("paths"), arrays))
    return info


def _fresh_main(job_path: str) -> None:
    """Runs in the fresh process: import, load, compute the outputs, write them to an .npz."""
    import importlib

    with open(job_path, "rb") as f:
        job = pickle.load(f)
    imported_before = sorted(m for m in sys.modules if m.split(".")[0] == "kerahep")
    for module in job["imports"]:
        importlib.import_module(module)
    model = _resolve(job["loader"])(job["model"])
    info = {"class": f"{type(model).__module__}.{type(model).__qualname__}",
            "modules": sorted(m for m in sys.modules if m.split(".")[0] == "kerahep"),
            "imported_before_load": imported_before}
    fn = pickle.loads(job["outputs"])  # after loading: unpickling may import a test module
    flat = flat_outputs(fn(model, job["x"]))
    info["paths"] = list(flat)
    np.savez(job["result"], *flat.values(), __info__=np.array(json.dumps(info)))


# -------------------------------------------------------------------------- layer test
@dataclasses.dataclass
class LayerTestResult:
    """What :func:`run_layer_test` built, for further assertions."""

    layer: keras.layers.Layer  # the layer under test
    output: Any  # its first output, ``layer(x, training=training)``
    clone: keras.layers.Layer  # ``from_config(get_config())`` with the layer's variables
    model: keras.Model  # the functional model around the layer
    saving: SavingResult  # the .keras round trip of ``model``

    @property
    def loaded(self) -> keras.Model:
        return self.saving.loaded

    @property
    def loaded_layer(self) -> keras.layers.Layer:
        return self.saving.loaded.get_layer(self.layer.name)


def constructor_arguments(cls) -> list[str]:
    """Named arguments of ``cls.__init__`` (without ``self``, ``*args``, ``**kwargs``)."""
    params = inspect.signature(cls.__init__).parameters.values()
    return [p.name for p in params
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def run_layer_test(layer_or_factory, x, *, tmp_path, call_kwargs: dict | None = None, training: bool = False,
                   compare_training: bool = False, expected_shape=None, rtol: float = 1e-6,
                   atol: float = 1e-6, fresh_process: bool = False, imports=("kerahep.layers",),
                   custom_objects: dict | None = None) -> LayerTestResult:
    """Serialization test of one layer.

    1. Build the layer (an instance, or a no-argument factory) by calling it on ``x``
       (an array, or a tuple of arrays passed positionally) and ``call_kwargs`` (arrays
       passed by keyword); check ``expected_shape`` (a shape, or a list of shapes for a
       layer with several outputs).
    2. ``get_config()`` names every constructor argument; ``type(layer).from_config(config)``
       gives a layer with an equal config; with the variables (weights and random-generator
       state) copied over it gives the same outputs.
    3. The layer inside a functional model round-trips through ``.keras``: same class and
       config of the layer, same outputs (see :func:`run_model_saving_test`).

    Outputs are compared with ``training=training``; ``compare_training=True`` compares
    inference and training outputs. A random layer then needs a seed in its config and must
    come from a factory (or not have drawn yet): before saving, its random-generator state
    is put back to the state it had when this function got it, the state a reloaded layer
    starts from.
    """
    is_layer = isinstance(layer_or_factory, keras.layers.Layer)
    layer = layer_or_factory if is_layer else layer_or_factory()
    assert isinstance(layer, keras.layers.Layer), f"the factory made a {type(layer).__name__}, not a layer"
    args = tuple(x) if isinstance(x, (tuple, list)) else (x,)
    kwargs = dict(call_kwargs or {})
    modes = sorted({bool(training)} | ({True} if compare_training else set()))
    initial = [(v, keras.ops.convert_to_numpy(v)) for v in layer.variables]  # random state (and weights if built)

    output = layer(*args, **kwargs, training=training)
    if expected_shape is not None:
        shapes = [tuple(t.shape) for t in keras.tree.flatten(output)]
        want = [tuple(expected_shape)] if _is_shape(expected_shape) else [tuple(s) for s in expected_shape]
        assert shapes == want, f"{layer.name}: output shapes {shapes}, expected {want}"

    # --- config round trip
    config = layer.get_config()
    missing = [a for a in constructor_arguments(type(layer)) if a not in config]
    assert not missing, f"{type(layer).__name__}.get_config() leaves out constructor arguments {missing}"
    with keras.saving.custom_object_scope(custom_objects or {}):
        clone = type(layer).from_config(config)
    assert type(clone) is type(layer)
    assert clone.get_config() == config, (
        f"{type(layer).__name__}.from_config(get_config()) has another config:\n"
        f"{clone.get_config()}\n!=\n{config}")
    clone(*args, **kwargs, training=False)  # build it
    src, dst = layer.variables, clone.variables
    assert [tuple(v.shape) for v in dst] == [tuple(v.shape) for v in src], (
        f"{type(layer).__name__}.from_config(get_config()) has other variables: "
        f"{[(v.path, tuple(v.shape)) for v in dst]} != {[(v.path, tuple(v.shape)) for v in src]}")
    for s, d in zip(src, dst):
        d.assign(s)
    for mode in modes:
        want = flat_outputs(layer(*args, **kwargs, training=mode))
        got = flat_outputs(clone(*args, **kwargs, training=mode))
        assert_outputs_close(got, want, rtol=rtol, atol=atol,
                             what=f"{type(layer).__name__}.from_config(get_config()), training={mode}")

    # --- .keras round trip inside a functional model
    for v, value in initial:
        v.assign(value)
    arrays = [np.asarray(a) for a in args] + [np.asarray(v) for v in kwargs.values()]
    inputs = [keras.Input(a.shape[1:], dtype=str(a.dtype), name=f"input_{i}") for i, a in enumerate(arrays)]
    pos, kw = inputs[:len(args)], dict(zip(kwargs, inputs[len(args):]))
    single = len(inputs) == 1
    model = keras.Model(inputs[0] if single else inputs, layer(*pos, **kw), name=f"layer_test_{layer.name}")
    model_x = arrays[0] if single else arrays
    saving = run_model_saving_test(model, model_x, tmp_path, outputs=functools.partial(call_modes, modes=modes),
                                   rtol=rtol, atol=atol, fresh_process=fresh_process, imports=imports,
                                   custom_objects=custom_objects)
    reloaded = saving.loaded.get_layer(layer.name)
    assert type(reloaded) is type(layer), f"reloaded a {type(reloaded).__name__}, saved a {type(layer).__name__}"
    assert json_config(reloaded.get_config()) == json_config(config), (
        f"the reloaded {type(layer).__name__} has another config:\n{reloaded.get_config()}\n!=\n{config}")
    return LayerTestResult(layer=layer, output=output, clone=clone, model=model, saving=saving)


def _is_shape(s) -> bool:
    return isinstance(s, (tuple, list)) and all(d is None or isinstance(d, (int, np.integer)) for d in s)


# ------------------------------------------------------------------ command-line effects
def retracing_warnings_shown() -> bool:
    """Whether TensorFlow's ``tf.function`` retracing warnings reach the log now: every command
    drops them unless it was given ``--verbose`` (``kerahep.cli.setup_logging``)."""
    import logging

    record = logging.LogRecord("tensorflow", logging.WARNING, __file__, 0,
                               "5 out of the last 5 calls to <function f at 0x0> triggered tf.function retracing.",
                               None, None)
    return bool(logging.getLogger("tensorflow").filter(record))


# ------------------------------------------------------------------------------ figures
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_image_not_blank(path, min_ink: float = 0.005) -> None:
    """``path`` is a PNG image with something drawn on it: at least ``min_ink`` of its pixels
    differ from its most common colour (the background), in at least two other colours (a
    figure saved before anything was plotted is one colour, or that and a frame)."""
    from PIL import Image

    path = Path(path)
    assert path.is_file(), f"{path}: no image there"
    assert path.read_bytes()[:8] == PNG_MAGIC, f"{path}: not a PNG file"
    with Image.open(path) as im:
        pixels = np.asarray(im.convert("RGB")).reshape(-1, 3)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    ink = 1.0 - counts.max() / len(pixels)
    assert ink >= min_ink, f"{path}: blank ({ink:.2%} of its pixels differ from the background)"
    assert len(colours) >= 3, f"{path}: blank ({len(colours)} colours)"
