"""dy_electron task: shuffling of the grouped prepared file, what is known of the twin,
files scored against the model's features, output formats, repeated inputs."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from kerahep.data.nanoaod import load_prepared
from kerahep.data.nanoaod.prepare import unique_files  # see the last test
from kerahep.errors import DataError
from kerahep.registry import get_task
from kerahep.tasks.base import FitResult
from kerahep.training import RunContext


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("dy")
    task = get_task("dy_electron")
    cfg = task.preset("smoke").override([f"data.data_dir='{root / 'data'}'", "data.synthetic_events=300",
                                         "training.batch_size=32", "data.shuffle_buffer=16", "run.verbose=0"])
    return task, cfg, task.make_synthetic(cfg)[0], root


def test_training_batches_mix_the_samples_of_a_grouped_file(prepared):
    """The prepared file holds one sample after another; every training epoch must still mix
    them (a 16-event shuffle buffer alone left most batches of one class)."""
    task, cfg, path, _ = prepared
    df = pd.read_csv(path)
    assert (np.diff(df["target"].to_numpy()) != 0).sum() == 1  # grouped: signal, then background
    data = task.load_data(cfg)
    tr = data.split[0]
    for _ in range(2):  # each epoch: every training event once, in mixed batches
        labels, pts = [], []
        for x, y in data.train:
            labels.append(np.asarray(y))
            pts.append(np.asarray(x["m_ee"])[:, 0])
        mixed = np.mean([0 < b.mean() < 1 for b in labels[:-1]])
        assert mixed > 0.9, f"only {mixed:.0%} of the batches hold both classes"
        np.testing.assert_array_equal(np.sort(np.concatenate(pts)), np.sort(data.X[tr, data.features.index("m_ee")]))
        assert np.concatenate(labels).sum() == data.y[tr].sum()


def test_the_twins_oracle_auc_is_reported(prepared):
    """The oracle AUC reported is the one the twin's generator computed from its latent
    likelihood ratio (twin.json), not a value of its own; the classes are separable."""
    import json

    task, cfg, _, root = prepared
    info = task.load_data(cfg).info
    (twin,) = (root / "data").rglob("twin.json")
    recorded = json.loads(twin.read_text())["oracle_auc"]
    assert info["preparation"] and info["oracle_auc"] == recorded and recorded > 0.8


def test_scored_files_must_carry_the_models_features(prepared, tmp_path):
    task, cfg, path, _ = prepared
    data = task.load_data(cfg)
    model = task.build_model(cfg, data)
    df = pd.read_csv(path)
    fewer = tmp_path / "fewer.csv"
    df.drop(columns=["m_ee"]).to_csv(fewer, index=False)
    with pytest.raises(DataError, match=r"fewer\.csv.*feature columns of the preset.*missing m_ee"):
        task.load_data(cfg, paths=[str(path), str(fewer)], for_evaluation=True)
    # data read with other settings (two jets: Jet_*_2 and Jet_*_3 ignored) are not the model's inputs
    other_cfg = cfg.override(["data.n_jets=2"])
    other = task.load_data(other_cfg, paths=[str(path)], for_evaluation=True)
    with pytest.raises(DataError, match=r"electron_dataset.*feature columns the model was trained on.*Jet_pt_2"):
        task.evaluate(RunContext(other_cfg, task, other, tmp_path / "run"), FitResult(models={"model": model}), other)
    assert not (tmp_path / "run" / "plots" / "roc.png").exists()  # refused before anything is written


def test_pq_output_is_parquet_like_the_reader_expects(prepared, tmp_path, monkeypatch):
    from scripts import prepare_dataset as prepare_cli

    _, cfg, _, root = prepared
    monkeypatch.chdir(tmp_path)
    assert prepare_cli.main(["--task", "dy_electron", "--synthetic", "--quiet", "--set",
                             f"data.data_dir='{root / 'data'}'", "--set", "data.synthetic_events=300",
                             "--out", "prep.pq"]) == 0
    assert (tmp_path / "prep.pq").read_bytes()[:4] == b"PAR1"
    assert len(load_prepared(tmp_path / "prep.pq")) > 0


def test_one_file_under_several_spellings_is_read_once(tmp_path, monkeypatch):
    # reaches inside (unique_files): the public prepare_dataset would need real ROOT files
    # under every spelling to show the same thing
    f = tmp_path / "a.root"
    f.write_bytes(b"")
    os.symlink(f, tmp_path / "link.root")
    monkeypatch.chdir(tmp_path)
    url = "root://eos.example//store/a.root"
    assert unique_files([str(f), "a.root", "./a.root", "link.root", url, url]) == [str(f), url]


def test_by_default_no_event_weights_reach_the_batches(prepared):
    """data.weights=none (the default): (x, y) batches and Keras' class_weight, as before weights existed."""
    from kerahep.evaluation import class_weights

    task, cfg, path, _ = prepared
    assert cfg.data.weights == "none"
    data = task.load_data(cfg)
    assert all(len(b) == 2 for ds in (data.train, data.val, data.test) for b in ds)
    assert data.weights is None and data.info["weights"] == {"mode": "none"}
    assert data.class_weight == class_weights(data.y[data.split[0]])
    # the event identifiers of the preparation are bookkeeping, not features
    df = pd.read_csv(path)
    assert {"run", "luminosityBlock", "event", "file", "entry"} <= set(df.columns)
    assert not {"run", "luminosityBlock", "event", "file", "entry", "genWeight"} & set(data.features)
