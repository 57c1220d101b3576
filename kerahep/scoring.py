"""Scoring in a notebook: one function for every kerahep model and every kind of input.

:func:`score` takes a pandas ``DataFrame`` or a dict of arrays for models with named
inputs (dy_electron's dense network takes one input per feature), and a NumPy array for
models with one array input (images, HIGGS feature rows, HCAL maps). The inputs are
checked against the model first: missing columns are named, extra ones are ignored (and
listed in the error only when something is missing), shapes must match, and values go
to the model in the model's own order.

Example::

    import kerahep

    model = kerahep.load_model("results/dy_electron/RUN/model.keras")
    scores = kerahep.score(model, dataframe)        # one score per row, P(signal)
"""

from __future__ import annotations

import weakref

import numpy as np

from .errors import DataError


def input_spec(model) -> dict | tuple:
    """The inputs a model expects: ``{name: shape}`` (without the batch axis) for named inputs,
    else the shape of its one array input."""
    struct = model.input
    if isinstance(struct, dict):
        return {name: tuple(t.shape[1:]) for name, t in struct.items()}
    if isinstance(struct, (list, tuple)):
        raise DataError(getattr(model, "name", "model"), "a model with named inputs or one array input",
                        f"{len(struct)} positional inputs")
    return tuple(struct.shape[1:])


