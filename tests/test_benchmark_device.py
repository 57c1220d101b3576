"""The prepared GPU check (kerahep.benchmarks.device, ``scripts.benchmark --task device``): it must
run as it is when a session is lent a GPU, so it is run here, on the CPU, with the mixed precision
a GPU would pick and tiny sizes."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("tensorflow")


def test_device_rows_train_both_models_with_mixed_precision_and_restore_the_policy(monkeypatch, tmp_path):
    import keras

    import kerahep.training.distribution as distribution
    from kerahep.benchmarks import device

    monkeypatch.setattr(distribution, "resolve_precision", lambda precision: "mixed_bfloat16")
    monkeypatch.setitem(device.SIZES, True, {"crops": 120, "maps": 60, "steps": 2, "repeats": 1})
    policies, real = [], device.step_rates

    def spy(models, data, steps, repeats, batch_size):
        policies.append({k: m.dtype_policy.name for k, m in models.items()})
        assert set(models) == set(data) and len(data) == 2
        return real(models, data, steps, repeats, batch_size)

    monkeypatch.setattr(device, "step_rates", spy)
    before = keras.config.dtype_policy().name
    rows = device.run(quick=True, workdir=tmp_path)
    assert keras.config.dtype_policy().name == before  # restored after the rows
    assert policies == [{"streamed": "mixed_bfloat16", "memory": "mixed_bfloat16"},
                        {"memmap": "mixed_bfloat16", "memory": "mixed_bfloat16"}]
    assert [r.name for r in rows] == ["electron_photon ResNet-15 training on the device, streamed vs in-memory",
                                      "hcal_dqm ViT training on the device, memmap vs in-memory"]
    for r in rows:
        assert r.target == ">= 0.95" and r.task == "device"
        assert math.isfinite(r.ratio) and r.baseline > 0 and r.candidate > 0
        assert device.device_name() in r.notes and "precision mixed_bfloat16" in r.notes


def test_the_device_benchmark_runs_only_when_named():
    from kerahep.commands import benchmark

    assert "device" not in benchmark.TASKS and "device" in benchmark.ON_REQUEST
    assert benchmark.parser().parse_args(["--task", "device"]).task == ["device"]
