"""Layers of the HCAL ViTs: Log1p, Patchify/Unpatchify, MixtureOfExperts (routing, capacity, loss)."""

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import run_layer_test, run_model_saving_test
from kerahep.layers import Log1p, MixtureOfExperts, Patchify, Unpatchify
from kerahep.layers.moe import expert_capacity, load_balancing_loss
from kerahep.layers.patches import patch_grid


def _np(t):
    return keras.ops.convert_to_numpy(t)


@settings(max_examples=12, deadline=None)
@given(h=st.integers(3, 20), w=st.integers(3, 20), ph=st.integers(1, 6), pw=st.integers(1, 6),
       c=st.sampled_from([None, 1, 3]))
def test_patchify_and_unpatchify_are_inverses(h, w, ph, pw, c):
    shape = (2, h, w) if c is None else (2, h, w, c)
    x = np.random.default_rng(h * 100 + w).normal(size=shape).astype("float32")
    p = Patchify((ph, pw))(x)
    nh, nw = patch_grid((h, w), (ph, pw))
    assert tuple(p.shape) == (2, nh * nw, ph * pw * (c or 1))
    back = _np(Unpatchify((ph, pw), (h, w), channels=c)(p))
    np.testing.assert_array_equal(back, x)
    # and the other way round on the unpadded part: patchify(unpatchify(p)) == p when sides divide
    if h % ph == 0 and w % pw == 0:
        np.testing.assert_array_equal(_np(Patchify((ph, pw))(back)), _np(p))


def test_patch_k_covers_the_expected_cells():
    x = np.arange(2 * 64 * 72, dtype="float32").reshape(2, 64, 72)
    p = _np(Patchify((8, 8))(x))
    assert p.shape == (2, 72, 64)  # 8 x 9 patches of 8 x 8 cells
    k = 2 * 9 + 5  # row 2, column 5 of the patch grid
    np.testing.assert_array_equal(p[1, k], x[1, 16:24, 40:48].ravel())


def test_log1p_scales_counts_and_clips_negatives():
    y = _np(Log1p(scale=0.5)(np.array([[0.0, np.e - 1, -3.0]], "float32")))
    np.testing.assert_allclose(y, [[0.0, 0.5, 0.0]], atol=1e-6)


# ---------------------------------------------------------------------- routing loss
def test_routing_loss_is_one_when_balanced_and_num_experts_when_collapsed():
    e, n = 4, 64
    uniform = np.full((n, e), 1.0 / e)
    balanced = np.arange(n) % e
    assert float(load_balancing_loss(uniform, balanced, e)) == pytest.approx(1.0)
    collapsed = np.zeros((n, e))
    collapsed[:, 2] = 1.0
    assert float(load_balancing_loss(collapsed, np.full(n, 2), e)) == pytest.approx(e)


@settings(max_examples=25, deadline=None)
@given(counts=st.lists(st.integers(0, 30), min_size=2, max_size=6).filter(lambda c: sum(c) > 0),
       sharp=st.floats(2.0, 20.0))
def test_routing_loss_is_minimal_when_the_load_is_balanced(counts, sharp):
    """A router that sends ``counts[e]`` tokens to expert ``e`` (confidently) pays
    ``E * sum f_e P_e`` >= 1, with equality only for a balanced load."""
    e = len(counts)
    index = np.repeat(np.arange(e), counts)
    logits = np.eye(e)[index] * sharp
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    loss = float(load_balancing_loss(probs, index, e))
    assert loss >= 1.0 - 1e-6
    if len(set(counts)) == 1:
        assert loss == pytest.approx(1.0, abs=1e-6)
    else:
        assert loss > 1.0 + 1e-4


def test_minimising_the_routing_loss_balances_a_collapsed_router():
    import tensorflow as tf

    moe = MixtureOfExperts(num_experts=4, top_k=1, aux_loss_weight=1.0)
    x = np.random.default_rng(0).normal(size=(8, 32, 16)).astype("float32")
    x[..., 0] = 1.0  # a constant feature the collapsed router keys on
    moe(x)
    k = moe.router.kernel
    collapsed = np.random.default_rng(1).normal(0.0, 0.3, k.shape).astype("float32")
    collapsed[0, 0] = 6.0
    k.assign(collapsed)

    def load():
        probs, first, _, _ = moe.route(x)
        return np.bincount(_np(first).ravel(), minlength=4) / first.shape[0] / first.shape[1]

    before = load()
    opt = keras.optimizers.SGD(0.5)
    for _ in range(60):
        with tf.GradientTape() as tape:
            moe(x)
            loss = moe.losses[0]
        opt.apply([tape.gradient(loss, k)], [k])
    after = load()
    assert before.max() > 0.9  # collapsed onto one expert
    assert after.max() < 0.45 and after.min() > 0.1  # spread over all four
    assert float(moe.losses[0]) < 1.2  # from about num_experts = 4 down to near the minimum 1


