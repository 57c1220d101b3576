"""kerahep.evaluation against values worked out by hand.

Each case is a handful of events whose answer is written down in the table (the pair
counts of the Mann-Whitney statistic, the cells of a confusion matrix, the sums of a
regression score), or recomputed in this file by an independent formula (a double loop
over pairs, a textbook quantile); never by the function under test or scikit-learn.
"""

import math

import numpy as np
import pytest

from kerahep import evaluation as ev

nan = float("nan")


def _same(got, want, tol=1e-12):
    """Equal numbers, NaN equal to NaN, inf to inf."""
    if isinstance(want, float) and math.isnan(want):
        return isinstance(got, float) and math.isnan(got)
    return got == pytest.approx(want, rel=tol, abs=tol)


def mann_whitney(y, s, w=None):
    """``sum_ij w_i w_j ([s_i > s_j] + [s_i == s_j] / 2) / (W_sig W_bkg)`` by a double loop."""
    w = [1.0] * len(y) if w is None else list(w)
    num = ws = wb = 0.0
    for yi, si, wi in zip(y, s, w):
        if yi == 1:
            ws += wi
            for yj, sj, wj in zip(y, s, w):
                if yj == 0:
                    num += wi * wj * ((si > sj) + 0.5 * (si == sj))
        else:
            wb += wi
    return num / (ws * wb)


def quantile_type7(values, q):
    """The textbook linear-interpolation quantile (Hyndman and Fan's type 7)."""
    v = sorted(values)
    h = q * (len(v) - 1)
    lo = math.floor(h)
    return v[lo] + (h - lo) * (v[min(lo + 1, len(v) - 1)] - v[lo])


