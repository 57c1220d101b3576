"""Figures that do not mislead (issue 16, first section), checked on the numbers and matplotlib
objects behind them, never on pixels: one colour and line style per sample with the legend
outside, each AUC once, the experiment label from the run's recorded source, shared colour
scales with a difference panel, hcal maps on CMS iEta and iPhi, readable training curves,
colour bars with their quantity, and score histograms with fitting bins and error bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kerahep import plotting


@pytest.fixture
def figures(monkeypatch):
    """Figures kept open instead of saved: ``{file name: Figure}``."""
    import matplotlib.pyplot as plt

    drawn = {}

    def keep(fig, path, **_):
        drawn[Path(path).name] = fig
        return Path(path)

    monkeypatch.setattr(plotting, "save_figure", keep)
    monkeypatch.setattr(plotting.style, "save_figure", keep)
    yield drawn
    for fig in drawn.values():
        plt.close(fig)


def _images(fig):
    """The maps of a figure (not its colour bars), in panel order."""
    return [im for ax in fig.axes for im in ax.images]


def _colourbar_labels(fig):
    return [ax.get_ylabel() for ax in fig.axes if ax.get_label() == "<colorbar>"]


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


SAMPLES = ["DYJetsToLL_M-10to50", "DYJetsToLL_M-50", "TTJets", "WJetsToLNu", "WW", "WZ", "ZZ", "ST_t", "ST_tW", "QCD"]


def _per_sample_events(seed=0):
    rng = np.random.default_rng(seed)
    groups, y, s = [], [], []
    for i, name in enumerate(SAMPLES):
        k, target = 30 + 10 * i, int(name.startswith("DY"))
        groups += [name] * k
        y += [target] * k
        s += list(rng.beta(5, 2, k) if target else rng.beta(2, 5, k))
    return np.array(y), np.array(s), np.array(groups)


# ------------------------------------------------------------ dy_electron per-sample scores
def test_per_sample_scores_have_one_colour_each_signal_solid_background_dashed_and_the_legend_outside(tmp_path,
                                                                                                      figures):
    y, s, groups = _per_sample_events()
    curves = plotting.score_curves(y, s, groups=groups)
    assert sorted(c["name"] for c in curves) == sorted(SAMPLES)
    colours = [tuple(np.round(c["color"], 6)) for c in curves]
    assert len(set(colours)) == len(SAMPLES)  # DYJetsToLL_M-10to50 and TTJets shared blue before
    for c in curves:
        assert c["linestyle"] == ("-" if c["name"].startswith("DY") else "--"), c["name"]

    plotting.score_distributions(y, s, tmp_path / "scores_per_sample.png", groups=groups)
    fig = figures["scores_per_sample.png"]
    ax = fig.axes[0]
    legend = ax.get_legend()
    fig.canvas.draw()
    assert legend.get_window_extent().x0 >= ax.get_window_extent().x1  # beside the data, not over it
    steps = ax.patches  # one step line per sample, in the order of the curves
    assert len({tuple(p.get_edgecolor()) for p in steps}) == len(SAMPLES)
    assert [p.get_linestyle() for p in steps] == ["-" if c["name"].startswith("DY") else "--" for c in curves]
    assert "solid: signal" in legend.get_title().get_text()


# ------------------------------------------------------------ score histograms
def test_score_histograms_fit_their_bins_to_the_events_and_carry_statistical_errors(tmp_path, figures):
    assert len(plotting.score_bins([20, 30])) - 1 == 5       # sqrt(25)
    assert len(plotting.score_bins([900, 1700, 2500])) - 1 == 41  # sqrt of the median, 1700
    assert len(plotting.score_bins([2])) - 1 == 5 and len(plotting.score_bins([10 ** 7])) - 1 == 50

    values = np.array([0.1, 0.1, 0.1, 0.7])
    edges = np.array([0.0, 0.5, 1.0])
    h, err = plotting.unit_area_histogram(values, edges)
    np.testing.assert_allclose(h, [3 / 4 / 0.5, 1 / 4 / 0.5])
    np.testing.assert_allclose(err, [np.sqrt(3) / 4 / 0.5, 1 / 4 / 0.5])
    w = np.array([2.0, -1.0, 0.5, 1.5])
    h, err = plotting.unit_area_histogram(values, edges, w)
    np.testing.assert_allclose(h, [1.5 / 3 / 0.5, 1.5 / 3 / 0.5])
    np.testing.assert_allclose(err, [np.sqrt(4 + 1 + 0.25) / 3 / 0.5, 1.5 / 3 / 0.5])  # sqrt(sum w^2)

    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], [100, 400])
    s = np.clip(rng.normal(0.3 + 0.4 * y, 0.15), 0, 1)
    curves = plotting.score_curves(y, s, class_names=("Run355456", "Run357479"))
    assert [c["n"] for c in curves] == [100, 400] and len(curves[0]["edges"]) - 1 == 16  # sqrt(250)
    plotting.score_distributions(y, s, tmp_path / "scores.png", class_names=("Run355456", "Run357479"))
    ax = figures["scores.png"].axes[0]
    assert ax.get_xlabel() == "Predicted P(Run357479)"
    bars = [c for c in ax.containers if c.lines[2] and len(c.lines[2][0].get_segments())]  # not legend proxies
    assert len(bars) == 2  # one set of error bars per class
    segments = bars[0].lines[2][0].get_segments()
    lengths = sorted(abs(seg[1][1] - seg[0][1]) for seg in segments)
    np.testing.assert_allclose(lengths, sorted(2 * curves[0]["errors"]), rtol=1e-6, atol=1e-12)  # +-1 sigma


# ------------------------------------------------------------ ROC legends
def test_roc_legend_gives_each_auc_once(tmp_path, figures):
    assert plotting.roc_label("dense (AUC 0.905)", 0.9046) == "dense (AUC 0.9046)"
    y = np.array([0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    for name, label in (("dy", "dense (weighted)"), ("carried", "dense (AUC 0.905)")):  # dy_electron's label, one
        plotting.roc_curve(y, s, tmp_path / f"roc_{name}.png", label=label,  # that carries an AUC already
                           curves={"baseline": (y, s[::-1])})
        texts = [t.get_text() for t in figures[f"roc_{name}.png"].axes[0].get_legend().get_texts()]
        assert len(texts) == 2 and all(t.count("AUC") == 1 for t in texts), texts


def test_jet_ssl_stores_and_draws_the_saved_model_once():
    """The exported method is neither stored beside model.keras nor drawn a second time."""
    from types import SimpleNamespace

    from kerahep.tasks.jet_ssl import report as jet_report
    from kerahep.tasks.jet_ssl import stages

    rng = np.random.default_rng(0)
    truth = {"y": np.tile([0.0, 1.0], 10), "m": rng.normal(150, 30, 20), "pt": rng.normal(500, 80, 20)}
    pred = {k: v + rng.normal(0, 0.1, 20) for k, v in truth.items()}
    cfg = SimpleNamespace(model=SimpleNamespace(export="finetune"), data=SimpleNamespace(label_fractions=(0.1, 1.0)))
    ctx = SimpleNamespace(config=cfg, data=SimpleNamespace(subsets={0.1: np.arange(2), 1.0: np.arange(20)}))
    predictions = {(m, f): (truth, pred) for m in ("linear", "frozen", "finetune", "scratch") for f in (0.1, 1.0)}
    result = stages.result(ctx, None, predictions, {("finetune", 1.0): "the saved model"})
    assert result.models["model"] == "the saved model"
    assert sorted(result.roc_scores) == ["frozen", "linear", "scratch"]
    assert ("finetune", 1.0) not in {(r["method"], r["label_fraction"]) for r in result.rows}

    stored = dict(result.roc_scores, finetune=pred["y"])  # even if the exported one were stored
    curves = jet_report.roc_curves(stored, cfg, truth["y"])
    assert sorted(curves) == ["frozen (100pct)", "linear (100pct)", "scratch (100pct)"]


# ------------------------------------------------------------ the experiment label
def test_experiment_label_follows_the_recorded_source(tmp_path, figures):
    from kerahep.tasks.dy_electron import report as dy
    from kerahep.tasks.electron_photon import report as ep
    from kerahep.tasks.hcal_dqm import report as hcal
    from kerahep.tasks.higgs_mae import report as higgs
    from kerahep.tasks.jet_ssl import report as jet

    assert hcal.FILES_ARE == "collision"
    assert {m.FILES_ARE for m in (dy, ep, higgs, jet)} == {"simulation"}
    real = tmp_path / "real" / "Run355456_Dataset.npy"
    twin = tmp_path / "twin" / "Run355456_Dataset.npy"
    for f in (real, twin):
        f.parent.mkdir()
        f.write_bytes(b"")
    (twin.parent / "twin.json").write_text("{}")
    assert plotting.data_kind("synthetic", "collision") == "synthetic"
    assert plotting.data_kind("files", "collision", [real]) == "collision"
    assert plotting.data_kind("files", "collision", [twin]) == "synthetic"  # a twin given as files
    assert plotting.data_kind("files", "simulation", [real]) == "simulation"
    from kerahep.errors import KerahepError

    with pytest.raises(KerahepError, match="files_are"):
        plotting.data_kind("files", "real")

    y, s = np.array([0, 1, 0, 1]), np.array([0.2, 0.7, 0.4, 0.9])
    seen = {}
    for kind in (None, "synthetic", "simulation", "collision"):
        with plotting.data_label(kind):
            plotting.roc_curve(y, s, tmp_path / f"roc_{kind}.png")
        seen[kind] = " ".join(_texts(figures[f"roc_{kind}.png"]))
    assert "Simulation (synthetic twin)" in seen["synthetic"]
    assert "Simulation" in seen["simulation"] and "twin" not in seen["simulation"]
    assert "Collision data" in seen["collision"] and "Simulation" not in seen["collision"]
    assert "kerahep" in seen[None] and "Simulation" not in seen[None] and "data" not in seen[None]
    assert plotting.label_text() == "kerahep"  # the block ended


@pytest.mark.parametrize("task, files", [("dy_electron", "Simulation"), ("electron_photon", "Simulation"),
                                         ("hcal_dqm", "Collision data"), ("higgs_mae", "Simulation"),
                                         ("jet_ssl", "Simulation")])
def test_each_report_draws_inside_the_label_of_its_data(task, files, monkeypatch, tmp_path):
    import importlib
    from types import SimpleNamespace

    report = importlib.import_module(f"kerahep.tasks.{task}.report")
    monkeypatch.setattr(report, "evaluate_labelled", lambda ctx, result, data: plotting.label_text())
    real = tmp_path / "input.file"
    real.write_bytes(b"")
    assert report.evaluate(None, None, SimpleNamespace(source="synthetic", paths=[])) == \
        "kerahep Simulation (synthetic twin)"
    assert report.evaluate(None, None, SimpleNamespace(source="files", paths=[real])) == f"kerahep {files}"


def test_a_smoke_run_on_the_twin_labels_its_reevaluated_figures_synthetic(smoke_run, tmp_path, figures):
    """From training's record (``metrics.json`` data.source) to the labels evaluate draws."""
    from kerahep.artifacts import read_json
    from kerahep.config import Config
    from kerahep.registry import get_task
    from kerahep.saving import load_model
    from kerahep.training.context import RunContext

    run = smoke_run("dy_electron").run_dir
    assert read_json(run / "metrics.json")["data"]["source"] == "synthetic"
    cfg = Config.from_dict(read_json(run / "config.json"))
    task = get_task(cfg.task)
    data = task.load_data(cfg)
    assert data.source == "synthetic"
    result = task.result_type.load(run, {"model": load_model(run / "model.keras")})
    task.evaluate(RunContext(cfg, task, data, tmp_path / "eval"), result, data)
    for name in ("roc.png", "scores.png", "scores_per_sample.png"):
        assert "Simulation (synthetic twin)" in _texts(figures[name]), name
    assert "Simulation (synthetic twin)" in figures["confusion.png"].axes[0].get_title()


