"""The data fingerprint: a run's test split is only rebuilt from the files it was trained on."""

import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from kerahep.config import Config, DataConfig, ModelConfig, RunSettings, TrainingConfig
from kerahep.data.fingerprint import compare_fingerprints, file_fingerprint
from kerahep.errors import DataError
from kerahep.training import evaluate_run
from kerahep.registry import _TASKS, register_task
from kerahep.training import train

sys.path.insert(0, str(Path(__file__).parent))
from toytask import ToyTask  # noqa: E402

N = 300
TWIN_VERSION = 1  # of the toy twin's generator: a new version writes other events


def _write_csv(path: Path, seed: int, n: int = N) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 4))
    x[:, 0] += 1.5 * y
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ["x0,x1,x2,x3,y"] + [",".join(f"{v:.4f}" for v in r) + f",{t}" for r, t in zip(x, y)]
    path.write_text("\n".join(rows) + "\n")


@dataclass(frozen=True)
class FileToyData(DataConfig):
    twin_seed: int = 0


class FileToyTask(ToyTask):
    """The toy task read from a CSV: ``data.paths``, else ``data/toy.csv`` when it exists
    (like dy_electron's prepared dataset), else a stamped synthetic twin under data/synthetic."""

    name = "toyfile"

    def preset(self, name=None):
        self._check_preset(name)
        return Config(task=self.name, data=FileToyData(), model=ModelConfig(name="toy"),
                      training=TrainingConfig(epochs=1, batch_size=64, learning_rate=0.03),
                      run=RunSettings(verbose=0))

    def load_data(self, config, paths=None, for_evaluation=False):
        import tensorflow as tf

        from toytask import ToyInputs

        d = config.data
        files = list(paths or d.paths)
        source = "files"
        if not files:
            if Path(d.data_dir, "toy.csv").exists():
                files = [str(Path(d.data_dir, "toy.csv"))]
            else:
                twin = Path(d.data_dir, "synthetic", "toyfile", "toy.csv")
                params = {"seed": d.twin_seed, "n": N, "version": TWIN_VERSION}
                meta = twin.parent / "twin.json"
                if not (twin.exists() and meta.exists() and json.loads(meta.read_text())["params"] == params):
                    _write_csv(twin, d.twin_seed + 1000 * (TWIN_VERSION - 1))
                    meta.write_text(json.dumps({"params": params}))
                files, source = [str(twin)], "synthetic"
        arr = np.concatenate([np.loadtxt(f, delimiter=",", skiprows=1, dtype="float32") for f in files])
        x, y = arr[:, :4], arr[:, 4]
        n = len(y)
        cut1, cut2 = (0, 0) if for_evaluation else (int(0.6 * n), int(0.8 * n))
        mk = lambda a, b: tf.data.Dataset.from_tensor_slices((x[a:b], y[a:b])).batch(config.training.batch_size)
        return ToyInputs(train=mk(0, cut1), val=mk(cut1, cut2), test=mk(cut2, n), source=source, paths=files,
                         info={"n_train": cut1, "n_val": cut2 - cut1, "n_test": n - cut2}, x_train=x[:max(cut1, 1)])


@pytest.fixture
def toyfile(workdir):
    register_task(FileToyTask)
    yield _TASKS["toyfile"]
    _TASKS.pop("toyfile", None)  # not left in the registry for other tests (train --list)


def _snapshot(run: Path) -> dict:
    return {str(p.relative_to(run)): p.stat().st_mtime_ns for p in sorted(run.rglob("*"))}


def _bump_mtime(path: Path) -> None:
    st = path.stat()  # a rewrite within one clock tick can keep the mtime: move it on explicitly
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def test_fingerprint_recorded_and_same_data_evaluates(toyfile, workdir):
    _write_csv(Path("in.csv"), seed=1)
    res = train(toyfile.preset().override(["data.paths=('in.csv',)"]))
    fp = json.loads((res.run_dir / "metrics.json").read_text())["data"]["fingerprint"]
    f = fp["files"][0]
    assert fp["source"] == "files" and fp["n_test"] == 60 and fp["n_train"] == 180
    assert f["path"] == str(Path("in.csv").resolve()) and f["size"] == Path("in.csv").stat().st_size
    assert f["mtime_ns"] == Path("in.csv").stat().st_mtime_ns
    out = evaluate_run(res.run_dir)
    assert out["test"]["roc_auc"] == pytest.approx(res.metrics["test"]["roc_auc"], abs=1e-6)
    assert (res.run_dir / "evaluation.json").exists()


