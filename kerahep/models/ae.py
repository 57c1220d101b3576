"""A small dense autoencoder of count maps whose output is the residual map (anomaly score).

The model takes raw counts ``(batch, H, W)``, scales them with ``log(1 + x)`` inside
(:class:`~kerahep.layers.log1p.Log1p`), squeezes them through a narrow bottleneck and
returns the residual ``observed - reconstructed`` in log space (per-cell standardised
by default), ``(batch, H, W)``. It is
trained to make the residual zero (targets of zeros, mean squared error), so the saved
``.keras`` file turns raw maps straight into residual maps: positive where a cell is
hotter than the learnt pattern, negative where it is dead. :func:`anomaly_scores`
reduces them to one number per map.

Example:
    >>> ae = build_autoencoder((64, 72), latent_dim=16)
    >>> ae.output_shape
    (None, 64, 72)
"""

from __future__ import annotations

import numpy as np

SCORES = ("mse", "max", "top")


def build_autoencoder(input_shape=(64, 72), latent_dim: int = 16, hidden: int = 128, log_scale: float = 1.0,
                      normalize: bool = True, adapt_data=None, name: str = "autoencoder"):
    """Dense autoencoder returning the residual map of raw count maps.

    Args:
        input_shape: ``(H, W)``.
        latent_dim: bottleneck width (small: the map is a fixed pattern times an intensity,
            so a few numbers describe a good map and a broken channel cannot be copied).
        hidden: width of the layers around the bottleneck.
        log_scale: factor after ``log(1 + x)``.
        normalize: standardise every cell after the logarithm (residuals then count in
            units of each cell's own spread); see :func:`kerahep.models.vit.build_vit`.
        adapt_data: raw maps to adapt the normalisation to.
        name: model name.

    Returns:
        An uncompiled ``keras.Model``: raw counts to the residual ``(batch, H, W)``.

    Example:
        >>> ae = build_autoencoder((64, 72), latent_dim=8, hidden=64)
    """
    import keras
    from keras import layers

    from .vit import scaled_input

    h, w = int(input_shape[0]), int(input_shape[1])
    inp = keras.Input((h, w), name="occupancy")
    scaled = scaled_input(inp, log_scale, normalize, adapt_data)
    z = layers.Flatten(name="flatten")(scaled)
    z = layers.Dense(hidden, activation="gelu", name="enc_hidden")(z)
    z = layers.Dense(latent_dim, name="latent")(z)
    z = layers.Dense(hidden, activation="gelu", name="dec_hidden")(z)
    z = layers.Dense(h * w, name="dec_out")(z)
    recon = layers.Reshape((h, w), name="reconstruction")(z)
    residual = layers.Subtract(dtype="float32", name="residual")([scaled, recon])
    return keras.Model(inp, residual, name=name)


def zero_targets(dataset):
    """Map a dataset of ``(x, y)`` to ``(x, zeros like x)``: the autoencoder's training data."""
    import tensorflow as tf

    return dataset.map(lambda x, *rest: (x, tf.zeros_like(x)), num_parallel_calls=tf.data.AUTOTUNE)


def reduce_residuals(residual, how: str = "mse", top: int = 8) -> np.ndarray:
    """One anomaly score per map from residual maps ``(B, H, W)``.

    Args:
        how: ``mse`` (mean squared residual over the map: the classic reconstruction
            error), ``max`` (largest absolute residual: one broken channel suffices) or
            ``top`` (mean of the ``top`` largest squared residuals: a small group of channels).
    """
    r = np.asarray(residual).reshape(len(residual), -1)
    if how == "max":
        return np.max(np.abs(r), axis=1).astype(np.float64)
    if how not in ("mse", "top"):
        raise ValueError(f"score must be one of {SCORES}, got {how!r}")
    sq = np.square(r, dtype=np.float64)  # one float64 buffer, no float64 copy of r first
    if how == "mse":
        return np.mean(sq, axis=1)
    k = min(int(top), sq.shape[1])  # the k largest by a partial sort, not a sort of the whole map
    return np.mean(np.partition(sq, sq.shape[1] - k, axis=1)[:, -k:], axis=1)


def anomaly_scores(ae, dataset, how: str = "mse", top: int = 8, keep_residuals=None, forward=None):
    """Anomaly scores of every map of a batched dataset of ``(x, ...)`` (in order).

    Its own loop rather than :func:`kerahep.evaluation.predict_dataset`: each batch's residual
    maps are reduced to scores as they come, so the maps of a whole split (``(n, H, W)``,
    55 MB per 3000 real lumisections) are never held together.

    Args:
        keep_residuals: optional indices (positions in the dataset order) whose residual
            maps are returned too.
        forward: ``forward(x)`` giving the autoencoder's output for a batch; default the
            eager ``ae(x, training=False)`` of the reports. Scoring files passes the
            compiled pass of :func:`kerahep.scoring.compiled_forward`.

    Returns:
        ``scores`` (n,), and with ``keep_residuals`` also ``{index: residual map}``.
    """
    import keras

    scores, kept, start = [], {}, 0
    wanted = set(int(i) for i in (keep_residuals if keep_residuals is not None else ()))
    for batch in dataset:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        r = keras.ops.convert_to_numpy(forward(x) if forward is not None else ae(x, training=False))
        scores.append(reduce_residuals(r, how, top))
        for i in range(len(r)):
            if start + i in wanted:
                kept[start + i] = r[i]
        start += len(r)
    out = np.concatenate(scores) if scores else np.zeros(0)
    return (out, kept) if keep_residuals is not None else out
