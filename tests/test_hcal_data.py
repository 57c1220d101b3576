"""hcal_dqm data: the synthetic twin, the memory-mapped reader, block splits, bad input."""

import json

import numpy as np
import pytest

from kerahep.data import hcal
from kerahep.data.synthetic.hcal import ensure_twin, load_anomalies, load_latents, make_twin
from kerahep.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    out = tmp_path_factory.mktemp("hcal_twin")
    return make_twin(out, n_lumisections=120, separation=0.15, anomaly_fraction=0.1, seed=3), out


def _write(path, arr):
    np.save(path, arr)
    return path


def _coded_runs(tmp_path, sizes=(50, 40), shape=(4, 6)):
    """Runs whose cell (0, 0) holds 1000 * run + lumisection, so every map names itself."""
    paths = []
    for r, n in enumerate(sizes):
        a = np.ones((n, *shape), np.float64)
        a[:, 0, 0] = 1000 * r + np.arange(n)
        paths.append(_write(tmp_path / f"Run{100 + r}_Dataset.npy", a))
    return paths


# ----------------------------------------------------------------------------- twin
def test_twin_writes_the_real_format_and_physics(twin):
    info, out = twin
    assert info["files"] == ["Run355456_Dataset.npy", "Run357479_Dataset.npy"]
    a = np.load(out / info["files"][0], mmap_mode="r")
    b = np.load(out / info["files"][1], mmap_mode="r")
    assert a.dtype == np.float64 and a.shape == (120, 64, 72) and a.flags["C_CONTIGUOUS"]
    assert np.array_equal(a, np.round(a))  # hit counts
    # about 80% zeros, the same zero pattern in both runs, active bands at iEta 0-12 and 50-60
    assert 0.74 < info["stats"]["Run355456"]["zero_fraction"] < 0.84
    assert np.array_equal(a.mean(axis=0) > 0, b.mean(axis=0) > 0)
    rows = np.flatnonzero(a.mean(axis=(0, 2)) > 0)
    assert set(rows) <= set(range(0, 13)) | set(range(50, 61)) and {0, 12, 50, 60} <= set(rows)
    # the runs differ in intensity by the separation, the oracle knows it
    ratio = info["stats"]["Run357479"]["mean"] / info["stats"]["Run355456"]["mean"]
    assert abs(ratio - 1.15) < 0.02
    assert info["oracle_auc"] > 0.99
    meta = json.loads((out / "twin.json").read_text())
    assert meta["params"]["separation"] == 0.15 and meta["oracle_auc"] == info["oracle_auc"]
    lat = load_latents(out)
    assert lat["Run355456"].shape == (120,)


def test_twin_anomaly_truth_matches_the_maps(twin):
    info, out = twin
    truth = load_anomalies(out)
    assert len(truth["Run355456"]) == 12 and len(truth["Run357479"]) == 12
    a = np.load(out / info["files"][0], mmap_mode="r")
    reference = a.mean(axis=0)
    for ls, rec in truth["Run355456"].items():
        (r0, r1), (c0, c1) = rec["ieta"], rec["iphi"]
        region = a[ls, r0:r1, c0:c1]
        active = reference[r0:r1, c0:c1] > 0
        assert active.any()
        if rec["kind"] == "dead":
            assert (region == 0).all()
        else:  # hot: at least 3 times the usual occupancy
            assert (region[active] > 2.0 * reference[r0:r1, c0:c1][active]).all()


def test_small_separation_is_a_hard_regime(tmp_path):
    info = make_twin(tmp_path, n_lumisections=400, separation=0.02, anomaly_fraction=0.0, seed=1)
    assert 0.6 < info["oracle_auc"] < 0.9


def test_ensure_twin_reuses_and_regenerates(tmp_path):
    first = ensure_twin(tmp_path, n_lumisections=20, anomaly_fraction=0.0, seed=0)
    f = tmp_path / first["files"][0]
    stamp = f.stat().st_mtime_ns
    ensure_twin(tmp_path, n_lumisections=20, anomaly_fraction=0.0, seed=0)
    assert f.stat().st_mtime_ns == stamp  # same parameters: reused
    again = ensure_twin(tmp_path, n_lumisections=30, anomaly_fraction=0.0, seed=0)
    assert np.load(f, mmap_mode="r").shape[0] == 30 and again["params"]["n_lumisections"] == 30


