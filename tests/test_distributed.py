"""Training scales out on existing engines: tf.distribute (mirrored over two logical CPU
devices, multi-worker over loopback) and Keras distribution on JAX."""

import importlib.util
import os
import subprocess
import sys
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


def test_jax_data_parallel_over_two_host_devices(tmp_path):
    if importlib.util.find_spec("jax") is None:
        if os.environ.get("KERAHEP_REQUIRE_BACKENDS") == "1":
            pytest.fail("jax is not installed and KERAHEP_REQUIRE_BACKENDS=1")
        pytest.skip("jax is not installed (pip install -e '.[jax]')")
    env = dict(os.environ, KERAS_BACKEND="jax", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    code = MIRRORED.format(tests=str(TESTS)).replace("run.strategy=mirrored", "run.strategy=data_parallel")
    code = "\n".join(ln for ln in code.splitlines() if "tf.config" not in ln and "cpu =" not in ln)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("REPLICAS")][-1].split()
    assert int(line[1]) == 2 and float(line[2]) > 0.7