def resamples(y, n_boot, seed):
    """NumPy's generator drawn as the docstring of bootstrap_indices says: n indices with
    replacement per resample, resamples of a single class skipped."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        if len({int(y[i]) for i in idx}) == 2:
            out.append(idx)
    return out


# ---------------------------------------------------------------- ROC AUC

AUC_CASES = {
    # pairs (signal, background): 0.35>0.1, 0.35<0.4, 0.8>0.1, 0.8>0.4 -> 3 of 4
    "unweighted": ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], None, 3 / 4),
    "perfect": ([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8], None, 1.0),
    "inverted": ([0, 1, 0, 1], [0.9, 0.1, 0.8, 0.2], None, 0.0),
    "a tie counts one half": ([1, 0], [0.5, 0.5], None, 0.5),
    # 2*1 (0.8>0.6) + 2*3 (0.8>0.2) + 0 (0.4<0.6) + 1*3 (0.4>0.2) = 11; W_sig 3, W_bkg 4
    "weighted": ([1, 1, 0, 0], [0.8, 0.4, 0.6, 0.2], [2, 1, 1, 3], 11 / 12),
    # tie 1*2/2 + 1*1 + 1*2 + 1*1 = 5; W_sig 2, W_bkg 3
    "weighted tie": ([1, 0, 1, 0], [0.5, 0.5, 0.7, 0.2], [1, 2, 1, 1], 5 / 6),
    # 1*2 + 1*1 + 0 + (-0.5)*1 = 2.5; W_sig 0.5, W_bkg 3: above one, as negative weights allow
    "negative weight": ([1, 1, 0, 0], [0.9, 0.3, 0.5, 0.1], [1, -0.5, 2, 1], 2.5 / 1.5),
    "unit weights": ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], [1, 1, 1, 1], 3 / 4),
    "one class": ([1, 1, 1], [0.2, 0.5, 0.9], None, nan),
    "one class weighted": ([0, 0], [0.2, 0.5], [1, 2], nan),
    "signal weights sum to zero": ([1, 1, 0], [0.9, 0.1, 0.5], [1, -1, 1], nan),
}


@pytest.mark.parametrize("y, s, w, want", AUC_CASES.values(), ids=AUC_CASES.keys())
def test_weighted_roc_auc(y, s, w, want):
    assert _same(ev.weighted_roc_auc(y, s, w), want)
    if not math.isnan(want):
        assert _same(mann_whitney(y, s, w), want)  # the table itself is right


@pytest.mark.parametrize("cl", [0.0, 0.5, 0.68, 0.95])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_auc_interval_is_the_central_quantile_of_bootstrap_aucs_at_the_given_coverage(cl, weighted):
    y = np.array([0, 1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0])
    s = np.array([0.1, 0.7, 0.4, 0.35, 0.8, 0.5, 0.2, 0.9, 0.65, 0.3, 0.6, 0.45])
    w = np.array([1.0, 2, 0.5, 1, 1, 3, 1, 0.5, 2, 1, 1, 1]) if weighted else None
    auc, lo, hi = ev.roc_auc_with_ci(y, s, n_boot=60, cl=cl, seed=7, weights=w)

    boots = [mann_whitney(y[i], s[i], None if w is None else w[i]) for i in resamples(y, 60, 7)]
    assert 45 <= len(boots) <= 60  # a few single-class resamples are skipped
    assert _same(auc, mann_whitney(y, s, w))
    assert _same(lo, quantile_type7(boots, (1 - cl) / 2), 1e-9)
    assert _same(hi, quantile_type7(boots, 1 - (1 - cl) / 2), 1e-9)
    inside = np.mean([lo <= b <= hi for b in boots])
    assert inside >= cl - 2 / len(boots)  # it covers what it says
    if cl == 0:
        assert lo == hi  # the median


def test_auc_interval_widens_with_coverage_and_is_absent_without_resamples():
    y, s = [0, 1, 0, 1, 1, 0, 1, 0], [0.2, 0.6, 0.5, 0.4, 0.9, 0.3, 0.55, 0.7]
    widths = [np.subtract(*ev.roc_auc_with_ci(y, s, n_boot=100, cl=cl)[:0:-1]) for cl in (0.2, 0.68, 0.95)]
    assert widths[0] < widths[1] < widths[2]
    auc, lo, hi = ev.roc_auc_with_ci(y, s, n_boot=0)
    assert _same(auc, mann_whitney(y, s)) and math.isnan(lo) and math.isnan(hi)
    # perfect separation: every resample has AUC 1, so has the interval
    assert ev.roc_auc_with_ci([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], n_boot=50) == (1.0, 1.0, 1.0)
    assert all(map(math.isnan, ev.roc_auc_with_ci([1, 1], [0.3, 0.4])))


def test_paired_auc_difference_uses_the_same_resamples_for_both_scores():
    y = np.array([0, 1, 0, 1, 1, 0, 0, 1, 0, 1])
    a = np.array([0.1, 0.7, 0.4, 0.35, 0.8, 0.5, 0.2, 0.9, 0.65, 0.3])
    b = np.array([0.3, 0.6, 0.2, 0.5, 0.7, 0.6, 0.1, 0.8, 0.4, 0.2])
    lo, hi = ev.paired_auc_difference_ci(y, a, b, n_boot=80, cl=0.8, seed=3)
    diffs = [mann_whitney(y[i], a[i]) - mann_whitney(y[i], b[i]) for i in resamples(y, 80, 3)]
    assert _same(lo, quantile_type7(diffs, 0.1), 1e-9) and _same(hi, quantile_type7(diffs, 0.9), 1e-9)
    assert ev.paired_auc_difference_ci(y, a, a, n_boot=20) == [0.0, 0.0]


def test_bootstrap_indices_skip_single_class_resamples():
    y = [0, 0, 0, 0, 0, 1]  # most resamples of six miss the one signal event
    got = list(ev.bootstrap_indices(y, 40, seed=1))
    want = resamples(y, 40, 1)
    assert len(got) == len(want) < 40
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


# ---------------------------------------------------------------- binary report

BINARY_CASES = {
    # y:     0    0    1     1       threshold 0.5 -> predicted 0 0 0 1
    "rows true, columns predicted": dict(
        y=[0, 0, 1, 1], s=[0.1, 0.4, 0.35, 0.8], threshold=0.5, w=None,
        cm=[[2, 0], [1, 1]], accuracy=3 / 4, auc=3 / 4,
        signal=(1.0, 1 / 2), background=(2 / 3, 1.0)),  # (precision, recall)
    "a score at the threshold is selected": dict(
        y=[0, 1, 0, 1], s=[0.5, 0.5, 0.49, 0.51], threshold=0.5, w=None,
        cm=[[1, 1], [0, 2]], accuracy=3 / 4, auc=(1 + 0.5 + 1 + 1) / 4,
        signal=(2 / 3, 1.0), background=(1.0, 1 / 2)),
    "the threshold moves the cut": dict(
        y=[0, 0, 1, 1], s=[0.1, 0.4, 0.35, 0.8], threshold=0.3, w=None,
        cm=[[1, 1], [0, 2]], accuracy=3 / 4, auc=3 / 4,
        signal=(2 / 3, 1.0), background=(1.0, 1 / 2)),
    # weights 1, 2, 3, 4 -> predicted 0 1 0 1: TN 1, FP 2, FN 3, TP 4 (sums of weights); accuracy 5/10
    "weighted cells are sums of weights": dict(
        y=[0, 0, 1, 1], s=[0.1, 0.6, 0.35, 0.8], threshold=0.5, w=[1, 2, 3, 4],
        cm=[[1, 2], [3, 4]], accuracy=5 / 10, auc=(3 * 1 + 4 * 1 + 4 * 2) / (7 * 3),
        signal=(4 / 6, 4 / 7), background=(1 / 4, 1 / 3)),
}


@pytest.mark.parametrize("case", BINARY_CASES.values(), ids=BINARY_CASES.keys())
def test_binary_report(case):
    r = ev.binary_report(case["y"], case["s"], threshold=case["threshold"], n_boot=20, weights=case["w"])
    assert r["confusion_matrix"] == case["cm"]
    assert _same(r["accuracy"], case["accuracy"])
    assert _same(r["roc_auc"], case["auc"])
    assert r["n"] == 4 and r["threshold"] == case["threshold"]
    for name in ("signal", "background"):
        precision, recall = case[name]
        got = r["classification_report"][name]
        assert _same(got["precision"], precision) and _same(got["recall"], recall), name
        assert _same(got["f1-score"], 2 * precision * recall / (precision + recall)), name
    lo, hi = r["roc_auc_ci"]
    assert lo <= hi


def test_binary_report_weighted_extras():
    y, s, w = [0, 0, 0, 1, 1], [0.2, 0.7, 0.4, 0.9, 0.3], [1.0, 2.0, -1.0, 3.0, 1.0]
    r = ev.binary_report(y, s, n_boot=0, weights=w)
    assert r["weighted"] is True
    assert r["sum_of_weights"] == {"background": 2.0, "signal": 4.0}
    # (sum w)^2 / sum w^2: background 2^2 / (1 + 4 + 1), signal 4^2 / (9 + 1)
    assert _same(r["effective_events"]["background"], 4 / 6) and _same(r["effective_events"]["signal"], 16 / 10)
    assert _same(r["negative_weight_fraction"], 1 / 5)
    # selected (>= 0.5): the background of weight 2 and the signal of weight 3
    wp = r["working_points"]["at_threshold"][0]
    assert _same(wp["signal_efficiency"], 3 / 4) and _same(wp["background_efficiency"], 2 / 2)
    assert r["confusion_matrix"] == [[0.0, 2.0], [1.0, 3.0]]  # TN 1 + (-1), FP 2, FN 1, TP 3


def test_binary_report_of_one_class():
    r = ev.binary_report([0, 0, 0, 0], [0.2, 0.6, 0.7, 0.1], n_boot=10)
    assert math.isnan(r["roc_auc"]) and all(map(math.isnan, r["roc_auc_ci"]))
    assert "background" in r["roc_auc_note"] and "both classes" in r["roc_auc_note"]
    assert _same(r["selected_fraction"], 2 / 4)
    assert r["confusion_matrix"] == [[2, 2], [0, 0]] and _same(r["accuracy"], 2 / 4)
    w = ev.binary_report([1, 1, 1], [0.9, 0.2, 0.6], n_boot=0, weights=[1.0, 3.0, 1.0])
    assert _same(w["selected_fraction"], 2 / 5) and "signal (class 1)" in w["roc_auc_note"]


# ---------------------------------------------------------------- multiclass report

#          true   P(0)  P(1)  P(2)    argmax   (three, two and two events: one-vs-rest
MULTI = [(0, [0.7, 0.2, 0.1]),     # 0       and one-vs-one averages differ)
         (1, [0.2, 0.5, 0.3]),     # 1
         (2, [0.1, 0.3, 0.6]),     # 2
         (0, [0.3, 0.4, 0.3]),     # 1
         (1, [0.5, 0.3, 0.2]),     # 0
         (2, [0.2, 0.2, 0.6]),     # 2
         (0, [0.6, 0.1, 0.3])]     # 0


def test_multiclass_report():
    y = [t for t, _ in MULTI]
    p = np.array([q for _, q in MULTI])
    r = ev.multiclass_report(y, p, class_names=["a", "b", "c"], n_boot=0)
    assert r["confusion_matrix"] == [[2, 1, 0], [1, 1, 0], [0, 0, 2]]  # rows true, columns predicted
    assert _same(r["accuracy"], 5 / 7) and r["n"] == 7
    # one-vs-rest pair counts: class 0 11/12 (0.3 < 0.5), class 1 8.5/10 (a tie at 0.3, 0.3 < 0.4),
    # class 2 10/10; the macro average of the three
    assert _same(r["roc_auc"], (11 / 12 + 8.5 / 10 + 1) / 3)
    for cls, auc in enumerate((11 / 12, 8.5 / 10, 1.0)):
        assert _same(mann_whitney([int(t == cls) for t in y], p[:, cls]), auc)
    rep = r["classification_report"]
    assert _same(rep["a"]["precision"], 2 / 3) and _same(rep["a"]["recall"], 2 / 3)
    assert _same(rep["b"]["precision"], 1 / 2) and _same(rep["b"]["recall"], 1 / 2)
    assert _same(rep["c"]["precision"], 1.0) and _same(rep["c"]["recall"], 1.0)
    assert all(map(math.isnan, r["roc_auc_ci"]))  # no interval for more than two classes
    assert list(rep)[:3] == ["a", "b", "c"]


def test_multiclass_report_of_two_classes_is_the_binary_auc_of_the_second_column():
    y = [0, 0, 1, 1]
    p = np.array([[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]])
    r = ev.multiclass_report(y, p, n_boot=30)
    assert _same(r["roc_auc"], 3 / 4)
    assert r["confusion_matrix"] == [[2, 0], [1, 1]]
    lo, hi = r["roc_auc_ci"]
    assert [lo, hi] == list(ev.roc_auc_with_ci(y, p[:, 1], n_boot=30)[1:])  # the binary interval, same resamples
    assert lo <= 3 / 4 <= hi and lo < hi
    assert list(r["classification_report"])[:2] == ["0", "1"]


# ---------------------------------------------------------------- class weights

CLASS_WEIGHT_CASES = {
    # W / (k W_c): 4 / (2 * 3), 4 / (2 * 1)
    "counts": ([0, 0, 0, 1], None, {0: 2 / 3, 1: 2.0}),
    "balanced already": ([0, 1, 0, 1], None, {0: 1.0, 1: 1.0}),
    # sums of weights 3 and 3: balanced by what they represent, not by entries
    "weights": ([0, 0, 0, 1], [1, 1, 1, 3], {0: 1.0, 1: 1.0}),
    # 6 events of three classes: 6 / (3 * 3), 6 / (3 * 2), 6 / (3 * 1)
    "three classes": ([2, 0, 1, 0, 0, 1], None, {0: 2 / 3, 1: 1.0, 2: 2.0}),
    "float labels": ([0.0, 1.0, 1.0, 1.0], None, {0: 2.0, 1: 2 / 3}),
    # a class whose weights sum to zero gets 1
    "zero-sum class": ([0, 0, 1, 1], [1, 1, 1, -1], {0: 2 / (2 * 2), 1: 1.0}),
}


@pytest.mark.parametrize("labels, weights, want", CLASS_WEIGHT_CASES.values(), ids=CLASS_WEIGHT_CASES.keys())
def test_class_weights(labels, weights, want):
    got = ev.class_weights(labels, weights)
    assert set(got) == set(want) and all(type(k) is int for k in got)
    for k, v in want.items():
        assert _same(got[k], v), k


# ---------------------------------------------------------------- regression scores

REGRESSION_CASES = {
    # residuals 0.5, 0, -1, 1: MSE 2.25/4, MAE 2.5/4; R^2 = 1 - 2.25 / 5 (mean 2.5);
    # relative residuals 1/2, 0, -1/3, 1/4: mean 5/48, variance 61/576 - (5/48)^2 = 219/2304
    "four events": ([1, 2, 3, 4], [1.5, 2, 2, 5],
                    dict(mse=0.5625, mae=0.625, r2=0.55, bias_rel=5 / 48, resolution_rel=math.sqrt(219) / 48)),
    "exact": ([10, 20], [10, 20], dict(mse=0.0, mae=0.0, r2=1.0, bias_rel=0.0, resolution_rel=0.0)),
    # a zero target divides by one: relative residuals 0.5 and -0.5
    "zero target": ([0, 2], [0.5, 1], dict(mse=(0.25 + 1) / 2, mae=0.75, r2=1 - 1.25 / 2, bias_rel=0.0,
                                           resolution_rel=0.5)),
    # predicting the mean: R^2 = 0
    "the mean": ([1, 3], [2, 2], dict(mse=1.0, mae=1.0, r2=0.0, bias_rel=(1 - 1 / 3) / 2,
                                      resolution_rel=(1 + 1 / 3) / 2)),
}


@pytest.mark.parametrize("y, p, want", REGRESSION_CASES.values(), ids=REGRESSION_CASES.keys())
def test_regression_report(y, p, want):
    r = ev.regression_report(y, p)
    assert r["n"] == len(y)
    for k, v in want.items():
        assert _same(r[k], v), k


# ---------------------------------------------------------------- working points, effective size

#        signal scores 0.9 0.8 0.6 0.3; background 0.7 0.4 0.2 0.1
WP_Y = [1, 1, 1, 1, 0, 0, 0, 0]
WP_S = [0.9, 0.8, 0.6, 0.3, 0.7, 0.4, 0.2, 0.1]


@pytest.mark.parametrize("threshold, eff_s, eff_b, rej", [
    (0.5, 3 / 4, 1 / 4, 4.0),
    (0.75, 2 / 4, 0.0, math.inf),
    (0.3, 4 / 4, 2 / 4, 2.0),  # a score at the threshold passes
    (0.05, 1.0, 1.0, 1.0),
])
def test_working_points_at_threshold(threshold, eff_s, eff_b, rej):
    (wp,) = ev.working_points(WP_Y, WP_S, thresholds=(threshold,))["at_threshold"]
    assert wp == {"threshold": threshold, "signal_efficiency": eff_s, "background_efficiency": eff_b,
                  "background_rejection": rej}


@pytest.mark.parametrize("target, threshold, eff_s, rej", [
    (0.25, 0.9, 1 / 4, math.inf),
    (0.5, 0.8, 2 / 4, math.inf),
    (0.6, 0.6, 3 / 4, 4.0),  # the highest threshold reaching at least the target
    (0.75, 0.6, 3 / 4, 4.0),
    (1.0, 0.3, 1.0, 2.0),
])
def test_working_points_at_signal_efficiency(target, threshold, eff_s, rej):
    (wp,) = ev.working_points(WP_Y, WP_S, signal_efficiencies=(target,))["at_signal_efficiency"]
    assert wp["target"] == target and wp["threshold"] == threshold
    assert _same(wp["signal_efficiency"], eff_s) and wp["background_rejection"] == rej


def test_working_points_weighted():
    w = [1, 1, 2, 4, 2, 1, 1, 0]  # signal 8, background 4
    out = ev.working_points(WP_Y, WP_S, weights=w, thresholds=(0.5,), signal_efficiencies=(0.5,))
    (at,), (eff,) = out["at_threshold"], out["at_signal_efficiency"]
    assert _same(at["signal_efficiency"], 4 / 8) and _same(at["background_efficiency"], 2 / 4)
    assert _same(at["background_rejection"], 2.0)
    # cumulative signal weight from the top: 1, 2, 4, 8 -> half of 8 is reached at 0.6
    assert eff["threshold"] == 0.6 and _same(eff["signal_efficiency"], 4 / 8)
    only_signal = ev.working_points([1, 1], [0.2, 0.9], thresholds=(0.5,))["at_threshold"][0]
    assert only_signal["signal_efficiency"] == 0.5 and math.isnan(only_signal["background_efficiency"])
    assert math.isnan(only_signal["background_rejection"])


def test_working_point_at_signal_efficiency_with_negative_weights_is_the_highest_threshold_reaching_it():
    # signal 0.9 0.8 0.7 0.6 weighing 1 1 -1 1 (sum 2): efficiency from the top 1/2, 1, 1/2, 1;
    # background 0.85 and 0.65
    y, s, w = [1, 1, 1, 1, 0, 0], [0.9, 0.8, 0.7, 0.6, 0.85, 0.65], [1, 1, -1, 1, 1, 1]
    (wp,) = ev.working_points(y, s, weights=w, thresholds=(), signal_efficiencies=(0.75,))["at_signal_efficiency"]
    assert wp["threshold"] == 0.8 and wp["signal_efficiency"] == 1.0
    assert wp["background_efficiency"] == 1 / 2 and wp["background_rejection"] == 2.0
    # a target never reached: the lowest signal score
    (wp,) = ev.working_points(y, s, weights=w, thresholds=(), signal_efficiencies=(1.5,))["at_signal_efficiency"]
    assert wp["threshold"] == 0.6


@pytest.mark.parametrize("w, want", [
    ([1, 1, 1, 1], 4.0),
    ([2, 2], 2.0),
    ([1, 2, 3], 36 / 14),
    ([5], 1.0),
    ([1, -1], 0.0),
    ([], 0.0),
    ([0, 0], 0.0),
])
def test_effective_sample_size(w, want):
    assert _same(ev.effective_sample_size(w), want)


# ---------------------------------------------------------------- the prediction loop

def _dense(inp, kernel, bias, name=None):
    """A Dense layer with fixed weights, so every output is worked out by hand."""
    import keras

    layer = keras.layers.Dense(len(bias), name=name)
    out = layer(inp)
    layer.set_weights([np.array(kernel, "float32"), np.array(bias, "float32")])
    return out


X = np.array([[1, 0], [0, 1], [2, 3], [-1, 1], [4, 0]], "float32")
Y = np.array([0, 1, 1, 0, 1], "float32")
# 1 * x0 + 2 * x1 + 0.5
SCORE = np.array([1.5, 2.5, 8.5, 1.5, 4.5], "float32")


def _batches(*arrays, batch=2):
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices(arrays).batch(batch)


def test_predict_dataset_single_output():
    import keras

    inp = keras.Input((2,))
    model = keras.Model(inp, _dense(keras.layers.Dropout(0.9)(inp), [[1], [2]], [0.5]))  # inference: no dropout
    y, p = ev.predict_dataset(model, _batches(X, Y))  # 3 batches: 2, 2, 1
    assert y.shape == (5,) and p.shape == (5,) and p.dtype == np.float32
    np.testing.assert_array_equal(y, Y)
    np.testing.assert_allclose(p, SCORE)
    y2, p2 = ev.predict_dataset(model, _batches(X, Y[:, None]))  # (n, 1) targets squeezed too
    assert y2.shape == (5,)
    y3, p3, w3 = ev.predict_dataset(model, [(X[:3], Y[:3]), (X[3:], Y[3:])], with_weights=True)  # any iterable
    np.testing.assert_allclose(p3, SCORE)
    np.testing.assert_array_equal(y3, Y)
    assert w3 is None  # no weights in the dataset


def test_predict_dataset_returns_sample_weights_in_order():
    import keras

    inp = keras.Input((2,))
    model = keras.Model(inp, _dense(inp, [[1], [2]], [0.5]))
    w = np.array([0.1, 0.2, 0.3, 0.4, -0.5], "float32")
    y, p, wt = ev.predict_dataset(model, _batches(X, Y, w), with_weights=True)
    np.testing.assert_allclose(wt, w)
    np.testing.assert_allclose(p, SCORE)
    np.testing.assert_array_equal(y, Y)
    assert len(ev.predict_dataset(model, _batches(X, Y, w))) == 2  # weights only when asked


def test_predict_dataset_several_units_keep_their_axis():
    import keras

    inp = keras.Input((2,))
    model = keras.Model(inp, _dense(inp, [[1, 0, 1], [0, 1, 1]], [0, 0, 0]))
    _, p = ev.predict_dataset(model, _batches(X, Y))
    np.testing.assert_allclose(p, np.c_[X[:, 0], X[:, 1], X[:, 0] + X[:, 1]])


def test_predict_dataset_dict_inputs_and_outputs():
    import keras

    a, b = keras.Input((2,), name="a"), keras.Input((1,), name="b")
    score = _dense(a, [[1], [2]], [0.5], name="score")               # x0 + 2 x1 + 0.5
    mass = _dense(keras.layers.Concatenate()([a, b]), [[0], [0], [10]], [1], name="mass")  # 10 b + 1
    model = keras.Model({"a": a, "b": b}, {"score": score, "mass": mass})
    bvals = np.array([[1], [2], [3], [4], [5]], "float32")
    targets = {"score": Y, "mass": np.array([11, 21, 31, 41, 51], "float32")[:, None]}
    ds = _batches({"a": X, "b": bvals}, targets)

    y, p = ev.predict_dataset(model, ds, output="mass")
    assert set(y) == {"score", "mass"} and y["mass"].shape == (5,)  # dict targets, each squeezed
    np.testing.assert_allclose(p, 10 * bvals[:, 0] + 1)
    _, p = ev.predict_dataset(model, ds, output="score")
    np.testing.assert_allclose(p, SCORE)
    _, by_index = ev.predict_dataset(model, ds, output=1)  # "index or name": in the model's order
    np.testing.assert_allclose(by_index, 10 * bvals[:, 0] + 1)
    with pytest.raises(ValueError, match="mass"):
        ev.predict_dataset(model, ds, output="charge")
    _, every = ev.predict_dataset(model, ds, output="all")
    assert set(every) == {"score", "mass"}
    np.testing.assert_allclose(every["score"], SCORE)
    np.testing.assert_allclose(every["mass"], 10 * bvals[:, 0] + 1)


def test_predict_dataset_list_outputs():
    import keras

    inp = keras.Input((2,))
    model = keras.Model(inp, [_dense(inp, [[1], [2]], [0.5], name="first"), _dense(inp, [[-1], [0]], [0], name="second")])
    _, first = ev.predict_dataset(model, _batches(X, Y))
    _, second = ev.predict_dataset(model, _batches(X, Y), output=1)
    np.testing.assert_allclose(first, SCORE)
    np.testing.assert_allclose(second, -X[:, 0])
    _, by_name = ev.predict_dataset(model, _batches(X, Y), output="second")  # "index or name"
    np.testing.assert_allclose(by_name, -X[:, 0])
    with pytest.raises(ValueError, match="first"):
        ev.predict_dataset(model, _batches(X, Y), output="third")
    _, every = ev.predict_dataset(model, _batches(X, Y), output="all")
    assert set(every) == {"output_0", "output_1"}
    np.testing.assert_allclose(every["output_1"], -X[:, 0])


def test_predict_dataset_of_no_batches():
    import keras

    inp = keras.Input((2,))
    model = keras.Model(inp, _dense(inp, [[1], [2]], [0.5]))
    y, p, w = ev.predict_dataset(model, [], with_weights=True)
    assert y.shape == p.shape == (0,) and w is None
