"""A model's inputs never change silently (issue 17): a tabular input gives a task exactly the
feature columns it was configured for. dy_electron's prepared files: a column that is neither
a feature of the preset nor bookkeeping is ignored with a warning naming it (even one that
copies ``target``); a missing feature is a DataError naming the file and the columns.
HIGGS tables have a fixed positional layout: a wrong column count is a DataError naming the
file, the 29 columns expected and the count found, in every way the task reads them."""

from __future__ import annotations

import gzip
import logging

import numpy as np
import pandas as pd
import pytest

from kerahep.data.nanoaod import FeatureSpec, load_prepared
from kerahep.errors import DataError
from kerahep.registry import get_task
from kerahep.tasks.dy_electron.config import feature_spec

BOOKKEEPING = {"target", "sample", "genWeight", "run", "luminosityBlock", "event", "file", "entry"}


@pytest.fixture(scope="module")
def dy(tmp_path_factory):
    root = tmp_path_factory.mktemp("dy_exact")
    task = get_task("dy_electron")
    cfg = task.preset("smoke").override([f"data.data_dir='{root / 'data'}'", "data.synthetic_events=200",
                                         "training.batch_size=32", "run.verbose=0"])
    path = task.make_synthetic(cfg)[0]
    return task, cfg, path, pd.read_csv(path)


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "kerahep" and r.levelno == logging.WARNING]


def test_the_prepared_twin_has_the_presets_columns_and_loads_without_a_warning(dy, caplog):
    task, cfg, path, df = dy
    spec = feature_spec(cfg.data)
    assert set(df.columns) == set(spec.columns) | BOOKKEEPING  # what the preparation writes
    with caplog.at_level(logging.WARNING, logger="kerahep"):
        data = task.load_data(cfg, paths=[str(path)], for_evaluation=True)
    assert data.features == spec.columns
    assert not [m for m in _warnings(caplog) if "ignor" in m]  # bookkeeping columns are not "extra"


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_an_extra_column_is_ignored_with_a_warning_naming_it(dy, tmp_path, caplog, suffix):
    """A numeric copy of the target used to become a feature (a perfect, silent leak)."""
    task, cfg, path, df = dy
    spec = feature_spec(cfg.data)
    extra = df.assign(leak=df["target"].astype(float), Unnamed_0=np.arange(len(df)), comment="hand-made",
                      weight=1.0)  # weight: a bookkeeping name, kept without a word
    extra = extra[["leak"] + [c for c in extra.columns if c != "leak"]]  # first, before the features
    p = tmp_path / f"extra{suffix}"
    extra.to_csv(p, index=False) if suffix == ".csv" else extra.to_parquet(p, index=False)
    with caplog.at_level(logging.WARNING, logger="kerahep"):
        data = task.load_data(cfg, paths=[str(p)], for_evaluation=True)
    assert data.features == spec.columns and data.X.shape == (len(df), len(spec.columns))
    np.testing.assert_array_equal(data.X, df[spec.columns].to_numpy(np.float32))
    msgs = [m for m in _warnings(caplog) if "ignor" in m]
    assert len(msgs) == 1, _warnings(caplog)
    assert str(p) in msgs[0] and all(c in msgs[0] for c in ("leak", "Unnamed_0", "comment"))
    assert not any(c in msgs[0] for c in BOOKKEEPING | {"weight"} | set(spec.columns))


def test_extra_columns_in_one_of_two_files_do_not_stop_the_other(dy, tmp_path, caplog):
    task, cfg, path, df = dy
    p = tmp_path / "more.csv"
    df.assign(leak=df["target"]).to_csv(p, index=False)
    with caplog.at_level(logging.WARNING, logger="kerahep"):
        data = task.load_data(cfg, paths=[str(path), str(p)], for_evaluation=True)
    assert data.X.shape == (2 * len(df), len(feature_spec(cfg.data).columns))
    msgs = [m for m in _warnings(caplog) if "ignor" in m]
    assert len(msgs) == 1 and str(p) in msgs[0] and "leak" in msgs[0]


