"""Weighted metrics: integer weights equal repeated events, negative weights give the
hand-computed AUC, and no weights give exactly the unweighted numbers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from helpers import assert_image_not_blank
from kerahep import evaluation


def _pairwise_auc(y, s, w):
    """sum_ij w_i w_j [s_i > s_j] (+ half for ties) / (W_sig W_bkg), over signal i and background j."""
    sig, bkg = y == 1, y == 0
    si, sj = s[sig][:, None], s[bkg][None, :]
    wi, wj = w[sig][:, None], w[bkg][None, :]
    num = (wi * wj * ((si > sj) + 0.5 * (si == sj))).sum()
    return num / (w[sig].sum() * w[bkg].sum())


@pytest.fixture
def sample():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.normal(size=300) + 0.8 * y, 2)  # rounded: ties happen
    return y, s


def test_integer_weights_equal_repeated_events(sample):
    y, s = sample
    w = np.random.default_rng(4).integers(1, 4, len(y))
    ry, rs = np.repeat(y, w), np.repeat(s, w)
    assert evaluation.weighted_roc_auc(y, s, w) == pytest.approx(roc_auc_score(ry, rs), abs=1e-12)
    weighted = evaluation.binary_report(y, s, threshold=0.4, weights=w, n_boot=0)
    repeated = evaluation.binary_report(ry, rs, threshold=0.4, n_boot=0)
    assert weighted["roc_auc"] == pytest.approx(repeated["roc_auc"], abs=1e-12)
    assert weighted["accuracy"] == pytest.approx(repeated["accuracy"], abs=1e-12)
    np.testing.assert_allclose(weighted["confusion_matrix"], repeated["confusion_matrix"])
    wp = weighted["working_points"]["at_threshold"][0]
    assert wp["signal_efficiency"] == pytest.approx(np.mean(rs[ry == 1] >= 0.4))
    assert wp["background_efficiency"] == pytest.approx(np.mean(rs[ry == 0] >= 0.4))
    assert wp["background_rejection"] == pytest.approx(1 / np.mean(rs[ry == 0] >= 0.4))
    assert evaluation.class_weights(y, w) == pytest.approx(evaluation.class_weights(ry))


def test_negative_weights_give_the_hand_computed_auc(sample):
    y, s = sample
    w = np.random.default_rng(5).normal(1.0, 1.0, len(y))  # about 16% negative, as aMC@NLO samples have
    assert (w < 0).any()
    expected = _pairwise_auc(y, s, w)
    assert evaluation.weighted_roc_auc(y, s, w) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError):  # what scikit-learn's own AUC does with them
        roc_auc_score(y, s, sample_weight=w)
    report = evaluation.binary_report(y, s, weights=w, n_boot=50, seed=1)
    assert report["roc_auc"] == pytest.approx(expected, abs=1e-12)
    lo, hi = report["roc_auc_ci"]
    assert lo < report["roc_auc"] < hi
    assert report["negative_weight_fraction"] == pytest.approx(np.mean(w < 0))
    tiny = np.array([0, 1, 0, 1]), np.array([0.2, 0.9, 0.6, 0.4]), np.array([1.0, 2.0, -0.5, 1.0])
    # by hand: pairs (sig 0.9 w2, sig 0.4 w1) x (bkg 0.2 w1, bkg 0.6 w-0.5):
    # 2*1 + 2*(-0.5) + 1*1 + 0 = 2.0 over W_sig W_bkg = 3 * 0.5
    assert evaluation.weighted_roc_auc(*tiny) == pytest.approx(2.0 / 1.5)


def test_no_weights_gives_exactly_the_unweighted_numbers(sample):
    y, s = sample
    assert evaluation.weighted_roc_auc(y, s) == roc_auc_score(y, s)
    plain = evaluation.binary_report(y, s, seed=2)
    ones = evaluation.binary_report(y, s, seed=2, weights=np.ones(len(y)))
    assert plain["roc_auc"] == pytest.approx(ones["roc_auc"], abs=1e-12)
    assert plain["roc_auc_ci"] == pytest.approx(ones["roc_auc_ci"], abs=1e-12)  # same resamples
    assert "weighted" not in plain and ones["weighted"] is True


def test_effective_sample_size_and_working_points_at_signal_efficiency(sample):
    y, s = sample
    assert evaluation.effective_sample_size(np.ones(10)) == pytest.approx(10)
    assert evaluation.effective_sample_size([1, 1, 2]) == pytest.approx(16 / 6)
    wps = evaluation.working_points(y, s, signal_efficiencies=(0.5, 0.9))["at_signal_efficiency"]
    for wp in wps:
        assert wp["signal_efficiency"] == pytest.approx(wp["target"], abs=0.02)
    assert wps[0]["background_rejection"] > wps[1]["background_rejection"]  # tighter cut, more rejection


def test_a_sample_of_one_class_says_why_the_auc_is_absent_and_gives_the_selected_fraction(tmp_path):
    from kerahep import plotting

    y, s = np.ones(10), np.linspace(0, 1, 10)
    report = evaluation.binary_report(y, s, threshold=0.5)
    assert np.isnan(report["roc_auc"]) and "needs events of both classes" in report["roc_auc_note"]
    assert "signal (class 1)" in report["roc_auc_note"]
    assert report["selected_fraction"] == pytest.approx(0.5)
    figures = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plotting.style, "save_figure", lambda fig, path: figures.append(fig))
        plotting.roc_curve(y, s, tmp_path / "roc.png")
    texts = [t.get_text() for t in figures[0].axes[0].texts]
    assert any("all of one class" in t for t in texts)
    assert "roc_auc_note" not in evaluation.binary_report(np.array([0, 1, 1]), np.array([0.1, 0.8, 0.6]))


def test_weighted_confusion_matrix_is_drawn_with_its_sums_and_fractions(tmp_path):
    from kerahep import plotting

    y = np.array([0, 0, 1, 1, 1])
    pred_score = np.array([0.2, 0.7, 0.9, 0.8, 0.1])
    w = np.array([0.25, 0.15, 0.3, -0.05, 0.2])
    cm = evaluation.binary_report(y, pred_score, weights=w, n_boot=10)["confusion_matrix"]
    np.testing.assert_allclose(cm, [[0.25, 0.15], [0.2, 0.25]])  # rows true, columns predicted at 0.5
    norm, texts = plotting.confusion_cells(cm)
    np.testing.assert_allclose(norm, [[0.625, 0.375], [0.2 / 0.45, 0.25 / 0.45]])  # sums below one still normalise
    assert [t.split("\n")[0] for t in texts[0]] == ["0.25", "0.15"]  # not truncated to 0
    norm, texts = plotting.confusion_cells([[3, 1], [0, 0]])
    assert texts == [["3\n0.75", "1\n0.25"], ["0", "0"]] and np.isnan(norm[1]).all()  # an empty row has no fraction
    assert_image_not_blank(plotting.confusion_matrix(cm, tmp_path / "cm.png"))
