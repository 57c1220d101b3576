"""The report's remaining views (issue 16): history plots at ``run.plot_dpi`` (PDF beside),
strict JSON (no ``Infinity``/``NaN``) read back as written, AUC-with-interval figures of the
higgs_mae and jet_ssl comparisons, evaluation's own TensorBoard folder (no duplicate
events), and the README's figures in ``results/figures/``.

One toy run (tests/toytask.py, two separable blobs: its working points reject every
background event, an infinite rejection) is shared by the module.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import toytask  # noqa: E402

from kerahep import artifacts, evaluation  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _refuse(constant):
    raise ValueError(f"not strict JSON: {constant}")


def _strict(path) -> dict:
    """The file parsed as strict JSON (``Infinity``, ``-Infinity`` and ``NaN`` refused)."""
    return json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=_refuse)


def _same(found, expected, where="") -> None:
    """Equal trees; numbers equal to 1e-9, NaN equal to NaN, infinities equal to themselves."""
    if isinstance(expected, dict):
        assert isinstance(found, dict) and sorted(found) == sorted(expected), (where, sorted(found), sorted(expected))
        for k in expected:
            _same(found[k], expected[k], f"{where}.{k}")
    elif isinstance(expected, list):
        assert isinstance(found, list) and len(found) == len(expected), (where, found, expected)
        for i, (a, b) in enumerate(zip(found, expected)):
            _same(a, b, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert isinstance(found, float), (where, found, expected)
        assert (math.isnan(found) and math.isnan(expected)) or found == expected \
            or abs(found - expected) <= 1e-9, (where, found, expected)
    else:
        assert found == expected, (where, found, expected)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A toy run with separable classes (infinite rejections) and PNGs at 50 dpi."""
    from kerahep.training import train

    root = tmp_path_factory.mktemp("views")
    cfg = toytask.register().preset().override(
        ["data.shift=12.0", "run.plot_dpi=50", f"run.output_dir='{root / 'results'}'"])
    return train(cfg)


@pytest.fixture(scope="module")
def evaluated(toy_run):
    """``(files of the run's tensorboard/ before, records)`` of two ``evaluate_run`` of the toy run."""
    from kerahep.training import evaluate_run

    before = _snapshot(toy_run.run_dir / "tensorboard", "reevaluation")
    return before, [evaluate_run(toy_run.run_dir) for _ in range(2)]


# ------------------------------------------------------------------ strict JSON
def test_a_report_with_an_infinite_rejection_is_written_as_strict_json_and_read_back(tmp_path):
    y = np.r_[np.zeros(50), np.ones(50)]
    report = evaluation.binary_report(y, np.r_[np.linspace(0, 0.4, 50), np.linspace(0.6, 1, 50)])
    assert report["working_points"]["at_threshold"][0]["background_rejection"] == math.inf
    report["roc_auc_ci"] = [report["roc_auc_ci"][0], math.nan]  # a non-finite number in a list
    report["curve"] = np.array([[0.5, -np.inf], [np.nan, 1.0]], np.float32)  # NumPy, nested
    path = artifacts.write_json(tmp_path / "metrics.json", {"test": report})

    text = path.read_text()
    assert "Infinity" not in text and "NaN" not in text
    raw = _strict(path)["test"]
    point = raw["working_points"]["at_threshold"][0]
    assert point["background_rejection"] is None and point["background_rejection_nonfinite"] == "inf"
    assert raw["roc_auc_ci"][1] is None and raw["roc_auc_ci_nonfinite"] == {"1": "nan"}
    assert raw["curve"] == [[0.5, None], [None, 1.0]] and raw["curve_nonfinite"] == {"0/1": "-inf", "1/0": "nan"}

    back = artifacts.read_json(path)["test"]
    _same(back, {**report, "curve": [[0.5, -math.inf], [math.nan, 1.0]]}, "test")