# --------------------------------------------------------------------------- splits
def test_block_split_has_no_overlap_and_keeps_blocks_contiguous():
    sizes = [1000, 600]
    parts = hcal.split_segments(sizes, (0.7, 0.15, 0.15), n_blocks=10, seed=5)
    for r, n in enumerate(sizes):
        sets = [set(np.concatenate([np.arange(a, b) for rr, a, b in p if rr == r])) for p in parts]
        assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
        assert set.union(*sets) == set(range(n))
        # every range is a whole number of blocks (block edges at multiples of n / 10)
        edges = set(np.linspace(0, n, 11).astype(int).tolist())
        for p in parts:
            for rr, a, b in p:
                if rr == r:
                    assert a in edges and b in edges
    # a different seed moves blocks, the same seed does not
    assert hcal.split_segments(sizes, (0.7, 0.15, 0.15), 10, seed=5) == parts
    assert hcal.split_segments(sizes, (0.7, 0.15, 0.15), 10, seed=6) != parts


def test_two_fraction_split_has_empty_validation():
    tr, va, te = hcal.split_segments([100, 100], (0.8, 0.2), n_blocks=10)
    assert va == [] and hcal.count(tr) == 160 and hcal.count(te) == 40


# --------------------------------------------------------------------------- reader
def test_reader_yields_every_lumisection_once_in_order_and_shuffled(tmp_path):
    runs = hcal.open_runs(_coded_runs(tmp_path))
    assert runs.names == ["Run100", "Run101"] and runs.shape == (4, 6)
    assert isinstance(runs.runs[0].array, np.memmap)
    tr, va, te = hcal.split_segments(runs.sizes, (0.6, 0.2, 0.2), n_blocks=5, seed=0)
    ds = hcal.make_dataset(runs, te, batch_size=7, chunk_size=4)
    codes, labels = [], []
    for x, y in ds:
        codes.append(x.numpy()[:, 0, 0])
        labels.append(y.numpy())
    codes, labels = np.concatenate(codes), np.concatenate(labels)
    r, ls = hcal.split_order(te)
    np.testing.assert_array_equal(codes, 1000 * r + ls)  # file order: scores line up with lumisections
    np.testing.assert_array_equal(labels, r)  # one label per run
    train = hcal.make_dataset(runs, tr, batch_size=8, training=True, chunk_size=4, seed=1)
    epoch = [np.concatenate([x.numpy()[:, 0, 0] for x, _ in train]) for _ in range(2)]
    r, ls = hcal.split_order(tr)
    assert sorted(epoch[0]) == sorted(1000 * r + ls)  # each training map once per epoch
    assert not np.array_equal(epoch[0], epoch[1])  # reshuffled every epoch
    assert not np.array_equal(epoch[0], np.sort(epoch[0]))


def test_more_than_two_runs_give_one_hot_labels(tmp_path):
    runs = hcal.open_runs(_coded_runs(tmp_path, sizes=(20, 20, 20)))
    ds = hcal.make_dataset(runs, [(2, 0, 5), (0, 0, 3)], batch_size=16)
    x, y = next(iter(ds))
    np.testing.assert_array_equal(y.numpy(), np.eye(3)[[2] * 5 + [0] * 3])


def test_scan_collects_statistics(tmp_path):
    a = np.zeros((10, 3, 4))
    a[:, 1, 2] = np.arange(10)
    runs = hcal.open_runs([_write(tmp_path / "Run1_Dataset.npy", a), _write(tmp_path / "Run2_Dataset.npy", a + 1)])
    r = runs.runs[0]
    assert r.max == 9 and r.mean_map[1, 2] == 4.5 and abs(r.zero_fraction - (1 - 9 / 120)) < 1e-12
    np.testing.assert_array_equal(r.totals, np.arange(10))
    assert hcal.find_bands(a.mean(axis=0)) == [(1, 2)]


@pytest.mark.parametrize("case", ["missing", "two_d", "npz", "text", "strings", "shape_mismatch", "negative",
                                  "nan", "empty"])