def test_changed_file_is_refused_and_nothing_written(toyfile, workdir):
    path = Path("in.csv")
    _write_csv(path, seed=1)
    run = train(toyfile.preset().override(["data.paths=('in.csv',)"])).run_dir
    before = _snapshot(run)
    # re-prepared: same size (same rows, other order), new mtime
    size = path.stat().st_size
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0]] + lines[:0:-1]) + "\n")
    _bump_mtime(path)
    assert file_fingerprint(path)["size"] == size  # only the mtime tells
    with pytest.raises(DataError) as err:
        evaluate_run(run)
    msg = str(err.value)
    assert err.value.path == str(path.resolve()) and "in.csv" in msg
    assert "bytes" in err.value.expected and "modified" in err.value.found
    assert "--data" in msg and "scripts.evaluate" in msg
    assert _snapshot(run) == before  # no evaluation.json, no plots rewritten
    # replaced by another file of a different size
    _write_csv(path, seed=2, n=N + 7)
    with pytest.raises(DataError, match="in.csv"):
        evaluate_run(run)
    assert _snapshot(run) == before
    # new files are still scored, as an independent sample
    out = evaluate_run(run, data_paths=[str(path)])
    assert out["independent_sample"] and out["test"]["n"] == N + 7


def test_synthetic_twin_regenerated_is_same_data_but_new_params_or_real_file_are_not(toyfile, workdir, monkeypatch):
    run = train(toyfile.preset()).run_dir
    twin = Path("data/synthetic/toyfile/toy.csv")
    fp = json.loads((run / "metrics.json").read_text())["data"]["fingerprint"]
    assert fp["source"] == "synthetic" and fp["files"][0]["stamp"]
    # the twin deleted and regenerated identically: new mtime, same data -> accepted
    old = twin.stat().st_mtime_ns
    twin.unlink()
    toyfile.load_data(toyfile.preset())
    _bump_mtime(twin)
    assert twin.stat().st_mtime_ns != old
    evaluate_run(run)
    # a newer generator regenerated the twin with other events: refused
    monkeypatch.setattr(sys.modules[__name__], "TWIN_VERSION", 2)
    before = _snapshot(run)
    with pytest.raises(DataError, match="toy.csv") as err:
        evaluate_run(run)
    assert "twin parameters" in err.value.expected
    assert _snapshot(run) == before
    monkeypatch.setattr(sys.modules[__name__], "TWIN_VERSION", 1)
    evaluate_run(run)  # regenerated back: the same data again
    # a real dataset appeared where the run used the twin: refused, naming it
    _write_csv(Path("data/toy.csv"), seed=0)
    before = _snapshot(run)
    with pytest.raises(DataError) as err:
        evaluate_run(run)
    assert err.value.path == str(Path("data/toy.csv").resolve())
    assert "synthetic" in err.value.expected and "files" in err.value.found
    assert _snapshot(run) == before


def test_run_without_fingerprint_is_refused_unless_no_data_check(toyfile, workdir, caplog):
    _write_csv(Path("in.csv"), seed=1)
    run = train(toyfile.preset().override(["data.paths=('in.csv',)"])).run_dir
    m = json.loads((run / "metrics.json").read_text())
    del m["data"]["fingerprint"]
    (run / "metrics.json").write_text(json.dumps(m))
    _write_csv(Path("in.csv"), seed=3)  # cannot be noticed without a fingerprint
    before = _snapshot(run)
    with pytest.raises(DataError) as err:
        evaluate_run(run)
    assert err.value.path == str(run / "metrics.json") and "--no-data-check" in str(err.value)
    assert "fingerprint" in err.value.expected
    assert _snapshot(run) == before  # nothing written
    with caplog.at_level(logging.WARNING):
        out = evaluate_run(run, no_data_check=True)  # the user says to go on
    assert out["test"]["n"] == 60
    assert any("no-data-check" in r.getMessage() and "cannot be checked" in r.getMessage() for r in caplog.records)


def test_compare_rules():
    real = {"path": "/d/a.csv", "size": 10, "mtime_ns": 1}
    assert compare_fingerprints({"source": "files", "files": [real]}, {"source": "files", "files": [real]}) is None
    moved = {**real, "mtime_ns": 2}
    assert compare_fingerprints({"source": "files", "files": [real]},
                                {"source": "files", "files": [moved]})[0] == "/d/a.csv"
    twin = {"path": "/x/data/synthetic/t/a.h5", "size": 10, "mtime_ns": 1, "stamp": "abc"}
    regenerated = {**twin, "path": "/y/data/synthetic/t/a.h5", "mtime_ns": 5}
    assert compare_fingerprints({"source": "synthetic", "files": [twin]},
                                {"source": "synthetic", "files": [regenerated]}) is None
    assert compare_fingerprints({"source": "synthetic", "files": [twin]},
                                {"source": "synthetic", "files": [{**regenerated, "size": 11}]}) is not None
    split = compare_fingerprints({"source": "files", "files": [real], "n_test": 5},
                                 {"source": "files", "files": [real], "n_test": 6})
    assert split is not None and "n_test=5" in split[1]
