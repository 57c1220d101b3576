"""Mixture-of-experts MLP with top-k routing, expert capacity and a load-balancing loss.

A router (one linear layer, computed in float32) gives each token a probability over
``num_experts`` expert MLPs; each token goes to its ``top_k`` most probable experts. Each
expert takes at most ``capacity = ceil(capacity_factor * tokens * top_k / num_experts)``
tokens of one example (first choices first, then second choices, in token order, as in
GShard); tokens beyond that are dropped by the expert and pass through the residual
connection only. Dispatch and combine are one-hot einsums (GShard, Switch Transformer),
so every backend runs the same dense tensor program and an expert only computes its
``capacity`` slots.

The auxiliary load-balancing loss of the Switch Transformer,
``num_experts * sum_e f_e * P_e`` (``f_e`` the fraction of tokens whose first choice is
expert ``e``, ``P_e`` the mean router probability of ``e``), is added with ``add_loss``
times ``aux_loss_weight``. It equals 1 when the load is balanced and ``num_experts`` when
every token goes to one expert.
"""

from __future__ import annotations

import math

import keras
from keras import layers, ops


def load_balancing_loss(router_probs, expert_index, num_experts: int):
    """Switch-Transformer load-balancing loss ``E * sum_e f_e * P_e``.

    Args:
        router_probs: ``(..., E)`` router probabilities.
        expert_index: ``(...)`` integer first choice of each token.
        num_experts: ``E``.

    Returns:
        A scalar tensor: 1 for a balanced load (``f_e = P_e = 1/E``), ``E`` when all tokens
        go with certainty to one expert. Gradients flow through ``router_probs`` only.
    """
    probs = ops.reshape(ops.cast(router_probs, "float32"), (-1, num_experts))
    onehot = ops.reshape(ops.one_hot(ops.cast(expert_index, "int32"), num_experts, dtype="float32"), (-1, num_experts))
    fraction = ops.mean(onehot, axis=0)
    mean_prob = ops.mean(probs, axis=0)
    return float(num_experts) * ops.sum(fraction * mean_prob)


def expert_capacity(tokens: int, num_experts: int, top_k: int, capacity_factor: float | None) -> int:
    """Slots per expert for one example: ``ceil(capacity_factor * tokens * top_k / E)``.

    ``capacity_factor`` None or <= 0 means no limit (``tokens`` slots, nothing dropped).

    Example:
        >>> expert_capacity(72, 4, 2, 1.25)
        45
    """
    if not capacity_factor or capacity_factor <= 0:
        return int(tokens)
    return int(min(tokens, max(1, math.ceil(capacity_factor * tokens * top_k / num_experts))))


