"""Vision Transformer and mixture-of-experts ViT for detector maps; attention rollout.

Both models take raw counts ``(batch, H, W)`` (HCAL: 64 iEta x 72 iPhi), scale them
with ``log(1 + x)`` inside the model (:class:`~kerahep.layers.log1p.Log1p`), cut them
into patches (:class:`~kerahep.layers.patches.Patchify`, 8x8 by default: 8 x 9 = 72
tokens), embed the patches, add learned position embeddings and run pre-norm
Transformer blocks; the mean token goes to a float32 sigmoid (two classes) or softmax
head. The MoE-ViT replaces the MLP of every ``moe_every``-th block by a
:class:`~kerahep.layers.moe.MixtureOfExperts` (top-k routing, expert capacity,
load-balancing loss via ``add_loss``), as in V-MoE.

Layer names are part of the interface: blocks are ``block_<i>`` (a
:class:`~kerahep.layers.transformer.TransformerBlock`) or, in MoE blocks,
``block_<i>_attn`` (``MultiHeadAttention``) and ``block_<i>_moe``; their attention
scores and routing gates are read by :func:`attention_model` and :func:`routing_model`.

Example:
    >>> model = build_vit((64, 72), num_classes=2, depth=2, dim=32, num_heads=2)
    >>> model.output_shape
    (None, 1)
    >>> maps = rollout_maps(model, x)  # doctest: +SKIP  (batch, 64, 72) relevance per cell
"""

from __future__ import annotations

import numpy as np

VARIANTS = ("vit", "moe_vit")


def build_vit(input_shape=(64, 72), num_classes: int = 2, patch_size=(8, 8), dim: int = 64, depth: int = 4,
              num_heads: int = 4, mlp_ratio: float = 2.0, dropout: float = 0.1, log_scale: float = 0.15,
              normalize: bool = True, adapt_data=None, name: str = "vit"):
    """A Vision Transformer classifier of raw count maps.

    Args:
        input_shape: ``(H, W)`` of the maps (a channel axis is allowed: ``(H, W, C)``).
        num_classes: 2 gives one sigmoid output; more give a softmax over the classes.
        patch_size: ``(ph, pw)``; sides that do not divide are zero-padded.
        dim: token width.
        depth: Transformer blocks.
        num_heads: attention heads (``dim // num_heads`` per head).
        mlp_ratio: MLP width relative to ``dim``.
        dropout: dropout on the embeddings, in the blocks and before the head.
        log_scale: factor after ``log(1 + x)``.
        normalize: standardise every cell after the logarithm (a Keras ``Normalization``
            over the map axes: each cell relative to its own mean and spread, as a DQM
            reference map does); cells that are always zero stay zero.
        adapt_data: raw maps (a sample of the training split) to adapt the normalisation
            to; without them it starts as the identity (weights loaded later replace it).
        name: model name.

    Returns:
        An uncompiled ``keras.Model`` mapping raw counts to class probabilities.

    Example:
        >>> m = build_vit((64, 72), patch_size=(8, 8), dim=32, depth=2, num_heads=2)
        >>> m.get_layer("patchify").grid
        (8, 9)
    """
    return _build(input_shape, num_classes, patch_size, dim, depth, num_heads, mlp_ratio, dropout, log_scale,
                  normalize, adapt_data, moe=None, name=name)


def build_moe_vit(input_shape=(64, 72), num_classes: int = 2, patch_size=(8, 8), dim: int = 64, depth: int = 4,
                  num_heads: int = 4, mlp_ratio: float = 2.0, dropout: float = 0.1, log_scale: float = 0.15,
                  normalize: bool = True, adapt_data=None, num_experts: int = 4, top_k: int = 2, capacity_factor: float | None = 1.25,
                  aux_loss_weight: float = 0.01, moe_every: int = 2, name: str = "moe_vit"):
    """A ViT whose every ``moe_every``-th block has a mixture-of-experts MLP.

    Args:
        input_shape, num_classes, patch_size, dim, depth, num_heads, mlp_ratio, dropout,
            log_scale, normalize, adapt_data: as for :func:`build_vit`.
        num_experts: experts per MoE block.
        top_k: experts each patch token is sent to.
        capacity_factor: expert capacity relative to an even share of the tokens of one
            map (tokens beyond it skip the expert); None or <= 0: no limit.
        aux_loss_weight: weight of the load-balancing loss (``add_loss``).
        moe_every: blocks ``moe_every - 1, 2 * moe_every - 1, ...`` are MoE blocks
            (1: all blocks).
        name: model name.

    Returns:
        An uncompiled ``keras.Model``; :func:`routing_model` reads its routing per patch.

    Example:
        >>> m = build_moe_vit((64, 72), dim=32, depth=2, num_heads=2, num_experts=4, top_k=1)
        >>> [l.name for l in m.layers if l.name.endswith("_moe")]
        ['block_1_moe']
    """
    moe = {"num_experts": num_experts, "top_k": top_k, "capacity_factor": capacity_factor,
           "aux_loss_weight": aux_loss_weight, "moe_every": max(1, int(moe_every))}
    return _build(input_shape, num_classes, patch_size, dim, depth, num_heads, mlp_ratio, dropout, log_scale,
                  normalize, adapt_data, moe=moe, name=name)


