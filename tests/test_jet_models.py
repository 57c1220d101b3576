"""jet_ssl models: SimCLR views and NT-Xent, encoders' .keras round trips, downstream heads."""

import keras
import numpy as np
import pytest

from helpers import run_model_saving_test
from kerahep.data.synthetic.jets import generate_jets
from kerahep.models.encoders import build_encoder, jet_augmenter
from kerahep.models.jet_heads import compile_heads, jet_model, latent_heads
from kerahep.models.simclr import SimCLR, nt_xent_loss
from kerahep.errors import ConfigError

TINY = {"resnet18": dict(widths=(4, 8), blocks=(1, 1)),
        "hybrid": dict(stem_filters=(4,), patch_size=9, dim=8, depth=1, num_heads=2)}


@pytest.fixture(scope="module")
def jets():
    img, y, m, pt, _ = next(generate_jets(6, seed=11, batch=6))
    return img, y, m, pt


def nt_xent_reference(z1, z2, t):
    """NT-Xent as written in the SimCLR paper, one row at a time."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n2 = len(z)
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        j = (i + n) % n2
        sims = np.array([z[i] @ z[k] / t for k in range(n2)])
        denom = sum(np.exp(sims[k]) for k in range(n2) if k != i)
        total += -np.log(np.exp(sims[j]) / denom)
    return total / n2


@pytest.mark.parametrize("t", [0.05, 0.2, 1.0])
def test_nt_xent_matches_numpy_reference(t):
    rng = np.random.default_rng(int(t * 100))
    z1 = rng.normal(size=(5, 7)).astype("float32")
    z2 = (z1 + 0.5 * rng.normal(size=(5, 7))).astype("float32")
    got = float(keras.ops.convert_to_numpy(nt_xent_loss(z1, z2, t)))
    assert got == pytest.approx(nt_xent_reference(z1, z2, t), rel=1e-4, abs=1e-5)


def test_nt_xent_rewards_matching_views_and_reports_pair_accuracy():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(8, 16)).astype("float32")
    aligned, acc = nt_xent_loss(z, z + 0.01, 0.1, return_accuracy=True)
    shuffled = nt_xent_loss(z, z[::-1].copy(), 0.1)
    assert float(aligned) < float(shuffled)
    assert float(acc) == 1.0


def test_simclr_views_differ_and_keep_the_shape(jets):
    img = jets[0][:4]
    model = SimCLR(build_encoder("resnet18", **TINY["resnet18"]), jet_augmenter(seed=5), projection_dim=4,
                   projection_hidden=8)
    v1, v2 = (keras.ops.convert_to_numpy(v) for v in model.views(img))
    assert v1.shape == v2.shape == img.shape
    assert not np.allclose(v1, v2) and not np.allclose(v1, img)
    for v in (v1, v2):  # a jet stays a jet: sparse, energy channels non-negative
        assert (v != 0).mean() < 3 * (img != 0).mean() + 0.01
        assert v[..., [0, 3, 4]].min() >= 0
    out = model(img)
    assert tuple(out.shape) == (8, 4)


def test_simclr_trains_with_plain_fit(jets):
    img = jets[0]
    keras.utils.set_random_seed(1)
    enc = build_encoder("resnet18", **TINY["resnet18"])
    model = SimCLR(enc, jet_augmenter(seed=2), projection_dim=4, projection_hidden=8, temperature=0.5)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = [w.copy() for w in enc.get_weights()]
    hist = model.fit(img, batch_size=3, epochs=2, verbose=0)
    assert set(hist.history) >= {"loss", "pair_accuracy"}
    assert all(np.isfinite(hist.history["loss"]))
    assert any(not np.allclose(a, b) for a, b in zip(before, enc.get_weights()))


def simclr_outputs(model, x):
    """A SimCLR model's deterministic parts, and its seeded views (its call draws two views)."""
    latent = model.encoder(x, training=False)
    return {"latent": latent, "projection": model.projector(latent, training=False), "views": model.views(x)}


def test_simclr_round_trips_through_keras_file(jets, tmp_path):
    enc = build_encoder("resnet18", **TINY["resnet18"])
    model = SimCLR(enc, jet_augmenter(seed=5), projection_dim=4, projection_hidden=8, temperature=0.3)
    x = jets[0][:2]
    result = run_model_saving_test(model, x, tmp_path, outputs=simclr_outputs, rtol=1e-5, atol=1e-6,
                                   fresh_process=True, imports=("kerahep.models",))
    assert isinstance(result.loaded, SimCLR) and result.loaded.temperature == 0.3
    assert result.fresh["class"] == "kerahep.models.simclr.SimCLR"
    assert not np.allclose(result.reference["views/0"], result.reference["views/1"])


@pytest.mark.parametrize("name", ["resnet18", "hybrid"])
def test_encoder_round_trips_through_keras_file(name, jets, tmp_path):
    scales = [5.0, 0.2, 0.1, 0.05, 0.3, 1.0, 1.0, 1.0]
    enc = build_encoder(name, channel_scales=scales, **TINY[name])
    assert enc.get_layer("latent") is not None and enc.input.shape[1:] == (125, 125, 8)
    x = jets[0][:2]
    loaded = run_model_saving_test(enc, x, tmp_path, rtol=1e-5, atol=1e-6).loaded
    assert loaded.get_layer("channel_scale").scales == scales


