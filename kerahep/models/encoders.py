"""Encoders for 8-channel jet images and the jet-image augmentations of SimCLR.

Two encoder families map a raw jet image ``(125, 125, 8)`` to a latent vector (the output
of the layer named ``latent``); both start with :class:`~kerahep.layers.ChannelScale`, so
a saved encoder scores raw images:

* :func:`resnet18_encoder`: ResNet-18 (basic blocks ``(2, 2, 2, 2)``) with 8 input
  channels and configurable widths;
* :func:`hybrid_encoder`: a convolutional stem, patch tokens with learned positions,
  Transformer blocks (:class:`~kerahep.layers.TransformerBlock`) and mean pooling.

:func:`jet_augmenter` builds the augmentations chosen for jet images (flips in eta and
phi, small translations, channel dropout, energy smearing, sparse noise; no colour jitter).
"""

from __future__ import annotations

import keras
from keras import layers

from ..errors import ConfigError
from ..layers import ChannelDropout, ChannelScale, EnergySmearing, PositionEmbedding, SparseNoise, TransformerBlock

JET_SHAPE = (125, 125, 8)
ENCODERS = ("resnet18", "hybrid")


def _scales(channel_scales, channels: int):
    return [1.0] * channels if channel_scales is None else list(channel_scales)


def _conv_bn(x, filters, kernel, strides, name, relu=True, momentum=0.9):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                      kernel_initializer="he_normal", name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=momentum, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _basic_block(x, filters, strides, name, momentum):
    shortcut = x
    h = _conv_bn(x, filters, 3, strides, f"{name}_a", momentum=momentum)
    h = _conv_bn(h, filters, 3, 1, f"{name}_b", relu=False, momentum=momentum)
    if strides != 1 or int(x.shape[-1]) != filters:
        shortcut = _conv_bn(x, filters, 1, strides, f"{name}_proj", relu=False, momentum=momentum)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([h, shortcut]))


def resnet18_encoder(input_shape=JET_SHAPE, widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2),
                     stem_filters: int | None = None, channel_scales=None, log_scale: bool = True,
                     bn_momentum: float = 0.9, name: str = "resnet18_encoder") -> keras.Model:
    """ResNet-18 for multi-channel jet images, ending in global average pooling.

    The stem (7x7 convolution, stride 2, then 3x3 max pooling) takes 125x125 to 32x32;
    each later stage halves the size (32, 16, 8, 4 with four stages).

    Args:
        input_shape: image shape ``(height, width, channels)``; 8 channels for the jet data.
        widths: filters of each stage (ResNet-18: ``(64, 128, 256, 512)``; small widths such
            as ``(16, 32, 64, 128)`` train on a CPU).
        blocks: basic blocks per stage (ResNet-18: ``(2, 2, 2, 2)``).
        stem_filters: filters of the stem convolution (default ``widths[0]``).
        channel_scales: per-channel scales of the :class:`~kerahep.layers.ChannelScale`
            layer applied first (None: ones).
        log_scale: compress each scaled channel with a signed ``log1p``.
        bn_momentum: momentum of the batch-normalisation moving statistics (0.9 rather than
            Keras' 0.99, so they settle within the few hundred steps of a small run).
        name: model name.

    Returns:
        A functional model from the raw image to the latent vector (layer ``latent``,
        ``widths[-1]`` numbers).

    Example:
        >>> enc = resnet18_encoder(widths=(8, 8, 16, 16))
        >>> enc.output.shape
        (None, 16)
    """
    if len(widths) != len(blocks) or not widths:
        raise ValueError(f"widths {tuple(widths)} and blocks {tuple(blocks)} need the same non-zero length")
    inp = keras.Input(tuple(input_shape), name="jet")
    x = ChannelScale(_scales(channel_scales, input_shape[-1]), log=log_scale, name="channel_scale")(inp)
    x = _conv_bn(x, int(stem_filters or widths[0]), 7, 2, "stem", momentum=bn_momentum)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for s, (w, n) in enumerate(zip(widths, blocks)):
        for b in range(int(n)):
            x = _basic_block(x, int(w), 2 if (b == 0 and s > 0) else 1, f"stage{s + 1}_block{b + 1}", bn_momentum)
    out = layers.GlobalAveragePooling2D(name="latent")(x)
    return keras.Model(inp, out, name=name)