# ------------------------------------------------------------------ capacity, routing
def test_capacity_limits_tokens_per_expert_and_dropped_tokens_skip_the_experts():
    x = np.random.default_rng(1).normal(size=(3, 24, 8)).astype("float32")
    moe = MixtureOfExperts(num_experts=4, top_k=2, capacity_factor=0.5, return_routing=True)
    y, gates = moe(x)
    y, gates = _np(y), _np(gates)
    assert moe.capacity == expert_capacity(24, 4, 2, 0.5) == 6
    assert ((gates > 0).sum(axis=1) <= moe.capacity).all()  # per example and expert
    dropped = gates.sum(axis=-1) == 0
    assert dropped.any()
    np.testing.assert_allclose(y[dropped], 0.0, atol=1e-6)
    kept_one = (gates > 0).sum(-1) == 2
    np.testing.assert_allclose(gates.sum(-1)[kept_one], 1.0, rtol=1e-5)  # top-2 gates renormalised
    free = MixtureOfExperts(num_experts=4, top_k=2, capacity_factor=None, return_routing=True)
    _, g = free(x)
    assert ((_np(g) > 0).sum(-1) == 2).all()  # no limit: every token reaches both experts


def test_moe_adds_its_weighted_routing_loss():
    x = np.random.default_rng(2).normal(size=(2, 10, 8)).astype("float32")
    moe = MixtureOfExperts(num_experts=3, top_k=1, aux_loss_weight=0.25)
    moe(x)
    probs, first, _, _ = moe.route(x)
    assert len(moe.losses) == 1
    assert float(moe.losses[0]) == pytest.approx(0.25 * float(load_balancing_loss(probs, first, 3)), rel=1e-5)


def test_layers_round_trip_through_keras_file(tmp_path):
    inp = keras.Input((16, 24))
    h = Log1p(scale=0.3)(inp)
    t = Patchify((8, 6))(h)
    t = keras.layers.Dense(12)(t)
    t, gates = MixtureOfExperts(num_experts=3, top_k=2, capacity_factor=1.0, return_routing=True)(t)
    t = keras.layers.Dense(48)(t)
    img = Unpatchify((8, 6), (16, 24))(t)
    model = keras.Model(inp, [img, gates])
    x = np.random.default_rng(3).poisson(20, size=(2, 16, 24)).astype("float32")
    out = model.predict(x, verbose=0)
    # image and routing gates, reloaded here and in a fresh process (kerahep.layers imported only)
    result = run_model_saving_test(model, x, tmp_path, rtol=1e-5, atol=1e-6, fresh_process=True)
    for key, a in zip(("0", "1"), out):
        np.testing.assert_allclose(result.reference[key], a, rtol=1e-5, atol=1e-6)
    moe = [layer for layer in result.loaded.layers if isinstance(layer, MixtureOfExperts)][0]
    assert moe.get_config()["capacity_factor"] == 1.0 and moe.get_config()["top_k"] == 2


@pytest.mark.parametrize("make,shape,out_shape", [
    (lambda: Log1p(scale=0.3, name="log"), (2, 16, 24), (2, 16, 24)),
    (lambda: Patchify((8, 6), name="patchify"), (2, 16, 24), (2, 8, 48)),
    (lambda: Unpatchify((8, 6), (16, 24), channels=2, name="unpatchify"), (2, 8, 96), (2, 16, 24, 2)),
    (lambda: MixtureOfExperts(num_experts=3, top_k=2, capacity_factor=1.0, hidden_dim=8, return_routing=True,
                              name="moe"), (2, 8, 12), [(2, 8, 12), (2, 8, 3)]),
], ids=["log1p", "patchify", "unpatchify", "moe"])
def test_each_layer_serializes(make, shape, out_shape, tmp_path):
    x = np.random.default_rng(4).poisson(20, size=shape).astype("float32")
    result = run_layer_test(make, x, tmp_path=tmp_path, expected_shape=out_shape, rtol=1e-5, atol=1e-6)
    if isinstance(result.layer, MixtureOfExperts):  # the routing loss comes back with the layer
        result.loaded(x)
        assert len(result.loaded.losses) == 1