# ------------------------------------------------------------ compared maps
def test_maps_compared_share_one_colour_scale_and_get_a_difference_panel(tmp_path, figures):
    a = np.full((4, 5), 0.28)
    a[0, 0] = 0.0
    b = np.full((4, 5), 0.9)
    plotting.image_grid([a, b], tmp_path / "maps.png", titles=["photon", "electron"], shared=True, difference=True,
                        cbar_label="Grad-CAM relevance")
    ims = _images(figures["maps.png"])
    assert len(ims) == 3
    assert ims[0].get_clim() == ims[1].get_clim() == (0.0, 0.9)  # 0.28 against 0.9 on one scale
    np.testing.assert_allclose(ims[2].get_array(), b - a)
    lo, hi = ims[2].get_clim()
    assert lo == -hi and hi == pytest.approx(0.9)
    assert figures["maps.png"].axes[2].get_title() == "electron - photon"


def test_gradcam_and_saliency_maps_of_the_two_classes_share_a_scale(tmp_path, figures, monkeypatch):
    import keras

    from kerahep import explain
    from kerahep.models import resnet
    from kerahep.tasks.electron_photon import plots

    if keras.backend.backend() != "tensorflow":
        pytest.skip("explanation maps are drawn on the TensorFlow backend only")
    y = np.array([0, 0, 1, 1])
    x = np.zeros((4, 32, 32, 2), np.float32)

    def fake_maps(model, xs, targets, **kw):  # photons reach 0.28, electrons 0.9
        return np.stack([np.full((32, 32), 0.28 if t == 0 else 0.9, np.float32) for t in targets])

    monkeypatch.setattr(explain, "saliency_maps", fake_maps)
    monkeypatch.setattr(explain, "gradcam_maps", fake_maps)
    monkeypatch.setattr(resnet, "gradcam_layer", lambda model: "conv")
    plots.explanation_maps(None, x, y, 2, tmp_path)
    for kind in ("saliency", "gradcam", "gradcam_plus_plus"):
        fig = figures[f"{kind}.png"]
        photon, electron, diff = _images(fig)
        assert photon.get_clim() == electron.get_clim(), kind
        np.testing.assert_allclose(diff.get_array(), 0.9 - 0.28, rtol=1e-6)
        assert all(label for label in _colourbar_labels(fig)), kind


