"""Cut images into non-overlapping patches and put them back (keras.ops only).

``Patchify`` turns ``(batch, H, W[, C])`` into a token sequence ``(batch, nH * nW,
ph * pw * C)``, row-major over the patch grid; ``Unpatchify`` is its exact inverse.
Both are plain reshapes and transposes, so the order of values inside a patch is the
same on every backend and the pair round-trips exactly (``keras.ops.image.extract_patches``
has no inverse). Images whose sides are not multiples of the patch are zero-padded at
the high end (``Unpatchify`` crops the padding away).
"""

from __future__ import annotations

import math

import keras
from keras import layers, ops


def patch_grid(image_shape, patch_size) -> tuple[int, int]:
    """Number of patches along each side, ``(ceil(H / ph), ceil(W / pw))``.

    Example:
        >>> patch_grid((64, 72), (8, 8))
        (8, 9)
    """
    (h, w), (ph, pw) = tuple(image_shape)[:2], _pair(patch_size)
    return math.ceil(h / ph), math.ceil(w / pw)


def _pair(v) -> tuple[int, int]:
    if isinstance(v, int):
        return int(v), int(v)
    v = tuple(int(i) for i in v)
    if len(v) != 2 or min(v) < 1:
        raise ValueError(f"patch_size must be a positive int or a pair of positive ints, got {v!r}")
    return v


@keras.saving.register_keras_serializable(package="kerahep")
class Patchify(layers.Layer):
    """Cut ``(batch, H, W)`` or ``(batch, H, W, C)`` images into flattened patches.

    Args:
        patch_size: ``(ph, pw)`` or one int for square patches.

    Output:
        ``(batch, nH * nW, ph * pw * C)`` with ``nH = ceil(H / ph)``, ``nW = ceil(W / pw)``;
        patch ``k`` covers rows ``(k // nW) * ph ...`` and columns ``(k % nW) * pw ...``.

    Example:
        >>> Patchify((8, 8))(keras.ops.zeros((2, 64, 72))).shape
        (2, 72, 64)
    """

    def __init__(self, patch_size=(8, 8), **kwargs):
        super().__init__(**kwargs)
        self.patch_size = _pair(patch_size)

    def build(self, input_shape):
        if len(input_shape) not in (3, 4) or input_shape[1] is None or input_shape[2] is None:
            raise ValueError(f"Patchify needs (batch, H, W) or (batch, H, W, C) with known H and W, got {input_shape}")
        self.image_shape = (int(input_shape[1]), int(input_shape[2]))
        self.channels = int(input_shape[3]) if len(input_shape) == 4 else 1
        self.grid = patch_grid(self.image_shape, self.patch_size)

    def call(self, x):
        if len(x.shape) == 3:
            x = ops.expand_dims(x, -1)
        (h, w), (ph, pw), (nh, nw), c = self.image_shape, self.patch_size, self.grid, self.channels
        if nh * ph != h or nw * pw != w:
            x = ops.pad(x, [[0, 0], [0, nh * ph - h], [0, nw * pw - w], [0, 0]])
        x = ops.reshape(x, (-1, nh, ph, nw, pw, c))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (-1, nh * nw, ph * pw * c))

    def compute_output_shape(self, input_shape):
        c = int(input_shape[3]) if len(input_shape) == 4 else 1
        nh, nw = patch_grid((input_shape[1], input_shape[2]), self.patch_size)
        return (input_shape[0], nh * nw, self.patch_size[0] * self.patch_size[1] * c)

    def get_config(self):
        return {**super().get_config(), "patch_size": list(self.patch_size)}


@keras.saving.register_keras_serializable(package="kerahep")
class Unpatchify(layers.Layer):
    """Inverse of :class:`Patchify`: ``(batch, nH * nW, ph * pw * C)`` back to images.

    Args:
        patch_size: as given to ``Patchify``.
        image_shape: ``(H, W)`` of the original images (padding is cropped away).
        channels: ``C``; None returns ``(batch, H, W)`` (the input to ``Patchify`` had no
            channel axis), an int returns ``(batch, H, W, C)``.

    Example:
        >>> x = keras.ops.ones((2, 64, 72))
        >>> Unpatchify((8, 8), (64, 72))(Patchify((8, 8))(x)).shape
        (2, 64, 72)
    """

    def __init__(self, patch_size=(8, 8), image_shape=(64, 72), channels: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = _pair(patch_size)
        self.image_shape = (int(image_shape[0]), int(image_shape[1]))
        self.channels = None if channels is None else int(channels)
        self.grid = patch_grid(self.image_shape, self.patch_size)

    def build(self, input_shape):
        (ph, pw), (nh, nw), c = self.patch_size, self.grid, self.channels or 1
        if input_shape[-2] is not None and int(input_shape[-2]) != nh * nw:
            raise ValueError(f"Unpatchify expects {nh * nw} patches for {self.image_shape} and patch {self.patch_size}, "
                             f"got {input_shape[-2]}")
        if int(input_shape[-1]) != ph * pw * c:
            raise ValueError(f"Unpatchify expects patch vectors of {ph * pw * c} values, got {input_shape[-1]}")

    def call(self, x):
        (h, w), (ph, pw), (nh, nw), c = self.image_shape, self.patch_size, self.grid, self.channels or 1
        x = ops.reshape(x, (-1, nh, nw, ph, pw, c))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        x = ops.reshape(x, (-1, nh * ph, nw * pw, c))
        x = x[:, :h, :w, :]
        return x[..., 0] if self.channels is None else x

    def compute_output_shape(self, input_shape):
        h, w = self.image_shape
        return (input_shape[0], h, w) if self.channels is None else (input_shape[0], h, w, self.channels)

    def get_config(self):
        return {**super().get_config(), "patch_size": list(self.patch_size), "image_shape": list(self.image_shape),
                "channels": self.channels}