def scaled_input(inp, log_scale: float, normalize: bool, adapt_data=None, batch_size: int = 256):
    """``Log1p`` (and, with ``normalize``, a per-cell ``Normalization`` adapted to ``adapt_data``) on ``inp``."""
    import keras
    from keras import layers

    from ..layers.log1p import Log1p

    log = Log1p(scale=log_scale, name="log1p")
    x = log(inp)
    if normalize:
        norm = layers.Normalization(axis=tuple(range(1, len(inp.shape))), name="cell_norm")
        if adapt_data is not None:
            raw = np.asarray(adapt_data, dtype=np.float32)
            scaled = np.concatenate([keras.ops.convert_to_numpy(log(raw[s:s + batch_size]))
                                     for s in range(0, len(raw), batch_size)])
            norm.adapt(scaled)
        x = norm(x)
    return x


def _build(input_shape, num_classes, patch_size, dim, depth, num_heads, mlp_ratio, dropout, log_scale, normalize,
           adapt_data, moe, name):
    import keras
    from keras import layers

    from ..layers.moe import MixtureOfExperts
    from ..layers.patches import Patchify
    from ..layers.transformer import PositionEmbedding, TransformerBlock

    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if dim % num_heads:
        raise ValueError(f"dim ({dim}) must be a multiple of num_heads ({num_heads})")
    inp = keras.Input(tuple(input_shape), name="occupancy")
    x = scaled_input(inp, log_scale, normalize, adapt_data)
    x = Patchify(patch_size, name="patchify")(x)
    x = layers.Dense(dim, name="patch_embed")(x)
    x = PositionEmbedding(name="pos_embed")(x)
    x = layers.Dropout(dropout, name="embed_dropout")(x)
    for i in range(depth):
        if moe and i % moe["moe_every"] == moe["moe_every"] - 1:
            h = layers.LayerNormalization(epsilon=1e-6, name=f"block_{i}_norm1")(x)
            h, _ = layers.MultiHeadAttention(num_heads, dim // num_heads, name=f"block_{i}_attn")(
                h, h, return_attention_scores=True)
            x = layers.Add(name=f"block_{i}_add1")([x, layers.Dropout(dropout, name=f"block_{i}_drop1")(h)])
            h = layers.LayerNormalization(epsilon=1e-6, name=f"block_{i}_norm2")(x)
            h, _ = MixtureOfExperts(moe["num_experts"], moe["top_k"], mlp_ratio=mlp_ratio,
                                    capacity_factor=moe["capacity_factor"], aux_loss_weight=moe["aux_loss_weight"],
                                    dropout=dropout, return_routing=True, name=f"block_{i}_moe")(h)
            x = layers.Add(name=f"block_{i}_add2")([x, layers.Dropout(dropout, name=f"block_{i}_drop2")(h)])
        else:
            x, _ = TransformerBlock(num_heads, mlp_ratio=mlp_ratio, dropout=dropout, return_attention=True,
                                    name=f"block_{i}")(x)
    x = layers.LayerNormalization(epsilon=1e-6, name="final_norm")(x)
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    if num_classes == 2:
        out = layers.Dense(1, activation="sigmoid", dtype="float32", name="output")(x)
    else:
        out = layers.Dense(num_classes, activation="softmax", dtype="float32", name="output")(x)
    return keras.Model(inp, out, name=name)


# ------------------------------------------------------------------ maps from the model
def _blocks(model) -> list[int]:
    import re

    idx = set()
    for layer in model.layers:
        m = re.fullmatch(r"block_(\d+)(_attn)?", layer.name)
        if m:
            idx.add(int(m.group(1)))
    return sorted(idx)