def test_attention_rollout_of_the_runs_shares_a_scale_with_their_difference(tmp_path, figures):
    from kerahep.tasks.hcal_dqm import plots

    r0 = np.full((64, 72), 1 / (64 * 72))
    r1 = r0.copy()
    r1[:32] *= 1.5
    plots.attention_rollout([r0, r1], ["Run355456", "Run357479"], (64, 72), tmp_path)
    ims = _images(figures["attention_rollout.png"])
    assert len(ims) == 3 and ims[0].get_clim() == ims[1].get_clim()
    diff = np.ma.filled(ims[2].get_array(), np.nan)
    assert np.nanmax(diff) == pytest.approx(0.5 / (64 * 72)) and np.isnan(diff[32]).all()  # iEta 0 row empty


# ------------------------------------------------------------ hcal maps on CMS coordinates
def test_hcal_maps_are_drawn_on_cms_ieta_and_iphi_with_the_mapping_stated(tmp_path, figures):
    from kerahep.tasks.hcal_dqm import plots

    ieta = plots.ieta_of_rows(64)
    assert list(ieta[:2]) == [-32, -31] and list(ieta[30:34]) == [-2, -1, 1, 2] and ieta[-1] == 32
    assert list(plots.ieta_of_rows(82)[[0, 40, 41, 81]]) == [-41, -1, 1, 41]
    assert plots.ieta_of_rows(63) is None and plots.ieta_of_rows(84) is None
    drawn, extent = plots.cms_map(np.ones((64, 72)))
    assert drawn.shape == (65, 72) and np.isnan(drawn[32]).all() and extent == (0.5, 72.5, -32.5, 32.5)
    assert plots.cell_range([0, 2], [4, 8], (64, 72)) == "iEta -32..-31, iPhi 5..8"

    rng = np.random.default_rng(0)
    means = [np.zeros((64, 72)), np.zeros((64, 72))]
    means[0][:13] = 500.0
    means[1][:13] = 575.0
    samples = [rng.poisson(means[0]).astype(float) * 1.8, rng.poisson(means[1]).astype(float)]
    limits = plots.occupancy_maps(means, ["Run355456", "Run357479"], samples, ["LS 1", "LS 2"], (64, 72), tmp_path)
    mean_fig, sample_fig = figures["occupancy_mean.png"], figures["sample_maps.png"]
    norms = [im.norm for im in _images(mean_fig) + _images(sample_fig)]
    assert all(type(n).__name__ == "LogNorm" for n in norms)
    assert {(n.vmin, n.vmax) for n in norms} == {limits}  # the mean and the sample maps on one scale
    assert limits[1] == pytest.approx(max(float(s.max()) for s in samples))
    for fig in (mean_fig, sample_fig, figures["occupancy_difference.png"]):
        ax = fig.axes[0]
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("iPhi", "iEta")
        assert _images(fig)[0].get_extent() == [0.5, 72.5, -32.5, 32.5]
        assert "iEta -32..-1, 1..32" in fig.get_supxlabel()  # the mapping, stated
    assert set(_colourbar_labels(mean_fig)) == {"mean hits per lumisection"}
    assert set(_colourbar_labels(sample_fig)) == {"hits in the lumisection"}