def test_read_json_leaves_keys_alone_that_do_not_mark_a_null(tmp_path):
    doc = {"a": 1.0, "a_nonfinite": "inf", "b": None, "b_nonfinite": "huge", "c_nonfinite": "nan",
           "d": [1.0, None], "d_nonfinite": {"7": "nan"}}
    path = artifacts.write_json(tmp_path / "x.json", doc)
    assert artifacts.read_json(path) == doc  # none of them is what the writer records
    with pytest.raises(ValueError, match="e_nonfinite"):
        artifacts.write_json(tmp_path / "y.json", {"e": math.inf, "e_nonfinite": 1})
    assert not (tmp_path / "y.json").exists()


def test_training_and_evaluation_write_strict_json_that_reads_back_the_same(toy_run, evaluated):
    run = toy_run.run_dir
    rejections = [p["background_rejection"] for p in toy_run.metrics["test"]["working_points"]["at_signal_efficiency"]]
    assert math.inf in rejections  # the case this is about
    for name in ("metrics.json", "config.json"):
        _strict(run / name)
    _same(artifacts.read_json(run / "metrics.json")["test"], toy_run.metrics["test"], "metrics.json")
    _strict(run / "evaluation.json")
    _same(artifacts.read_json(run / "evaluation.json")["test"], toy_run.metrics["test"], "evaluation.json")
    _same(evaluated[1][-1]["test"], toy_run.metrics["test"], "evaluate_run")


# ------------------------------------------------------------------ history plots
def _png_dpi(path) -> tuple:
    from PIL import Image

    with Image.open(path) as im:
        return tuple(round(v) for v in im.info["dpi"]), im.size


def test_history_plots_follow_run_plot_dpi_with_their_pdf(toy_run, evaluated, tmp_path):
    from kerahep.training.rundir import plot_histories

    run = toy_run.run_dir
    (dpi, size50) = _png_dpi(run / "plots" / "history.png")
    assert dpi == (50, 50) and (run / "plots" / "history.pdf").is_file()  # by training, redrawn by evaluation

    copy = tmp_path / "run"
    copy.mkdir()
    (copy / "history.csv").write_bytes((run / "history.csv").read_bytes())
    drawn = plot_histories(copy, toy_run.config.override(["run.plot_dpi=100"]))
    assert drawn == [copy / "plots" / "history.png"] and (copy / "plots" / "history.pdf").is_file()
    dpi, size100 = _png_dpi(drawn[0])
    assert dpi == (100, 100)
    assert size100[0] == pytest.approx(2 * size50[0], rel=0.05) and size100[1] == pytest.approx(2 * size50[1], rel=0.05)


def test_higgs_reconstruction_grid_follows_the_setting_scaled_for_its_size(tmp_path):
    """The 30-panel grid is drawn at 80/110 of run.plot_dpi: 80 dpi by default, more on request."""
    from kerahep.plotting import DEFAULT_DPI, figure_dpi
    from kerahep.tasks.higgs_mae.plots import reconstruction_grid

    rng = np.random.default_rng(0)
    true = rng.normal(size=(200, 3))
    mask = np.ones((200, 3), bool)
    reconstruction_grid(true, true, mask, ["a", "b", "c"], tmp_path / "default.png")
    with figure_dpi(2 * DEFAULT_DPI):
        reconstruction_grid(true, true, mask, ["a", "b", "c"], tmp_path / "double.png")
    (dpi_default, size_default), (dpi_double, size_double) = (_png_dpi(tmp_path / f"{n}.png")
                                                              for n in ("default", "double"))
    assert dpi_default == (80, 80) and dpi_double == (160, 160)
    assert size_double[0] == pytest.approx(2 * size_default[0], rel=0.05)
    assert (tmp_path / "double.pdf").is_file()


# ------------------------------------------------------------------ TensorBoard of evaluations
def _events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    acc.Reload()
    return acc


def _snapshot(folder: Path, skip: str) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and skip not in p.relative_to(folder).parts}


