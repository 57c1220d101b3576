"""ResNet-15 family for calorimeter crops (CMS end-to-end electron/photon classifiers).

ResNet-15 after the CMS end-to-end papers (Andrews et al., arXiv:1807.11916,
arXiv:1902.08276): one input convolution and seven residual blocks of two 3x3
convolutions each (1 + 7 x 2 = 15 convolutional layers), global pooling, a small dense
head. The default stages (8, 16, 32 filters; 2, 2, 3 blocks; the first stage at the full
32x32 resolution, no pooling after the stem) were chosen by measurement on the synthetic
twin: a 16/32-filter layout with a pooled stem lost about 0.01 AUC there, since shower
widths are a pixel or so. Energies enter through ``log1p(E / 0.002)`` inside the model
(single hits near the zero-suppression threshold become visible next to a core near 1;
with the pooled 16/32 layout the twin's test AUC was 0.815 with it and 0.744 without).
Variants choose the inputs:

* ``two_channel`` (default): energy and time stacked as channels;
* ``energy``: the energy channel only;
* ``time``: the time channel only;
* ``dual_stream``: one ResNet trunk per channel, pooled features concatenated before the head.

Channel selection and augmentation are layers of the model, so a saved ``.keras`` file
scores raw ``(32, 32, 2)`` crops. Augmentation acts in training only (wrapped in
:class:`~kerahep.layers.training_only.TrainingOnly`, since Keras' augmentation layers
augment whenever a model is called without ``training=False``) and respects the
detector symmetry: independent flips in eta (axis 1) and in phi (axis 2), and random
erasing of small patches (filled with zero, an empty detector); no arbitrary-angle
rotation since the crop axes are eta and phi. MixUp mixes labels too and therefore
lives in the input pipeline (``CaloReader.dataset(mixup_alpha=...)``).

The penultimate layer is named ``embedding`` (for t-SNE); the last feature map of each
trunk is named ``features`` (``energy_features``/``time_features`` for ``dual_stream``),
the layer Grad-CAM looks at. The output layer ``score`` computes in float32 so mixed
precision works.
"""

from __future__ import annotations

import keras
from keras import layers

from ..layers.attention_pool import AttentionPooling2D
from ..layers.channel_log import ChannelLog1p
from ..layers.select_channels import SelectChannels
from ..layers.squeeze_excitation import SqueezeExcitation
from ..layers.training_only import TrainingOnly

VARIANTS = ("two_channel", "energy", "time", "dual_stream")
POOLS = ("avg", "max", "attention")
ENERGY, TIME = 0, 1


def _groups(g: int, c_in: int, c_out: int) -> int:
    return g if g > 1 and c_in % g == 0 and c_out % g == 0 else 1


#: BatchNormalization momentum: 0.9 lets the moving statistics settle within the few hundred
#: steps of a small run (Keras' 0.99 leaves them far off and validation scores at chance)
BN_MOMENTUM = 0.9


def _bn(name):
    return layers.BatchNormalization(momentum=BN_MOMENTUM, name=name)


def _conv(filters, kernel, stride, groups, name):
    return layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, groups=groups,
                         kernel_initializer="he_normal", name=name)


def residual_block(x, filters: int, stride: int = 1, preact: bool = False, se: bool = False,
                   se_ratio: int = 4, groups: int = 1, name: str = "block"):
    """One residual block of two 3x3 convolutions (post- or pre-activation).

    Args:
        x: input feature map (channels last).
        filters: output channels.
        stride: stride of the first convolution (2 halves the map).
        preact: pre-activation ordering (BN, ReLU, conv; He et al. 2016) instead of the
            original (conv, BN, ReLU).
        se: squeeze-and-excitation on the residual branch.
        se_ratio: its channel reduction.
        groups: grouped convolutions (used where the channel counts divide).
        name: prefix of the layer names.

    Returns:
        The output feature map.
    """
    c_in = int(x.shape[-1])
    project = stride != 1 or c_in != filters
    if preact:
        p = _bn(f"{name}_bn0")(x)
        p = layers.Activation("relu", name=f"{name}_relu0")(p)
        y = _conv(filters, 3, stride, _groups(groups, c_in, filters), f"{name}_conv1")(p)
        y = _bn(f"{name}_bn1")(y)
        y = layers.Activation("relu", name=f"{name}_relu1")(y)
        y = _conv(filters, 3, 1, _groups(groups, filters, filters), f"{name}_conv2")(y)
        if se:
            y = SqueezeExcitation(se_ratio, name=f"{name}_se")(y)
        shortcut = _conv(filters, 1, stride, 1, f"{name}_proj")(p) if project else x
        return layers.Add(name=f"{name}_add")([y, shortcut])
    y = _conv(filters, 3, stride, _groups(groups, c_in, filters), f"{name}_conv1")(x)
    y = _bn(f"{name}_bn1")(y)
    y = layers.Activation("relu", name=f"{name}_relu1")(y)
    y = _conv(filters, 3, 1, _groups(groups, filters, filters), f"{name}_conv2")(y)
    y = _bn(f"{name}_bn2")(y)
    if se:
        y = SqueezeExcitation(se_ratio, name=f"{name}_se")(y)
    shortcut = x
    if project:
        shortcut = _conv(filters, 1, stride, 1, f"{name}_proj")(x)
        shortcut = _bn(f"{name}_proj_bn")(shortcut)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.Activation("relu", name=f"{name}_out")(y)


