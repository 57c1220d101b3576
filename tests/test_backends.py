"""Every model builder on TensorFlow, JAX and PyTorch (each in its own process), and a
.keras file trained on one backend scoring the same on the others."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def _check(backend, save, compare=None):
    env = dict(os.environ, KERAS_BACKEND=backend, CUDA_VISIBLE_DEVICES="")
    cmd = [sys.executable, "-m", "kerahep.backend_check", "--save", str(save), "--json", str(save / "report.json")]
    if compare:
        cmd += ["--compare", str(compare)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    report = json.loads((save / "report.json").read_text()) if (save / "report.json").exists() else None
    assert report is not None, proc.stderr[-3000:]
    assert report["backend"] == backend
    assert not report["failures"], json.dumps(report["failures"], indent=1)[:6000]
    assert proc.returncode == 0
    return report


@pytest.fixture(scope="module")
def tensorflow_models(tmp_path_factory):
    save = tmp_path_factory.mktemp("tensorflow")
    return save, _check("tensorflow", save)


def test_tensorflow_builds_trains_and_round_trips_every_model(tensorflow_models):
    from kerahep.registry import get_task, list_tasks

    _, report = tensorflow_models
    expected = {f"{t}.{e}" for t in list_tasks() for e in get_task(t).examples()}
    assert expected and set(report["results"]) == expected


@pytest.mark.parametrize("backend,module", [("jax", "jax"), ("torch", "torch")])
def test_other_backends_and_cross_backend_scores(backend, module, tensorflow_models, tmp_path, backends):
    backends(module)
    src, tf_report = tensorflow_models
    report = _check(backend, tmp_path, compare=src)
    assert set(report["results"]) == set(tf_report["results"])
    for res in report["results"].values():
        assert res["cross_backend_max_abs_diff"] <= 1e-4
