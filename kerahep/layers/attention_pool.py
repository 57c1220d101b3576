"""Attention pooling of a feature map with a learned query (keras.ops only)."""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="kerahep")
class AttentionPooling2D(layers.Layer):
    """Pools ``(batch, height, width, channels)`` maps to ``(batch, channels)`` by attention.

    A learned query attends over the ``height * width`` positions with Keras'
    ``MultiHeadAttention`` (after layer normalisation), so the network chooses which
    pixels of the map matter instead of averaging them all.

    Args:
        num_heads: attention heads.
        key_dim: size of each head (default ``channels // num_heads``).
        dropout: dropout on the attention weights.
        return_attention: also return the attention map ``(batch, heads, height, width)``.

    Example:
        >>> pool = AttentionPooling2D(num_heads=2)
        >>> tuple(pool(keras.ops.ones((3, 4, 4, 8))).shape)
        (3, 8)
    """

    def __init__(self, num_heads: int = 2, key_dim: int | None = None, dropout: float = 0.0,
                 return_attention: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.key_dim = None if key_dim is None else int(key_dim)
        self.dropout = float(dropout)
        self.return_attention = bool(return_attention)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self._channels = channels
        key_dim = self.key_dim or max(channels // self.num_heads, 1)
        self.query = self.add_weight(name="query", shape=(1, 1, channels), initializer="glorot_uniform")
        self.norm = layers.LayerNormalization(epsilon=1e-6, name="norm", dtype=self.dtype_policy)
        self.attn = layers.MultiHeadAttention(self.num_heads, key_dim, dropout=self.dropout, name="attn",
                                              dtype=self.dtype_policy)
        self.norm.build((None, None, channels))
        self.attn.build((None, 1, channels), (None, None, channels))

    def call(self, x, training=None):
        shape = ops.shape(x)
        batch = shape[0]
        tokens = self.norm(ops.reshape(x, (batch, -1, self._channels)))
        query = ops.broadcast_to(ops.cast(self.query, tokens.dtype), (batch, 1, self._channels))
        out, scores = self.attn(query, tokens, return_attention_scores=True, training=training)
        out = ops.reshape(out, (batch, self._channels))
        if self.return_attention:
            return out, ops.reshape(scores, (batch, self.num_heads, shape[1], shape[2]))
        return out

    def compute_output_shape(self, input_shape):
        out = (input_shape[0], input_shape[-1])
        if self.return_attention:
            return out, (input_shape[0], self.num_heads, input_shape[1], input_shape[2])
        return out

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "dropout": self.dropout, "return_attention": self.return_attention}
