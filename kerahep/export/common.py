"""What every exporter shares: the errors, optional imports, the run being exported (its
model and test inputs), atomic writing and the comparison of outputs."""

from __future__ import annotations

import contextlib
import importlib
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import KerahepError

#: the install line printed when an optional converter is missing
INSTALL_HINT = "pip install 'kerahep[export]'"


class ExportError(KerahepError):
    """A model, run or option an exporter cannot handle (the message names the layer or setting)."""


class MissingDependencyError(ExportError):
    """An optional converter package (onnx, onnxruntime, tf2onnx, hls4ml) is not installed."""


def require(module: str, purpose: str):
    """Import ``module`` or raise :class:`MissingDependencyError` with the install line."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{purpose} needs the Python package {module.split('.')[0]!r}, which is not installed "
            f"({exc.__class__.__name__}: {exc}); install the export extra: {INSTALL_HINT}") from None


def require_tensorflow_backend(what: str) -> None:
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ExportError(f"{what} runs on the TensorFlow backend of Keras, but KERAS_BACKEND is "
                          f"{keras.backend.backend()!r}; run it with KERAS_BACKEND=tensorflow "
                          "(python -m scripts.export selects it)")


# ------------------------------------------------------------------------ the run
@dataclass
class RunInputs:
    """A trained run ready to export.

    Attributes:
        run_dir: the run directory.
        run_id: its name (``results/<task>/<run_id>``).
        task: the task name.
        config: the run's :class:`~kerahep.config.Config`.
        model: the loaded main model (``model.keras``), called once.
        model_path: the ``.keras`` file.
        x: the test inputs used to check the export (a dict of arrays or an array), at most
            ``max_events`` events of the run's test split.
        y: the test targets of the same events (an array or a dict of arrays), or None.
        unsafe_load: whether the model was loaded with Keras safe mode off.
    """

    run_dir: Path
    run_id: str
    task: str
    config: object
    model: object
    model_path: Path
    x: object
    y: object = None
    unsafe_load: bool = False
    info: dict = field(default_factory=dict)

    @property
    def n_events(self) -> int:
        return int(len(first_leaf(self.x)))


def load_run(run_dir, unsafe_load: bool = False, max_events: int | None = 512,
             no_data_check: bool = False) -> RunInputs:
    """Load ``<run_dir>/model.keras`` and rebuild the run's test inputs.

    The data are read as evaluation reads them (:func:`kerahep.training.evaluate.load_confined`):
    nothing is written outside ``run_dir`` whatever its ``config.json`` says (a synthetic twin
    missing from ``data.data_dir`` is regenerated in a temporary folder of the run, removed
    once the test events are in memory), and the input files must be those the run was
    trained on (the data fingerprint in its ``metrics.json``).

    Args:
        run_dir: a run directory (config.json and model.keras).
        unsafe_load: allow models that carry arbitrary code (Lambda layers).
        max_events: at most this many test events (None: the whole test split).
        no_data_check: go on when the run's data fingerprint is missing or damaged (a run
            made before fingerprints), with a warning; a fingerprint showing other files is
            refused even then (``--no-data-check``, as ``kerahep evaluate`` has it).

    Raises:
        KerahepError: no run there, no model.keras, no test split; DataError: changed or
            missing input data, a missing or damaged fingerprint (without ``no_data_check``),
            a link in the run leading out of it. Nothing is written then.
    """
    from ..config import Config
    from ..registry import get_task
    from ..saving import load_model
    from ..training.evaluate import check_links_inside

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        raise KerahepError(f"{run_dir}: expected a run directory with config.json, found none")
    model_path = run_dir / "model.keras"
    if not model_path.exists():
        raise KerahepError(f"{run_dir}: expected model.keras, found none (did the run finish?)")
    cfg = Config.from_file(run_dir / "config.json")
    task = get_task(cfg.task)
    check_links_inside(run_dir)  # the export goes to <run>/export/ by default
    model = load_model(model_path, safe_mode=not unsafe_load)
    x, y, info = read_test_events(run_dir, task, cfg, max_events, no_data_check)
    # Keras exports only models that have been called (predict one batch)
    model.predict(slice_inputs(x, 0, min(2, len(first_leaf(x)))), verbose=0)
    return RunInputs(run_dir=run_dir, run_id=run_dir.name, task=cfg.task, config=cfg, model=model,
                     model_path=model_path, x=x, y=y, unsafe_load=unsafe_load, info=info)


def read_test_events(run_dir: Path, task, cfg, max_events: int | None, no_data_check: bool = False):
    """``(x, y, info)``: the first ``max_events`` test (else validation) events of the run, read
    writing nothing outside ``run_dir`` and checked against its data fingerprint."""
    from ..training.evaluate import check_same_data, load_confined, recorded_fingerprint

    recorded = recorded_fingerprint(run_dir, no_data_check)
    data, _, sandbox = load_confined(task, cfg, run_dir, recorded)
    try:
        check_same_data(run_dir, data, recorded, no_data_check, regenerated=sandbox is not None)
        split = data.test if data.test is not None else data.val
        if split is None:
            raise KerahepError(f"{run_dir}: the run has no test or validation events to check the export on")
        x, y = collect_batches(split, max_events)
    finally:
        if sandbox is not None:
            shutil.rmtree(sandbox, ignore_errors=True)
    info = {"split": "test" if data.test is not None else "val"}
    if sandbox is not None:
        info["twin_regenerated"] = True
    return x, y, info


def collect_batches(dataset, max_events: int | None):
    """The inputs and targets of the first ``max_events`` events of a batched dataset."""
    import keras

    xs, ys, n = [], [], 0
    for batch in dataset:
        x, y = batch[0], (batch[1] if len(batch) > 1 else None)
        xs.append(keras.tree.map_structure(np.asarray, x))
        ys.append(keras.tree.map_structure(np.asarray, y) if y is not None else None)
        n += len(first_leaf(xs[-1]))
        if max_events is not None and n >= max_events:
            break
    if not xs:
        raise KerahepError("the run's test split is empty: no events to check the export on")
    x = keras.tree.map_structure(lambda *a: np.concatenate(a, axis=0), *xs)
    y = keras.tree.map_structure(lambda *a: np.concatenate(a, axis=0), *ys) if ys[0] is not None else None
    if max_events is not None:
        x = slice_inputs(x, 0, max_events)
        y = slice_inputs(y, 0, max_events) if y is not None else None
    return x, y


def first_leaf(x):
    import keras

    return keras.tree.flatten(x)[0]


def slice_inputs(x, start: int, stop: int):
    import keras

    return keras.tree.map_structure(lambda a: a[start:stop], x)


# ------------------------------------------------------------------ input specs
@dataclass(frozen=True)
class InputSpec:
    """One input of an exported model: its name, shape (None: any size) and dtype."""

    name: str
    shape: tuple
    dtype: str

    def as_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


def input_specs(model, x) -> list[InputSpec]:
    """The inputs of ``model`` as fed with ``x``, in Keras' flattening order (dict keys sorted).

    Dict inputs keep their keys as names; a single or list input takes the names of the
    model's ``Input`` layers. The batch dimension is left free.
    """
    import keras

    leaves = keras.tree.flatten_with_path(x)
    model_inputs = list(getattr(model, "inputs", None) or [])
    by_name = {t.name: t for t in model_inputs}
    specs = []
    for i, (path, leaf) in enumerate(leaves):
        if isinstance(x, dict):
            name = str(path[0])
        elif i < len(model_inputs):
            name = model_inputs[i].name
        else:
            name = f"input_{i}"
        tensor = by_name.get(name)
        if tensor is None and not isinstance(x, dict) and i < len(model_inputs):
            tensor = model_inputs[i]
        dtype = keras.backend.standardize_dtype(tensor.dtype) if tensor is not None else str(leaf.dtype)
        specs.append(InputSpec(name, (None,) + tuple(int(d) for d in leaf.shape[1:]), dtype))
    return specs


def flat_inputs(x, specs) -> dict:
    """``{input name: array}`` of ``x`` (cast to each input's dtype), in the order of ``specs``."""
    import keras

    leaves = keras.tree.flatten(x)
    return {s.name: np.asarray(a, dtype=s.dtype) for s, a in zip(specs, leaves)}


def keras_outputs(model, x, batch_size: int = 256) -> dict:
    """``{output name: array}`` of ``model(x, training=False)``, in Keras' flattening order."""
    import keras

    n = len(first_leaf(x))
    parts = []
    for start in range(0, n, batch_size):
        out = model(slice_inputs(x, start, start + batch_size), training=False)
        parts.append(keras.tree.map_structure(lambda t: np.asarray(keras.ops.convert_to_numpy(t)), out))
    out = keras.tree.map_structure(lambda *a: np.concatenate(a, axis=0), *parts)
    names = output_names(model, out)
    return dict(zip(names, keras.tree.flatten(out)))


def output_names(model, outputs) -> list[str]:
    """Names of the leaves of ``outputs``: dict keys, else the model's output names."""
    import keras

    paths = [p for p, _ in keras.tree.flatten_with_path(outputs)]
    if isinstance(outputs, dict):
        return ["/".join(str(k) for k in p) for p in paths]
    names = list(getattr(model, "output_names", None) or [])
    if len(names) == len(paths):
        return [str(n) for n in names]
    return [f"output_{i}" for i in range(len(paths))] if len(paths) > 1 else ["output"]


def output_scale(values) -> float:
    """The scale an output's differences are measured against: ``max(1, max |value|)``.

    Outputs within [-1, 1] (scores, probabilities) are compared in absolute terms; larger
    ones (jet_ssl's mass and pT in GeV) relative to their largest magnitude, since float32
    resolves 500 GeV only to 3e-5 and the comparison cannot ask for more.
    """
    values = np.asarray(values)
    return float(max(1.0, float(np.max(np.abs(values))) if values.size else 1.0))


def compare_outputs(got: dict, want: dict, per_output: dict | None = None) -> dict:
    """Fold the differences of ``got`` to ``want`` into ``per_output``:
    ``{name: {"max_abs_diff", "scale", "max_scaled_diff"}}`` (worst over calls)."""
    per_output = {} if per_output is None else per_output
    for name, ref in want.items():
        entry = per_output.setdefault(name, {"max_abs_diff": 0.0, "scale": output_scale(ref), "max_scaled_diff": 0.0})
        d = max_abs_diff({name: got[name]}, {name: ref})
        entry["scale"] = max(entry["scale"], output_scale(ref))
        entry["max_abs_diff"] = max(entry["max_abs_diff"], d)
        entry["max_scaled_diff"] = entry["max_abs_diff"] / entry["scale"]
    return per_output


def check_summary(per_output: dict, atol: float, events: int, sizes, runtime: str) -> dict:
    """The check record of an export; ``passed`` when every output is within ``atol`` of its scale."""
    worst = max((e["max_abs_diff"] for e in per_output.values()), default=0.0)
    scaled = max((e["max_scaled_diff"] for e in per_output.values()), default=0.0)
    return {"passed": bool(scaled <= atol), "max_abs_diff": worst, "max_scaled_diff": scaled, "atol": atol,
            "criterion": "|export - keras| <= atol * max(1, max |keras|) per output", "per_output": per_output,
            "events": int(events), "batch_sizes": list(sizes), "runtime": runtime}


def describe_failure(check: dict) -> str:
    return ", ".join(f"{k} {e['max_abs_diff']:.3g} (scale {e['scale']:.3g})" for k, e in check["per_output"].items())


def max_abs_diff(got: dict, want: dict) -> float:
    """The largest absolute difference over outputs of the same names (inf on a shape mismatch)."""
    worst = 0.0
    for name, ref in want.items():
        a = np.asarray(got[name], dtype=np.float64)
        if a.shape != ref.shape:
            return float("inf")
        if a.size:
            worst = max(worst, float(np.max(np.abs(a - np.asarray(ref, dtype=np.float64)))))
    return worst


def check_batch_sizes(n_events: int) -> list[int]:
    """The batch sizes an export is checked with: all events at once and a single event."""
    return sorted({n_events, 1} if n_events > 1 else {1}, reverse=True)


# -------------------------------------------------------------------- file system
def temporary_sibling(path: Path, kind: str = "part") -> Path:
    """A fresh name beside ``path`` (same folder, so renaming it onto ``path`` is atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the suffix stays last: converters look at it (Keras' export, ONNX tools)
    return path.parent / f".{path.stem}.{kind}-{os.getpid()}-{secrets.token_hex(3)}{path.suffix}"


def remove(path: Path) -> None:
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def replace(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` onto ``target``; a folder target is swapped (the old one moved aside, then deleted)."""
    target = Path(target)
    if Path(tmp).is_dir() and target.exists():
        old = temporary_sibling(target, "old")
        os.replace(target, old)
        try:
            os.replace(tmp, target)
        except BaseException:
            os.replace(old, target)
            raise
        remove(old)
    else:
        os.replace(tmp, target)


@contextlib.contextmanager
def staged(*targets):
    """Yield temporary paths beside ``targets``; rename them into place, in order, on success.

    On any exception every temporary path is removed and the targets are untouched, so a
    failed export leaves nothing behind. Put the export itself last: it then appears only
    once everything it needs (its provenance) is in place.
    """
    tmps = [temporary_sibling(Path(t)) for t in targets]
    placed = []  # targets renamed into place that did not exist before
    try:
        yield tmps
        for tmp, target in zip(tmps, targets):
            existed = Path(target).exists()
            replace(tmp, Path(target))
            if not existed:
                placed.append(Path(target))
        placed = []
    finally:
        for tmp in tmps:
            remove(tmp)
        for target in placed:  # a later rename failed: take back the new files placed before it
            remove(target)