def _columns(data) -> tuple[dict, int]:
    """``({column: 1-D or n-D array}, rows)`` of a DataFrame or a dict of arrays."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        pd = None
    if pd is not None and isinstance(data, pd.DataFrame):
        cols = {str(c): data[c].to_numpy() for c in data.columns}
    elif isinstance(data, dict):
        cols = {str(k): np.asarray(v) for k, v in data.items()}
    else:
        raise DataError("inputs", "a pandas DataFrame or a dict of arrays (this model has named inputs)",
                        type(data).__name__)
    lengths = {len(v) for v in cols.values()}
    if len(lengths) > 1:
        raise DataError("inputs", "columns of one length", f"lengths {sorted(lengths)}")
    return cols, (lengths.pop() if lengths else 0)


def prepare_inputs(model, data):
    """``data`` as the model takes it: a dict of ``(n, *shape)`` float32 arrays in the model's
    order, or one float32 array; a DataError names what is missing or of the wrong shape."""
    spec = input_spec(model)
    name = getattr(model, "name", "model")
    if isinstance(spec, dict):
        cols, n = _columns(data)
        missing = [c for c in spec if c not in cols]
        if missing:
            extra = sorted(set(cols) - set(spec))
            raise DataError("inputs", f"the {len(spec)} input columns of {name} (missing here: {missing[:10]}"
                                      + (f" and {len(missing) - 10} more" if len(missing) > 10 else "") + ")",
                            f"{len(cols)} columns" + (f", of which not among the model's: {extra[:10]}" if extra else ""))
        out = {}
        for col, shape in spec.items():
            arr = np.asarray(cols[col], dtype=np.float32).reshape((n, *[d or 1 for d in shape]) if shape else (n,))
            out[col] = arr
        return out, n
    if isinstance(data, dict) or type(data).__name__ == "DataFrame":
        raise DataError("inputs", f"one array of shape (n, {', '.join(str(d) for d in spec)}) for {name}",
                        f"a {type(data).__name__} (named columns are for models with named inputs)")
    arr = np.asarray(data, dtype=np.float32)
    if arr.ndim != len(spec) + 1 or any(d is not None and d != a for d, a in zip(spec, arr.shape[1:])):
        raise DataError("inputs", f"an array of shape (n, {', '.join(str(d) for d in spec)}) for {name}",
                        f"shape {arr.shape}")
    return arr, len(arr)


def score(model, data, batch_size: int = 1024, output: int | str | None = None):
    """Score ``data`` with a kerahep (or any Keras) model, batch by batch.

    Args:
        model: a Keras model (for example from :func:`kerahep.load_model`).
        data: a ``DataFrame`` or dict of arrays (named inputs), or an array (one input).
        batch_size: events per batch.
        output: for multi-output models, the output (index or name); ``"all"`` returns
            every output as a dict.

    Returns:
        NumPy array of scores, one row per event (a single unit is squeezed to 1-D), or a
        dict of arrays with ``output="all"``.

    Raises:
        DataError: the inputs do not match the model (names the missing columns or the shape).
    """

    x, n = prepare_inputs(model, data)
    forward = compiled_forward(model)

    def batches():
        for start in range(0, n, batch_size):
            sl = slice(start, start + batch_size)
            xb = {k: v[sl] for k, v in x.items()} if isinstance(x, dict) else x[sl]
            yield xb, np.zeros(min(batch_size, n - start), np.float32)

    return predict_dataset(model, batches(), output=output, forward=forward)[1]


# ------------------------------------------------------------------ compiled forward pass
_FORWARD = weakref.WeakKeyDictionary()  # model -> its compiled forward pass, made once per model


def compiled_forward(model):
    """``forward(x)``: the inference pass of ``model`` (``training=False``), compiled once per
    model for the active Keras backend, for scoring many batches of arrays:

    * TensorFlow: a ``tf.function`` with ``reduce_retracing`` (a second batch size gives one
      trace with an unknown batch axis, no trace per file tail); eager under a
      ``tf.distribute`` strategy scope, whose replicas the function would not see.
    * JAX: ``jax.jit`` of ``model.stateless_call`` on the variables' current values; each
      batch is padded with zeros to a power of two (at most the largest batch seen), so a
      run compiles a handful of shapes instead of one per file tail, and the padded rows
      are cut off again (every kerahep model scores each event on its own in inference:
      batch normalisation uses its moving statistics, expert capacity is per example).
    * torch: the eager call under ``torch.no_grad()`` (no autograd graph is kept);
      ``torch.compile`` is not used (its first call costs more than a file's scoring).

    The outputs are NumPy arrays (or dicts / lists of them), as Keras returns them. A
    wrapper that is not a Keras model (the benchmark's recording and timing wrappers) may
    bring its own: its method ``compiled_forward()`` is used when it has one.
    """
    try:
        return _FORWARD[model]
    except (KeyError, TypeError):
        pass
    import keras

    if not isinstance(model, keras.Model) and callable(getattr(model, "compiled_forward", None)):
        return model.compiled_forward()

    backend = keras.backend.backend()
    forward = {"tensorflow": _tf_forward, "jax": _jax_forward, "torch": _torch_forward}.get(backend, _eager)(model)
    try:
        _FORWARD[model] = forward
    except TypeError:  # pragma: no cover - a model that cannot be weakly referenced
        pass
    return forward


def _to_numpy(out, n: int | None = None):
    import keras

    if isinstance(out, dict):
        return {k: _to_numpy(v, n) for k, v in out.items()}
    if isinstance(out, (list, tuple)):
        return type(out)(_to_numpy(v, n) for v in out)
    arr = np.asarray(keras.ops.convert_to_numpy(out))
    return arr if n is None else arr[:n]


def _eager(model):
    return lambda x: _to_numpy(model(x, training=False))


def _tf_forward(model):
    import tensorflow as tf

    graph = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def forward(x):
        if tf.distribute.has_strategy():
            return _to_numpy(model(x, training=False))
        return _to_numpy(graph(x))

    return forward


def _bucket(n: int) -> int:
    """The padded batch size of ``n`` events: the next power of two."""
    return 1 << max(0, int(n - 1).bit_length())


def _jax_forward(model):
    import jax

    def call(trainable, non_trainable, x):
        return model.stateless_call(trainable, non_trainable, x, training=False)[0]

    jitted = jax.jit(call)

    def forward(x):
        leaves = list(x.values()) if isinstance(x, dict) else [x]
        n = len(leaves[0])
        size = _bucket(n)
        if size != n:
            pad = lambda a: np.concatenate([a, np.zeros((size - n, *a.shape[1:]), a.dtype)])  # noqa: E731
            x = {k: pad(np.asarray(v)) for k, v in x.items()} if isinstance(x, dict) else pad(np.asarray(x))
        out = jitted([v.value for v in model.trainable_variables],
                     [v.value for v in model.non_trainable_variables], x)
        return _to_numpy(out, n)

    return forward


def _torch_forward(model):
    import torch

    def forward(x):
        with torch.no_grad():
            return _to_numpy(model(x, training=False))

    return forward


# ------------------------------------------------------------ the prediction loop
def predict_dataset(model, dataset, output: int | str | None = None, with_weights: bool = False, forward=None):
    """Run ``model`` over a batched dataset of ``(x, y[, w])``: the one prediction loop of kerahep.

    Args:
        model: a Keras model.
        dataset: batched ``tf.data.Dataset`` (or any iterable of such tuples).
        output: for multi-output models, the output to return, by index (in the model's
            order) or name (a dict output's key, else the model's ``output_names``); None:
            the first; ``"all"`` returns every output as a dict (by name for dict outputs,
            else ``output_0``, ...).
        with_weights: also return the per-sample weights (None where the dataset has none).
        forward: ``forward(x)`` giving the model's outputs for a batch; default the eager
            ``model(x, training=False)``. :func:`kerahep.scoring.score` passes a compiled
            one (:func:`kerahep.scoring.compiled_forward`).

    Returns:
        ``(y_true, y_pred)`` (plus ``weights`` with ``with_weights``) as NumPy arrays;
        ``y_pred`` is squeezed to 1-D for a single unit. Dict targets come back as a dict of
        arrays, each squeezed the same way.
    """
    ys, ps, ws = [], [], []
    for batch in dataset:
        x, y = batch[0], batch[1]
        # eager by default: predict_on_batch would be several times faster for small models,
        # but it runs torch.compile for models compiled with jit_compile on the torch backend
        # and returns every replica's outputs under tf.distribute (both fail the test suite)
        p = forward(x) if forward is not None else model(x, training=False)
        if output == "all":
            if isinstance(p, dict):
                p = dict(p)
            elif isinstance(p, (list, tuple)):
                p = {f"output_{i}": v for i, v in enumerate(p)}
            else:
                p = {"output_0": p}
        else:
            p = _pick(model, p, output)
        ys.append(_np(y))
        ps.append({k: _np(v).astype(np.float32) for k, v in p.items()} if isinstance(p, dict)
                  else _np(p).astype(np.float32))
        if with_weights:
            ws.append(_np(batch[2]) if len(batch) > 2 else None)
    y_true, y_pred = _concat(ys), _concat(ps)
    if not with_weights:
        return y_true, y_pred
    weights = None if not ws or any(w is None for w in ws) else _concat(ws)
    return y_true, y_pred, weights


def _pick(model, p, output):
    """One output of a multi-output prediction, by index or name (None: the first)."""
    if not isinstance(p, (dict, list, tuple)):
        return p
    values = list(p.values()) if isinstance(p, dict) else list(p)
    if output is None:
        return values[0]
    if not isinstance(output, str):
        return values[output]
    names = list(p) if isinstance(p, dict) else list(getattr(model, "output_names", None) or ())
    if output not in names:
        raise ValueError(f"the model has no output {output!r}; its outputs: "
                         f"{', '.join(map(str, names)) if names else f'{len(values)} unnamed'}")
    return values[names.index(output)]


def _concat(parts):
    """Concatenate per-batch arrays (or dicts of them), squeezing a trailing unit axis."""
    if parts and isinstance(parts[0], dict):
        return {k: _concat([p[k] for p in parts]) for k in parts[0]}
    out = np.concatenate(parts) if parts else np.zeros((0,))
    return out[:, 0] if out.ndim == 2 and out.shape[1] == 1 else out


def _np(t):
    if isinstance(t, dict):
        return {k: _np(v) for k, v in t.items()}
    import keras

    return np.asarray(keras.ops.convert_to_numpy(t))