def test_evaluating_again_logs_its_scalars_once_in_its_own_folder(toy_run, evaluated):
    import tensorflow as tf

    from kerahep.training.board import flat_numbers

    board = toy_run.run_dir / "tensorboard"
    training, (_, record) = evaluated  # two evaluations
    assert _snapshot(board, "reevaluation") == training  # training's curves, report and HParams untouched
    folder = board / "reevaluation"
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1
    acc = _events(folder)
    expected = dict(flat_numbers(record["test"], "test"))
    assert "test/roc_auc" in expected and set(acc.Tags()["tensors"]) == set(expected)
    assert set(expected) == {t for t in _events(board / "evaluation").Tags()["tensors"] if t.startswith("test/")}
    for tag, value in expected.items():
        (event,) = acc.Tensors(tag)  # one event per tag after two evaluations
        assert float(tf.make_ndarray(event.tensor_proto)) == pytest.approx(value, rel=1e-6), tag


def test_an_independent_sample_logs_its_scalars_inside_its_own_folder(toy_run, tmp_path):
    from kerahep.training import evaluate_run

    before = sorted(p.name for p in (toy_run.run_dir / "tensorboard").iterdir())
    record = evaluate_run(toy_run.run_dir, data_paths=[str(tmp_path / "other.npy")])
    out = Path(record["output"])
    assert out.parent.name == "external"
    acc = _events(out / "tensorboard" / "independent_sample")
    assert "test/roc_auc" in acc.Tags()["tensors"]
    assert sorted(p.name for p in (toy_run.run_dir / "tensorboard").iterdir()) == before


# ------------------------------------------------------------------ AUC with its interval per model
@pytest.fixture
def few_resamples(monkeypatch):
    """Bootstrap intervals from 30 resamples instead of 200 (a test-speed setting only)."""
    import functools

    monkeypatch.setattr(evaluation, "roc_auc_with_ci", functools.partial(evaluation.roc_auc_with_ci, n_boot=30))


def _auc_figure(monkeypatch, draw) -> dict:
    """``{figure file name: figure}`` of what ``draw()`` saves (kept open to read its data)."""
    from kerahep.plotting import style

    figures = {}
    monkeypatch.setattr(style, "save_figure", lambda fig, path, dpi=None: figures.setdefault(Path(path).name, fig))
    draw()
    return figures


def _plotted(fig) -> list:
    """``(model, auc, low, high)`` read off the figure: markers, error bars, tick labels."""
    ax = fig.axes[0]
    names = {round(t): lab.get_text() for t, lab in zip(ax.get_yticks(), ax.get_yticklabels())}
    out = {}
    for container in ax.containers:  # the models with an interval
        line, _, (bars,) = container
        for x, y, seg in zip(line.get_xdata(), line.get_ydata(), bars.get_segments()):
            out[names[round(y)]] = (float(x), float(seg[0][0]), float(seg[1][0]))
    for line in ax.lines:  # the open markers of models without one
        if line.get_markerfacecolor() == "none":
            for x, y in zip(line.get_xdata(), line.get_ydata()):
                out[names[round(y)]] = (float(x), None, None)
    return [(names[y], *out[names[y]]) for y in sorted(names, reverse=True)]


def test_higgs_comparison_figure_shows_the_tables_auc_and_interval_per_model(tmp_path, monkeypatch,
                                                                              few_resamples):
    import pandas as pd

    from kerahep.tasks.higgs_mae.report import write_comparison
    from kerahep.tasks.higgs_mae.stages import comparison_row

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    rows = {name: comparison_row(y, y * shift + rng.normal(size=400), seed=1, features="f")
            for name, shift in (("pretrained_frozen", 0.5), ("pretrained_finetuned", 1.0), ("scratch", 0.2))}
    rows["twin_oracle_latent"] = {"roc_auc": 0.93, "roc_auc_ci": [None, None], "accuracy": None, "n": None,
                                  "features": "latent truth"}
    ctx = SimpleNamespace(run_dir=tmp_path, plots_dir=tmp_path / "plots")
    figures = _auc_figure(monkeypatch, lambda: write_comparison(ctx, rows))
    assert {"comparison.png", "auc_intervals.png"} <= set(figures)
    table = pd.read_csv(tmp_path / "comparison.csv")
    expected = [(r.model, r.roc_auc, None if pd.isna(r.roc_auc_low) else r.roc_auc_low,
                 None if pd.isna(r.roc_auc_high) else r.roc_auc_high) for r in table.itertuples()]
    found = _plotted(figures["auc_intervals.png"])
    assert [f[0] for f in found] == [e[0] for e in expected]  # every model, in table order, top to bottom
    for (_, auc, lo, hi), (name, t_auc, t_lo, t_hi) in zip(found, expected):
        assert auc == pytest.approx(t_auc, abs=1e-9), name
        if t_lo is None:  # the oracle: no interval in the table, none drawn
            assert (lo, hi) == (None, None), name
        else:
            assert (lo, hi) == pytest.approx((t_lo, t_hi), abs=1e-9), name
    assert all(lo < auc < hi for _, auc, lo, hi in found if lo is not None)