@pytest.mark.parametrize("for_evaluation", [False, True])
def test_a_missing_feature_is_an_error_naming_the_file_and_the_columns(dy, tmp_path, for_evaluation):
    """A dropped column used to shrink the model's inputs without a word."""
    task, cfg, path, df = dy
    p = tmp_path / "fewer.csv"
    df.drop(columns=["m_ee", "Jet_pt_1"]).to_csv(p, index=False)
    with pytest.raises(DataError) as err:
        task.load_data(cfg.override([f"data.paths=('{p}',)"]), for_evaluation=for_evaluation)
    assert err.value.path == str(p)
    assert "m_ee" in err.value.found and "Jet_pt_1" in err.value.found
    assert "features=physics" in err.value.expected
    with pytest.raises(DataError, match=r"fewer\.csv.*m_ee"):  # also next to a complete file
        task.load_data(cfg, paths=[str(path), str(p)], for_evaluation=True)


def test_load_prepared_with_a_spec_returns_its_features_and_the_bookkeeping(tmp_path, caplog):
    spec = FeatureSpec(n_electrons=1, n_jets=0, preset="seed")
    rng = np.random.default_rng(0)
    df = pd.DataFrame({c: rng.random(4) for c in spec.columns})
    df = df.assign(x_extra=rng.random(4), genWeight=1.0, target=[0, 1, 0, 1], sample="s", note="text")
    p = tmp_path / "small.csv"
    df.to_csv(p, index=False)
    with caplog.at_level(logging.WARNING, logger="kerahep"):
        out = load_prepared(p, spec=spec)
    assert list(out.columns) == spec.columns + ["genWeight", "target", "sample"]
    assert any("x_extra" in m and "note" in m and str(p) in m for m in _warnings(caplog))
    missing = tmp_path / "missing.csv"
    df.drop(columns=spec.columns[:12]).to_csv(missing, index=False)
    with pytest.raises(DataError) as err:
        load_prepared(missing, spec=spec)
    assert err.value.path == str(missing) and all(c in err.value.found for c in spec.columns[:12])


# ----------------------------------------------------------------------------- HIGGS tables
def _higgs_lines(n=40, seed=9):
    from kerahep.data.synthetic.higgs import generate

    ev = generate(n // 2, seed=seed)
    return [[f"{lab:.1f}"] + [f"{v:.6f}" for v in row] for lab, row in zip(ev["label"], ev["raw"])]


def _write(path, rows):
    text = "".join(",".join(r) + "\n" for r in rows)
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


@pytest.fixture
def higgs_cfg():
    task = get_task("higgs_mae")
    return task, task.preset().override(["data.oracle_events=0", "training.batch_size=16", "run.verbose=0",
                                         "data.chunksize=8"])


@pytest.mark.parametrize("mode", ["split", "streaming", "evaluation"])
@pytest.mark.parametrize("change,found", [
    (lambda r: r + [r[0]], "30 columns"),  # a copy of the label appended to every line
    (lambda r: r[1:], "28 columns"),  # the label dropped from every line
])
def test_higgs_tables_with_another_column_count_are_refused(higgs_cfg, tmp_path, mode, change, found):
    task, cfg = higgs_cfg
    p = _write(tmp_path / "HIGGS.csv.gz", [change(r) for r in _higgs_lines()])
    if mode == "streaming":
        cfg = cfg.override(["data.rows_train=(0,20)", "data.rows_test=(20,None)"])
    with pytest.raises(DataError) as err:
        task.load_data(cfg.override([f"data.paths=('{p}',)"]) if mode != "evaluation" else cfg,
                       **({"paths": [str(p)], "for_evaluation": True} if mode == "evaluation" else {}))
    assert err.value.path.startswith(str(p)) and "29 columns" in err.value.expected and found in err.value.found


@pytest.mark.parametrize("mode", ["split", "streaming", "evaluation"])
def test_a_higgs_line_with_an_extra_column_far_into_the_file_is_refused(higgs_cfg, tmp_path, mode):
    task, cfg = higgs_cfg
    rows = _higgs_lines()
    rows[33] = rows[33] + ["1.0"]
    p = _write(tmp_path / "HIGGS.csv", rows)
    if mode == "streaming":
        cfg = cfg.override(["data.rows_train=(0,20)", "data.rows_test=(20,None)"])
    with pytest.raises(DataError) as err:
        task.load_data(cfg.override([f"data.paths=('{p}',)"]) if mode != "evaluation" else cfg,
                       **({"paths": [str(p)], "for_evaluation": True} if mode == "evaluation" else {}))
    assert err.value.path == f"{p}, line 34" and "29 columns" in err.value.expected
    assert err.value.found == "30 columns"
