"""Masked autoencoder of higgs_mae: layers, masking that hides values, physics terms, round trips."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from helpers import run_layer_test, run_model_saving_test
from kerahep.data.higgs import transform
from kerahep.data.synthetic.higgs import generate
from kerahep.layers import (DiscreteTokenEmbedding, FeatureTokenizer, MaskTokenInsert, PairInvariantMass,
                            PerTokenDense, RandomTokenMasking)
from kerahep.models.mae import (MaskedAutoencoder, build_classifier, build_masked_autoencoder, copy_autoencoder,
                                higgs_layout, negative_pt_loss, pt_balance_loss, unit_circle_loss)


def _np(t):
    return np.asarray(keras.ops.convert_to_numpy(t))


@pytest.fixture(scope="module")
def events():
    ev = generate(40, seed=4)
    return transform(ev["raw"], "low"), ev["label"].astype("float32")


def _mae(x, tokenization="object", btag=True, pairs=None, **kw):
    pairs = tokenization == "object" if pairs is None else pairs
    kw = {"dim": 8, "depth": 1, "num_heads": 2, "decoder_dim": 8, "mask_ratio": 0.5, "btag_embedding": btag,
          "pair_features": pairs, "pt_balance_weight": 0.01, "negative_pt_weight": 0.1, "unit_circle_weight": 0.1,
          "seed": 3, **kw}
    return build_masked_autoencoder(higgs_layout("low", tokenization), adapt_data=x, **kw)


def _out(model, x):
    return _np(model(x, training=False))


def mae_outputs(model, inputs):
    """Every output of a masked autoencoder, with the masking noise as an input (deterministic)."""
    return model(inputs["x"], noise=inputs["noise"], training=False)


# ---------------------------------------------------------------------- layout
def test_object_layout_puts_each_object_in_one_token():
    lay = higgs_layout("low", "object")
    names = lay["feature_names"]
    assert lay["token_names"] == ["lepton", "missing_energy", "jet_1", "jet_2", "jet_3", "jet_4"]
    assert [names[i] if i >= 0 else None for i in lay["groups"][1]] == [
        "missing_energy_magnitude", None, "missing_energy_cos_phi", "missing_energy_sin_phi", None]
    assert [names[i] for i in lay["groups"][3]] == ["jet_2_pt", "jet_2_eta", "jet_2_cos_phi", "jet_2_sin_phi",
                                                  "jet_2_btag"]
    assert sorted(i for g in lay["groups"] for i in g if i >= 0) == list(range(27))
    assert lay["btag"]["token_positions"] == [2, 3, 4, 5]
    feat = higgs_layout("all", "feature")
    assert len(feat["groups"]) == 34 and feat["btag"]["token_positions"] == feat["btag"]["columns"]
    assert higgs_layout("all", "object")["token_names"][-1] == "high_level"


# ---------------------------------------------------------------------- layers
def test_tokenizer_inverse_and_roundtrip(tmp_path):
    x = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")
    tok = FeatureTokenizer([[0, 1, -1], [2], [4, 3]])
    t = _np(tok(x))
    assert t.shape == (4, 3, 3)
    np.testing.assert_array_equal(t[:, 0], np.stack([x[:, 0], x[:, 1], 0 * x[:, 0]], 1))
    np.testing.assert_array_equal(t[:, 2, :2], x[:, [4, 3]])
    np.testing.assert_array_equal(_np(tok.inverse(t)), x)
    inp = keras.Input((5,))
    model = keras.Model(inp, PerTokenDense(6, name="ptd")(tok(inp)))
    run_model_saving_test(model, x, tmp_path, rtol=1e-6, atol=0)
    run_layer_test(lambda: FeatureTokenizer([[0, 1, -1], [2], [4, 3]], name="tok"), x, tmp_path=tmp_path,
                   expected_shape=(4, 3, 3), rtol=0, atol=0)
    run_layer_test(lambda: PerTokenDense(6, activation="relu", use_bias=False, name="ptd"), t, tmp_path=tmp_path,
                   expected_shape=(4, 3, 6), rtol=1e-6, atol=0)


def test_per_token_dense_never_mixes_tokens():
    layer = PerTokenDense(4)
    x = np.random.default_rng(1).normal(size=(2, 3, 5)).astype("float32")
    y = _np(layer(x))
    x2 = x.copy()
    x2[:, 1] = np.nan
    y2 = _np(layer(x2))
    np.testing.assert_array_equal(y2[:, [0, 2]], y[:, [0, 2]])
    kernel = _np(layer.kernel)
    np.testing.assert_allclose(y[:, 2], x[:, 2] @ kernel[2] + _np(layer.bias)[2], rtol=1e-5, atol=1e-6)


def test_discrete_embedding_maps_levels_and_roundtrips(tmp_path):
    layer = DiscreteTokenEmbedding([1, 3], [[0.0, 1.1, 2.2], [0.0, 1.5, 3.1]], [0, 2], num_tokens=3, output_dim=4)
    x = np.array([[9.0, 1.09, 9.0, 3.0], [9.0, 0.0, 9.0, 1.6]], "float32")
    np.testing.assert_array_equal(_np(layer.level_index(x)), [[1, 2], [0, 1]])
    out = _np(layer(x))
    table = _np(layer.embeddings)
    np.testing.assert_allclose(out[0, 0], table[0, 1])
    np.testing.assert_allclose(out[1, 2], table[1, 1])
    np.testing.assert_array_equal(out[:, 1], 0.0)
    result = run_layer_test(layer, x, tmp_path=tmp_path, expected_shape=(2, 3, 4), rtol=1e-6, atol=0)
    np.testing.assert_allclose(result.saving.reference["training=False"], out, rtol=1e-6)


def test_pair_mass_against_hand_computation_and_roundtrip(tmp_path):
    # objects: a (pt 1, eta 0, phi 0), b (pt 2, no eta, phi pi), c (pt 1, eta 1, phi 0) on tokens 0, 2, 1
    layer = PairInvariantMass(pt_index=[0, 3, 6], eta_index=[1, -1, 7], cos_index=[2, 4, 8], sin_index=[5, 9, 10],
                              token_positions=[0, 2, 1], num_tokens=4)
    x = np.array([[1.0, 0.0, 1.0, 2.0, -1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]], "float32")
    m2 = _np(layer.pair_masses(x))[0]
    # back to back a, b: (1 + 2)^2 - (1 - 2)^2 = 8; a, c: 2 (cosh 1 - 1); b, c: 2 * 2 (cosh 1 + 1)
    expect = np.array([[0, 8, 2 * (math.cosh(1) - 1)], [8, 0, 4 * (math.cosh(1) + 1)],
                       [2 * (math.cosh(1) - 1), 4 * (math.cosh(1) + 1), 0]])
    np.testing.assert_allclose(m2, expect, rtol=1e-5, atol=1e-5)
    out = _np(layer(x))[0]
    assert out.shape == (4, 6)
    np.testing.assert_allclose(out[0, :3], expect[0], rtol=1e-5, atol=1e-5)  # object a on token 0
    np.testing.assert_allclose(out[2, :3], expect[1], rtol=1e-5, atol=1e-5)  # object b on token 2
    np.testing.assert_allclose(out[1, 3:], np.log1p(expect[2]), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out[3], 0.0)  # token without an object
    # a hidden object (b, token 2) drops out of every row, even as NaN
    xp = x.copy()
    xp[0, [3, 4, 9]] = np.nan
    hidden = _np(layer(xp, visible=np.array([[1.0, 1.0, 0.0, 1.0]], "float32")))[0]
    np.testing.assert_allclose(hidden[0], [0, 0, expect[0, 2], 0, 0, np.log1p(expect[0, 2])], rtol=1e-5, atol=1e-5)
    assert np.isfinite(hidden[[0, 1, 3]]).all()
    result = run_layer_test(layer, x, tmp_path=tmp_path, expected_shape=(1, 4, 6), rtol=1e-6, atol=0)
    np.testing.assert_allclose(result.saving.reference["training=False"][0], out, rtol=1e-6)


def test_masking_and_mask_token_restore_positions(tmp_path):
    tokens = np.random.default_rng(2).normal(size=(5, 6, 4)).astype("float32")
    noise = np.random.default_rng(3).uniform(size=(5, 6)).astype("float32")
    vis, mask, ids = RandomTokenMasking(0.5)(tokens, noise=noise)
    vis, mask = _np(vis), _np(mask)
    assert vis.shape == (5, 3, 4) and (mask.sum(1) == 3).all()
    # the visible tokens are those with the smallest noise, in that order
    for b in range(5):
        keep = np.argsort(noise[b])[:3]
        np.testing.assert_array_equal(vis[b], tokens[b, keep])
        assert set(np.flatnonzero(mask[b] == 0)) == set(keep)
    ins = MaskTokenInsert(initializer="zeros")
    full = _np(ins(vis, ids))
    np.testing.assert_array_equal(full, tokens * (1 - mask)[..., None])
    # round trip of both layers in one model (noise as an input: deterministic)
    t_in, n_in = keras.Input((6, 4)), keras.Input((6,))
    v, m, i = RandomTokenMasking(0.5, name="mask")(t_in, noise=n_in)
    model = keras.Model([t_in, n_in], [MaskTokenInsert(initializer="ones", name="ins")(v, i), m])
    result = run_model_saving_test(model, [tokens, noise], tmp_path, rtol=0, atol=0)
    assert sorted(result.reference) == ["0", "1"]
    # and each layer on its own (masking: noise given, and seeded without it)
    run_layer_test(lambda: RandomTokenMasking(0.5, name="mask"), tokens, call_kwargs={"noise": noise},
                   tmp_path=tmp_path, expected_shape=[(5, 3, 4), (5, 6), (5, 6)], rtol=0, atol=0)
    run_layer_test(lambda: RandomTokenMasking(0.5, seed=4, name="mask"), tokens, tmp_path=tmp_path, rtol=0, atol=0)
    run_layer_test(lambda: MaskTokenInsert(initializer="ones", name="ins"), (vis, _np(ids)), tmp_path=tmp_path,
                   expected_shape=(5, 6, 4), rtol=0, atol=0)


def test_masking_ratio_is_configurable_and_random_per_event():
    tokens = np.zeros((64, 27, 2), "float32")
    _, mask, _ = RandomTokenMasking(0.75, seed=1)(tokens)
    mask = _np(mask)
    assert (mask.sum(1) == round(0.75 * 27)).all()
    assert len({tuple(r) for r in mask.astype(int)}) > 50  # different tokens masked in different events
    with pytest.raises(ValueError, match="mask_ratio"):
        RandomTokenMasking(1.0)


# ------------------------------------------------------- masked values hidden
@pytest.mark.parametrize("tokenization,btag,pairs", [("object", True, True), ("object", False, False),
                                                     ("feature", True, False)])
def test_masked_values_never_reach_the_encoder(events, tokenization, btag, pairs):
    x, _ = events
    x = x[:16]
    mae = _mae(x, tokenization, btag, pairs)
    noise = np.random.default_rng(7).uniform(size=(len(x), mae.num_tokens)).astype("float32")
    out = mae(x, noise=noise)
    rec, mask = _np(out["reconstruction"]), _np(out["mask"])
    _, fmask = mae.reconstruct(x, noise=noise)
    fmask = _np(fmask) > 0.5
    assert fmask.any(axis=1).all() and (~fmask).any(axis=1).all()
    for poison in (np.nan, 1e6):
        xp = x.copy()
        xp[fmask] = poison
        rec_p = _np(mae(xp, noise=noise)["reconstruction"])
        assert np.isfinite(rec_p).all()
        np.testing.assert_array_equal(rec_p, rec)  # every output depends on visible values only
    # the test can fail: changing one visible value changes the reconstruction
    xv = x.copy()
    row, col = 0, int(np.flatnonzero(~fmask[0])[0])
    xv[row, col] += 3.0
    assert not np.allclose(_np(mae(xv, noise=noise)["reconstruction"])[row], rec[row])
    assert mask.shape == (len(x), mae.num_tokens)


def test_encoder_gradient_is_zero_for_masked_features(events):
    import tensorflow as tf

    x, _ = events
    x = tf.constant(x[:8])
    mae = _mae(x.numpy(), pairs=True)
    noise = np.random.default_rng(1).uniform(size=(8, mae.num_tokens)).astype("float32")
    with tf.GradientTape() as tape:
        tape.watch(x)
        latent, _, _ = mae.encode_masked(x, noise=noise)
        total = tf.reduce_sum(latent ** 2)
    grad = tape.gradient(total, x).numpy()
    _, fmask = mae.reconstruct(x.numpy(), noise=noise)
    fmask = _np(fmask) > 0.5
    assert (grad[fmask] == 0).all()
    continuous = np.ones(27, bool)
    continuous[higgs_layout()["btag"]["columns"]] = False  # b-tags enter through a lookup: no gradient
    visible = ~fmask & continuous[None]
    assert (np.abs(grad[visible]) > 0).mean() > 0.95


# -------------------------------------------------------------- physics terms
def test_pt_balance_against_hand_computation():
    pt = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 0.0]], "float32")
    phi = np.array([[0.0, math.pi / 2, math.pi], [0.3, 0.3 + math.pi, 1.0]], "float32")
    # event 1: px = 1 - 3 = -2, py = 2 -> 8; event 2: back to back, balanced -> 0
    val = float(_np(pt_balance_loss(pt, np.cos(phi), np.sin(phi))))
    assert val == pytest.approx(4.0, abs=1e-5)


def test_negative_pt_against_hand_computation():
    pt = np.array([[-1.0, 2.0], [0.5, -3.0]], "float32")
    assert float(_np(negative_pt_loss(pt))) == pytest.approx((1 + 9) / 4)
    w = np.array([[1.0, 1.0], [0.0, 0.0]], "float32")
    assert float(_np(negative_pt_loss(pt, w))) == pytest.approx(1 / 2)
    assert float(_np(negative_pt_loss(np.abs(pt)))) == 0.0


def test_unit_circle_against_hand_computation():
    c = np.array([[0.6, 1.0, 0.0]], "float32")
    s = np.array([[0.8, 1.0, 0.5]], "float32")
    # r = c^2 + s^2 - 1 = [0, 1, -0.75] -> mean of squares (0 + 1 + 0.5625) / 3
    assert float(_np(unit_circle_loss(c, s))) == pytest.approx(1.5625 / 3, rel=1e-5)
    assert float(_np(unit_circle_loss(c, s, np.array([[1.0, 0.0, 1.0]])))) == pytest.approx(0.5625 / 2, rel=1e-5)


def test_loss_terms_match_numpy_on_the_completed_event(events):
    x, _ = events
    mae = _mae(x, "object", btag=False, pt_balance_weight=0.5, negative_pt_weight=2.0, unit_circle_weight=3.0)
    noise = np.random.default_rng(5).uniform(size=(len(x), mae.num_tokens)).astype("float32")
    out = mae(x, noise=noise)
    terms = {k: float(_np(v)) for k, v in mae.loss_terms(x, out).items()}
    rec, tgt, mask = (_np(out[k]) for k in ("reconstruction", "target", "mask"))
    valid = mae.tokenizer.valid_slots(27)
    w = mask[:, :, None] * valid[None]
    assert terms["reconstruction"] == pytest.approx(((rec - tgt) ** 2 * w).sum() / w.sum(), rel=1e-5)
    raw_rec, fmask = (_np(t) for t in mae.reconstruct(x, noise=noise))
    filled = np.where(fmask > 0.5, raw_rec, x)
    lay = higgs_layout("low", "object")
    pt, c, s = filled[:, lay["pt_index"]], filled[:, lay["cos_index"]], filled[:, lay["sin_index"]]
    bal = np.mean((pt * c).sum(1) ** 2 + (pt * s).sum(1) ** 2)
    assert terms["pt_balance"] == pytest.approx(bal, rel=1e-4)
    wpt = fmask[:, lay["pt_index"]]
    assert terms["negative_pt"] == pytest.approx((np.maximum(-pt, 0) ** 2 * wpt).sum() / max(wpt.sum(), 1), abs=1e-6)
    wc = np.maximum(fmask[:, lay["cos_index"]], fmask[:, lay["sin_index"]])
    assert terms["unit_circle"] == pytest.approx(((c ** 2 + s ** 2 - 1) ** 2 * wc).sum() / wc.sum(), rel=1e-4)
    total = float(_np(mae.compute_loss(x, None, out)))
    assert total == pytest.approx(terms["reconstruction"] + 0.5 * terms["pt_balance"] + 2.0 * terms["negative_pt"]
                                  + 3.0 * terms["unit_circle"], rel=1e-5)


# ----------------------------------------------------------------- training
def test_pretraining_lowers_reconstruction_loss_and_tracks_terms(events):
    x, y = events
    mae = _mae(x, dim=16)
    mae.compile(optimizer=keras.optimizers.Adam(3e-3))
    hist = mae.fit(x, y, batch_size=40, epochs=8, verbose=0).history
    for k in ("loss", "reconstruction", "pt_balance", "negative_pt", "unit_circle"):
        assert k in hist and all(np.isfinite(hist[k]))
    assert hist["reconstruction"][-1] < hist["reconstruction"][0]


# --------------------------------------------------------------- round trips
# Keras warns that the reloaded optimizer sees the frozen encoder's variables; scoring is unaffected
@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_autoencoder_encoder_and_classifier_round_trip(events, tmp_path):
    x, y = events
    mae = _mae(x)
    noise = np.random.default_rng(0).uniform(size=(len(x), mae.num_tokens)).astype("float32")
    # every output (reconstruction, target, mask, ...), the masking noise given
    result = run_model_saving_test(mae, {"x": x, "noise": noise}, tmp_path, outputs=mae_outputs, rtol=1e-5,
                                   atol=1e-6)
    loaded = result.loaded
    assert isinstance(loaded, MaskedAutoencoder) and loaded.mask_ratio == mae.mask_ratio
    assert "reconstruction" in result.reference
    enc = mae.encoder_model()
    run_model_saving_test(enc, x, tmp_path, rtol=1e-5, atol=1e-6)
    clf = build_classifier(enc, hidden_units=(8,), freeze=True)
    assert not clf.get_layer("encoder").trainable
    clf.compile(optimizer="adam", loss="binary_crossentropy", run_eagerly=True)
    clf.fit(x, y, epochs=1, verbose=0, batch_size=40)
    clf_loaded = run_model_saving_test(clf, x, tmp_path, rtol=1e-5, atol=1e-6).loaded
    p = _out(clf, x)
    assert p.shape == (len(x), 1) and ((p > 0) & (p < 1)).all()
    # the saved classifier scores raw inputs: its scaling is inside
    assert any(isinstance(lay, keras.layers.Normalization) for lay in clf_loaded.get_layer("encoder").layers)


def test_copy_autoencoder_is_independent(events):
    x, _ = events
    mae = _mae(x)
    copy = copy_autoencoder(mae)
    enc_a, enc_b = mae.encoder_model(), copy.encoder_model()
    np.testing.assert_allclose(_out(enc_b, x), _out(enc_a, x), rtol=1e-5, atol=1e-6)
    mae.embed.kernel.assign(mae.embed.kernel * 0.0)
    assert not np.allclose(_out(enc_b, x), _out(enc_a, x))


def test_saved_autoencoder_loads_in_a_fresh_process(events, tmp_path):
    """kerahep.saving.load_model registers every kerahep model class itself: a pretrainer.keras
    loads in a new Python process that never imported kerahep.models.mae."""
    x, _ = events
    mae = _mae(x)
    noise = np.random.default_rng(6).uniform(size=(len(x), mae.num_tokens)).astype("float32")
    result = run_model_saving_test(mae, {"x": x, "noise": noise}, tmp_path, outputs=mae_outputs, rtol=1e-5,
                                   atol=1e-6, fresh_process=True, imports=(), loader="kerahep.saving.load_model")
    assert result.fresh["imported_before_load"] == []
    assert "kerahep.models.mae" in result.fresh["modules"]
    assert result.fresh["class"] == "kerahep.models.mae.MaskedAutoencoder"