def test_jet_ssl_auc_figure_has_each_methods_table_auc_with_its_bootstrap_interval(tmp_path, monkeypatch,
                                                                                   few_resamples):
    from kerahep.config import Config
    from kerahep.registry import get_task
    from kerahep.tasks.jet_ssl import plots
    from kerahep.tasks.jet_ssl.report import auc_by_method, table_row

    rng = np.random.default_rng(5)
    n = 300
    truth = {"y": rng.integers(0, 2, n).astype(float), "m": rng.normal(100, 10, n), "pt": rng.normal(500, 50, n)}
    scores = {m: 1 / (1 + np.exp(-(truth["y"] * s + rng.normal(size=n))))
              for m, s in (("scratch", 0.3), ("finetune", 1.5), ("linear", 0.8), ("frozen", 1.0))}
    result = auc_by_method(scores, truth["y"], seed=7)
    assert list(result) == ["linear", "frozen", "finetune", "scratch"]  # the table's order
    for method, entry in result.items():
        row = table_row(method, 1.0, n, truth, {**truth, "y": scores[method]})
        assert entry["roc_auc"] == pytest.approx(row["roc_auc"], abs=1e-12), method  # the table's AUC
        auc, lo, hi = evaluation.roc_auc_with_ci(truth["y"], scores[method], seed=7)
        assert entry["roc_auc_ci"] == [lo, hi] and lo < entry["roc_auc"] < hi, method  # seeded: evaluation agrees

    cfg: Config = get_task("jet_ssl").preset("smoke")
    figures = _auc_figure(monkeypatch, lambda: plots.auc_plot(result, cfg, tmp_path / "auc_intervals.png"))
    found = _plotted(figures["auc_intervals.png"])
    names = [f"{m} (model.keras)" if m == cfg.model.export else m for m in result]
    assert [f[0] for f in found] == names
    for (_, auc, lo, hi), entry in zip(found, result.values()):
        assert (auc, lo, hi) == pytest.approx((entry["roc_auc"], *entry["roc_auc_ci"]), abs=1e-9)


# ------------------------------------------------------------------ README figures
def test_every_readme_image_and_figure_of_the_script_exists_and_is_small():
    from scripts import readme_figures

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    linked = re.findall(r"!\[[^\]]*\]\(([^)\s]+)", readme) + re.findall(r"<img[^>]+src=\"([^\"]+)\"", readme)
    missing = [link for link in linked if not link.startswith(("http://", "https://")) and not (REPO / link).is_file()]
    assert not missing, f"README links images that are not in the repository: {missing}"
    assert set(readme_figures.KINDS) == set(readme_figures.FIGURES)
    for name in readme_figures.FIGURES:
        path = REPO / "results" / "figures" / name
        assert path.is_file(), f"{path} missing: python -m scripts.readme_figures"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size <= readme_figures.MAX_BYTES, name


def test_readme_figures_are_written_under_the_size_limit(tmp_path):
    from PIL import Image

    from scripts import readme_figures

    src = tmp_path / "noisy.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(src)
    assert src.stat().st_size > 200_000
    data = readme_figures.small_png(src, limit=40_000)
    assert len(data) <= 40_000 and data[:8] == b"\x89PNG\r\n\x1a\n"
