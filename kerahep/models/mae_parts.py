"""The parts of the masked autoencoder (:mod:`kerahep.models.mae`) that need no model: the
HIGGS token layout (:func:`higgs_layout`), the physics terms of the pre-training loss
(:func:`pt_balance_loss`, :func:`negative_pt_loss`, :func:`unit_circle_loss`) and the
classifier head on a pre-trained encoder (:func:`build_classifier`). All are re-exported by
:mod:`kerahep.models.mae`."""

from __future__ import annotations

import keras
from keras import layers, ops

TOKENIZATIONS = ("object", "feature")
POOLINGS = ("flatten", "mean")
SLOTS = ("pt", "eta", "cos_phi", "sin_phi", "btag")


# --------------------------------------------------------------------- layout
def higgs_layout(features: str = "low", tokenization: str = "object", btag_levels: dict | None = None) -> dict:
    """Token layout of the HIGGS feature set ``features`` (``low`` or ``all``).

    Args:
        features: ``low`` (27 columns) or ``all`` (34: plus one token of the 7 masses).
        tokenization: ``object`` (one token per lepton, missing energy, jet; slots
            ``pt, eta, cos_phi, sin_phi, btag``) or ``feature`` (one token per column).
        btag_levels: ``{column name: levels}`` (default: the real file's levels).

    Returns:
        dict (JSON-friendly) with ``feature_names``, ``token_names``, ``groups``,
        ``pt_index``, ``cos_index``, ``sin_index`` (flat columns of the physics terms, in
        object order lepton, missing energy, jets), ``btag`` (``columns``, ``levels``,
        ``token_positions``) and ``pairs`` (the objects' columns and tokens for
        :class:`~kerahep.layers.PairInvariantMass`; None with one token per feature).
    """
    from ..schema import BTAG_LEVELS, OBJECTS, feature_names, object_of

    if tokenization not in TOKENIZATIONS:
        from ..errors import ConfigError

        raise ConfigError(f"tokenization must be one of {TOKENIZATIONS}, got {tokenization!r}")
    names = list(feature_names(features))
    col = {n: i for i, n in enumerate(names)}
    pt_names = ["lepton_pT", "missing_energy_magnitude"] + [f"jet_{j}_pt" for j in range(1, 5)]
    pt_index = [col[n] for n in pt_names]
    cos_index = [col[f"{o}_cos_phi"] for o in OBJECTS]
    sin_index = [col[f"{o}_sin_phi"] for o in OBJECTS]
    btag_cols = [col[f"jet_{j}_btag"] for j in range(1, 5)]
    levels = {**BTAG_LEVELS, **(btag_levels or {})}
    if tokenization == "object":
        token_names, groups = [], []
        for o, p in zip(OBJECTS, pt_names):
            slot = {"pt": p, "eta": f"{o}_eta", "cos_phi": f"{o}_cos_phi", "sin_phi": f"{o}_sin_phi", "btag": f"{o}_btag"}
            groups.append([col.get(slot[s], -1) for s in SLOTS])
            token_names.append(o)
        high = [i for i, n in enumerate(names) if object_of(n) == "high_level"]
        if high:
            groups.append(high)
            token_names.append("high_level")
        btag_tokens = [token_names.index(f"jet_{j}") for j in range(1, 5)]
        pairs = {"pt_index": pt_index, "eta_index": [col.get(f"{o}_eta", -1) for o in OBJECTS],
                 "cos_index": cos_index, "sin_index": sin_index,
                 "token_positions": [token_names.index(o) for o in OBJECTS]}
    else:
        groups = [[i] for i in range(len(names))]
        token_names = list(names)
        btag_tokens = list(btag_cols)
        pairs = None
    return {
        "features": features,
        "tokenization": tokenization,
        "feature_names": names,
        "token_names": token_names,
        "groups": groups,
        "pt_index": pt_index,
        "cos_index": cos_index,
        "sin_index": sin_index,
        "btag": {"columns": btag_cols, "levels": [list(levels[names[c]]) for c in btag_cols],
                 "token_positions": btag_tokens},
        "pairs": pairs,
    }


# -------------------------------------------------------------- physics terms
def pt_balance_loss(pt, cos_phi, sin_phi):
    """Mean over events of the squared vector sum of transverse momenta.

    Args:
        pt, cos_phi, sin_phi: ``(batch, objects)`` (lepton, missing energy, jets).

    Returns:
        ``mean_events[(sum_i pt_i cos phi_i)^2 + (sum_i pt_i sin phi_i)^2]``: zero for a balanced event.
    """
    px = ops.sum(pt * cos_phi, axis=-1)
    py = ops.sum(pt * sin_phi, axis=-1)
    return ops.mean(px * px + py * py)


def _weighted_mean(values, weight):
    if weight is None:
        return ops.mean(values)
    weight = ops.cast(weight, values.dtype)
    return ops.sum(values * weight) / ops.maximum(ops.sum(weight), 1.0)


def negative_pt_loss(pt, weight=None):
    """Mean of ``relu(-pt)^2`` (over entries with ``weight`` 1 when given): zero for pT >= 0."""
    neg = ops.relu(-pt)
    return _weighted_mean(neg * neg, weight)


def unit_circle_loss(cos_phi, sin_phi, weight=None):
    """Mean of ``(cos^2 + sin^2 - 1)^2`` (over entries with ``weight`` 1): zero on the unit circle."""
    r = cos_phi * cos_phi + sin_phi * sin_phi - 1.0
    return _weighted_mean(r * r, weight)


# ---------------------------------------------------------------- the classifier head
def build_classifier(encoder: keras.Model, hidden_units=(64,), dropout: float = 0.1, pooling: str = "flatten",
                     freeze: bool = True, name: str = "higgs_classifier") -> keras.Model:
    """Signal-probability head on an encoder (raw features -> tokens).

    Args:
        encoder: e.g. ``MaskedAutoencoder.encoder_model()``; its scaling travels with it.
        hidden_units: widths of the head's hidden layers (GELU).
        dropout: dropout after each hidden layer.
        pooling: ``flatten`` (keeps which object is which) or ``mean`` over tokens.
        freeze: set ``encoder.trainable = False`` (set it back to True to fine-tune, then recompile).

    Returns:
        functional model raw features -> probability ``(batch, 1)`` (float32 output).

    Example:
        >>> clf = build_classifier(mae.encoder_model(), hidden_units=(64,), freeze=True)
    """
    if pooling not in POOLINGS:
        from ..errors import ConfigError

        raise ConfigError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    encoder.trainable = not freeze
    inp = keras.Input(encoder.input_shape[1:], name="features")
    h = encoder(inp)
    h = layers.Flatten(name="flatten")(h) if pooling == "flatten" else layers.GlobalAveragePooling1D(name="pool")(h)
    for i, units in enumerate(hidden_units):
        h = layers.Dense(int(units), activation="gelu", name=f"head_{i}")(h)
        if dropout:
            h = layers.Dropout(dropout, name=f"head_dropout_{i}")(h)
    out = layers.Dense(1, activation="sigmoid", dtype="float32", name="score")(h)
    return keras.Model(inp, out, name=name)