def resnet_trunk(x, widths=(8, 16, 32), blocks=(2, 2, 3), stem_kernel: int = 5, stem_pool: bool = False,
                 preact: bool = False, se: bool = False, se_ratio: int = 4, groups: int = 1, prefix: str = ""):
    """Stem convolution and residual stages; returns the last feature map (named ``<prefix>features``).

    Args:
        x: input map.
        widths: filters of each stage.
        blocks: residual blocks of each stage (the first block of every stage after the
            first halves the map).
        stem_kernel: kernel of the input convolution.
        stem_pool: 2x2 max pooling after the stem (32x32 -> 16x16).
        preact, se, se_ratio, groups: see :func:`residual_block`.
        prefix: prefix of the layer names (``dual_stream`` builds two trunks).
    """
    if len(widths) != len(blocks):
        raise ValueError(f"widths {widths} and blocks {blocks} need the same length")
    x = _conv(int(widths[0]), stem_kernel, 1, 1, f"{prefix}stem_conv")(x)
    x = _bn(f"{prefix}stem_bn")(x)
    x = layers.Activation("relu", name=f"{prefix}stem_relu")(x)
    if stem_pool:
        x = layers.MaxPooling2D(2, name=f"{prefix}stem_pool")(x)
    for s, (w, nb) in enumerate(zip(widths, blocks)):
        for b in range(int(nb)):
            stride = 2 if (s > 0 and b == 0) else 1
            x = residual_block(x, int(w), stride, preact, se, se_ratio, groups, name=f"{prefix}s{s + 1}b{b + 1}")
    if preact:
        x = _bn(f"{prefix}final_bn")(x)
        x = layers.Activation("relu", name=f"{prefix}final_relu")(x)
    return layers.Identity(name=f"{prefix}features")(x)


def _pool(x, pool: str, heads: int, prefix: str):
    if pool == "attention":
        return AttentionPooling2D(num_heads=heads, name=f"{prefix}attention_pool")(x)
    if pool == "max":
        return layers.GlobalMaxPooling2D(name=f"{prefix}pool")(x)
    return layers.GlobalAveragePooling2D(name=f"{prefix}pool")(x)


