"""A run interrupted mid-epoch and resumed ends with the same weights and optimizer state as
the same run uninterrupted.

The toy task does not shuffle, so an uninterrupted run is repeatable to the last bit; a
resume that lost the optimizer's moments (Adam's m and v), its step counter or the
learning-rate schedule ends elsewhere, which a check of the logged learning rate alone
(tests/test_reliability.py) does not see. The toy task here keeps its last epoch's
weights (``restore_best=False``), so the comparison is of where training ended, not of a
best checkpoint that may predate the interruption; it skips the test-set report, which
has nothing to do with resuming.
"""

import csv
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))

EPOCHS = 4
STEPS = 14  # 420 training rows / batch 32
#: ``(epoch, batch)`` after which the in-process run is interrupted (None: never)
INTERRUPT_AT = None

#: the SIGKILLed run, in its own process: slow batches, so the kill lands inside an epoch
SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import test_resume_weights as t
from kerahep.training import train
train(t.config(sys.argv[1], "killed", "data.sleep=0.05"))
"""


class Interrupted(KeyboardInterrupt):
    """Stands for Ctrl-C in the middle of an epoch."""


def _interrupt_callback():
    import keras

    class InterruptAt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if INTERRUPT_AT == (self.epoch, batch):
                raise Interrupted(f"interrupted after batch {batch} of epoch {self.epoch}")

    return InterruptAt()


def _last_epoch_task():
    import toytask

    from kerahep.registry import _TASKS, register_task

    class ToyLastEpoch(toytask.ToyTask):
        """The toy task, ending with its last epoch's weights rather than the best one's."""

        name = "toy_last_epoch"

        def fit(self, ctx):
            model = ctx.build(lambda: self.build_model(ctx.config, ctx.data))
            ctx.fit(model, stage="main", restore_best=False, callbacks=[_interrupt_callback()])
            return self.result_type(models={"model": model})

        def evaluate(self, ctx, result, data):
            return {"n": int(sum(len(y) for _, y in data.test))}

    if ToyLastEpoch.name not in _TASKS:
        register_task(ToyLastEpoch)
    return _TASKS[ToyLastEpoch.name]


def config(output_dir, run_id, *overrides):
    """The toy run of these tests: adam (moments to lose), the one-cycle schedule, 4 epochs."""
    return _last_epoch_task().preset().override(
        [f"training.epochs={EPOCHS}", "training.optimizer=adam", f"run.run_id={run_id}",
         f"run.output_dir='{output_dir}'", "run.verbose=0", *overrides])


@pytest.fixture(scope="module")
def no_figures():
    """The history plot is drawn from history.csv after training: not drawn here (seconds each run)."""
    from kerahep import plotting

    with pytest.MonkeyPatch.context() as mp:
        def close(fig, path, dpi=110):
            plotting.plt.close(fig)
            return Path(path)

        mp.setattr(plotting, "save_figure", close)
        mp.setattr(plotting.style, "save_figure", close)
        yield


@pytest.fixture(scope="module")
def reference(tmp_path_factory, no_figures):
    """The uninterrupted run's directory."""
    from kerahep.training import train

    root = tmp_path_factory.mktemp("straight")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        return train(config(root / "results", "straight")).run_dir


def _epochs(path):
    with open(path, newline="") as f:
        return [int(r["epoch"]) for r in csv.DictReader(f)]


def _history(path):
    with open(path, newline="") as f:
        return {int(r["epoch"]): {k: float(v) for k, v in r.items()} for r in csv.DictReader(f)}


def _state(path):
    """``(weights, optimizer variables)`` of a saved ``model.keras``, in the model's order
    (names carry layer counters of the process that loads them, so only their kind is kept)."""
    import keras

    model = keras.saving.load_model(path, compile=True)
    return ([np.asarray(w) for w in model.get_weights()],
            [(v.name.rsplit("_", 1)[-1], np.asarray(v)) for v in model.optimizer.variables])


def assert_same_end(run, reference):
    """``run`` logged the same epochs and ended with the same weights and Adam state as ``reference``."""
    assert _epochs(run / "history.csv") == list(range(EPOCHS))  # every epoch exactly once
    ref, got = _history(reference / "history.csv"), _history(run / "history.csv")
    for epoch in range(EPOCHS):
        for key in ("loss", "val_loss", "learning_rate"):
            assert got[epoch][key] == pytest.approx(ref[epoch][key], rel=1e-5, abs=1e-7), (epoch, key)

    ref_w, ref_opt = _state(reference / "model.keras")
    got_w, got_opt = _state(run / "model.keras")
    assert len(got_w) == len(ref_w) == 7  # normalization mean, variance, count; two dense kernels and biases
    for a, b in zip(got_w, ref_w):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert [k for k, _ in got_opt] == [k for k, _ in ref_opt]
    assert {k for k, _ in ref_opt} == {"iteration", "momentum", "velocity"}  # Adam's step, m and v
    assert int(dict(got_opt)["iteration"]) == EPOCHS * STEPS
    for (name, a), (_, b) in zip(got_opt, ref_opt):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7, err_msg=name)


def test_interrupted_mid_epoch_then_resume_ends_with_uninterrupted_weights(tmp_path, reference, monkeypatch):
    from kerahep.training import train

    monkeypatch.chdir(tmp_path)
    results = tmp_path / "results"
    monkeypatch.setattr(sys.modules[__name__], "INTERRUPT_AT", (2, 5))
    with pytest.raises(Interrupted):
        train(config(results, "cut"))
    run = results / "toy_last_epoch" / "cut"
    assert _epochs(run / "history.csv") == [0, 1]
    assert not (run / "model.keras").exists()

    monkeypatch.setattr(sys.modules[__name__], "INTERRUPT_AT", None)
    train(config(results, "cut", "run.resume=true"))
    assert_same_end(run, reference)


def _kill_in_third_epoch(proc, hist):
    """SIGKILL ``proc`` a quarter of a second after its second epoch is logged."""
    deadline = time.time() + 240
    while proc.poll() is None and time.time() < deadline:
        if hist.exists() and len(_epochs(hist)) >= 2:
            time.sleep(0.25)
            proc.send_signal(signal.SIGKILL)
            return
        time.sleep(0.02)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_ends_with_uninterrupted_weights(tmp_path, reference):
    from kerahep.training import train

    results = tmp_path / "results"
    run = results / "toy_last_epoch" / "killed"
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT.format(tests=str(TESTS)), str(results)], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _kill_in_third_epoch(proc, run / "history.csv")
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=30)
    if proc.returncode != -signal.SIGKILL:
        pytest.fail(f"the run ended (exit {proc.returncode}) before it could be killed: {err[-2000:]}")
    assert 2 <= len(_epochs(run / "history.csv")) < EPOCHS
    assert not (run / "model.keras").exists()

    train(config(results, "killed", "run.resume=true"))
    assert_same_end(run, reference)
