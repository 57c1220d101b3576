"""dy_electron models: the dense classifier on the prepared features (one supervised stage,
the base task's ``fit``), with the feature scaling adapted on the training events, and its
compile when the batches carry event weights."""

from __future__ import annotations

import numpy as np

from ...config import Config
from ..base import ModelExample
from .data import DyElectronInputs


def build_model(config: Config, data: DyElectronInputs):
    """The dense classifier of ``config``; its ``Normalization`` adapts to the training events."""
    from ...models.dense import build_dense_classifier

    m = config.model
    tr = data.split[0]
    adapt = data.X[tr] if len(tr) else data.X
    return build_dense_classifier(data.features, widths=m.widths, activation=m.activation,
                                  dropout=m.dropout, batch_norm=m.batch_norm, adapt_data=adapt)


def compile_weighted(model, config: Config, steps_per_epoch: int | None = None):
    """The base task's compile (cross-entropy or focal loss, AUC, accuracy) with the metrics
    weighted by the batches' event weights, as the loss is (``data.weights`` not ``none``);
    unweighted Keras metrics ignore the weights."""
    import keras

    from ..base import compile_model

    if config.training.loss == "focal":
        loss = keras.losses.BinaryFocalCrossentropy(apply_class_balancing=False)
    else:
        loss = keras.losses.BinaryCrossentropy()
    return compile_model(model, config.training, steps_per_epoch, loss=loss,
                         weighted_metrics=[keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")])


def describe_model(config: Config) -> str:
    return f"dense{tuple(config.model.widths)}"


def examples() -> dict:
    """The dense builder at a tiny size, for the backend matrix."""
    from ...models.dense import build_dense_classifier

    rng = np.random.default_rng(0)
    names = ["Electron_pt_0", "Electron_eta_0", "m_ee", "nJet"]
    X = rng.normal(size=(16, 4)).astype("float32")
    return {"dense": ModelExample(
        build=lambda: build_dense_classifier(names, widths=(8, 4), dropout=0.1, batch_norm=True, adapt_data=X),
        x={n: X[:, i:i + 1] for i, n in enumerate(names)}, y=(X[:, 0] > 0).astype("float32"))}
