"""Dense classifier on named tabular features, scaling inside the model."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers


def build_dense_classifier(feature_names, widths=(128, 64, 32), activation: str = "relu",
                           dropout: float = 0.1, batch_norm: bool = False, adapt_data=None,
                           name: str = "dense_classifier") -> keras.Model:
    """A dense network taking one named input per feature and returning P(signal).

    Inputs are a dict ``{feature_name: (batch, 1) float32}``; they are concatenated in the
    order of ``feature_names`` and standardised by a ``Normalization`` layer adapted on
    ``adapt_data``, so the saved model scores raw feature values with no side file.

    Args:
        feature_names: the input features, in order.
        widths: hidden layer widths.
        activation: hidden activation.
        dropout: dropout after each hidden layer.
        batch_norm: batch normalisation before each activation.
        adapt_data: array ``(n, n_features)`` of raw training features for the scaler.
        name: model name.

    Example:
        >>> import numpy as np
        >>> m = build_dense_classifier(["a", "b"], widths=(8,), adapt_data=np.random.rand(10, 2))
        >>> float(m({"a": np.zeros((1, 1)), "b": np.zeros((1, 1))})[0, 0]) >= 0
        True
    """
    feature_names = list(feature_names)
    inputs = {f: keras.Input(shape=(1,), name=f, dtype="float32") for f in feature_names}
    x = layers.Concatenate(name="features")([inputs[f] for f in feature_names]) if len(feature_names) > 1 \
        else inputs[feature_names[0]]
    norm = layers.Normalization(axis=-1, name="scaler")
    if adapt_data is not None:
        adapt = np.asarray(adapt_data, dtype="float32")
        norm.adapt(adapt)
    x = norm(x)
    for i, w in enumerate(widths):
        x = layers.Dense(int(w), use_bias=not batch_norm, name=f"dense_{i}")(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"bn_{i}")(x)
        x = layers.Activation(activation, name=f"act_{i}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"dropout_{i}")(x)
    out = layers.Dense(1, activation="sigmoid", dtype="float32", name="score")(x)
    return keras.Model(inputs, out, name=name)