def test_hybrid_uses_transformer_blocks_with_learned_positions():
    enc = build_encoder("hybrid", **TINY["hybrid"])
    kinds = {type(layer).__name__ for layer in enc.layers}
    assert {"TransformerBlock", "PositionEmbedding", "GlobalAveragePooling1D"} <= kinds
    # one stride-2 stem convolution: 125 -> 63 pixels; patches of 9: 7 x 7 = 49 tokens of width 8
    assert tuple(enc.get_layer("position_embedding").positions.shape) == (49, 8)


def test_hybrid_refuses_patches_that_leave_stem_output_borders_out():
    # two stem convolutions: 125 -> 63 -> 32 pixels; patches of 5 would cover 30 of them
    with pytest.raises(ConfigError, match=r"patch_size 5 does not divide the stem output 32x32.*cover 30x30"):
        build_encoder("hybrid", stem_filters=(4, 4), patch_size=5, dim=8, depth=1, num_heads=2)
    enc = build_encoder("hybrid", stem_filters=(4, 4), patch_size=4, dim=8, depth=1, num_heads=2)  # the presets' 4
    assert tuple(enc.get_layer("position_embedding").positions.shape) == (64, 8)
    from kerahep.registry import get_task

    task = get_task("jet_ssl")
    for preset in task.presets:  # every preset's encoder builds
        cfg = task.preset(preset).override(["model.widths=(4, 8)", "model.blocks=(1, 1)",
                                            "model.stem_filters=(4, 4)", "model.dim=8"])
        assert task.build_encoder(cfg).output.shape[-1] in (8,)


def test_heads_train_and_answer_in_gev(tmp_path):
    rng = np.random.default_rng(3)
    z = rng.normal(size=(600, 6)).astype("float32")
    y = (z[:, 0] + 0.3 * rng.normal(size=600) > 0).astype("float32")
    m = (140 + 50 * np.tanh(z[:, 1]) + 5 * rng.normal(size=600)).astype("float32")
    pt = (520 + 100 * z[:, 2]).astype("float32")
    stats = {"m": (float(m.mean()), float(m.std())), "pt": (float(pt.mean()), float(pt.std()))}
    keras.utils.set_random_seed(0)
    for linear in (True, False):
        heads = latent_heads(6, stats, hidden=(16,), linear=linear, latent_mean=z.mean(0), latent_var=z.var(0))
        untrained = heads.predict(z[:200], verbose=0)
        assert abs(float(np.mean(untrained["m"])) - stats["m"][0]) < 2 * stats["m"][1]  # de-standardised to GeV
        compile_heads(heads, keras.optimizers.Adam(1e-2), stats)
        targets = {"y": y[:, None], "m": m[:, None], "pt": pt[:, None]}
        hist = heads.fit(z[:500], {k: v[:500] for k, v in targets.items()}, epochs=15, batch_size=50, verbose=0)
        assert hist.history["loss"][-1] < 0.6 * hist.history["loss"][0]
        p = heads.predict(z[500:], verbose=0)
        from sklearn.metrics import r2_score, roc_auc_score

        assert roc_auc_score(y[500:], p["y"].ravel()) > 0.9
        assert r2_score(pt[500:], p["pt"].ravel()) > 0.9  # linear in the latents: both heads get it
        assert r2_score(m[500:], p["m"].ravel()) > (0.5 if linear else 0.7)


def test_jet_model_scores_raw_jets_and_round_trips(jets, tmp_path):
    enc = build_encoder("resnet18", channel_scales=[5.0, 0.2, 0.1, 0.05, 0.3, 1.0, 1.0, 1.0], **TINY["resnet18"])
    heads = latent_heads(8, {"m": (140.0, 50.0), "pt": (520.0, 100.0)}, hidden=(4,))
    model = jet_model(enc, heads)
    x = jets[0][:3]
    out = model(x, training=False)
    assert set(out) == {"y", "m", "pt"}
    # every head, reloaded here and in a fresh process that imports kerahep.layers only
    result = run_model_saving_test(model, x, tmp_path, rtol=1e-5, atol=1e-6, fresh_process=True)
    assert sorted(result.reference) == ["m", "pt", "y"]


def test_compiled_heads_report_mse_and_mae_in_gev(tmp_path):
    rng = np.random.default_rng(5)
    z = rng.normal(size=(64, 4)).astype("float32")
    t = {"y": (z[:, :1] > 0).astype("float32"), "m": (140 + 50 * z[:, 1:2]).astype("float32"),
         "pt": (520 + 100 * z[:, 2:3]).astype("float32")}
    stats = {"m": (140.0, 50.0), "pt": (520.0, 100.0)}
    heads = compile_heads(latent_heads(4, stats, hidden=(4,)), keras.optimizers.SGD(0.0), stats)
    hist = heads.fit(z, t, epochs=1, batch_size=64, verbose=0).history
    p = heads.predict(z, verbose=0)
    for key in ("m", "pt"):  # unweighted, in GeV^2 and GeV (learning rate 0: the predictions above)
        assert hist[f"{key}_mse"][0] == pytest.approx(float(np.mean((p[key] - t[key]) ** 2)), rel=1e-4)
        assert hist[f"{key}_mae"][0] == pytest.approx(float(np.mean(np.abs(p[key] - t[key]))), rel=1e-4)
    loaded = run_model_saving_test(heads, z, tmp_path, rtol=1e-6, atol=1e-6).loaded
    again = loaded.evaluate(z, t, batch_size=64, verbose=0, return_dict=True)
    assert again["m_mse"] == pytest.approx(hist["m_mse"][0], rel=1e-4)
    for key in ("m", "pt"):  # the reloaded model keeps every compiled metric
        for metric in ("mse", "mae"):
            assert again[f"{key}_{metric}"] == pytest.approx(hist[f"{key}_{metric}"][0], rel=1e-4)
