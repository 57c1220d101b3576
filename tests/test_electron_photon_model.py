"""ResNet-15 family and its layers: every variant builds, trains a step and round-trips through .keras."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from helpers import run_layer_test, run_model_saving_test
from kerahep.layers.attention_pool import AttentionPooling2D
from kerahep.layers.channel_log import ChannelLog1p
from kerahep.layers.select_channels import SelectChannels
from kerahep.layers.squeeze_excitation import SqueezeExcitation
from kerahep.layers.training_only import TrainingOnly
from kerahep.models.resnet import VARIANTS, build_resnet15, gradcam_layer

TINY = dict(widths=(4, 8), blocks=(1, 1), embedding_dim=8)


def crops(n=8, seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 32, 32, 2), np.float32)
    x[:, 14:19, 12:21, 0] = rng.random((n, 5, 9)) * 0.2
    x[:, 16, 16, 0] = 0.7
    x[..., 1] = np.where(x[..., 0] > 0, rng.normal(0, 0.5, x.shape[:3]), 0)
    return x


def predict(model, x):
    """Inference without tracing a predict function (eager calls keep these tests fast)."""
    return keras.ops.convert_to_numpy(model(x, training=False))


def roundtrip(model, x, tmp_path, **kw):
    """.keras round trip of ``model(x, training=False)`` (see helpers.run_model_saving_test)."""
    return run_model_saving_test(model, x, tmp_path, rtol=1e-5, atol=1e-6, **kw).loaded


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_builds_trains_a_step_and_roundtrips(variant, tmp_path):
    m = build_resnet15(variant, **TINY, seed=1)
    x, y = crops(), np.tile([0.0, 1.0], 4).astype(np.float32)
    m.compile(optimizer="adam", loss="binary_crossentropy", run_eagerly=True)
    before = [w.copy() for w in m.get_weights()]
    loss = m.train_on_batch(x, y)
    assert np.isfinite(loss)
    assert any(not np.array_equal(a, b) for a, b in zip(before, m.get_weights()))
    assert m.output.dtype == "float32" and m.get_layer("score").dtype_policy.compute_dtype == "float32"
    assert m.get_layer("embedding").output.shape == (None, 8)
    loaded = roundtrip(m, x, tmp_path)
    assert gradcam_layer(loaded) == ("energy_features" if variant == "dual_stream" else "features")
    convs = [lyr for lyr in m.layers if isinstance(lyr, keras.layers.Conv2D) and not lyr.name.endswith("_proj")]
    per_trunk = 1 + 2 * sum(TINY["blocks"])
    assert len(convs) == per_trunk * (2 if variant == "dual_stream" else 1)


def test_default_is_resnet15():
    m = build_resnet15()
    convs = [lyr for lyr in m.layers if isinstance(lyr, keras.layers.Conv2D) and not lyr.name.endswith("_proj")]
    assert len(convs) == 15
    assert m.get_layer("features").output.shape[1:] == (8, 8, 32)


def test_all_options_together_roundtrip(tmp_path):
    m = build_resnet15("two_channel", widths=(4, 8), blocks=(1, 1), preact=True, se=True, pool="attention",
                       groups=2, dropout=0.2, erasing=0.5, embedding_dim=8, seed=3)
    names = {lyr.name for lyr in m.layers}
    assert {"attention_pool", "s1b1_se", "erasing", "head_dropout", "flip_eta", "flip_phi"} <= names
    assert m.get_layer("s2b1_conv2").groups == 2
    x = crops()
    m.compile(optimizer="adam", loss="binary_crossentropy", run_eagerly=True)
    assert np.isfinite(m.train_on_batch(x, np.ones(8, np.float32)))
    roundtrip(m, x, tmp_path, fresh_process=True)  # kerahep.layers alone registers every layer it uses


def test_channel_variants_ignore_the_other_channel():
    x = crops()
    x2 = x.copy()
    x2[..., 1] += 1.0  # change time only
    e = build_resnet15("energy", **TINY)
    np.testing.assert_allclose(predict(e, x), predict(e, x2), rtol=1e-6)
    x3 = x.copy()
    x3[..., 0] *= 2.0  # change energy only
    t = build_resnet15("time", **TINY)
    np.testing.assert_allclose(predict(t, x), predict(t, x3), rtol=1e-6)
    both = build_resnet15("two_channel", **TINY)
    assert not np.allclose(predict(both, x), predict(both, x2))


def test_augmentation_acts_in_training_only_with_independent_flips():
    m = build_resnet15("two_channel", **TINY, erasing=0.0, seed=0)
    aug = keras.Model(m.input, m.get_layer("flip_phi").output)
    base = np.zeros((1, 32, 32, 2), np.float32)
    base[0, 2, 5, 0] = 1.0  # asymmetric in eta and in phi
    x = np.repeat(base, 64, axis=0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(aug(x, training=False)), x)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(aug(x)), x)  # a plain call does not augment
    out = keras.ops.convert_to_numpy(aug(x, training=True))
    seen = set()
    for img in out:
        (i, j) = np.argwhere(img[..., 0] == 1.0)[0]
        seen.add((int(i), int(j)))
    # identity, eta flip, phi flip and both: flips of the two axes are independent
    assert seen == {(2, 5), (29, 5), (2, 26), (29, 26)}
    np.testing.assert_array_equal(predict(m, x[:4]), predict(m, x[:4]))  # inference is deterministic


def test_random_erasing_fills_with_zero_in_training_only():
    m = build_resnet15("two_channel", **TINY, flip=False, erasing=1.0, seed=0)
    er = keras.Model(m.input, m.get_layer("erasing").output)
    x = np.ones((16, 32, 32, 2), np.float32)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(er(x, training=False)), x)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(er(x)), x)
    out = keras.ops.convert_to_numpy(er(x, training=True))
    assert set(np.unique(out).tolist()) == {0.0, 1.0}
    assert ((out == 0).reshape(16, -1).any(axis=1)).all()


def test_log_energy_inside_the_model_keeps_zero_and_time():
    lyr = ChannelLog1p(channels=(0,), scale=0.002)
    x = np.array([[[[0.0, -1.5], [0.002, 0.3]]]], np.float32)
    y = keras.ops.convert_to_numpy(lyr(x))
    np.testing.assert_allclose(y[..., 0], [[[0.0, np.log(2.0)]]], rtol=1e-6)
    np.testing.assert_array_equal(y[..., 1], x[..., 1])


@pytest.mark.parametrize("make,shape,out_shape", [
    (lambda: SqueezeExcitation(ratio=2, name="se"), (6, 6, 8), (3, 6, 6, 8)),
    (lambda: AttentionPooling2D(num_heads=2, name="ap"), (4, 4, 8), (3, 8)),
    (lambda: AttentionPooling2D(num_heads=2, return_attention=True, name="ap_att"), (4, 4, 8),
     [(3, 8), (3, 2, 4, 4)]),
    (lambda: SelectChannels(channels=(1,), name="sel"), (4, 4, 2), (3, 4, 4, 1)),
    (lambda: ChannelLog1p(channels=(0,), scale=0.01, name="log"), (4, 4, 2), (3, 4, 4, 2)),
    (lambda: TrainingOnly(keras.layers.RandomFlip("horizontal", seed=5), name="train_flip"), (4, 4, 2),
     (3, 4, 4, 2)),
], ids=["se", "ap", "ap_att", "sel", "log", "train_flip"])
def test_layers_roundtrip(make, shape, out_shape, tmp_path):
    x = np.abs(np.random.default_rng(0).normal(size=(3,) + shape)).astype("float32")
    result = run_layer_test(make, x, tmp_path=tmp_path, expected_shape=out_shape, rtol=1e-5, atol=1e-6,
                            compare_training=True)
    layer, loaded = result.layer, result.loaded_layer
    assert type(loaded) is type(layer)
    if isinstance(layer, TrainingOnly):  # a wrapper: the wrapped layer's class and mode come back too
        assert type(loaded.layer) is type(layer.layer) and loaded.layer.mode == layer.layer.mode
        train = result.saving.reference["training=True"]
        assert not np.array_equal(train, x)  # the flip acts in training (seeded: some of 3 maps flip) ...
        np.testing.assert_array_equal(result.saving.reference["training=False"], x)  # ... and only then


def test_attention_pooling_weights_are_a_distribution_over_positions():
    pool = AttentionPooling2D(num_heads=2, return_attention=True)
    x = np.random.default_rng(1).normal(size=(2, 4, 5, 8)).astype("float32")
    out, att = pool(x)
    att = keras.ops.convert_to_numpy(att)
    assert out.shape == (2, 8) and att.shape == (2, 2, 4, 5)
    np.testing.assert_allclose(att.sum(axis=(2, 3)), 1.0, rtol=1e-5)


def test_squeeze_excitation_only_rescales_channels():
    se = SqueezeExcitation(ratio=2)
    x = np.random.default_rng(2).random((2, 5, 5, 4)).astype("float32") + 0.1
    ratio = keras.ops.convert_to_numpy(se(x)) / x
    np.testing.assert_allclose(ratio, ratio[:, :1, :1, :].repeat(5, 1).repeat(5, 2), rtol=1e-5)
    assert ((ratio > 0) & (ratio < 1)).all()


def test_bad_builder_arguments():
    with pytest.raises(ValueError, match="unknown ResNet-15 variant 'rgb'"):
        build_resnet15("rgb")
    with pytest.raises(ValueError, match="pooling"):
        build_resnet15(pool="median")


def test_mixed_precision_keeps_the_score_in_float32():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        m = build_resnet15("two_channel", **TINY, se=True, pool="attention")
        out = predict(m, crops())
    finally:
        keras.config.set_dtype_policy(previous)
    assert m.get_layer("s1b1_conv1").compute_dtype == "float16"
    assert m.get_layer("attention_pool").compute_dtype == "float16"
    assert out.dtype == np.float32 and np.isfinite(out).all()