def test_bad_input_raises_clear_data_error(tmp_path, case):
    good = _write(tmp_path / "Run1_Dataset.npy", np.ones((5, 4, 6)))
    bad = tmp_path / "Run2_Dataset.npy"
    expect = {
        "missing": "no such file", "two_d": "2-D", "npz": "npz", "text": "cannot memory-map",
        "strings": "dtype", "shape_mismatch": "maps of shape (4, 6)", "negative": "non-negative",
        "nan": "finite", "empty": "empty",
    }[case]
    if case == "two_d":
        np.save(bad, np.ones((5, 4)))
    elif case == "npz":
        bad = tmp_path / "Run2_Dataset.npz"
        np.savez(bad, x=np.ones((5, 4, 6)))
    elif case == "text":
        bad.write_text("not an array")
    elif case == "strings":
        np.save(bad, np.full((5, 4, 6), "a"))
    elif case == "shape_mismatch":
        np.save(bad, np.ones((5, 4, 7)))
    elif case == "negative":
        arr = np.ones((5, 4, 6))
        arr[3, 2, 1] = -2
        np.save(bad, arr)
    elif case == "nan":
        arr = np.ones((5, 4, 6))
        arr[4, 0, 5] = np.nan
        np.save(bad, arr)
    elif case == "empty":
        np.save(bad, np.ones((0, 4, 6)))
    with pytest.raises(DataError) as err:
        hcal.open_runs([good, bad])
    msg = str(err.value)
    assert str(bad) in msg and expect in msg
    if case == "negative":
        assert "lumisection 3, iEta index 2, iPhi index 1" in msg
    if case == "nan":
        assert "lumisection 4" in msg


def test_too_few_or_repeated_runs_are_config_errors(tmp_path):
    good = _write(tmp_path / "Run1_Dataset.npy", np.ones((5, 4, 6)))
    with pytest.raises(ConfigError, match="at least 2 run file"):
        hcal.open_runs([good])
    with pytest.raises(ConfigError, match="given twice"):
        hcal.open_runs([good, good])
    assert hcal.open_runs([good], min_runs=1).n_classes == 1


def test_band_features_average_active_cells_per_band():
    x = np.zeros((2, 6, 4))
    x[:, 0:2, :2] = [[[2.0]], [[4.0]]]
    x[:, 4, 1] = [10.0, 20.0]
    active = np.zeros((6, 4), bool)
    active[0:2, :2] = True
    active[4, 1] = True
    np.testing.assert_allclose(hcal.band_features(x, [(0, 2), (4, 5)], active), [[2, 10], [4, 20]])


@pytest.mark.skipif(not hasattr(__import__("mmap"), "MADV_DONTNEED"), reason="needs madvise(MADV_DONTNEED)")
def test_streaming_a_run_keeps_resident_memory_flat(tmp_path):
    import psutil

    path = tmp_path / "Run1_Dataset.npy"
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(1600, 64, 72))  # 59 MB
    arr[:] = 1.0
    arr.flush()
    del arr
    runs = hcal.open_runs([path, _write(tmp_path / "Run2_Dataset.npy", np.ones((4, 64, 72)))], validate=False)
    proc = psutil.Process()
    before = proc.memory_info().rss
    total = 0.0
    for x, _, _ in hcal.iterate(runs, [(0, 0, 1600)], chunk_size=100):
        total += float(x.sum())
    grown = (proc.memory_info().rss - before) / 2 ** 20
    assert total == 1600 * 64 * 72
    assert grown < 20, f"resident memory grew by {grown:.0f} MB while streaming a 59 MB run"


def test_twins_with_different_seeds_are_samples_of_one_detector(tmp_path):
    a = make_twin(tmp_path / "a", n_lumisections=40, anomaly_fraction=0.0, seed=1)
    b = make_twin(tmp_path / "b", n_lumisections=40, anomaly_fraction=0.0, seed=2)
    xa = np.load(a["paths"][0], mmap_mode="r")
    xb = np.load(b["paths"][0], mmap_mode="r")
    assert not np.array_equal(xa, xb)  # different lumisections
    ma, mb = xa.mean(axis=0), xb.mean(axis=0)
    assert np.array_equal(ma > 0, mb > 0)  # same zero pattern and dead channels
    active = ma > 0
    ratio = ma[active] / mb[active]
    assert abs(np.median(ratio) - 1) < 0.03 and np.std(ratio) < 0.05  # same channel gains
