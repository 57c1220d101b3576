"""HCAL models: ViT, MoE-ViT and the anomaly autoencoder round-trip through .keras; rollout; routing."""

import keras
import numpy as np
import pytest

from helpers import run_model_saving_test
from kerahep.models.ae import build_autoencoder, reduce_residuals
from kerahep.models.vit import (attention_model, attention_rollout, build_moe_vit, build_vit, rollout_maps,
                                routing, tokens_to_map)

SHAPE = (16, 24)  # 2 x 3 patches of 8 x 8: tiny and fast


def _maps(n=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.poisson(50.0, size=(n, *SHAPE)).astype("float32")
    x[:, 4:8] = 0.0  # an empty band, as in the detector
    return x


def _tiny(variant, **kw):
    common = dict(patch_size=(8, 8), dim=16, depth=2, num_heads=2, dropout=0.0, adapt_data=_maps(20, seed=9))
    common.update(kw)
    if variant == "vit":
        return build_vit(SHAPE, **common)
    return build_moe_vit(SHAPE, num_experts=3, top_k=2, capacity_factor=1.0, moe_every=1, **common)


@pytest.mark.parametrize("variant", ["vit", "moe_vit"])
def test_model_round_trips_through_keras_file(tmp_path, variant):
    model = _tiny(variant)
    x = _maps()
    before = model.predict(x, verbose=0)
    assert before.shape == (6, 1) and ((before > 0) & (before < 1)).all()
    # safe mode (the loader's default): no Lambda layers anywhere; kerahep.layers alone registers the rest
    result = run_model_saving_test(model, x, tmp_path, rtol=1e-5, atol=1e-6, fresh_process=variant == "moe_vit")
    loaded = result.loaded
    np.testing.assert_allclose(loaded.predict(x, verbose=0), before, rtol=1e-5, atol=1e-6)
    # the per-cell standardisation travels with the model: it scores raw counts
    norm = loaded.get_layer("cell_norm")
    assert norm.mean.shape[-2:] == SHAPE
    if variant == "moe_vit":
        loaded(x)
        assert len(loaded.losses) == 2  # one routing loss per MoE block, restored with the model


def test_multiclass_vit_has_a_softmax_head():
    model = _tiny("vit", num_classes=3)
    p = model.predict(_maps(), verbose=0)
    assert p.shape == (6, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    assert model.get_layer("output").dtype_policy.name == "float32"


def test_moe_vit_counts_the_routing_loss_in_the_total():
    model = _tiny("moe_vit")
    model.compile(optimizer="adam", loss="binary_crossentropy")
    x, y = _maps(8), np.array([0, 1] * 4, "float32")
    data_loss = float(keras.losses.binary_crossentropy(y[:, None], model.predict(x, verbose=0)).numpy().mean())
    total = model.evaluate(x, y, verbose=0)
    assert total > data_loss + 0.015  # two blocks x weight 0.01 x loss >= 1


def test_routing_decisions_per_patch():
    model = _tiny("moe_vit")
    gates = routing(model, _maps())
    assert sorted(gates) == ["block_0_moe", "block_1_moe"]
    g = gates["block_0_moe"]
    assert g.shape == (6, 6, 3)  # maps, patches, experts
    n_experts = (g > 0).sum(-1)
    assert (n_experts <= 2).all()  # top-2; fewer where an expert was full
    both = n_experts == 2
    assert both.any()
    np.testing.assert_allclose(g.sum(-1)[both], 1.0, rtol=1e-5)  # renormalised top-2 gates
    assert (g.sum(-1) <= 1.0 + 1e-5).all()


def test_attention_rollout_of_identity_is_uniform_and_follows_focus():
    n = 5
    eye = np.tile(np.eye(n), (2, 3, 1, 1))
    np.testing.assert_allclose(attention_rollout([eye, eye]), 1.0 / n)
    focus = np.zeros((1, 2, n, n))
    focus[..., 3] = 1.0  # every query attends to token 3
    rel = attention_rollout([focus, focus])
    assert rel.argmax() == 3 and rel[0, 3] > 0.5
    np.testing.assert_allclose(rel.sum(axis=1), 1.0)


def test_rollout_maps_cover_the_detector_grid():
    model = _tiny("vit")
    att = attention_model(model)(_maps(3))
    assert len(att) == 2 and tuple(att[0].shape) == (3, 2, 6, 6)
    maps = rollout_maps(model, _maps(3))
    assert maps.shape == (3, *SHAPE)
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), 1.0, rtol=1e-5)
    grid = tokens_to_map(np.arange(6)[None], (2, 3), (8, 8), SHAPE)[0]
    assert grid[0, 0] == 0 and grid[0, 23] == 2 and grid[15, 0] == 3 and grid[15, 23] == 5


def test_autoencoder_round_trip_and_residual_meaning(tmp_path):
    x = _maps(10)
    ae = build_autoencoder(SHAPE, latent_dim=4, hidden=16, adapt_data=x)
    r = ae.predict(x, verbose=0)
    assert r.shape == (10, *SHAPE)
    loaded = run_model_saving_test(ae, x, tmp_path, rtol=1e-5, atol=1e-5).loaded
    np.testing.assert_allclose(loaded.predict(x, verbose=0), r, rtol=1e-5, atol=1e-5)
    # the residual is observed minus reconstructed: a dead cell pulls it down, a hot one up
    dead, hot = x.copy(), x.copy()
    dead[:, 0, 0] = 0.0
    hot[:, 0, 0] *= 20.0
    assert (ae.predict(dead, verbose=0)[:, 0, 0] < r[:, 0, 0]).all()
    assert (ae.predict(hot, verbose=0)[:, 0, 0] > r[:, 0, 0]).all()


def test_residual_scores():
    res = np.zeros((2, 4, 4))
    res[1, 2, 2] = 3.0
    np.testing.assert_allclose(reduce_residuals(res, "mse"), [0.0, 9.0 / 16])
    np.testing.assert_allclose(reduce_residuals(res, "max"), [0.0, 3.0])
    np.testing.assert_allclose(reduce_residuals(res, "top", top=2), [0.0, 4.5])
    with pytest.raises(ValueError):
        reduce_residuals(res, "median")