@keras.saving.register_keras_serializable(package="kerahep")
class MixtureOfExperts(layers.Layer):
    """Token-wise mixture-of-experts MLP for ``(batch, tokens, dim)`` inputs.

    Args:
        num_experts: number of expert MLPs.
        top_k: experts per token; their gates are renormalised to sum to one when
            ``top_k > 1`` (with ``top_k = 1`` the gate is the router probability, so the
            router learns from the main loss too).
        hidden_dim: hidden width of each expert (default ``mlp_ratio * dim``).
        mlp_ratio: used when ``hidden_dim`` is None.
        capacity_factor: expert capacity relative to an even share (None or <= 0: no limit).
        aux_loss_weight: weight of the load-balancing loss added with ``add_loss``.
        activation: activation of the expert hidden layer.
        dropout: dropout on the expert hidden layer.
        return_routing: also return the gates actually applied, ``(batch, tokens, E)``
            (zero for an expert that did not take the token; all zero for a dropped token).

    Example:
        >>> moe = MixtureOfExperts(num_experts=4, top_k=2)
        >>> moe(keras.ops.zeros((2, 6, 8))).shape
        (2, 6, 8)
    """

    def __init__(self, num_experts: int = 4, top_k: int = 2, hidden_dim: int | None = None, mlp_ratio: float = 2.0,
                 capacity_factor: float | None = 1.25, aux_loss_weight: float = 0.01, activation: str = "gelu",
                 dropout: float = 0.0, return_routing: bool = False, **kwargs):
        super().__init__(**kwargs)
        if int(num_experts) < 1 or not 1 <= int(top_k) <= int(num_experts):
            raise ValueError(f"need num_experts >= 1 and 1 <= top_k <= num_experts, got {num_experts}, {top_k}")
        self.num_experts = int(num_experts)
        self.top_k = int(top_k)
        self.hidden_dim = None if hidden_dim is None else int(hidden_dim)
        self.mlp_ratio = float(mlp_ratio)
        self.capacity_factor = None if capacity_factor is None else float(capacity_factor)
        self.aux_loss_weight = float(aux_loss_weight)
        self.activation = activation
        self.dropout = float(dropout)
        self.return_routing = bool(return_routing)

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[1] is None:
            raise ValueError(f"MixtureOfExperts needs (batch, tokens, dim) with a known number of tokens, got {input_shape}")
        tokens, dim = int(input_shape[1]), int(input_shape[2])
        hidden = self.hidden_dim or max(1, int(dim * self.mlp_ratio))
        e = self.num_experts
        self.capacity = expert_capacity(tokens, e, self.top_k, self.capacity_factor)
        self.router = layers.Dense(e, use_bias=False, dtype="float32", name="router",
                                   kernel_initializer=keras.initializers.RandomNormal(stddev=0.02))
        self.router.build((None, tokens, dim))
        init = keras.initializers.VarianceScaling(1.0, "fan_avg", "uniform")
        self.w1 = self.add_weight(name="w1", shape=(e, dim, hidden), initializer=init)
        self.b1 = self.add_weight(name="b1", shape=(e, hidden), initializer="zeros")
        self.w2 = self.add_weight(name="w2", shape=(e, hidden, dim), initializer=init)
        self.b2 = self.add_weight(name="b2", shape=(e, dim), initializer="zeros")
        self.act = keras.activations.get(self.activation)
        self.drop = layers.Dropout(self.dropout)

    def route(self, x):
        """Router probabilities ``(B, N, E)``, dispatch and combine tensors ``(B, N, E, C)``."""
        e, c = self.num_experts, self.capacity
        probs = ops.softmax(self.router(ops.cast(x, "float32")), axis=-1)
        gate, index = ops.top_k(probs, self.top_k)  # (B, N, k), first choice first
        if self.top_k > 1:
            gate = gate / ops.sum(gate, axis=-1, keepdims=True)
        dispatch = 0.0
        combine = 0.0
        filled = 0.0  # (B, 1, E): slots taken by earlier choices
        for j in range(self.top_k):
            chosen = ops.one_hot(index[..., j], e, dtype="float32")  # (B, N, E)
            position = ops.cumsum(chosen, axis=1) - 1.0 + filled
            keep = chosen * ops.cast(position < c, "float32")
            # positions past the capacity (or of experts not chosen) are masked by ``keep``;
            # clipping keeps one_hot in range on every backend (PyTorch refuses out-of-range classes)
            slot_index = ops.cast(ops.clip(position, 0.0, float(c - 1)), "int32")
            slot = ops.one_hot(slot_index, c, dtype="float32") * keep[..., None]
            dispatch = dispatch + slot
            combine = combine + slot * gate[..., j][..., None, None]
            filled = filled + ops.sum(chosen, axis=1, keepdims=True)
        return probs, index[..., 0], dispatch, combine

    def call(self, x, training=None):
        probs, first, dispatch, combine = self.route(x)
        if self.aux_loss_weight:
            self.add_loss(self.aux_loss_weight * load_balancing_loss(probs, first, self.num_experts))
        dt = x.dtype
        expert_in = ops.einsum("bnec,bnd->becd", ops.cast(dispatch, dt), x)
        h = ops.einsum("becd,edh->bech", expert_in, ops.cast(self.w1, dt)) + ops.cast(self.b1, dt)[None, :, None, :]
        h = self.drop(self.act(h), training=training)
        out = ops.einsum("bech,ehd->becd", h, ops.cast(self.w2, dt)) + ops.cast(self.b2, dt)[None, :, None, :]
        y = ops.einsum("bnec,becd->bnd", ops.cast(combine, dt), out)
        if self.return_routing:
            return y, ops.sum(combine, axis=-1)
        return y

    def compute_output_shape(self, input_shape):
        if self.return_routing:
            return input_shape, (input_shape[0], input_shape[1], self.num_experts)
        return input_shape

    def get_config(self):
        return {**super().get_config(), "num_experts": self.num_experts, "top_k": self.top_k,
                "hidden_dim": self.hidden_dim, "mlp_ratio": self.mlp_ratio, "capacity_factor": self.capacity_factor,
                "aux_loss_weight": self.aux_loss_weight, "activation": self.activation, "dropout": self.dropout,
                "return_routing": self.return_routing}
