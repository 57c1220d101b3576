"""Pre-norm Transformer block and learned position embedding (keras.ops only)."""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="kerahep")
class PositionEmbedding(layers.Layer):
    """Adds a learned embedding per token position to ``(batch, tokens, dim)`` inputs.

    Args:
        initializer: initializer of the position table.

    Example:
        >>> x = keras.ops.zeros((2, 6, 16))
        >>> PositionEmbedding()(x).shape
        (2, 6, 16)
    """

    def __init__(self, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        self.positions = self.add_weight(
            name="positions", shape=(int(input_shape[-2]), int(input_shape[-1])), initializer=self.initializer)

    def call(self, x):
        return x + ops.cast(self.positions, x.dtype)[None]

    def get_config(self):
        return {**super().get_config(), "initializer": keras.initializers.serialize(self.initializer)}


@keras.saving.register_keras_serializable(package="kerahep")
class TransformerBlock(layers.Layer):
    """Pre-norm Transformer encoder block: ``x + MHA(LN(x))``, then ``x + MLP(LN(x))``.

    Args:
        num_heads: attention heads.
        key_dim: size of each head (default ``dim // num_heads``).
        mlp_ratio: width of the MLP relative to the token width.
        dropout: dropout after attention and in the MLP.
        attention_dropout: dropout on the attention weights.
        return_attention: also return the attention scores ``(batch, heads, tokens, tokens)``
            (for attention rollout).

    Example:
        >>> blk = TransformerBlock(num_heads=2)
        >>> blk(keras.ops.zeros((2, 5, 8))).shape
        (2, 5, 8)
    """

    def __init__(self, num_heads: int = 4, key_dim: int | None = None, mlp_ratio: float = 2.0,
                 dropout: float = 0.0, attention_dropout: float = 0.0, return_attention: bool = False,
                 activation: str = "gelu", **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.key_dim = key_dim
        self.mlp_ratio = float(mlp_ratio)
        self.dropout = float(dropout)
        self.attention_dropout = float(attention_dropout)
        self.return_attention = bool(return_attention)
        self.activation = activation
        self.supports_masking = True

    def build(self, input_shape):
        dim = int(input_shape[-1])
        key_dim = self.key_dim or max(dim // self.num_heads, 1)
        self.norm1 = layers.LayerNormalization(epsilon=1e-6, name="norm1")
        self.attn = layers.MultiHeadAttention(self.num_heads, key_dim, dropout=self.attention_dropout, name="attn")
        self.drop1 = layers.Dropout(self.dropout)
        self.norm2 = layers.LayerNormalization(epsilon=1e-6, name="norm2")
        self.fc1 = layers.Dense(int(dim * self.mlp_ratio), activation=self.activation, name="fc1")
        self.fc2 = layers.Dense(dim, name="fc2")
        self.drop2 = layers.Dropout(self.dropout)
        self.norm1.build(input_shape)
        self.attn.build(input_shape, input_shape)
        self.norm2.build(input_shape)
        self.fc1.build(input_shape)
        self.fc2.build(tuple(input_shape[:-1]) + (int(dim * self.mlp_ratio),))

    def call(self, x, mask=None, training=None):
        h = self.norm1(x)
        attn_mask = None
        if mask is not None:  # (batch, tokens) boolean -> (batch, tokens, tokens)
            m = ops.cast(mask, "bool")
            attn_mask = ops.logical_and(m[:, :, None], m[:, None, :])
        h, scores = self.attn(h, h, attention_mask=attn_mask, return_attention_scores=True, training=training)
        x = x + self.drop1(h, training=training)
        h = self.fc2(self.fc1(self.norm2(x)))
        x = x + self.drop2(h, training=training)
        return (x, scores) if self.return_attention else x

    def compute_output_shape(self, input_shape):
        if self.return_attention:
            n = input_shape[-2]
            return input_shape, (input_shape[0], self.num_heads, n, n)
        return input_shape

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "mlp_ratio": self.mlp_ratio, "dropout": self.dropout,
                "attention_dropout": self.attention_dropout, "return_attention": self.return_attention,
                "activation": self.activation}
