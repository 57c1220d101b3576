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
    from .evaluation import predict_dataset

    x, n = prepare_inputs(model, data)

    def batches():
        for start in range(0, n, batch_size):
            sl = slice(start, start + batch_size)
            xb = {k: v[sl] for k, v in x.items()} if isinstance(x, dict) else x[sl]
            yield xb, np.zeros(min(batch_size, n - start), np.float32)

    return predict_dataset(model, batches(), output=output)[1]
