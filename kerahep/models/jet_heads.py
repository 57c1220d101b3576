"""Downstream heads of jet_ssl: jet class, mass and pT from an encoder's latent vector.

:func:`latent_heads` builds one small model with three outputs: ``y`` (the probability of a
top jet), ``m`` and ``pt`` (GeV). The regressors predict standardised values that a
``Rescaling`` layer turns back into GeV, so the saved model answers in GeV while the
loss (:func:`head_compile_args`, mean squared error weighted by ``1/std^2``) is the
standardised one. ``linear=True`` gives the linear probe (logistic and linear regression
on the latents). :func:`jet_model` puts an encoder and heads together into the model
that scores raw jet images.
"""

from __future__ import annotations

import keras
from keras import layers

TARGETS = ("y", "m", "pt")


def latent_heads(latent_dim: int, target_stats: dict, hidden=(64,), dropout: float = 0.0, linear: bool = False,
                 latent_mean=None, latent_var=None, name: str = "heads") -> keras.Model:
    """Classifier and regressors on a latent vector.

    Args:
        latent_dim: size of the latent vector.
        target_stats: ``{"m": (mean, std), "pt": (mean, std)}`` in GeV (from the training
            labels): the regressors' outputs are ``mean + std * z``.
        hidden: hidden widths of each head's MLP (ignored when ``linear``).
        dropout: dropout after each hidden layer.
        linear: the linear probe (no hidden layers).
        latent_mean, latent_var: standardise the latents with these (a ``Normalization``
            layer; None: no standardisation).
        name: model name.

    Returns:
        A model from ``(latent_dim,)`` to ``{"y": (1,), "m": (1,), "pt": (1,)}`` (float32).

    Example:
        >>> heads = latent_heads(16, {"m": (140.0, 50.0), "pt": (520.0, 100.0)}, hidden=(8,))
        >>> sorted(heads.output)
        ['m', 'pt', 'y']
    """
    inp = keras.Input((int(latent_dim),), name="latent")
    x = inp
    if latent_mean is not None and latent_var is not None:
        x = layers.Normalization(mean=list(map(float, latent_mean)), variance=list(map(float, latent_var)),
                                 name="latent_norm")(x)
    outputs = {}
    for key in TARGETS:
        h = x
        if not linear:
            for i, w in enumerate(hidden):
                h = layers.Dense(int(w), activation="relu", name=f"{key}_dense{i + 1}")(h)
                if dropout:
                    h = layers.Dropout(float(dropout), name=f"{key}_dropout{i + 1}")(h)
        if key == "y":
            outputs[key] = layers.Dense(1, activation="sigmoid", dtype="float32", name="y")(h)
        else:
            mean, std = (float(v) for v in target_stats[key])
            z = layers.Dense(1, dtype="float32", name=f"{key}_standardised")(h)
            outputs[key] = layers.Rescaling(scale=std, offset=mean, dtype="float32", name=key)(z)
    return keras.Model(inp, outputs, name=name)


def jet_model(encoder: keras.Model, heads: keras.Model, name: str = "jet_ssl") -> keras.Model:
    """Raw jet image -> ``encoder`` -> ``heads``: the model that is saved and scores new jets.

    Example:
        >>> from kerahep.models.encoders import resnet18_encoder
        >>> enc = resnet18_encoder(widths=(8, 8), blocks=(1, 1))
        >>> model = jet_model(enc, latent_heads(8, {"m": (140.0, 50.0), "pt": (520.0, 100.0)}))
        >>> model.output["m"].shape
        (None, 1)
    """
    inp = keras.Input(tuple(encoder.input.shape[1:]), name="jet")
    return keras.Model(inp, heads(encoder(inp)), name=name)


def head_compile_args(target_stats: dict, regression_weight: float = 1.0) -> dict:
    """The ``loss``, ``loss_weights`` and ``metrics`` of a model with outputs ``y``, ``m``, ``pt``.

    Cross entropy for ``y``; for ``m`` and ``pt`` the mean squared errors in GeV^2
    weighted by ``regression_weight / std^2``: the standardised MSE. Metrics: AUC and
    accuracy of ``y``; MSE (GeV^2, unweighted: ``m_mse``, ``val_pt_mse``, ...) and MAE (GeV)
    of ``m`` and ``pt``, so the logs read in physical units.

    The metrics are a list with one entry per output in the order Keras gives dict outputs
    (sorted names: ``m``, ``pt``, ``y``), so that :func:`kerahep.tasks.base.compile_model`,
    which takes a list, names them ``m_mse``, ``y_auc``, ... as a dict would.

    Example:
        >>> args = head_compile_args({"m": (140.0, 50.0), "pt": (520.0, 100.0)})
        >>> sorted(args), args["loss_weights"]["m"]
        (['loss', 'loss_weights', 'metrics'], 0.0004)
    """
    w_m = regression_weight / float(target_stats["m"][1]) ** 2
    w_pt = regression_weight / float(target_stats["pt"][1]) ** 2
    per_output = {"y": [keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")],
                  "m": [keras.metrics.MeanSquaredError(name="mse"), keras.metrics.MeanAbsoluteError(name="mae")],
                  "pt": [keras.metrics.MeanSquaredError(name="mse"), keras.metrics.MeanAbsoluteError(name="mae")]}
    return {"loss": {"y": keras.losses.BinaryCrossentropy(), "m": keras.losses.MeanSquaredError(),
                     "pt": keras.losses.MeanSquaredError()},
            "loss_weights": {"y": 1.0, "m": w_m, "pt": w_pt},
            "metrics": [per_output[k] for k in sorted(per_output)]}


def compile_heads(model: keras.Model, optimizer, target_stats: dict, regression_weight: float = 1.0,
                  jit_compile: bool = False) -> keras.Model:
    """Compile a model with outputs ``y``, ``m``, ``pt`` with ``optimizer`` and :func:`head_compile_args`.

    (The jet_ssl task compiles its stages with :func:`kerahep.tasks.base.compile_model`
    and the same arguments.)
    """
    model.compile(optimizer=optimizer, jit_compile=jit_compile, **head_compile_args(target_stats, regression_weight))
    return model
