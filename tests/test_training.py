"""The training driver: run directory, artifacts, callbacks, TensorBoard, failures."""

import csv
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from kerahep import artifacts, saving
from kerahep.errors import UnsafeModelError
from kerahep.training import TrainingDiverged, train

sys.path.insert(0, str(Path(__file__).parent))
from helpers import assert_image_not_blank  # noqa: E402
import toytask  # noqa: E402


@pytest.fixture
def toy(workdir):
    return toytask.register()


def test_run_directory_holds_every_artifact(toy, workdir):
    cfg = toy.preset().override(["training.epochs=3"])
    res = train(cfg)
    run = res.run_dir
    assert run.parent == Path("results") / "toy"
    for name in ("config.json", "model.keras", "history.csv", "metrics.json"):
        assert (run / name).exists(), name
    for name in ("roc.png", "history.png", "scores.png"):
        assert_image_not_blank(run / "plots" / name)
    assert (run.parent / "LATEST").read_text().strip() == run.name
    m = json.loads((run / "metrics.json").read_text())
    assert m["task"] == "toy" and m["status"] == "complete" and m["data"]["source"] == "synthetic"
    # the test metrics are those of the saved model's scores of the test events
    from sklearn.metrics import accuracy_score, roc_auc_score

    test = toy.load_data(cfg).test
    y = np.concatenate([np.asarray(b[1]) for b in test])
    scores = saving.load_model(run / "model.keras").predict(test, verbose=0)[:, 0]
    assert m["test"]["n"] == len(y) == 90
    assert m["test"]["roc_auc"] == pytest.approx(roc_auc_score(y, scores), abs=1e-6)
    assert m["test"]["accuracy"] == pytest.approx(accuracy_score(y, scores >= 0.5), abs=1e-9)
    assert m["test"]["roc_auc"] > 0.8  # two blobs 1.5 sigma apart: separable
    lo, hi = m["test"]["roc_auc_ci"]
    assert lo <= m["test"]["roc_auc"] <= hi
    assert m["timing"]["train_samples_per_second"] > 0
    rows = list(csv.DictReader(open(run / "history.csv")))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert "val_auc" in rows[0] and "learning_rate" in rows[0]
    assert json.loads((run / "config.json").read_text())["training"]["epochs"] == 3
    assert not (run / "backup").exists() and not (run / "stages").exists()


def test_same_seed_same_result(toy, workdir):
    a = train(toy.preset())
    b = train(toy.preset())
    assert a.run_dir != b.run_dir
    assert a.metrics["test"]["roc_auc"] == pytest.approx(b.metrics["test"]["roc_auc"], abs=1e-6)