# ------------------------------------------------------------ training curves
def test_history_has_integer_epochs_markers_the_learning_rate_alone_and_a_grid(tmp_path, figures):
    keys = ["loss", "y_loss", "m_loss", "pt_loss", "y_auc", "y_accuracy", "m_mae", "pt_mae", "m_mse", "pt_mse"]
    hist = {k: [0.5] for k in keys} | {f"val_{k}": [0.6] for k in keys} | {"learning_rate": [1e-3]}
    panels = plotting.history_panels(hist)
    assert [p[0] for p in panels] == keys + ["learning_rate"]
    assert all("learning rate" not in series for _, series in panels[:-1])
    plotting.history(hist, tmp_path / "history.png")
    fig = figures["history.png"]
    axes = [ax for ax in fig.axes if ax.axison]
    assert len(axes) == 11
    columns = {round(ax.get_position().x0, 3) for ax in axes}
    assert len(columns) == 4 and fig.get_size_inches()[0] <= 4 * 6  # a grid, not one 5000-pixel row
    lr = axes[-1]
    assert lr.get_ylabel() == "learning rate" and lr.get_yscale() == "log"
    for ax in axes:
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks == [1.0], ticks  # one epoch: the tick 1, nothing fractional
        assert all(line.get_marker() == "o" for line in ax.lines)  # a point, not an invisible line
    from matplotlib.ticker import NullLocator

    # major ticks only on the curves' value axes; the log learning-rate axis keeps its minor ticks
    assert all(isinstance(ax.yaxis.get_minor_locator(), NullLocator) for ax in axes[:-1])
    assert not isinstance(lr.yaxis.get_minor_locator(), NullLocator)

    plotting.history({"loss": list(np.linspace(1, 0.1, 12)), "val_loss": list(np.linspace(1.1, 0.3, 12))},
                     tmp_path / "history_long.png")
    ax = figures["history_long.png"].axes[0]
    lo, hi = ax.get_xlim()
    assert all(float(t).is_integer() for t in ax.get_xticks() if lo <= t <= hi)


