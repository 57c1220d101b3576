"""Training scales out on existing engines: tf.distribute (mirrored over two logical CPU
devices) and Keras distribution on JAX (two devices in one process, and two processes
over loopback)."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
TESTS = Path(__file__).parent

MIRRORED = """
import sys
sys.path.insert(0, {tests!r})
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import toytask
from kerahep.training import train
t = toytask.register()
res = train(t.preset().override(["run.strategy=mirrored", "training.epochs=2"]))
print("REPLICAS", res.metrics["environment"]["replicas"], res.metrics["test"]["roc_auc"])
"""

def test_mirrored_strategy_over_two_logical_cpus(tmp_path):
    out = subprocess.run([sys.executable, "-c", MIRRORED.format(tests=str(TESTS))], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("REPLICAS")][-1].split()
    assert int(line[1]) == 2 and float(line[2]) > 0.7


def test_multi_worker_refused_clearly_until_keras_supports_it():
    # Keras 3 fit fails under MultiWorkerMirroredStrategy (keras-team/keras#20585); the
    # strategy is refused before any work with a message that says why and what to use.
    from kerahep.errors import ConfigError
    from kerahep.training import make_strategy

    with pytest.raises(ConfigError, match="20585"):
        make_strategy("multi_worker")


def test_jax_data_parallel_over_two_host_devices(tmp_path, backends):
    backends("jax")
    env = dict(os.environ, KERAS_BACKEND="jax", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    code = MIRRORED.format(tests=str(TESTS)).replace("run.strategy=mirrored", "run.strategy=data_parallel")
    code = "\n".join(ln for ln in code.splitlines() if "tf.config" not in ln and "cpu =" not in ln)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("REPLICAS")][-1].split()
    assert int(line[1]) == 2 and float(line[2]) > 0.7


def test_multi_process_runs_drop_a_partial_last_batch():
    import tensorflow as tf

    from kerahep.training import full_batches

    ds = tf.data.Dataset.from_tensor_slices((tf.zeros((100, 4)), tf.zeros(100))).batch(32)
    assert [int(x.shape[0]) for x, _ in full_batches(ds)] == [32, 32, 32]
    assert full_batches(None) is None


WORKER = """
import json, sys
sys.path.insert(0, {tests!r})
import numpy as np
import toytask
from kerahep.training import train

t = toytask.register()
build = toytask.ToyTask.build_model
initial = []

def build_and_keep_initial(self, config, data):
    model = build(self, config, data)
    initial.extend(np.array(w) for w in model.get_weights())
    return model

toytask.ToyTask.build_model = build_and_keep_initial
res = train(t.preset().override(["run.strategy=data_parallel", "training.epochs=2",
                                 "run.output_dir=" + {out!r}]))
final = [np.array(w) for w in res.models["model"].get_weights()]
np.savez(sys.argv[1], *initial, *final)
env = res.metrics["environment"]
print("RESULT", json.dumps({{"run_dir": str(res.run_dir), "replicas": env["replicas"],
                            "processes": env["processes"], "n": len(initial)}}))
"""


def test_jax_two_processes_over_loopback_end_with_identical_weights(tmp_path, backends):
    # The multi-host path of README "Scaling out" on one host: two processes, one CPU
    # device each, joined by KERAS_DISTRIBUTION_* over 127.0.0.1; gradients are all-reduced
    # through gloo. The toy's default 600 rows leave partial last batches (dropped).
    backends("jax")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "results"
    code = WORKER.format(tests=str(TESTS), out=str(out))
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("KERAS_DISTRIBUTION_") and k not in ("TF_CONFIG", "XLA_FLAGS")}
    procs, logs = [], []
    for i in range(2):
        scratch = tmp_path / f"scratch{i}"
        scratch.mkdir()
        env = dict(base, KERAS_BACKEND="jax", TMPDIR=str(scratch), TF_CPP_MIN_LOG_LEVEL="2",
                   KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{port}",
                   KERAS_DISTRIBUTION_NUM_PROCESSES="2", KERAS_DISTRIBUTION_PROCESS_ID=str(i))
        log = open(tmp_path / f"worker{i}.log", "w")  # noqa: SIM115 - closed below
        logs.append(log)
        procs.append(subprocess.Popen([sys.executable, "-c", code, str(tmp_path / f"w{i}.npz")],
                                      cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT))
    # A process that fails, or a collective that hangs, must fail the test, not hang it:
    # once one worker fails the other is killed, and both are killed at the deadline.
    deadline = time.monotonic() + 300
    try:
        while any(p.poll() is None for p in procs):
            if time.monotonic() > deadline or any(p.poll() not in (None, 0) for p in procs):
                break
            time.sleep(0.5)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        for log in logs:
            log.close()
    texts = [(tmp_path / f"worker{i}.log").read_text(errors="replace") for i in range(2)]
    for i, p in enumerate(procs):
        assert p.returncode == 0, f"worker {i} (rc {p.returncode}, killed when a worker failed " \
                                  f"or after 300 s):\n" + "\n".join(t[-3000:] for t in texts)
    results = [json.loads([ln for ln in t.splitlines() if ln.startswith("RESULT")][-1][len("RESULT"):])
               for t in texts]
    assert all(r["replicas"] == 2 and r["processes"] == 2 for r in results)

    import numpy as np

    n = results[0]["n"]
    w = [np.load(tmp_path / f"w{i}.npz") for i in range(2)]
    w = [[f[f"arr_{k}"] for k in range(len(f.files))] for f in w]
    initial, final = [a[:n] for a in w], [a[n:] for a in w]
    for a, b in zip(initial[0] + final[0], initial[1] + final[1]):
        np.testing.assert_array_equal(a, b)  # bit for bit: one all-reduced update on both
    kernels = [(a, b) for a, b in zip(initial[0], final[0]) if a.ndim == 2]
    assert len(kernels) == 2 and all(not np.allclose(a, b) for a, b in kernels)

    # only process 0 writes the run directory; process 1 writes to its scratch space
    runs = [d for d in (out / "toy").iterdir() if d.is_dir()]
    assert [str(d) for d in runs] == [results[0]["run_dir"]]
    assert Path(results[1]["run_dir"]).is_relative_to(tmp_path / "scratch1")
    assert json.loads((runs[0] / "metrics.json").read_text())["status"] == "complete"
