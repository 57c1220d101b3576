"""Every kerahep tf.data pipeline runs with tf.data's autotuning off (kerahep.data.batches.no_autotune):
with it on, an epoch's iterator waits on the tuner after its last batch in some epochs (about as
long as half the epoch or more; measured in scripts.benchmark's reader rows, not here)."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from kerahep.data import batches  # noqa: E402


def _off(ds) -> bool:
    return ds.options().autotune.enabled is False


def _count(ds) -> int:
    return sum(int(tf.nest.flatten(b)[0].shape[0]) for b in ds)


def test_a_stream_dataset_has_autotuning_off_also_under_what_is_built_on_it():
    data = np.arange(50)
    stream = batches.BatchStream([batches.Chunk(0, s, s + 10) for s in range(0, 50, 10)],
                                 lambda c: (data[c.start:c.stop],), batch_size=8, shuffle=True, seed=0, window_rows=20)
    for prefetch in (None, 0, 3):
        ds = stream.dataset(tf.TensorSpec((None,), tf.int64), prefetch=prefetch)
        assert _off(ds)
        assert _count(ds) == 50
    built = ds.map(lambda x: x * 2, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    assert _off(built)
    assert sorted(np.concatenate([b.numpy() for b in built]).tolist()) == list(range(0, 100, 2))


def test_every_streamed_reader_has_autotuning_off(tmp_path):
    from kerahep.data import hcal, jets
    from kerahep.data.calo import CaloReader
    from kerahep.data.higgs import higgs_dataset
    from kerahep.data.synthetic import electron_photon as twin
    from kerahep.data.synthetic.jets import write_jet_file

    twin.generate(tmp_path / "calo", 40, seed=1, chunk_rows=8)
    calo = CaloReader([tmp_path / "calo" / f for f in twin.FILES], split=(0.5, 0.25, 0.25), seed=0)
    for mix in (0.0, 0.2):
        ds = calo.dataset("train", 8, shuffle=True, mixup_alpha=mix)
        assert _off(ds) and _count(ds) == calo.size("train")

    paths = []
    for r in range(2):
        paths.append(tmp_path / f"run{r}.npy")
        np.save(paths[-1], np.random.default_rng(r).poisson(3.0, (12, 64, 72)).astype(np.float64))
    runs = hcal.open_runs(paths, validate=False)
    ds = hcal.make_dataset(runs, [(0, 0, 12), (1, 0, 12)], 5, training=True, seed=0)
    assert _off(ds) and _count(ds) == 24

    jet_file = write_jet_file(tmp_path / "jets.h5", 6, seed=0)
    ds = jets.JetStream([(jet_file, None)]).dataset(2, shuffle=True, seed=0, shuffle_buffer=4, with_targets=False)
    assert _off(ds) and _count(ds) == 6

    csv = tmp_path / "HIGGS.csv"
    rows = np.random.default_rng(0).random((30, 29))
    rows[:, 0] = np.arange(30) % 2
    csv.write_text("\n".join(",".join(f"{v:.6e}" for v in r) for r in rows) + "\n")
    for window in (0, 16):
        ds = higgs_dataset(csv, batch_size=7, shuffle_buffer=window, seed=0)
        assert _off(ds) and _count(ds) == 30


def test_the_in_memory_task_pipelines_have_autotuning_off():
    from kerahep.tasks.dy_electron.data import batches as dy_batches
    from kerahep.tasks.higgs_mae.data import array_dataset

    x, y = np.random.default_rng(0).random((20, 3)).astype(np.float32), np.arange(20) % 2
    for shuffle in (False, True):
        ds = dy_batches(x, y, ["a", "b", "c"], np.arange(20), 6, seed=0, shuffle=shuffle, w=np.ones(20))
        assert _off(ds) and _count(ds) == 20
        ds = array_dataset(x, y, 6, shuffle=shuffle)
        assert _off(ds) and _count(ds) == 20