# ------------------------------------------------------------ colour bars, regression plots
def test_colour_bars_name_their_quantity_and_unit(tmp_path, figures):
    from kerahep.tasks.electron_photon import plots

    means = {0: np.random.default_rng(0).random((32, 32, 2)), 1: np.random.default_rng(1).random((32, 32, 2))}
    plots.mean_images(means, {0: 10, 1: 12}, tmp_path)
    assert set(_colourbar_labels(figures["mean_energy.png"])) == {plots.ENERGY}
    assert set(_colourbar_labels(figures["mean_time.png"])) == {plots.TIME}
    assert all(label.startswith("difference of") for label in _colourbar_labels(figures["mean_difference.png"]))
    energy = _images(figures["mean_energy.png"])
    assert energy[0].norm.vmin == energy[1].norm.vmin and energy[0].norm.vmax == energy[1].norm.vmax

    rng = np.random.default_rng(2)
    m = rng.normal(150, 40, 60)
    plotting.true_vs_pred(m, m + rng.normal(0, 10, 60), tmp_path / "m_true_vs_pred.png", name="m", entries="jets")
    fig = figures["m_true_vs_pred.png"]
    assert _colourbar_labels(fig) == ["jets per bin"]
    mesh = fig.axes[0].collections[0]
    assert type(mesh.norm).__name__ == "LogNorm" and mesh.norm.vmin == 1  # sparse: log scale from one jet
    assert mesh.get_array().shape == (plotting.pred_bins(60),) * 2 == (5, 5)
    assert plotting.pred_bins(250_000) == 50 and plotting.pred_bins(4000) == 20


def test_resolution_says_when_entries_lie_outside_its_range(tmp_path, figures):
    true = np.array([100.0, 100.0, 100.0, 100.0, 50.0])
    pred = np.array([110.0, 90.0, 350.0, 100.0, 0.0])  # +0.1, -0.1, +2.5, 0, -1.0 (on the edge)
    s = plotting.resolution_summary(true, pred)
    assert (s["below"], s["above"], s["n"]) == (0, 1, 5)
    assert s["mean"] == pytest.approx(np.mean([0.1, -0.1, 2.5, 0.0, -1.0]))
    plotting.resolution(true, pred, tmp_path / "m_resolution.png", name="m")
    texts = " ".join(_texts(figures["m_resolution.png"]))
    assert "not drawn" in texts and "0 below, 1 above" in texts
    legend = figures["m_resolution.png"].axes[0].get_legend().get_texts()[0].get_text()
    assert legend.startswith("all 5: mean +0.300")
    plotting.resolution(true[:2], pred[:2], tmp_path / "pt_resolution.png", name="pT")
    assert "not drawn" not in " ".join(_texts(figures["pt_resolution.png"]))
