"""Saliency and Grad-CAM (tf-keras-vis) maps of the ResNet-15 family, averaged per class."""

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


def test_saliency_maps_have_the_crop_shape(model_and_crops):
    model, x, y = model_and_crops
    maps = explain.saliency_maps(model, x, targets=y)
    assert maps.shape == (6, 32, 32) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1 + 1e-6


@pytest.mark.parametrize("plus_plus", [False, True])
def test_gradcam_maps_are_expanded_to_the_crop(model_and_crops, plus_plus):
    model, x, y = model_and_crops
    maps = explain.gradcam_maps(model, x, targets=y, layer=gradcam_layer(model), plus_plus=plus_plus, batch_size=4)
    assert maps.shape == (6, 32, 32)
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1 + 1e-6


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
