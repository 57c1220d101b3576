"""The HEP views and calibration of every classifier report (issue 16): efficiency against
background rejection with its bootstrap band, working points in the test metrics, expected
calibration error, Brier score and the reliability diagram, each figure also as PDF (unless
``run.plot_pdf=false``), and the PNG resolution from ``run.plot_dpi``.

The numbers behind the figures are checked against values worked out by hand (written in
the tables), at unit level: no training.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from kerahep import evaluation as ev
from kerahep import plotting
from kerahep.config import Config
from kerahep.errors import ConfigError

inf, nan = float("inf"), float("nan")

# ------------------------------------------------------------------ calibration
#: y, p, weights, bins -> ece, brier (hand-computed; bins left-closed, the last closed)
CALIBRATION_CASES = {
    # bins 0, 1, 8, 9 hold one event each: |0 - .05| + |1 - .15| + |1 - .85| + |0 - .95| = 2, over 4
    # Brier (.05^2 + .85^2 + .15^2 + .95^2) / 4 = 1.65 / 4
    "one event per bin": ([0, 1, 1, 0], [0.05, 0.15, 0.85, 0.95], None, 10, 0.5, 0.4125),
    # one bin [0.5, 0.6): mean score .525, half positive; Brier (.25 + .25 + .3025 + .2025) / 4
    "one shared bin": ([0, 1, 0, 1], [0.5, 0.5, 0.55, 0.55], None, 10, 0.025, 1.005 / 4),
    # one bin over [0, 1]: mean .2, fraction .5; Brier (.01 + .49) / 2
    "a single bin": ([0, 1], [0.1, 0.3], None, 1, 0.3, 0.25),
    # bins of weight 4 each: fractions 1/4 and 3/4 at .2 and .8, |.05| each;
    # Brier (3 * .04 + .64 + .64 + 3 * .04) / 8
    "weighted, two bins": ([0, 1, 0, 1], [0.2, 0.2, 0.8, 0.8], [3, 1, 1, 3], 2, 0.05, 1.52 / 8),
    # the bin of weight -1 (score .85) has no fraction and leaves the ECE: (1 * .05 + 2 * .85) / 3;
    # Brier (1 * .0025 + 2 * .7225 - 1 * .0225) / 2
    "a negative-weight bin": ([0, 1, 1], [0.05, 0.15, 0.85], [1, 2, -1], 10, 1.75 / 3, 1.425 / 2),
    # a score of exactly 1 lies in the last bin, perfectly calibrated
    "score one in the last bin": ([1, 0], [1.0, 0.0], None, 10, 0.0, 0.0),
}


@pytest.mark.parametrize("y, p, w, bins, ece, brier", CALIBRATION_CASES.values(), ids=CALIBRATION_CASES.keys())
def test_calibration_by_hand(y, p, w, bins, ece, brier):
    cal = ev.calibration(y, p, weights=w, bins=bins)
    assert cal["ece"] == pytest.approx(ece, abs=1e-12)
    assert cal["brier"] == pytest.approx(brier, abs=1e-12)
    assert len(cal["edges"]) == bins + 1 and len(cal["mean_score"]) == bins
    assert "note" not in cal


def test_calibration_bins_of_the_reliability_diagram():
    cal = ev.calibration([0, 1, 0, 1], [0.2, 0.2, 0.8, 0.8], weights=[3, 1, 1, 3], bins=2)
    assert cal["n"].tolist() == [2, 2] and cal["sum_w"].tolist() == [4.0, 4.0]
    assert cal["mean_score"] == pytest.approx([0.2, 0.8])
    assert cal["fraction_positive"] == pytest.approx([0.25, 0.75])
    # binomial: sqrt(f (1 - f) / n_eff), n_eff = 4^2 / (9 + 1) = 1.6 in both bins
    assert cal["error"] == pytest.approx([math.sqrt(0.1875 / 1.6)] * 2)
    empty = ev.calibration([0, 1], [0.05, 0.95], bins=4)  # the middle bins are empty: NaN, not zero
    assert empty["n"].tolist() == [1, 0, 0, 1] and np.isnan(empty["fraction_positive"][1:3]).all()


@pytest.mark.parametrize("p, why", [([-0.5, 2.0], "not probabilities"), ([], "no events")])
def test_calibration_of_no_probabilities_is_nan_and_says_why(p, why):
    cal = ev.calibration([0, 1][: len(p)], p)
    assert math.isnan(cal["ece"]) and math.isnan(cal["brier"]) and why in cal["note"]


def test_binary_report_carries_calibration_and_working_points():
    y, s = [0, 1, 1, 0], [0.05, 0.15, 0.85, 0.95]
    r = ev.binary_report(y, s, n_boot=0)
    assert r["ece"] == pytest.approx(0.5) and r["brier"] == pytest.approx(0.4125)
    (wp,) = r["working_points"]["at_threshold"]  # unweighted reports too
    assert wp == {"threshold": 0.5, "signal_efficiency": 0.5, "background_efficiency": 0.5,
                  "background_rejection": 2.0}
    assert [p["target"] for p in r["working_points"]["at_signal_efficiency"]] == [0.5, 0.7, 0.9]
    w = ev.binary_report([0, 1, 1], [0.05, 0.15, 0.85], n_boot=0, weights=[1, 2, -1])
    assert w["ece"] == pytest.approx(1.75 / 3) and w["brier"] == pytest.approx(1.425 / 2)
    logits = ev.binary_report([0, 1], [-2.0, 3.0], n_boot=0)
    assert math.isnan(logits["ece"]) and "not probabilities" in logits["calibration_note"]


def test_multiclass_report_calibrates_the_top_class():
    # predicted 0, 1, 1 at confidence .7, .8, .5; right, wrong, right: (.3 + .8 + .5) / 3
    # Brier (.09 + .04 + .01) + (.01 + .64 + .81) + (.04 + .25 + .09), over 3
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.5, 0.3]])
    r = ev.multiclass_report([0, 2, 1], proba, n_boot=0)
    assert r["ece"] == pytest.approx(1.6 / 3) and r["brier"] == pytest.approx(1.98 / 3)
    assert r["ece_of"] == "top-class confidence"


# ------------------------------------------------------ efficiency and rejection
#: weights -> signal efficiency, background efficiency, rejection, thresholds of
#: y = 0 0 1 1, s = .1 .4 .35 .8 (cuts s >= t from the top)
ER_Y, ER_S = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
ER_CASES = {
    "unweighted": (None, [0, 0.5, 0.5, 1, 1], [0, 0, 0.5, 0.5, 1], [inf, inf, 2, 2, 1]),
    # the background at .4 weighs 3 of 4
    "weighted": ([1, 3, 1, 1], [0, 0.5, 0.5, 1, 1], [0, 0, 0.75, 0.75, 1], [inf, inf, 4 / 3, 4 / 3, 1]),
}


@pytest.mark.parametrize("w, eff_s, eff_b, rej", ER_CASES.values(), ids=ER_CASES.keys())
def test_efficiency_rejection_of_a_tiny_sample(w, eff_s, eff_b, rej):
    out = ev.efficiency_rejection(ER_Y, ER_S, weights=w)
    assert out["signal_efficiency"] == pytest.approx(eff_s)
    assert out["background_efficiency"] == pytest.approx(eff_b)
    assert out["background_rejection"] == pytest.approx(rej)
    assert out["thresholds"][1:] == pytest.approx([0.8, 0.4, 0.35, 0.1])


def test_rejection_band():
    # between ROC points (0, 0)-(.5, 0) and (.5, .5)-(1, .5): background efficiency 0 and .5
    nominal = ev.rejection_band(ER_Y, ER_S, efficiencies=[0.25, 0.75], n_boot=0)
    assert nominal["background_rejection"].tolist() == [inf, 2.0]
    assert np.isnan(nominal["low"]).all() and np.isnan(nominal["high"]).all()  # no resamples, no band
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    s = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1)
    w = rng.uniform(0.5, 2.0, 400)
    band = ev.rejection_band(y, s, weights=w, efficiencies=[0.5, 0.8], n_boot=40, seed=1)
    assert np.all(band["low"] <= band["background_rejection"]) and np.all(band["background_rejection"] <= band["high"])
    assert np.all(band["low"] < band["high"])
    again = ev.rejection_band(y, s, weights=w, efficiencies=[0.5, 0.8], n_boot=40, seed=1)
    assert again["low"].tolist() == band["low"].tolist()  # seeded: the same band
    unweighted = ev.rejection_band(y, s, efficiencies=[0.5, 0.8], n_boot=0)
    assert unweighted["background_rejection"].tolist() != band["background_rejection"].tolist()
    one_class = ev.rejection_band([1, 1], [0.2, 0.8], efficiencies=[0.5])
    assert np.isnan(one_class["background_rejection"]).all()


# ------------------------------------------------------------ figures and files
def _figure():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1])
    return fig


def _png_size(path):
    from PIL import Image

    with Image.open(path) as im:
        return im.size


def test_every_png_has_a_pdf_beside_it(tmp_path):
    out = plotting.save_figure(_figure(), tmp_path / "a.png")
    assert out == tmp_path / "a.png" and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "a.pdf").read_bytes()[:5] == b"%PDF-"
    plotting.save_figure(_figure(), tmp_path / "only.pdf")  # another format: that file alone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pdf", "a.png", "only.pdf"]


def test_plot_pdf_false_writes_the_png_alone_and_removes_an_earlier_pdf(tmp_path):
    plotting.save_figure(_figure(), tmp_path / "a.png")  # outside any run's settings: with its PDF
    assert (tmp_path / "a.pdf").is_file()
    with plotting.figure_settings(Config(task="toy").override(["run.plot_pdf=false"])):
        plotting.save_figure(_figure(), tmp_path / "a.png")  # the old PDF is not this figure's
        plotting.save_figure(_figure(), tmp_path / "b.png")
        with plotting.figure_settings(None):  # no configuration: the enclosing setting holds
            plotting.save_figure(_figure(), tmp_path / "c.png")
        plotting.save_figure(_figure(), tmp_path / "only.pdf")  # a PDF asked for by name is written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png", "c.png", "only.pdf"]
    with plotting.figure_settings(Config(task="toy")):  # the default: PDFs again
        plotting.save_figure(_figure(), tmp_path / "d.png")
    assert (tmp_path / "d.pdf").read_bytes()[:5] == b"%PDF-"


def test_smoke_presets_write_no_pdf_and_the_others_do():
    from kerahep.registry import get_task, list_tasks

    checked = set()
    for name in list_tasks():  # the built-in tasks, and a test's toy task where one is registered
        task = get_task(name)
        if task.smoke:  # only tasks with a smoke preset
            assert task.preset("smoke").run.plot_pdf is False, name
            checked.add(name)
        assert all(task.preset(p).run.plot_pdf is True for p in task.presets), name
    assert checked >= {"dy_electron", "electron_photon", "higgs_mae", "jet_ssl", "hcal_dqm"}
    with pytest.raises(ConfigError, match="run.plot_pdf.*true or false"):
        Config(task="toy").override(["run.plot_pdf=3"])
    from kerahep.config import RunSettings

    with pytest.raises(ConfigError, match="run.plot_pdf must be true or false"):
        Config(task="toy", run=RunSettings(plot_pdf="no"))  # built in Python, not parsed


def test_png_resolution_follows_plot_dpi(tmp_path):
    with plotting.figure_dpi(50):
        plotting.save_figure(_figure(), tmp_path / "low.png")
    cfg = Config(task="toy").override(["run.plot_dpi=100"])
    with plotting.figure_settings(cfg):
        plotting.save_figure(_figure(), tmp_path / "high.png")
    plotting.save_figure(_figure(), tmp_path / "default.png")
    (w1, h1), (w2, h2), (w3, _) = (_png_size(tmp_path / f"{n}.png") for n in ("low", "high", "default"))
    # the tight bounding box is the same in inches, to a few pixels
    assert w2 / w1 == pytest.approx(2, rel=0.03) and h2 / h1 == pytest.approx(2, rel=0.03)
    assert w3 / w1 == pytest.approx(plotting.DEFAULT_DPI / 50, rel=0.03)
    assert Config(task="toy").run.plot_dpi == plotting.DEFAULT_DPI


@pytest.mark.parametrize("value", ["0", "-5", "true"])
def test_plot_dpi_must_be_a_positive_integer(value):
    with pytest.raises(ConfigError, match="plot_dpi"):
        Config(task="toy").override([f"run.plot_dpi={value}"])


def test_classifier_views_write_both_figures(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.clip(rng.normal(0.3 + 0.4 * y, 0.2), 0, 1)
    paths = plotting.classifier_views(y, s, tmp_path, weights=rng.uniform(0.5, 1.5, 200))
    assert [p.name for p in paths] == ["eff_rejection.png", "reliability.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eff_rejection.pdf", "eff_rejection.png",
                                                         "reliability.pdf", "reliability.png"]


@pytest.fixture
def drawn(monkeypatch):
    """Figures kept open instead of saved: ``{file name: Figure}``."""
    import matplotlib.pyplot as plt

    figures = {}

    def keep(fig, path, **_):
        figures[Path(path).name] = fig
        return Path(path)

    monkeypatch.setattr(plotting, "save_figure", keep)
    monkeypatch.setattr(plotting.style, "save_figure", keep)
    yield figures
    for fig in figures.values():
        plt.close(fig)


def test_figures_show_the_numbers(drawn, tmp_path):
    y, s = [0, 0, 1, 1, 0, 1] * 10, [0.1, 0.4, 0.35, 0.8, 0.2, 0.9] * 10
    plotting.classifier_views(y, s, tmp_path, class_names=("photon", "electron"))
    ax = drawn["eff_rejection.png"].axes[0]
    assert ax.get_yscale() == "log" and "electron" in ax.get_xlabel() and "photon" in ax.get_ylabel()
    curve = ev.efficiency_rejection(y, s)
    fin = np.isfinite(curve["background_rejection"])
    assert ax.lines[0].get_xydata()[:, 1] == pytest.approx(curve["background_rejection"][fin])
    rel = drawn["reliability.png"].axes[0]
    cal = ev.calibration(y, s)
    assert rel.lines[0].get_xydata().tolist() == [[0, 0], [1, 1]]  # the diagonal
    pts = rel.lines[1].get_xydata()
    assert pts[:, 0] == pytest.approx(cal["mean_score"], nan_ok=True)
    assert pts[:, 1] == pytest.approx(cal["fraction_positive"], nan_ok=True)
    assert f"ECE {cal['ece']:.3f}" in rel.get_legend_handles_labels()[1][1]


# ------------------------------------------------------------------- reports
class _Model:
    """A stand-in model: its score is the first feature."""

    inputs = [SimpleNamespace(name="f0")]

    def __call__(self, x, training=False):
        return np.asarray(x, np.float32)[:, :1]


def _batches(x, y, w=None):
    return [(x, y) if w is None else (x, y, w)]


def test_default_report_has_the_views_and_working_points(tmp_path):
    from kerahep.tasks.base import FitResult, Task, TaskData

    x = np.array([[0.1], [0.4], [0.35], [0.8]], np.float32)
    y = np.array([0, 0, 1, 1])
    cfg = Config(task="toy").override(["run.plot_dpi=40"])
    ctx = SimpleNamespace(config=cfg, plots_dir=tmp_path)
    report = Task().evaluate(ctx, FitResult(models={"model": _Model()}), TaskData(train=None, test=_batches(x, y)))
    assert report["working_points"]["at_threshold"][0]["background_rejection"] == inf
    assert {"ece", "brier"} <= set(report)
    names = {p.name for p in tmp_path.iterdir()}
    for stem in ("roc", "eff_rejection", "reliability", "scores", "confusion"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= names, stem
    w40, _ = _png_size(tmp_path / "roc.png")
    with plotting.figure_dpi(80):
        plotting.roc_curve(y, x[:, 0], tmp_path / "roc80.png")
    assert _png_size(tmp_path / "roc80.png")[0] / w40 == pytest.approx(2, rel=0.03)  # drawn at run.plot_dpi


def test_weighted_report_draws_weighted_views(monkeypatch, tmp_path):
    """dy_electron passes its event weights to the views and the working points."""
    from kerahep.registry import get_task
    from kerahep.tasks.dy_electron import report as dy

    seen = {}
    monkeypatch.setattr(plotting, "classifier_views", lambda y, s, d, weights=None, **kw: seen.update(w=weights))
    for name in ("roc_curve", "score_distributions", "confusion_matrix"):
        monkeypatch.setattr(plotting, name, lambda *a, **k: None)
    x = np.array([[0.1], [0.4], [0.35], [0.8]], np.float32)
    y, w = np.array([0, 0, 1, 1]), np.array([1.0, 3.0, 1.0, 1.0])
    cfg = get_task("dy_electron").preset()
    data = SimpleNamespace(features=["f0"], paths=["x.csv"], split=(None, None, np.arange(4)),
                           test=_batches(x, y, w), info={}, samples=np.array(["QCD", "WW", "DY", "DY"]))
    ctx = SimpleNamespace(config=cfg, plots_dir=tmp_path)
    report = dy.evaluate_labelled(ctx, SimpleNamespace(models={"model": _Model()}), data)
    assert seen["w"].tolist() == w.tolist()
    wp = report["working_points"]["at_threshold"][0]  # threshold data.working_point
    t = cfg.data.working_point
    assert wp["background_efficiency"] == pytest.approx(w[(y == 0) & (x[:, 0] >= t)].sum() / 4)
    assert report["brier"] == pytest.approx(ev.calibration(y, x[:, 0], w)["brier"])


def test_jet_ssl_model_report_keeps_calibration_and_working_points():
    from kerahep.tasks.jet_ssl.report import model_report

    truth = {"y": np.array([0, 1, 1, 0]), "m": np.ones(4), "pt": np.ones(4)}
    pred = {"y": np.array([0.05, 0.15, 0.85, 0.95]), "m": np.ones(4), "pt": np.ones(4)}
    out, _ = model_report(truth, pred, seed=0)
    assert out["ece"] == pytest.approx(0.5) and out["brier"] == pytest.approx(0.4125)
    assert out["working_points"]["at_threshold"][0]["signal_efficiency"] == 0.5


def test_infinite_rejection_is_said_not_left_blank(drawn, tmp_path):
    plotting.efficiency_rejection([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], tmp_path / "e.png", n_boot=5)
    (text,) = [t.get_text() for t in drawn["e.png"].axes[0].texts if "no background" in t.get_text()]
    assert "up to signal efficiency 1:" in text  # perfectly separated: no finite rejection below 1
