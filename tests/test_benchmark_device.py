"""The prepared GPU check (kerahep.benchmarks.device, ``scripts.benchmark --task device``): it must
run as it is when a session is lent a GPU, so it is run here, on the CPU, with the mixed precision
a GPU would pick and tiny sizes."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("tensorflow")


EP, HCAL = "electron_photon ResNet-15", "hcal_dqm ViT"


@pytest.fixture
def tiny(monkeypatch):
    """Mixed bfloat16 (what a GPU of compute capability 8 picks) and the smallest sizes."""
    import kerahep.training.distribution as distribution
    from kerahep.benchmarks import device

    monkeypatch.setattr(distribution, "resolve_precision", lambda precision: "mixed_bfloat16")
    monkeypatch.setitem(device.SIZES, True, {"crops": 120, "maps": 60, "steps": 2, "repeats": 1})
    return device


def test_device_rows_train_both_models_with_mixed_precision_and_restore_the_policy(tiny, monkeypatch, tmp_path):
    import keras

    device = tiny
    calls, real = [], device.step_rates

    def spy(models, data, steps, repeats, batch_size, devices=None):
        calls.append(({k: m.dtype_policy.name for k, m in models.items()}, devices))
        assert set(models) == set(data)
        assert len({id(m) for m in models.values()}) == len(models)  # one model per side
        return real(models, data, steps, repeats, batch_size, devices)

    monkeypatch.setattr(device, "step_rates", spy)
    before = keras.config.dtype_policy().name
    rows = device.run(quick=True, workdir=tmp_path)
    assert keras.config.dtype_policy().name == before  # restored after the rows
    on = device.target_device()
    sides = {"streamed": "mixed_bfloat16", "memory": "mixed_bfloat16", "streamed_on_device": "mixed_bfloat16"}
    # the in-memory and the second streamed side wait on the device; the first is fed as fit feeds it
    assert calls == [(sides, {"memory": on, "streamed_on_device": on})] * 2
    assert [r.name for r in rows] == [
        f"{EP} training on the device, streamed vs in-memory",
        f"{EP} training, streamed prefetched to the device vs as model.fit feeds it",
        f"{HCAL} training on the device, streamed vs in-memory",
        f"{HCAL} training, streamed prefetched to the device vs as model.fit feeds it"]
    assert [r.target for r in rows] == [">= 0.95", "", ">= 0.95", ""]
    for r in rows:
        assert r.task == "device"
        assert math.isfinite(r.ratio) and r.baseline > 0 and r.candidate > 0
        assert device.device_name() in r.notes and "precision mixed_bfloat16" in r.notes
    assert f"in-memory batches prefetched to {on}" in rows[0].notes


def test_streamed_side_of_both_rows_is_the_same_measurement(tiny, monkeypatch, tmp_path):
    """Row 2's baseline is row 1's candidate: the streamed rate as fit feeds it, measured once."""
    device = tiny
    fake = {"streamed": 100.0, "memory": 200.0, "streamed_on_device": 150.0}
    monkeypatch.setattr(device, "step_rates", lambda *a, **k: dict(fake))
    rows = device.run(quick=True, workdir=tmp_path)
    for first, second in (rows[0:2], rows[2:4]):
        assert (first.baseline, first.candidate, first.ratio, first.passed) == (200.0, 100.0, 0.5, False)
        assert (second.baseline, second.candidate, second.ratio, second.passed) == (100.0, 150.0, 1.5, None)


def _tiny_sides(names=("streamed", "memory")):
    """A builder of one compiled toy model per side name, and a dataset per name in ``names``."""
    import keras
    import numpy as np
    import tensorflow as tf

    x, y = np.zeros((8, 3), "float32"), np.zeros((8, 1), "float32")
    data = {k: tf.data.Dataset.from_tensor_slices((x, y)).batch(4) for k in names}

    def models(names):
        built = {}
        for k in names:
            built[k] = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
            built[k].compile("sgd", "mse")
        return built

    return models, data


def test_a_failing_prefetch_to_device_falls_back_and_says_so(tiny, monkeypatch):
    """A GPU session is scarce: should prefetch_to_device fail there, the check still measures the
    streamed against the in-memory side (both fed as model.fit feeds them) and the notes name the error."""
    import tensorflow as tf

    device = tiny

    def broken(target, buffer_size=None):
        raise tf.errors.InvalidArgumentError(None, None, f"no kernel to copy to {target}\nsecond line")

    monkeypatch.setattr(tf.data.experimental, "prefetch_to_device", broken)
    models, data = _tiny_sides()
    rows = device.training_rows("toy", "rows/s", models, data, {"steps": 2, "repeats": 1}, 4, "cpu; notes")
    assert [r.name for r in rows] == ["toy training on the device, streamed vs in-memory"]
    (r,) = rows
    assert r.target == ">= 0.95" and math.isfinite(r.ratio) and r.baseline > 0 and r.candidate > 0
    assert r.notes.startswith("cpu; notes; in-memory batches fed as model.fit feeds them")
    assert "InvalidArgumentError: no kernel to copy to" in r.notes and "second line" not in r.notes


def test_step_rates_prefetches_only_the_named_sides_to_the_device(monkeypatch):
    import tensorflow as tf

    from kerahep import benchmarks

    applied, real = [], tf.data.experimental.prefetch_to_device

    def spy(target, buffer_size=None):
        applied.append(target)
        return real(target, buffer_size)

    monkeypatch.setattr(tf.data.experimental, "prefetch_to_device", spy)
    build, data = _tiny_sides(("host", "device"))
    models = build(data)
    rates = benchmarks.step_rates(models, data, steps=3, repeats=2, batch_size=4, devices={"device": "/CPU:0"})
    assert set(rates) == {"host", "device"} and all(v > 0 for v in rates.values())
    assert applied == ["/CPU:0"] * 3  # the warm-up and both timings of the named side only
    for m in models.values():
        assert int(m.optimizer.iterations) == 2 + 2 * 3


def test_the_device_benchmark_runs_only_when_named():
    from kerahep.commands import benchmark

    assert "device" not in benchmark.TASKS and "device" in benchmark.ON_REQUEST
    assert benchmark.parser().parse_args(["--task", "device"]).task == ["device"]