def attention_model(model):
    """A model from the input to the attention scores of every block, ``[(B, heads, N, N), ...]``."""
    import keras

    outs = []
    for i in _blocks(model):
        try:
            layer = model.get_layer(f"block_{i}")
        except ValueError:
            layer = model.get_layer(f"block_{i}_attn")
        outs.append(layer.output[1])
    if not outs:
        raise ValueError(f"model {model.name!r} has no block_<i> attention layers")
    return keras.Model(model.inputs[0], outs, name=f"{model.name}_attention")


def moe_layer_names(model) -> list[str]:
    return [layer.name for layer in model.layers if layer.name.endswith("_moe")]


def routing_model(model):
    """A model from the input to the gates of every MoE block, ``[(B, N, experts), ...]``.

    A gate is the weight with which an expert's output enters the token; a token's first
    choice is the expert with the largest gate, and a token with all gates zero was
    dropped (every chosen expert was full).
    """
    import keras

    names = moe_layer_names(model)
    if not names:
        raise ValueError(f"model {model.name!r} has no mixture-of-experts layers")
    return keras.Model(model.inputs[0], [model.get_layer(n).output[1] for n in names], name=f"{model.name}_routing")


def attention_rollout(attentions, head_fusion: str = "mean", residual: float = 0.5) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020) for a model that averages its tokens.

    Each layer's attention ``A`` (heads fused by mean or max) is mixed with the identity
    for the residual path, ``residual * I + (1 - residual) * A``, rows renormalised, and
    the layers multiplied from the first to the last. The rolled-out matrix ``R[q, k]``
    says how much input token ``k`` flows into output token ``q``; as the head averages
    the output tokens, the relevance of input token ``k`` is the mean of column ``k``.

    Args:
        attentions: list over layers of ``(B, heads, N, N)`` arrays (first layer first).
        head_fusion: ``mean`` or ``max`` over heads.
        residual: weight of the identity (the residual connection).

    Returns:
        ``(B, N)`` relevance per input token; each row sums to one.
    """
    if head_fusion not in ("mean", "max"):
        raise ValueError(f"head_fusion must be mean or max, got {head_fusion!r}")
    result = None
    for a in attentions:
        a = np.asarray(a, dtype=np.float64)
        a = a.mean(axis=1) if head_fusion == "mean" else a.max(axis=1)
        n = a.shape[-1]
        a = residual * np.eye(n)[None] + (1.0 - residual) * a
        a = a / a.sum(axis=-1, keepdims=True)
        result = a if result is None else a @ result
    rel = result.mean(axis=1)
    return rel / rel.sum(axis=-1, keepdims=True)


def tokens_to_map(values, grid, patch_size, image_shape) -> np.ndarray:
    """Spread per-patch values ``(B, nH * nW)`` over the image grid ``(B, H, W)``."""
    values = np.asarray(values)
    nh, nw = grid
    ph, pw = patch_size
    g = values.reshape(len(values), nh, nw)
    full = np.repeat(np.repeat(g, ph, axis=1), pw, axis=2)
    return full[:, : image_shape[0], : image_shape[1]]


def rollout_maps(model, x, batch_size: int = 128, head_fusion: str = "mean") -> np.ndarray:
    """Attention-rollout relevance of every detector cell, ``(B, H, W)``, for inputs ``x``.

    Each cell gets the relevance of its patch divided by the patch area, so a map sums
    to one over the (unpadded) cells of full patches.
    """
    import keras

    att = attention_model(model)
    patch = model.get_layer("patchify")
    out = []
    for s in range(0, len(x), batch_size):
        a = att(np.asarray(x[s:s + batch_size], dtype=np.float32), training=False)
        a = [keras.ops.convert_to_numpy(t) for t in (a if isinstance(a, (list, tuple)) else [a])]
        out.append(attention_rollout(a, head_fusion=head_fusion))
    rel = np.concatenate(out) / float(np.prod(patch.patch_size))
    return tokens_to_map(rel, patch.grid, patch.patch_size, patch.image_shape)


def routing(model, x, batch_size: int = 128) -> dict:
    """Routing of inputs ``x`` through every MoE block: ``{layer: gates (B, N, experts)}``."""
    import keras

    rm = routing_model(model)
    names = moe_layer_names(model)
    parts = {n: [] for n in names}
    for s in range(0, len(x), batch_size):
        g = rm(np.asarray(x[s:s + batch_size], dtype=np.float32), training=False)
        g = g if isinstance(g, (list, tuple)) else [g]
        for n, t in zip(names, g):
            parts[n].append(np.asarray(keras.ops.convert_to_numpy(t)))
    return {n: np.concatenate(v) for n, v in parts.items()}