def hybrid_encoder(input_shape=JET_SHAPE, stem_filters=(32, 64), patch_size: int = 4, dim: int = 64,
                   depth: int = 2, num_heads: int = 4, mlp_ratio: float = 2.0, dropout: float = 0.0,
                   channel_scales=None, log_scale: bool = True, bn_momentum: float = 0.9,
                   name: str = "hybrid_encoder") -> keras.Model:
    """CNN-Transformer hybrid: convolutional stem, patch tokens, Transformer blocks, mean pooling.

    Each stem convolution (3x3, stride 2) halves the image (125 -> 63 -> 32); a
    ``patch_size`` x ``patch_size`` convolution with the same stride cuts the feature map
    into tokens of width ``dim`` (32 / 4 = 8, so 64 tokens), a learned position embedding is
    added, ``depth`` pre-norm Transformer blocks follow, and the tokens are averaged.
    ``patch_size`` must divide the stem's output (32 after two stem convolutions, 63 after
    one), else the patches would leave its borders out: a ``ConfigError`` at build time.

    Args:
        input_shape: image shape ``(height, width, channels)``.
        stem_filters: filters of the stride-2 stem convolutions.
        patch_size: side of a patch on the stem's output.
        dim: token width (the latent size).
        depth: number of Transformer blocks.
        num_heads: attention heads per block.
        mlp_ratio: MLP width relative to ``dim``.
        dropout: dropout inside the Transformer blocks.
        channel_scales: per-channel scales of the first layer (None: ones).
        log_scale: compress each scaled channel with a signed ``log1p``.
        bn_momentum: momentum of the stem's batch-normalisation statistics.
        name: model name.

    Returns:
        A functional model from the raw image to the latent vector (layer ``latent``,
        ``dim`` numbers).

    Example:
        >>> enc = hybrid_encoder(stem_filters=(8,), patch_size=9, dim=16, depth=1, num_heads=2)
        >>> enc.output.shape
        (None, 16)
    """
    inp = keras.Input(tuple(input_shape), name="jet")
    x = ChannelScale(_scales(channel_scales, input_shape[-1]), log=log_scale, name="channel_scale")(inp)
    for i, f in enumerate(stem_filters):
        x = _conv_bn(x, int(f), 3, 2, f"stem{i + 1}", momentum=bn_momentum)
    if x.shape[1] < patch_size or x.shape[2] < patch_size:
        raise ConfigError(f"patch_size {patch_size} is larger than the stem output {tuple(x.shape[1:3])}")
    if x.shape[1] % patch_size or x.shape[2] % patch_size:
        # a 'valid' patch convolution would silently drop the feature map's last rows and columns
        h, w = int(x.shape[1]), int(x.shape[2])
        raise ConfigError(f"patch_size {patch_size} does not divide the stem output {h}x{w} (stem_filters "
                         f"{tuple(stem_filters)} on {input_shape[0]}x{input_shape[1]} images): {h // patch_size}x"
                         f"{w // patch_size} patches would cover {h // patch_size * patch_size}x"
                         f"{w // patch_size * patch_size} of its {h}x{w} pixels; choose a divisor of {h} and {w}")
    x = layers.Conv2D(int(dim), patch_size, strides=patch_size, padding="valid", name="patch_embed")(x)
    h, w = int(x.shape[1]), int(x.shape[2])
    x = layers.Reshape((h * w, int(dim)), name="tokens")(x)
    x = PositionEmbedding(name="position_embedding")(x)
    for i in range(int(depth)):
        x = TransformerBlock(num_heads=num_heads, mlp_ratio=mlp_ratio, dropout=dropout, name=f"transformer_{i + 1}")(x)
    x = layers.LayerNormalization(epsilon=1e-6, name="final_norm")(x)
    out = layers.GlobalAveragePooling1D(name="latent")(x)
    return keras.Model(inp, out, name=name)


def build_encoder(name: str, input_shape=JET_SHAPE, channel_scales=None, **kwargs) -> keras.Model:
    """The encoder called ``name`` (``resnet18`` or ``hybrid``) with builder arguments ``kwargs``.

    Example:
        >>> build_encoder("resnet18", widths=(8, 8, 16, 16)).name
        'resnet18_encoder'
    """
    if name == "resnet18":
        return resnet18_encoder(input_shape, channel_scales=channel_scales, **kwargs)
    if name == "hybrid":
        return hybrid_encoder(input_shape, channel_scales=channel_scales, **kwargs)
    raise ValueError(f"unknown encoder {name!r}; choose one of {ENCODERS}")


def jet_augmenter(flip: bool = True, translate: float = 0.02, channel_drop: float = 0.1,
                  smear=(0.05, 0.05), noise=(0.002, 0.05), noise_channels=(3, 4, 5, 6, 7),
                  seed: int | None = None, name: str = "jet_augment") -> keras.Sequential:
    """Augmentations for jet images, as one Keras ``Sequential`` (active in training only).

    Physics-motivated, not photographic: the image axes are (eta, phi), so flips in eta and
    phi (``RandomFlip``) and translations by a few pixels (``RandomTranslation``, nearest
    pixel, zero fill) keep a jet a jet; a dropped channel is a sub-detector that saw
    nothing (:class:`~kerahep.layers.ChannelDropout`); energy smearing changes scale and
    resolution (:class:`~kerahep.layers.EnergySmearing`); sparse noise adds soft deposits
    (:class:`~kerahep.layers.SparseNoise`). No colour jitter: the channels are physical
    quantities.

    Args:
        flip: random flips in eta (rows) and phi (columns).
        translate: largest shift as a fraction of the image side (0.02 is 2.5 pixels; 0: off).
        channel_drop: probability of zeroing each channel (0: off).
        smear: ``(global, per-pixel)`` relative spreads of the energy smearing (None: off).
        noise: ``(rate, amplitude)`` of the sparse noise (None: off).
        noise_channels: channels that get noise (default: calorimeters and pixel layers).
        seed: base seed of the random layers (None: from the global Keras seed).
        name: name of the ``Sequential``.

    Example:
        >>> aug = jet_augmenter(seed=1)
        >>> tuple(aug(keras.ops.ones((2, 125, 125, 8)), training=True).shape)
        (2, 125, 125, 8)
    """

    def s(i):
        return None if seed is None else int(seed) + i

    steps = []
    if flip:
        steps.append(layers.RandomFlip("horizontal_and_vertical", seed=s(0), name="flip_eta_phi"))
    if translate:
        steps.append(layers.RandomTranslation(float(translate), float(translate), fill_mode="constant",
                                              interpolation="nearest", fill_value=0.0, seed=s(1), name="translate"))
    if channel_drop:
        steps.append(ChannelDropout(float(channel_drop), seed=s(2), name="channel_dropout"))
    if smear:
        steps.append(EnergySmearing(float(smear[0]), float(smear[1]), seed=s(3), name="energy_smearing"))
    if noise:
        steps.append(SparseNoise(float(noise[0]), float(noise[1]), channels=noise_channels, seed=s(4),
                                 name="sparse_noise"))
    if not steps:
        steps.append(layers.Identity(name="no_augmentation"))
    return keras.Sequential(steps, name=name)
