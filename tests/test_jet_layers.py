"""Jet-image layers: channel scaling and the SimCLR augmentations (each with a .keras round trip)."""

import keras
import numpy as np
import pytest

from helpers import run_layer_test
from kerahep.layers import ChannelDropout, ChannelScale, EnergySmearing, SparseNoise


def _sparse_images(n=3, size=16, channels=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.exponential(5.0, (n, size, size, channels)).astype("float32")
    x *= rng.uniform(size=x.shape) < 0.1
    x[..., 1:3] *= rng.choice([-1.0, 1.0], x[..., 1:3].shape).astype("float32")  # signed dz, d0
    return x


def test_channel_scale_is_a_signed_log_per_channel_and_round_trips(tmp_path):
    x = _sparse_images()
    scales = [2.0, 0.5, 0.1, 1.0, 3.0, 1.0, 1.0, 1.0]
    layer = ChannelScale(scales, name="scale")
    y = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(y, np.sign(x) * np.log1p(np.abs(x) / np.array(scales)), rtol=1e-5, atol=1e-6)
    assert np.array_equal(y == 0, x == 0)  # sparse stays sparse, signs kept
    assert np.array_equal(np.sign(y), np.sign(x))
    linear = keras.ops.convert_to_numpy(ChannelScale(scales, log=False)(x))
    np.testing.assert_allclose(linear, x / np.array(scales), rtol=1e-6)
    result = run_layer_test(layer, x, tmp_path=tmp_path, expected_shape=x.shape, rtol=1e-6, atol=0,
                            fresh_process=True)
    assert result.loaded_layer.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="3 scales but the input has 8 channels"):
        ChannelScale([1.0, 1.0, 1.0])(x)


@pytest.mark.parametrize("make", [
    lambda: ChannelDropout(0.5, seed=3, name="drop"),
    lambda: EnergySmearing(0.1, 0.2, seed=3, name="smear"),
    lambda: SparseNoise(0.05, 0.2, channels=(3, 4), seed=3, name="noise"),
])
def test_augmentation_acts_only_in_training_keeps_shape_and_round_trips(make, tmp_path):
    x = _sparse_images(n=4)
    layer = make()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x, training=False)), x)
    a = keras.ops.convert_to_numpy(layer(x, training=True))
    assert a.shape == x.shape and not np.allclose(a, x)
    # the saved layer carries its configuration and its seed (not the state of its random
    # generator): a reloaded layer draws what a new one draws, in training; inference is exact
    result = run_layer_test(make, x, tmp_path=tmp_path, compare_training=True, expected_shape=x.shape,
                            rtol=1e-6, atol=0)
    assert result.loaded_layer.get_config() == result.layer.get_config()
    assert not np.allclose(result.saving.reference["training=True"], x)
    np.testing.assert_array_equal(result.saving.reference["training=False"], x)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(result.loaded(x, training=False)), x)


def test_channel_dropout_zeroes_whole_channels_without_rescaling_the_rest():
    x = _sparse_images(n=16) + 0.01  # no empty channel
    y = keras.ops.convert_to_numpy(ChannelDropout(0.3, seed=1)(x, training=True))
    dropped = 0
    for i in range(x.shape[0]):
        for c in range(x.shape[-1]):
            if np.all(y[i, ..., c] == 0):
                dropped += 1
            else:
                np.testing.assert_array_equal(y[i, ..., c], x[i, ..., c])
    assert 0.1 < dropped / (16 * 8) < 0.5


def test_energy_smearing_multiplies_and_never_creates_deposits():
    x = _sparse_images(n=8)
    y = keras.ops.convert_to_numpy(EnergySmearing(0.05, 0.1, seed=2)(x, training=True))
    assert np.array_equal(y == 0, x == 0) and np.array_equal(np.sign(y), np.sign(x))
    nz = x != 0
    ratio = y[nz] / x[nz]
    assert 0.9 < ratio.mean() < 1.1 and 0.05 < ratio.std() < 0.2


def test_sparse_noise_adds_soft_positive_deposits_only_in_chosen_channels():
    x = _sparse_images(n=8, size=32)
    y = keras.ops.convert_to_numpy(SparseNoise(0.02, 0.1, channels=(3, 4), seed=4)(x, training=True))
    diff = y - x
    others = [c for c in range(8) if c not in (3, 4)]
    np.testing.assert_array_equal(diff[..., others], 0)
    added = diff[..., [3, 4]]
    assert added.min() >= 0
    assert 0.005 < (added > 0).mean() < 0.05  # about the rate: the image stays sparse
    cmax = np.abs(x[..., [3, 4]]).max(axis=(1, 2))
    assert np.all(added.max(axis=(1, 2)) < 2.0 * cmax)  # soft relative to the channel's own scale
