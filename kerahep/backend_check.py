"""The backend matrix: every model builder of every task, on the active Keras backend.

For each :class:`~kerahep.tasks.base.ModelExample` of each registered task: build, run a
forward pass, train one step, save to ``.keras``, load (safe mode) and compare the
predictions. With ``--save DIR`` the models and predictions are kept so that another
backend can check them (``--compare DIR``): a ``.keras`` file trained on one backend
must load and score on another with the same predictions.

Run it in a fresh process per backend::

    KERAS_BACKEND=jax python -m kerahep.backend_check --save /tmp/jax
    KERAS_BACKEND=torch python -m kerahep.backend_check --compare /tmp/jax
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

import numpy as np


def _predict(model, x, outputs=None):
    if outputs is not None:
        out = outputs(model, x)
        out = out if isinstance(out, (list, tuple)) else [out]
        return [np.asarray(o, dtype=np.float32) for o in out]
    out = model.predict(x, verbose=0, batch_size=len(next(iter(x.values()))) if isinstance(x, dict) else len(x))
    if isinstance(out, dict):
        out = [out[k] for k in sorted(out)]
    if isinstance(out, (list, tuple)):
        return [np.asarray(o, dtype=np.float32) for o in out]
    return [np.asarray(out, dtype=np.float32)]


def _save_inputs(path: Path, x):
    if isinstance(x, dict):
        np.savez(path, **{f"dict__{k}": v for k, v in x.items()})
    else:
        np.savez(path, array=x)


def _load_inputs(path: Path):
    with np.load(path) as z:
        if "array" in z.files:
            return z["array"]
        return {k[len("dict__"):]: z[k] for k in z.files}


def check_example(name: str, ex, workdir: Path, atol: float = 1e-5) -> dict:
    import keras

    from .saving import load_model

    model = ex.build()
    before = _predict(model, ex.x, ex.outputs)
    if any(not np.isfinite(p).all() for p in before):
        raise AssertionError(f"{name}: non-finite forward pass")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=ex.loss)
    logs = model.train_on_batch(ex.x, ex.y, return_dict=True)
    loss = float(logs.get("loss", np.nan))
    if not np.isfinite(loss):
        raise AssertionError(f"{name}: non-finite training loss {loss}")
    after = _predict(model, ex.x, ex.outputs)
    scored = _score_diff(model, ex, after)
    if scored > atol:
        raise AssertionError(f"{name}: kerahep.score differs from model.predict by {scored:g}")
    path = workdir / f"{name}.keras"
    model.save(path)
    loaded = load_model(path)
    again = _predict(loaded, ex.x, ex.outputs)
    diff = max(float(np.max(np.abs(a - b))) if a.size else 0.0 for a, b in zip(after, again))
    if diff > atol:
        raise AssertionError(f"{name}: predictions differ by {diff:g} after the .keras round trip")
    _save_inputs(workdir / f"{name}.inputs.npz", ex.x)
    np.savez(workdir / f"{name}.preds.npz", *after)
    return {"loss": loss, "roundtrip_max_abs_diff": diff, "score_max_abs_diff": scored}


def _score_diff(model, ex, expected) -> float:
    """Largest difference between :func:`kerahep.scoring.score` (the compiled forward pass of
    ``kerahep predict``) and ``model.predict``, in batches of ``n - 1`` and 1 events, so that
    the last batch is a tail of another size (padded on JAX); 0 for models with custom outputs."""
    from .scoring import score

    if ex.outputs is not None:
        return 0.0
    n = len(next(iter(ex.x.values()))) if isinstance(ex.x, dict) else len(ex.x)
    got = score(model, ex.x, batch_size=max(1, n - 1), output="all")
    got = [np.asarray(got[k], np.float32).reshape(len(e), -1) for k, e in zip(sorted(got), expected)]
    return max(float(np.max(np.abs(a - e.reshape(len(e), -1)))) if e.size else 0.0 for a, e in zip(got, expected))


def compare_saved(name: str, src: Path, atol: float, outputs=None) -> dict:
    from .saving import load_model

    model = load_model(src / f"{name}.keras")
    x = _load_inputs(src / f"{name}.inputs.npz")
    with np.load(src / f"{name}.preds.npz") as z:
        ref = [z[k] for k in sorted(z.files, key=lambda s: int(s.split("_")[1]))]
    got = _predict(model, x, outputs)
    diff = max(float(np.max(np.abs(a - b))) if a.size else 0.0 for a, b in zip(ref, got))
    if diff > atol:
        raise AssertionError(f"{name}: cross-backend predictions differ by {diff:g}")
    return {"cross_backend_max_abs_diff": diff}


def _tile(v, n):
    if isinstance(v, dict):
        return {k: _tile(a, n) for k, a in v.items()}
    v = np.asarray(v)
    reps = int(np.ceil(n / len(v)))
    return np.concatenate([v] * reps)[:n]


def throughput(ex, batch: int = 64, steps: int = 20, warmup: int = 3) -> float:
    """Training samples per second of one example model at ``batch`` rows per step."""
    import time

    import keras

    model = ex.build()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=ex.loss)
    x = _tile(ex.x, batch)
    y = None if ex.y is None else _tile(ex.y, batch)
    for _ in range(warmup):
        model.train_on_batch(x, y)
    t0 = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return batch * steps / (time.perf_counter() - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m kerahep.backend_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--save", required=True, help="folder for this backend's models, inputs and predictions")
    p.add_argument("--compare", help="folder written by another backend: load its models and compare")
    p.add_argument("--task", action="append", help="only these tasks")
    p.add_argument("--atol", type=float, default=1e-4)
    p.add_argument("--json", help="write the report here")
    p.add_argument("--bench", action="store_true", help="also measure training throughput of each model")
    args = p.parse_args(argv)

    import keras

    from .registry import get_task, list_tasks

    keras.utils.set_random_seed(0)
    out = Path(args.save)
    out.mkdir(parents=True, exist_ok=True)
    report = {"backend": keras.backend.backend(), "results": {}, "failures": {}}
    for tname in args.task or list_tasks():
        for ename, ex in get_task(tname).examples().items():
            key = f"{tname}.{ename}"
            try:
                res = check_example(key, ex, out, atol=args.atol)
                if args.compare:
                    res.update(compare_saved(key, Path(args.compare), atol=args.atol, outputs=ex.outputs))
                if args.bench:
                    res["samples_per_second"] = throughput(ex)
                report["results"][key] = res
            except Exception as exc:  # report every failure, not just the first
                report["failures"][key] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-1500:]}"
    text = json.dumps(report, indent=2)
    if args.json:
        Path(args.json).write_text(text)
    print(text)
    return 1 if report["failures"] or not report["results"] else 0


if __name__ == "__main__":
    sys.exit(main())
