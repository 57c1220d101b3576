"""Deep ensembles and calibrated models built from trained classifiers, and the views of their
parts that reports score (:func:`uncertainty_probe`) and explain (:func:`explained_model`).

An ensemble is one functional model with the members inside it as named sub-models
(``member_0``, ``member_1``, ...) and two outputs: the mean of the members' outputs
(layer ``ensemble_score``, a ``keras.layers.Average``) and their spread, the standard
deviation over the members (layer ``ensemble_spread``,
:class:`~kerahep.layers.EnsembleSpread`). A calibrated model is the model's own graph with
a :class:`~kerahep.layers.TemperatureScaling` layer (``calibrated_score``) on its first
output. Both save to one ``.keras`` file that scores raw inputs, and the members' outputs
and the score before calibration can be read back from that file alone.

Example::

    ens = build_ensemble([model_a, model_b])        # outputs [mean, spread]
    cal = calibrated_model(ens, temperature=1.3)    # outputs [calibrated mean, spread]
    probe = uncertainty_probe(cal)                  # {"score", "raw", "spread", "member_0", ...}
"""

from __future__ import annotations

import keras

from ..layers import EnsembleSpread, TemperatureScaling

MEMBER_PREFIX = "member_"
MEAN = "ensemble_score"
SPREAD = "ensemble_spread"
CALIBRATED = "calibrated_score"


def build_ensemble(members, name: str = "ensemble") -> keras.Model:
    """One model of trained ``members`` (same inputs, one output each): ``[mean, spread]``.

    The members are renamed ``member_0``, ``member_1``, ... (in order) and become
    sub-models of the ensemble, sharing their weights with it.

    Args:
        members: two or more Keras models with the same input structure and output shape.
        name: the ensemble's name.

    Raises:
        ValueError: fewer than two members, or members with other inputs.
    """
    members = list(members)
    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least two members, got {len(members)}")
    shapes = [keras.tree.map_structure(lambda t: tuple(t.shape[1:]), m.input) for m in members]
    if any(s != shapes[0] for s in shapes):
        raise ValueError(f"the members of an ensemble must take the same inputs, got {shapes}")
    inputs = keras.tree.map_structure(
        lambda t: keras.Input(shape=t.shape[1:], dtype=t.dtype, name=getattr(t, "name", None)), members[0].input)
    for i, m in enumerate(members):
        m.name = f"{MEMBER_PREFIX}{i}"
    outputs = [m(inputs) for m in members]
    mean = keras.layers.Average(name=MEAN, dtype="float32")(outputs)
    spread = EnsembleSpread(name=SPREAD)(outputs)
    return keras.Model(inputs, [mean, spread], name=name)


def calibrated_model(model, temperature: float) -> keras.Model:
    """``model`` with :class:`~kerahep.layers.TemperatureScaling` (``temperature``) on its first
    output (an ensemble: its mean; the spread stays that of the uncalibrated members).

    The mode is ``sigmoid`` for one unit, ``softmax`` for several. The new model shares the
    layers and weights of ``model``.
    """
    outputs = list(model.outputs)
    mode = "sigmoid" if (outputs[0].shape[-1] or 1) == 1 else "softmax"
    calibrated = TemperatureScaling(temperature, mode=mode, name=CALIBRATED)(outputs[0])
    return keras.Model(model.input, [calibrated, *outputs[1:]] if len(outputs) > 1 else calibrated,
                       name=model.name)


def calibration_layer(model) -> TemperatureScaling | None:
    """The model's :class:`~kerahep.layers.TemperatureScaling` layer, or None."""
    return next((layer for layer in getattr(model, "layers", ()) if isinstance(layer, TemperatureScaling)), None)


def ensemble_members(model) -> list:
    """The member sub-models of an ensemble built by :func:`build_ensemble`, in order ([] for another model)."""
    names = {layer.name: layer for layer in getattr(model, "layers", ())}
    if not isinstance(names.get(MEAN), keras.layers.Average) or not isinstance(names.get(SPREAD), EnsembleSpread):
        return []
    members, i = [], 0
    while f"{MEMBER_PREFIX}{i}" in names:
        members.append(names[f"{MEMBER_PREFIX}{i}"])
        i += 1
    return members


def has_spread(model) -> bool:
    """Whether ``model`` scores ``[mean, spread]``: an ensemble of :func:`build_ensemble`, calibrated or not."""
    return bool(ensemble_members(model)) and len(getattr(model, "outputs", ())) == 2


def uncertainty_probe(model) -> keras.Model | None:
    """A model with the same inputs whose dict output holds, in one pass, ``score`` (the
    model's first output), ``raw`` (that score before calibration, for a calibrated model),
    ``spread`` and ``member_0``, ``member_1``, ... (each member's output, for an ensemble);
    None for a model that is neither (or any callable that is not a Keras functional model).

    It reuses the model's layers (same weights), so its outputs are the saved model's.
    """
    if not isinstance(model, keras.Model) or not getattr(model, "outputs", None):
        return None
    outputs = {"score": model.outputs[0]}
    cal = calibration_layer(model)
    if cal is not None:
        outputs["raw"] = cal.input
    if ensemble_members(model):
        outputs["spread"] = model.get_layer(SPREAD).output
        outputs.update({f"{MEMBER_PREFIX}{i}": t for i, t in enumerate(model.get_layer(MEAN).input)})
    if len(outputs) == 1:
        return None
    return keras.Model(model.input, outputs, name=f"{model.name}_probe")


def explained_model(model) -> keras.Model:
    """The single network to explain (saliency, Grad-CAM, embeddings) in ``model``: the first
    member of an ensemble, the graph before the calibration layer of a calibrated model, else
    ``model`` itself."""
    members = ensemble_members(model)
    if members:
        return members[0]
    cal = calibration_layer(model)
    if cal is not None:
        return keras.Model(model.input, cal.input, name=f"{model.name}_uncalibrated")
    return model
