"""Masked Transformer autoencoder for event features (HIGGS), and classifiers on its encoder.

The event is a flat vector of raw features (for HIGGS, the 27 low-level columns with
each phi as cos and sin). Inside the model:

1. ``Normalization`` (adapted on training data) scales every feature;
2. :class:`~kerahep.layers.FeatureTokenizer` groups features into tokens, one per
   physics object (lepton, missing energy, four jets; slots pT, eta, cos phi, sin phi,
   b-tag) or one per feature;
3. :class:`~kerahep.layers.PerTokenDense` embeds each token with its own weights, plus an
   optional learned embedding of the discrete b-tag level
   (:class:`~kerahep.layers.DiscreteTokenEmbedding`), plus a position embedding;
4. pre-training only: :class:`~kerahep.layers.RandomTokenMasking` REMOVES a random
   fraction of the tokens, so the encoder never sees the masked values;
5. a Transformer encoder (:class:`~kerahep.layers.TransformerBlock`) on the visible tokens;
6. pre-training only: a light decoder puts a learned mask token at every masked
   position (:class:`~kerahep.layers.MaskTokenInsert`), adds its own position embedding,
   runs a few Transformer blocks and predicts every token's (normalised) features.

The pre-training loss (:meth:`MaskedAutoencoder.compute_loss`, the Keras 3 API, so it
runs on every backend) is the mean squared error on the masked tokens' features plus
physics terms on the event completed with the reconstruction (in raw units), each
weighted by configuration: transverse momentum balance of lepton, missing energy and jets
(:func:`pt_balance_loss`), non-negative pT (:func:`negative_pt_loss`) and unit-circle
consistency of reconstructed (cos phi, sin phi) (:func:`unit_circle_loss`).

Example::

    layout = higgs_layout("low", "object")
    mae = build_masked_autoencoder(layout, dim=32, depth=2, adapt_data=x_train)
    mae.compile(optimizer="adam")
    mae.fit(x_train, epochs=5)
    clf = build_classifier(mae.encoder_model(), freeze=True)

The token layout, the physics terms and the classifier head are in
:mod:`kerahep.models.mae_parts`, re-exported here.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from ..layers.discrete_embedding import DiscreteTokenEmbedding
from ..layers.feature_tokenizer import FeatureTokenizer
from ..layers.mask_token import MaskTokenInsert
from ..layers.pair_mass import PairInvariantMass
from ..layers.per_token_dense import PerTokenDense
from ..layers.token_masking import RandomTokenMasking
from ..layers.transformer import PositionEmbedding, TransformerBlock
from .mae_parts import (
    POOLINGS,
    SLOTS,
    TOKENIZATIONS,
    build_classifier,
    higgs_layout,
    negative_pt_loss,
    pt_balance_loss,
    unit_circle_loss,
)

__all__ = [
    "POOLINGS", "SLOTS", "TOKENIZATIONS", "MaskedAutoencoder", "build_classifier", "build_masked_autoencoder",
    "copy_autoencoder", "higgs_layout", "negative_pt_loss", "pt_balance_loss", "unit_circle_loss",
]


# ------------------------------------------------------------------- the model
@keras.saving.register_keras_serializable(package="kerahep")
class MaskedAutoencoder(keras.Model):
    """Masked Transformer autoencoder over feature tokens (see the module docstring).

    Args:
        groups: feature indices of each token (:class:`~kerahep.layers.FeatureTokenizer`).
        n_features: width of the raw input vector.
        dim: token width of the encoder.
        depth: encoder Transformer blocks.
        num_heads: attention heads.
        mlp_ratio: MLP width of the blocks relative to ``dim``.
        dropout: dropout in the blocks.
        decoder_dim, decoder_depth: width and blocks of the decoder.
        mask_ratio: fraction of tokens masked in pre-training.
        btag: ``{"columns", "levels", "token_positions"}`` for a learned b-tag level
            embedding, or None (b-tags then enter as continuous features only).
        pairs: ``{"pt_index", "eta_index", "cos_index", "sin_index", "token_positions"}`` to
            add pairwise invariant masses of the objects to their tokens
            (:class:`~kerahep.layers.PairInvariantMass`; in pre-training only pairs of visible
            objects), or None.
        pt_index, cos_index, sin_index: raw columns of the objects' pT, cos phi, sin phi
            (for the physics terms; empty disables them).
        pt_balance_weight, negative_pt_weight, unit_circle_weight: weights of the physics terms.
        seed: seed of the masking.
    """

    def __init__(self, groups, n_features: int, dim: int = 32, depth: int = 2, num_heads: int = 4,
                 mlp_ratio: float = 2.0, dropout: float = 0.0, decoder_dim: int = 32, decoder_depth: int = 1,
                 mask_ratio: float = 0.5, btag: dict | None = None, pairs: dict | None = None,
                 pt_index=(), cos_index=(), sin_index=(),
                 pt_balance_weight: float = 0.0, negative_pt_weight: float = 0.0, unit_circle_weight: float = 0.0,
                 seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.groups = [[int(i) for i in g] for g in groups]
        self.n_features = int(n_features)
        self.dim = int(dim)
        self.depth = int(depth)
        self.num_heads = int(num_heads)
        self.mlp_ratio = float(mlp_ratio)
        self.dropout = float(dropout)
        self.decoder_dim = int(decoder_dim)
        self.decoder_depth = int(decoder_depth)
        self.mask_ratio = float(mask_ratio)
        self.btag = None if not btag else {k: [list(v) if isinstance(v, (list, tuple)) else v for v in btag[k]]
                                            for k in ("columns", "levels", "token_positions")}
        self.pairs = None if not pairs else {k: [int(i) for i in pairs[k]] for k in
                                             ("pt_index", "eta_index", "cos_index", "sin_index", "token_positions")}
        self.pt_index = [int(i) for i in pt_index]
        self.cos_index = [int(i) for i in cos_index]
        self.sin_index = [int(i) for i in sin_index]
        self.pt_balance_weight = float(pt_balance_weight)
        self.negative_pt_weight = float(negative_pt_weight)
        self.unit_circle_weight = float(unit_circle_weight)
        self.seed = seed

        self.normalizer = layers.Normalization(name="scaling")
        self.tokenizer = FeatureTokenizer(self.groups, name="tokens")
        self.num_tokens = self.tokenizer.num_tokens
        self.slots = self.tokenizer.slots
        self._valid = self.tokenizer.valid_slots(self.n_features)
        if self.btag:  # b-tags enter through their level embedding, not as a number
            self.btag_embedding = DiscreteTokenEmbedding(
                self.btag["columns"], self.btag["levels"], self.btag["token_positions"], self.num_tokens, self.dim,
                name="btag_embedding")
            drop = set(self.btag["columns"])
            embed_groups = [[-1 if i in drop else i for i in g] for g in self.groups]
            self.embed_tokenizer = FeatureTokenizer(embed_groups, name="embedding_tokens")
        else:
            self.btag_embedding = None
            self.embed_tokenizer = self.tokenizer
        if self.pairs:
            self.pair_mass = PairInvariantMass(num_tokens=self.num_tokens, name="pair_mass", **self.pairs)
            self.pair_width = 2 * self.pair_mass.num_objects
            self.join_pairs = layers.Concatenate(axis=-1, name="join_pair_mass")
        else:
            self.pair_mass, self.pair_width = None, 0
        self.embed = PerTokenDense(self.dim, name="token_embedding")
        self.add_btag = layers.Add(name="add_btag")
        self.position = PositionEmbedding(name="position")
        self.blocks = [TransformerBlock(self.num_heads, mlp_ratio=self.mlp_ratio, dropout=self.dropout,
                                        name=f"encoder_block_{i}") for i in range(self.depth)]
        self.encoder_norm = layers.LayerNormalization(epsilon=1e-6, name="encoder_norm")
        self.masking = RandomTokenMasking(self.mask_ratio, seed=seed, name="masking")
        self.decoder_in = layers.Dense(self.decoder_dim, name="decoder_projection")
        self.mask_insert = MaskTokenInsert(name="mask_token")
        self.decoder_position = PositionEmbedding(name="decoder_position")
        self.decoder_blocks = [TransformerBlock(max(1, min(self.num_heads, self.decoder_dim)), mlp_ratio=self.mlp_ratio,
                                                name=f"decoder_block_{i}") for i in range(self.decoder_depth)]
        self.decoder_norm = layers.LayerNormalization(epsilon=1e-6, name="decoder_norm")
        self.head = PerTokenDense(self.slots, name="reconstruction", dtype="float32")
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in ("reconstruction", "pt_balance", "negative_pt", "unit_circle")}
        for name, tracker in self.trackers.items():
            setattr(self, f"_{name}_tracker", tracker)

    # ------------------------------------------------------------- building
    def build(self, input_shape=None):
        n, t, f = self.n_features, self.num_tokens, self.slots
        self.normalizer.build((None, n))
        self.tokenizer.build((None, n))
        self.embed_tokenizer.build((None, n))
        self.embed.build((None, t, f + self.pair_width))
        if self.btag_embedding is not None:
            self.btag_embedding.build((None, n))
        self.position.build((None, t, self.dim))
        for blk in self.blocks:
            blk.build((None, t, self.dim))
        self.encoder_norm.build((None, t, self.dim))
        self.decoder_in.build((None, t, self.dim))
        self.mask_insert.build((None, t, self.decoder_dim))
        self.decoder_position.build((None, t, self.decoder_dim))
        for blk in self.decoder_blocks:
            blk.build((None, t, self.decoder_dim))
        self.decoder_norm.build((None, t, self.decoder_dim))
        self.head.build((None, t, self.decoder_dim))
        self.built = True

    def adapt(self, data) -> "MaskedAutoencoder":
        """Adapt the feature scaling on raw training features (array or batched dataset of x or (x, y))."""
        if not self.built:
            self.build()
        if hasattr(data, "map") and hasattr(data, "element_spec") and isinstance(data.element_spec, tuple):
            data = data.map(lambda x, *rest: x)
        self.normalizer.adapt(data)
        return self

    # -------------------------------------------------------------- forward
    def embed_tokens(self, x, visible=None, training=None):
        """Raw features ``(batch, n_features)`` -> token embeddings with positions ``(batch, tokens, dim)``.

        ``visible`` ``(batch, tokens)`` (1: visible) restricts the pair masses to visible
        objects. Works on tensors and on symbolic Keras inputs (the encoder model uses it).
        """
        tokens = self.embed_tokenizer(self.normalizer(x))
        if self.pair_mass is not None:
            pairs = self.pair_mass(x) if visible is None else self.pair_mass(x, visible=visible)
            tokens = self.join_pairs([tokens, pairs])
        h = self.embed(tokens)
        if self.btag_embedding is not None:
            h = self.add_btag([h, self.btag_embedding(x)])
        return self.position(h)

    def encode(self, tokens, training=None):
        h = tokens
        for blk in self.blocks:
            h = blk(h, training=training)
        return self.encoder_norm(h)

    def decode(self, latent, ids_restore, training=None):
        h = self.mask_insert(self.decoder_in(latent), ids_restore)
        h = self.decoder_position(h)
        for blk in self.decoder_blocks:
            h = blk(h, training=training)
        return self.head(self.decoder_norm(h))

    def encode_masked(self, x, noise=None, training=None):
        """Mask tokens and encode the visible ones: ``(latent (batch, n_visible, dim), mask, ids_restore)``.

        The mask is drawn first (from ``noise``, or the masking layer's generator), so the
        pair masses of the visible tokens are computed among visible objects only.
        """
        if noise is None:
            noise = self.masking.sample_noise(ops.shape(x)[0], self.num_tokens)
        mask = self.masking.mask_from_noise(noise, dtype=x.dtype)
        tokens = self.embed_tokens(x, visible=1.0 - mask, training=training)
        visible, mask, ids_restore = self.masking(tokens, noise=noise)
        return self.encode(visible, training=training), mask, ids_restore

    def call(self, x, training=None, noise=None):
        """Mask, encode the visible tokens, reconstruct all.

        Returns:
            dict with ``reconstruction`` ``(batch, tokens, slots)`` (normalised units),
            ``target`` (the normalised true values) and ``mask`` ``(batch, tokens)`` (1: masked).
        """
        x = ops.cast(x, self.compute_dtype)
        latent, mask, ids_restore = self.encode_masked(x, noise=noise, training=training)
        rec = self.decode(latent, ids_restore, training=training)
        target = ops.cast(self.tokenizer(self.normalizer(x)), "float32")
        return {"reconstruction": ops.cast(rec, "float32"), "target": target, "mask": ops.cast(mask, "float32")}

    def encoder_model(self, name: str = "encoder") -> keras.Model:
        """A functional model raw features -> encoded tokens ``(batch, tokens, dim)``, no masking.

        It shares its layers (and weights) with this autoencoder.
        """
        if not self.built:
            self.build()
        inp = keras.Input((self.n_features,), name="features")
        h = self.embed_tokens(inp)
        for blk in self.blocks:
            h = blk(h)
        return keras.Model(inp, self.encoder_norm(h), name=name)

    # ------------------------------------------------------------------ loss
    def _std_mean(self):
        mean = ops.reshape(ops.cast(self.normalizer.adapt_mean, "float32"), (1, -1))
        var = ops.reshape(ops.cast(self.normalizer.adapt_variance, "float32"), (1, -1))
        return ops.maximum(ops.sqrt(var), keras.config.epsilon()), mean

    def reconstruct(self, x, noise=None):
        """Reconstruct raw features as NumPy arrays (on every backend):
        ``(reconstructed (batch, n_features) raw units, masked (batch, n_features))``."""
        out = self(x, training=False, noise=noise)
        return tuple(ops.convert_to_numpy(t) for t in self._raw(out))

    def _raw(self, out):
        std, mean = self._std_mean()
        rec = self.tokenizer.inverse(out["reconstruction"]) * std + mean
        full_mask = ops.broadcast_to(out["mask"][:, :, None], ops.shape(out["reconstruction"]))
        return rec, self.tokenizer.inverse(full_mask)

    def loss_terms(self, x, y_pred) -> dict:
        """The unweighted loss terms of a batch (``reconstruction`` and the physics terms)."""
        rec, target, mask = y_pred["reconstruction"], y_pred["target"], y_pred["mask"]
        weight = mask[:, :, None] * ops.convert_to_tensor(self._valid)[None]
        err = ops.square(rec - target) * weight
        terms = {"reconstruction": ops.sum(err) / ops.maximum(ops.sum(weight), 1.0)}
        if self.pt_index and (self.pt_balance_weight or self.negative_pt_weight or self.unit_circle_weight):
            raw_rec, fmask = self._raw(y_pred)
            x = ops.cast(x, "float32")
            filled = fmask * raw_rec + (1.0 - fmask) * x
            take = lambda t, idx: ops.take(t, ops.convert_to_tensor(np.asarray(idx, "int32")), axis=1)  # noqa: E731
            pt, cos, sin = take(filled, self.pt_index), take(filled, self.cos_index), take(filled, self.sin_index)
            terms["pt_balance"] = pt_balance_loss(pt, cos, sin)
            terms["negative_pt"] = negative_pt_loss(pt, take(fmask, self.pt_index))
            terms["unit_circle"] = unit_circle_loss(
                cos, sin, ops.maximum(take(fmask, self.cos_index), take(fmask, self.sin_index)))
        return terms

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y_pred is None:
            y_pred = self(x, training=training)
        terms = self.loss_terms(x, y_pred)
        weights = {"reconstruction": 1.0, "pt_balance": self.pt_balance_weight,
                   "negative_pt": self.negative_pt_weight, "unit_circle": self.unit_circle_weight}
        total = 0.0
        for name, value in terms.items():
            self.trackers[name].update_state(value)
            if weights[name]:
                total = total + weights[name] * value
        for extra in self.losses:
            total = total + ops.sum(extra)
        return total

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "n_features": self.n_features, "dim": self.dim,
                "depth": self.depth, "num_heads": self.num_heads, "mlp_ratio": self.mlp_ratio,
                "dropout": self.dropout, "decoder_dim": self.decoder_dim, "decoder_depth": self.decoder_depth,
                "mask_ratio": self.mask_ratio, "btag": self.btag, "pairs": self.pairs, "pt_index": self.pt_index,
                "cos_index": self.cos_index, "sin_index": self.sin_index,
                "pt_balance_weight": self.pt_balance_weight, "negative_pt_weight": self.negative_pt_weight,
                "unit_circle_weight": self.unit_circle_weight, "seed": self.seed}

    def build_from_config(self, config):
        self.build()


# ---------------------------------------------------------------- builders
def build_masked_autoencoder(layout: dict, dim: int = 32, depth: int = 2, num_heads: int = 4, mlp_ratio: float = 2.0,
                             dropout: float = 0.0, decoder_dim: int = 32, decoder_depth: int = 1,
                             mask_ratio: float = 0.5, btag_embedding: bool = False, pair_features: bool = False,
                             pt_balance_weight: float = 0.0,
                             negative_pt_weight: float = 0.0, unit_circle_weight: float = 0.0,
                             adapt_data=None, seed: int | None = None, name: str = "masked_autoencoder"):
    """Build a :class:`MaskedAutoencoder` for a token ``layout`` (see :func:`higgs_layout`).

    Args:
        layout: groups and physics columns of the features.
        dim, depth, num_heads, mlp_ratio, dropout: the encoder.
        decoder_dim, decoder_depth: the decoder.
        mask_ratio: fraction of tokens hidden from the encoder in pre-training.
        btag_embedding: embed the discrete b-tag levels instead of feeding the numbers.
        pair_features: add the pairwise invariant masses of the objects to their tokens
            (needs a layout with ``pairs``: one token per object).
        pt_balance_weight, negative_pt_weight, unit_circle_weight: physics terms of the loss.
        adapt_data: raw training features (array or dataset) for the scaling layer.
        seed: masking seed.

    Returns:
        a built, uncompiled :class:`MaskedAutoencoder` (compile with an optimizer only).

    Example:
        >>> mae = build_masked_autoencoder(higgs_layout(), dim=16, depth=1)
        >>> mae.compile(optimizer="adam")
    """
    has_phys = bool(layout.get("pt_index"))
    if pair_features and not layout.get("pairs"):
        from ..errors import ConfigError

        raise ConfigError("pair features need one token per physics object (tokenization 'object')")
    mae = MaskedAutoencoder(
        layout["groups"], len(layout["feature_names"]), dim=dim, depth=depth, num_heads=num_heads,
        mlp_ratio=mlp_ratio, dropout=dropout, decoder_dim=decoder_dim, decoder_depth=decoder_depth,
        mask_ratio=mask_ratio, btag=layout.get("btag") if btag_embedding else None,
        pairs=layout.get("pairs") if pair_features else None,
        pt_index=layout.get("pt_index", ()) if has_phys else (), cos_index=layout.get("cos_index", ()),
        sin_index=layout.get("sin_index", ()), pt_balance_weight=pt_balance_weight,
        negative_pt_weight=negative_pt_weight, unit_circle_weight=unit_circle_weight, seed=seed, name=name)
    mae.build()
    if adapt_data is not None:
        mae.adapt(adapt_data)
    return mae


def copy_autoencoder(mae: MaskedAutoencoder) -> MaskedAutoencoder:
    """An independent copy of ``mae`` (same configuration and weights, no shared layers).

    The task saves this copy as the pre-trained autoencoder and encoder, so fine-tuning the
    classifier afterwards does not change them.
    """
    twin = MaskedAutoencoder.from_config(mae.get_config())
    twin.build()
    twin.set_weights(mae.get_weights())
    twin.normalizer.finalize_state()  # its mean and variance tensors are taken from the variables
    return twin