def build_resnet15(variant: str = "two_channel", input_shape=(32, 32, 2), widths=(8, 16, 32), blocks=(2, 2, 3),
                   stem_kernel: int = 5, stem_pool: bool = False, preact: bool = False, se: bool = False,
                   se_ratio: int = 4, pool: str = "avg", attention_heads: int = 2, groups: int = 1,
                   dropout: float = 0.0, embedding_dim: int = 64, flip: bool = True, erasing: float = 0.0,
                   erasing_scale=(0.02, 0.08), time_width_factor: float = 1.0, energy_log: float | None = 0.002,
                   seed: int | None = None, name: str | None = None) -> keras.Model:
    """Build a ResNet-15 electron/photon classifier taking raw ``(32, 32, 2)`` crops.

    Args:
        variant: ``two_channel``, ``energy``, ``time`` or ``dual_stream``.
        input_shape: crop shape, channels last (energy, time).
        widths: filters per stage (default 8, 16, 32).
        blocks: residual blocks per stage (default 2 + 2 + 3 = 7 blocks: with the stem,
            15 convolutional layers).
        stem_kernel: kernel of the input convolution.
        stem_pool: 2x2 max pooling after the stem (off by default: the first stage sees
            the crop at full resolution, where the shower widths are measured).
        preact: pre-activation residual blocks.
        se: squeeze-and-excitation in every block.
        se_ratio: its channel reduction.
        pool: ``avg``, ``max`` or ``attention`` (a learned query, ``AttentionPooling2D``).
        attention_heads: heads of the attention pooling.
        groups: grouped convolutions in the residual blocks (1: ordinary).
        dropout: dropout before and after the embedding layer.
        embedding_dim: width of the ``embedding`` layer.
        flip: random flips in eta and in phi during training.
        erasing: probability of erasing a random patch of a crop during training (0: off).
        erasing_scale: range of the erased patch area as a fraction of the crop.
        time_width_factor: ``dual_stream`` only: the time trunk's widths relative to ``widths``.
        energy_log: scale of the logarithmic energy transform ``log1p(E / energy_log)``
            applied inside the model (None: the energy channel as it is).
        seed: seed of the augmentation layers.
        name: model name (default ``resnet15_<variant>``).

    Returns:
        An uncompiled ``keras.Model`` with input ``crops`` and output ``score`` = P(electron).

    Example:
        >>> m = build_resnet15("energy", widths=(8, 8), blocks=(1, 1))
        >>> tuple(m(keras.ops.zeros((2, 32, 32, 2))).shape)
        (2, 1)
        >>> m.get_layer("embedding").output.shape
        (None, 64)
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown ResNet-15 variant {variant!r}; variants: {', '.join(VARIANTS)}")
    if pool not in POOLS:
        raise ValueError(f"unknown pooling {pool!r}; choose one of {', '.join(POOLS)}")
    inp = keras.Input(shape=tuple(input_shape), name="crops", dtype="float32")
    x = inp
    # augmentation in training only, even when the model is called without training=False
    if flip:
        x = TrainingOnly(layers.RandomFlip("vertical", seed=seed), name="flip_eta")(x)
        x = TrainingOnly(layers.RandomFlip("horizontal", seed=None if seed is None else seed + 1), name="flip_phi")(x)
    if erasing and erasing > 0:
        x = TrainingOnly(layers.RandomErasing(factor=(float(erasing), float(erasing)), scale=tuple(erasing_scale),
                                              fill_value=0.0, value_range=(0.0, 1.0),
                                              seed=None if seed is None else seed + 2), name="erasing")(x)
    if energy_log:
        x = ChannelLog1p(channels=(ENERGY,), scale=float(energy_log), name="energy_log")(x)
    trunk = dict(stem_kernel=stem_kernel, stem_pool=stem_pool, preact=preact, se=se, se_ratio=se_ratio,
                 groups=groups)
    if variant == "dual_stream":
        e = SelectChannels((ENERGY,), name="energy_channel")(x)
        t = SelectChannels((TIME,), name="time_channel")(x)
        t_widths = tuple(max(int(round(w * time_width_factor)), 4) for w in widths)
        fe = resnet_trunk(e, widths, blocks, prefix="energy_", **trunk)
        ft = resnet_trunk(t, t_widths, blocks, prefix="time_", **trunk)
        h = layers.Concatenate(name="stream_concat")([_pool(fe, pool, attention_heads, "energy_"),
                                                      _pool(ft, pool, attention_heads, "time_")])
    else:
        if variant == "energy":
            x = SelectChannels((ENERGY,), name="energy_channel")(x)
        elif variant == "time":
            x = SelectChannels((TIME,), name="time_channel")(x)
        f = resnet_trunk(x, widths, blocks, **trunk)
        h = _pool(f, pool, attention_heads, "")
    if dropout:
        h = layers.Dropout(dropout, name="head_dropout")(h)
    h = layers.Dense(int(embedding_dim), activation="relu", name="embedding")(h)
    if dropout:
        h = layers.Dropout(dropout, name="embedding_dropout")(h)
    out = layers.Dense(1, activation="sigmoid", dtype="float32", name="score")(h)
    return keras.Model(inp, out, name=name or f"resnet15_{variant}")


def gradcam_layer(model) -> str:
    """Name of the feature map Grad-CAM should use for a model built here."""
    names = {layer.name for layer in model.layers}
    for candidate in ("features", "energy_features"):
        if candidate in names:
            return candidate
    raise ValueError(f"model {model.name!r} has no 'features' layer")
