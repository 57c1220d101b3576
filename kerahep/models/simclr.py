"""SimCLR: contrastive pre-training of an encoder on unlabelled images (every Keras backend).

Each batch is augmented twice inside the model; both views go through the encoder and a
projection head; the NT-Xent loss (normalised temperature-scaled cross entropy) pulls the
two views of a jet together and pushes the other ``2N - 2`` views of the batch away. The
loss lives in :meth:`SimCLR.compute_loss`, so plain ``model.fit`` trains it on
TensorFlow, JAX and PyTorch; there is no hand-written gradient loop.

Reference: Chen et al., "A Simple Framework for Contrastive Learning of Visual
Representations", arXiv:2002.05709.
"""

from __future__ import annotations

import keras
from keras import layers, ops


def nt_xent_loss(z1, z2, temperature: float = 0.1, return_accuracy: bool = False):
    """NT-Xent loss of two batches of projections whose rows ``i`` are views of the same sample.

    With ``z = normalise([z1; z2])`` (``2N`` rows) and ``s_ij = z_i . z_j / temperature``,
    the loss is the mean over all ``2N`` rows of ``-log(exp(s_ip) / sum_{k != i} exp(s_ik))``,
    where ``p`` is the other view of row ``i``.

    Args:
        z1, z2: ``(N, d)`` projections of the first and second views.
        temperature: the softmax temperature (smaller: sharper).
        return_accuracy: also return the fraction of rows whose most similar other row is
            their positive partner.

    Returns:
        The scalar loss (float32), and the accuracy when ``return_accuracy``.

    Example:
        >>> z = keras.random.normal((4, 8), seed=1)
        >>> float(nt_xent_loss(z, z, 0.5)) > 0
        True
    """
    z1 = ops.cast(z1, "float32")
    z2 = ops.cast(z2, "float32")
    n = ops.shape(z1)[0]
    z = ops.concatenate([z1, z2], axis=0)
    # x * rsqrt(max(|x|^2, eps)) as tf.math.l2_normalize: finite gradients for an all-zero
    # row too (sqrt's gradient at 0 is NaN on the torch backend)
    z = z * ops.rsqrt(ops.maximum(ops.sum(ops.square(z), axis=1, keepdims=True), 1e-12))
    sim = ops.matmul(z, ops.transpose(z)) / float(temperature)
    eye = ops.eye(2 * n, dtype="float32")
    sim = sim - 1e9 * eye  # a view is never its own negative
    idx = ops.arange(2 * n)
    positive = ops.concatenate([idx[n:], idx[:n]], axis=0)
    onehot = ops.one_hot(positive, 2 * n, dtype="float32")
    log_prob = sim - ops.logsumexp(sim, axis=1, keepdims=True)
    loss = -ops.mean(ops.sum(onehot * log_prob, axis=1))
    if not return_accuracy:
        return loss
    acc = ops.mean(ops.cast(ops.equal(ops.argmax(sim, axis=1), positive), "float32"))
    return loss, acc


def projection_head(input_dim: int, hidden: int = 128, output_dim: int = 64, name: str = "projection_head"):
    """SimCLR projection head: Dense -> BatchNorm -> ReLU -> Dense (float32 output).

    Example:
        >>> projection_head(16, 32, 8).output.shape
        (None, 8)
    """
    inp = keras.Input((int(input_dim),), name="latent")
    x = layers.Dense(int(hidden), use_bias=False, name="proj_hidden")(inp)
    x = layers.BatchNormalization(momentum=0.9, name="proj_bn")(x)
    x = layers.ReLU(name="proj_relu")(x)
    out = layers.Dense(int(output_dim), dtype="float32", name="projection")(x)
    return keras.Model(inp, out, name=name)


@keras.saving.register_keras_serializable(package="kerahep")
class SimCLR(keras.Model):
    """Two augmented views per sample, an encoder, a projection head and the NT-Xent loss.

    ``model(x)`` returns the ``(2N, projection_dim)`` projections of two augmented views of
    ``x`` (first all first views, then all second views); :meth:`compute_loss` turns them
    into the NT-Xent loss, and the metric ``pair_accuracy`` tracks how often a view finds
    its partner among the ``2N - 1`` others. The augmentations are applied in evaluation
    too, so the validation loss measures the same task. Train with
    ``model.compile(optimizer=...)`` (no loss argument) and ``model.fit(images)``.

    Args:
        encoder: a Keras model from raw inputs to latent vectors (it is what is kept).
        augmenter: a layer producing one random view (for example
            :func:`kerahep.models.encoders.jet_augmenter`).
        projection_dim: size of the projection the loss sees.
        projection_hidden: hidden width of the projection head.
        temperature: NT-Xent temperature.

    Example:
        >>> from kerahep.models.encoders import jet_augmenter, resnet18_encoder
        >>> enc = resnet18_encoder(widths=(8, 8), blocks=(1, 1))
        >>> model = SimCLR(enc, jet_augmenter(seed=0), projection_dim=8, temperature=0.2)
        >>> model.compile(optimizer="adam")
    """

    def __init__(self, encoder, augmenter, projection_dim: int = 64, projection_hidden: int = 128,
                 temperature: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        if not float(temperature) > 0:
            raise ValueError(f"SimCLR temperature must be positive, got {temperature}")
        self.encoder = encoder
        self.augmenter = augmenter
        self.projection_dim = int(projection_dim)
        self.projection_hidden = int(projection_hidden)
        self.temperature = float(temperature)
        self.projector = projection_head(int(encoder.output.shape[-1]), self.projection_hidden, self.projection_dim)
        self.pair_accuracy = keras.metrics.Mean(name="pair_accuracy")
        self.build((None,) + tuple(encoder.input.shape[1:]))

    def build(self, input_shape):
        # the encoder and the projection head are functional models, built already
        self.augmenter.build(input_shape)
        self.built = True

    def views(self, x):
        """Two independent augmented views of ``x``."""
        return self.augmenter(x, training=True), self.augmenter(x, training=True)

    def call(self, x, training=False):
        v1, v2 = self.views(x)
        h = self.encoder(ops.concatenate([v1, v2], axis=0), training=training)
        return self.projector(h, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        n = ops.shape(y_pred)[0] // 2
        loss, acc = nt_xent_loss(y_pred[:n], y_pred[n:], self.temperature, return_accuracy=True)
        self.pair_accuracy.update_state(acc)
        for extra in self.losses:
            loss = loss + ops.cast(extra, loss.dtype)
        return loss

    def compute_output_shape(self, input_shape):
        n = None if input_shape[0] is None else 2 * input_shape[0]
        return (n, self.projection_dim)

    def get_config(self):
        return {**super().get_config(),
                "encoder": keras.saving.serialize_keras_object(self.encoder),
                "augmenter": keras.saving.serialize_keras_object(self.augmenter),
                "projection_dim": self.projection_dim, "projection_hidden": self.projection_hidden,
                "temperature": self.temperature}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        config["augmenter"] = keras.saving.deserialize_keras_object(config["augmenter"])
        return cls(**config)
