"""Saliency and Grad-CAM (tf-keras-vis) maps of the ResNet-15 family, averaged per class.

Where a map must peak is checked on a hand-made network that looks only at the energy
deposited (a 3x3 convolution summing the energy channel, then its mean): every method's map
of each crop is non-zero and peaks on that crop's shower, which sits elsewhere in each crop."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kerahep import explain
from kerahep.errors import KerahepError
from kerahep.models.resnet import build_resnet15, gradcam_layer


@pytest.fixture(scope="module")
def model_and_crops():
    model = build_resnet15("two_channel", widths=(4, 8), blocks=(1, 1), embedding_dim=8, seed=0)
    rng = np.random.default_rng(0)
    x = np.zeros((6, 32, 32, 2), np.float32)
    x[:, 15:18, 14:19, 0] = rng.random((6, 3, 5)).astype(np.float32)
    x[..., 1] = np.where(x[..., 0] > 0, 0.3, 0.0)
    return model, x, np.array([0, 1, 0, 1, 0, 1])


def assert_normalized(maps, expanded: bool = False) -> None:
    """Finite, non-negative, and each map scaled to a maximum of 1 (or all zero: nothing to show).

    ``expanded``: tf-keras-vis scales a Grad-CAM map on the coarse feature map and then
    interpolates it up to the crop, whose pixels need not fall on the coarse maximum: the peak
    is then at most 1 and near it (0.994 seen on a 4 x 4 feature map), not exactly 1."""
    assert np.isfinite(maps).all() and maps.min() >= 0
    peaks = maps.reshape(len(maps), -1).max(axis=1)
    if expanded:
        assert np.all(((peaks > 0.9) & (peaks <= 1 + 1e-5)) | (peaks == 0)), peaks
    else:
        assert np.all(np.isclose(peaks, 1, atol=2e-3) | (peaks == 0)), peaks


def test_saliency_maps_have_the_crop_shape(model_and_crops):
    model, x, y = model_and_crops
    maps = explain.saliency_maps(model, x, targets=y)
    assert maps.shape == (6, 32, 32) and maps.dtype == np.float32
    assert_normalized(maps)
    assert (maps.reshape(6, -1).max(axis=1) > 0).all()  # the score depends on every crop's pixels


@pytest.mark.parametrize("plus_plus", [False, True])
def test_gradcam_maps_are_expanded_to_the_crop(model_and_crops, plus_plus):
    model, x, y = model_and_crops
    maps = explain.gradcam_maps(model, x, targets=y, layer=gradcam_layer(model), plus_plus=plus_plus, batch_size=4)
    assert maps.shape == (6, 32, 32) and maps.dtype == np.float32
    assert_normalized(maps, expanded=True)


#: the top-left corner of each crop's 3 x 4 shower (row, column)
SHOWERS = [(3, 4), (15, 14), (25, 26), (8, 22), (20, 5)]


@pytest.fixture(scope="module")
def energy_model_and_crops():
    """A network whose score grows with the energy near each pixel (nothing else), and crops
    with one shower each, at the places of :data:`SHOWERS`."""
    inp = keras.Input((32, 32, 2))
    conv = keras.layers.Conv2D(2, 3, padding="same", activation="relu", name="features")
    score = keras.layers.Dense(1, activation="sigmoid", name="score")
    model = keras.Model(inp, score(keras.layers.GlobalAveragePooling2D()(conv(inp))))
    kernel = np.zeros((3, 3, 2, 2), np.float32)
    kernel[:, :, 0, :] = 1.0  # sums the energy channel around each pixel; the time channel is ignored
    conv.set_weights([kernel, np.zeros(2, np.float32)])
    score.set_weights([np.ones((2, 1), np.float32), np.zeros(1, np.float32)])
    rng = np.random.default_rng(2)
    x = np.zeros((len(SHOWERS), 32, 32, 2), np.float32)
    for n, (i, j) in enumerate(SHOWERS):
        x[n, i:i + 3, j:j + 4, 0] = 0.5 + rng.random((3, 4))
        x[n, i:i + 3, j:j + 4, 1] = 0.3
    return model, x


def _near_shower(n: int, margin: int) -> np.ndarray:
    i, j = SHOWERS[n]
    box = np.zeros((32, 32), bool)
    box[max(i - margin, 0):i + 3 + margin, max(j - margin, 0):j + 4 + margin] = True
    return box


@pytest.mark.parametrize("method", ["saliency", "gradcam", "gradcam++"])
def test_maps_are_not_empty_and_peak_on_the_shower(energy_model_and_crops, method):
    model, x = energy_model_and_crops
    targets = np.ones(len(x), int)  # what speaks for the class whose score grows with the energy
    if method == "saliency":
        maps = explain.saliency_maps(model, x, targets=targets)
    else:
        maps = explain.gradcam_maps(model, x, targets=targets, layer="features", plus_plus=method == "gradcam++")
    for n, m in enumerate(maps):
        assert m.max() == pytest.approx(1.0, abs=2e-3), (method, n)  # not all zero
        peak = np.unravel_index(np.argmax(m), m.shape)
        assert _near_shower(n, 0)[peak], (method, n, peak, SHOWERS[n])
        # the conv's 3x3 window and, for Grad-CAM, the bilinear expansion spread it by at most 2 pixels
        assert m[_near_shower(n, 2)].sum() >= 0.9 * m.sum(), (method, n)


def test_dual_stream_gradcam_uses_the_energy_trunk():
    model = build_resnet15("dual_stream", widths=(4, 8), blocks=(1, 1), embedding_dim=8)
    assert gradcam_layer(model) == "energy_features"
    maps = explain.gradcam_maps(model, np.random.default_rng(1).random((2, 32, 32, 2)).astype("float32"),
                                targets=[0, 1], layer="energy_features")
    assert maps.shape == (2, 32, 32)


def test_class_average_averages_each_class():
    maps = np.stack([np.full((4, 4), v, np.float32) for v in (1.0, 3.0, 5.0, 10.0)])
    avg = explain.class_average(maps, [0, 0, 0, 1])
    assert sorted(avg) == [0, 1]
    np.testing.assert_allclose(avg[0], 3.0)
    np.testing.assert_allclose(avg[1], 10.0)


def test_explanations_refuse_other_backends(model_and_crops, monkeypatch):
    model, x, y = model_and_crops
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(KerahepError, match="TensorFlow backend.*'jax'"):
        explain.saliency_maps(model, x, targets=y)
    with pytest.raises(KerahepError, match="TensorFlow backend"):
        explain.gradcam_maps(model, x, targets=y)


def test_unknown_gradcam_layer_and_bad_targets(model_and_crops):
    model, x, y = model_and_crops
    with pytest.raises(KerahepError, match="no layer 'conv99'"):
        explain.gradcam_maps(model, x, layer="conv99")
    with pytest.raises(KerahepError, match="one per input"):
        explain.saliency_maps(model, x, targets=[0, 1])


def test_embeddings_come_from_the_named_layer(model_and_crops):
    model, x, _ = model_and_crops
    assert explain.embeddings(model, "embedding", x).shape == (6, 8)