def test_saved_model_scores_raw_inputs_identically(toy, workdir):
    res = train(toy.preset())
    x = np.random.default_rng(5).normal(size=(32, 4)).astype("float32")
    loaded = saving.load_model(res.run_dir / "model.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), res.model.predict(x, verbose=0), rtol=1e-6, atol=1e-7)


def test_tensorboard_logs_scalars_and_plot_images(toy, workdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    res = train(toy.preset())
    acc = EventAccumulator(str(res.run_dir / "tensorboard" / "main" / "train"), size_guidance={"tensors": 0})
    acc.Reload()
    tags = set(acc.Tags()["tensors"])
    assert {"epoch_loss", "epoch_auc", "epoch_learning_rate"} <= tags
    assert len(acc.Tensors("epoch_loss")) == 2
    ev = EventAccumulator(str(res.run_dir / "tensorboard" / "evaluation"), size_guidance={"tensors": 0})
    ev.Reload()
    assert "roc" in ev.Tags()["tensors"]


@pytest.mark.slow
def test_tensorboard_server_serves_the_run(toy, workdir):
    res = train(toy.preset())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(res.run_dir / "tensorboard"),
                             "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        body = None
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugin/scalars/tags", timeout=2) as r:
                    body = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.5)
        assert body is not None, "TensorBoard did not answer within 60 s"
        assert "epoch_loss" in body["main/train"] and "epoch_auc" in body["main/validation"]
    finally:
        proc.terminate()
        proc.wait(10)


def test_nan_loss_marks_run_failed_and_keeps_latest(toy, workdir):
    good = train(toy.preset())
    bad = toy.preset().override(["data.nan_at=3", "training.clipnorm=none"])
    with pytest.raises(TrainingDiverged, match="loss became"):
        train(bad)
    runs = sorted(p for p in (Path("results") / "toy").iterdir() if p.is_dir() and p != good.run_dir)
    m = json.loads((runs[-1] / "metrics.json").read_text())
    assert m["status"] == "failed" and "nan" in m["reason"].lower()
    assert not (runs[-1] / "model.keras").exists()
    assert (Path("results") / "toy" / "LATEST").read_text().strip() == good.run_dir.name


def test_failed_write_leaves_previous_artifact(tmp_path):
    target = tmp_path / "metrics.json"
    artifacts.write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with artifacts.atomic_path(target) as tmp:
            tmp.write_text('{"a": 2, "trunc')
            raise RuntimeError("injected crash during write")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_lambda_model_refused_in_safe_mode(tmp_path):
    import keras

    inp = keras.Input((2,))
    model = keras.Model(inp, keras.layers.Lambda(lambda t: t * 2)(inp))
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(UnsafeModelError, match="--unsafe-load"):
        saving.load_model(path)
    assert saving.load_model(path, safe_mode=False) is not None


def test_run_ids_cannot_escape(toy, workdir):
    from kerahep.errors import ConfigError

    with pytest.raises(ConfigError):
        train(toy.preset().override(["run.run_id=../outside"]))
    assert not Path("outside").exists()


def test_mixed_precision_policy_keeps_output_float32(toy, workdir):
    import keras

    res = train(toy.preset().override(["training.precision=mixed_bfloat16"]))
    assert res.metrics["environment"]["precision"] == "mixed_bfloat16"
    assert res.model.layers[1].dtype_policy.name == "mixed_bfloat16"  # hidden layers computed in bf16
    out = res.model.predict(np.zeros((2, 4), "float32"), verbose=0)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert keras.config.dtype_policy().name == "float32"  # global policy restored after the run


def test_auto_precision_float32_on_cpu_mixed_on_gpu():
    from kerahep.training import accelerator_present, resolve_precision

    expected = ("mixed_float16", "mixed_bfloat16") if accelerator_present() else ("float32",)
    assert resolve_precision("auto") in expected
    assert resolve_precision("mixed_float16") == "mixed_float16"


def _installed(toy, kind: str, cfg=None, resumed: bool = False):
    """The callback of class ``keras.callbacks.<kind>`` that the driver installs for stage
    ``main`` of the toy task (run directory ``run``), attached to a fresh model."""
    import keras

    from kerahep.training import RunContext

    cfg = cfg or toy.preset()
    data = toy.load_data(cfg)
    ctx = RunContext(cfg, toy, data, Path("run"), resumed=resumed)
    (cb,) = [c for c in ctx.callbacks("main", "val_auc", "max", has_val=True)
             if isinstance(c, getattr(keras.callbacks, kind))]
    model = toy.build_model(cfg, data)
    cb.set_model(model)
    return cb, model, cfg, data


def test_diverged_epoch_never_replaces_best_checkpoint(toy, workdir):
    """The best-checkpoint callback the driver installs skips epochs with a non-finite loss,
    even when their monitored value looks better (an AUC computed from NaN scores)."""
    ckpt, model, cfg, data = _installed(toy, "ModelCheckpoint")
    path = Path("run") / "checkpoints" / "main.best.weights.h5"
    ckpt.on_epoch_end(0, {"loss": 0.6, "val_auc": 0.70})
    saved = path.read_bytes()
    model.set_weights([np.full_like(w, np.nan) if w.dtype.kind == "f" else w for w in model.get_weights()])
    ckpt.on_epoch_end(1, {"loss": float("nan"), "val_auc": 0.95})
    assert path.read_bytes() == saved
    ckpt.on_epoch_end(2, {"loss": float("inf"), "val_auc": 0.99})
    assert path.read_bytes() == saved
    # a finite epoch that beats the best still replaces it
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    ckpt.on_epoch_end(3, {"loss": 0.5, "val_auc": 0.80})
    assert path.read_bytes() != saved
    restored = toy.build_model(cfg, data)
    restored.load_weights(str(path))
    assert all(np.isfinite(w).all() for w in restored.get_weights())


def test_best_checkpoint_is_replaced_atomically(toy, workdir, monkeypatch):
    """A crash while the new best weights are written leaves the previous best intact."""
    ckpt, model, _, _ = _installed(toy, "ModelCheckpoint")
    path = Path("run") / "checkpoints" / "main.best.weights.h5"
    ckpt.on_epoch_end(0, {"loss": 0.6, "val_auc": 0.70})
    saved = path.read_bytes()

    def crash(filepath, *args, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(model, "save_weights", crash)
    with pytest.raises(OSError, match="disk full"):
        ckpt.on_epoch_end(1, {"loss": 0.5, "val_auc": 0.90})
    assert path.read_bytes() == saved


def test_early_stopping_continues_its_count_on_resume(toy, workdir):
    """A resumed stage stops where an uninterrupted one would: the best value and the epochs
    without improvement so far come from history.csv."""
    cfg = toy.preset().override(["training.early_stopping=3"])
    Path("run").mkdir()
    Path("run", "history.csv").write_text("epoch,loss,val_auc\n0,0.6,0.80\n1,0.5,0.90\n2,0.5,0.85\n3,0.5,0.86\n")
    stop, model, _, _ = _installed(toy, "EarlyStopping", cfg, resumed=True)
    stop.on_train_begin()
    assert stop.best == 0.90 and stop.wait == 2
    stop.on_epoch_end(4, {"val_auc": 0.87})  # third epoch without improvement: patience 3 reached
    assert model.stop_training
    stop, _, _, _ = _installed(toy, "EarlyStopping", cfg, resumed=False)  # a fresh run starts afresh
    stop.on_train_begin()
    assert stop.best is None and stop.wait == 0


def test_resuming_a_complete_run_is_refused(toy, workdir):
    from kerahep.errors import ConfigError

    res = train(toy.preset())
    with pytest.raises(ConfigError, match="complete run: nothing to resume"):
        train(toy.preset().override(["run.resume=true", f"run.run_id='{res.run_dir.name}'"]))
    assert json.loads((res.run_dir / "metrics.json").read_text())["status"] == "complete"


def test_resume_of_a_multi_process_run_is_refused(toy, workdir, monkeypatch):
    from kerahep.errors import ConfigError

    monkeypatch.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "2")
    monkeypatch.setattr("kerahep.training.trainer.join_processes", lambda strategy: None)
    with pytest.raises(ConfigError, match="multi-process run is not supported"):
        train(toy.preset().override(["run.resume=true"]))


def test_schedule_without_steps_warns_that_it_is_constant(caplog):
    from kerahep.config import TrainingConfig
    from kerahep.training import make_schedule

    with caplog.at_level("WARNING", logger="kerahep"):
        assert make_schedule(TrainingConfig(schedule="cosine", learning_rate=1e-3), None) == 1e-3
    assert "constant learning rate" in caplog.text
