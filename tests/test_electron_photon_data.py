"""electron_photon data: the synthetic twin's layout and physics, the chunked reader, splits, bad input."""

from __future__ import annotations

import hashlib

import h5py
import numpy as np
import pytest

from kerahep.data import calo
from kerahep.data.calo import CaloReader, file_role, inspect_file
from kerahep.data.synthetic import electron_photon as twin
from kerahep.errors import DataError

N = 90          # crops per class
ROWS = 16       # HDF5 chunk rows: 90 = 5 x 16 + 10, so the last chunk is partial


@pytest.fixture(scope="module")
def twin_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ep_twin")
    twin.generate(folder, N, seed=5, chunk_rows=ROWS)
    return folder


def twin_paths(folder):
    return [folder / f for f in twin.FILES]


def fingerprints(x) -> list[str]:
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    return [hashlib.sha1(row.tobytes()).hexdigest() for row in x]


def write_crops(path, X, y, chunk_rows=8, **kw):
    with h5py.File(path, "w") as f:
        f.create_dataset("X", data=X, chunks=(min(chunk_rows, len(X)),) + X.shape[1:], compression="gzip", **kw)
        f.create_dataset("y", data=y)
    return path


# ------------------------------------------------------------------ twin
def test_twin_writes_the_real_layout(twin_dir):
    info = twin.generate(twin_dir, N, seed=5, chunk_rows=ROWS)
    for name, label in zip(twin.FILES, (0.0, 1.0)):
        with h5py.File(twin_dir / name, "r") as f:
            assert sorted(f.keys()) == ["X", "y"]
            X, y = f["X"], f["y"]
            assert X.shape == (N, 32, 32, 2) and X.dtype == np.float32
            assert y.shape == (N,) and y.dtype == np.float32
            assert X.compression == "gzip" and y.compression == "gzip"
            assert X.chunks == (ROWS, 32, 32, 2)  # chunked along the sample axis only
            assert set(np.unique(y[:]).tolist()) == {label}
    assert info["parameters"]["n_per_class"] == N and info["files"] == list(twin.FILES)
    assert 0.7 < info["oracle_auc"] < 0.95
    with np.load(twin_dir / "latents.npz") as z:
        assert z["photon"].shape == z["electron"].shape == (N, len(twin.LATENTS))
        assert z["columns"].tolist() == list(twin.LATENTS)
    feats = info["feature_aucs"]
    for key in ("width_wide_auc", "max_over_sum_auc", "hit_pixels_auc"):  # recorded in twin.json
        assert feats[key] == pytest.approx(max(feats[f"{key}_electrons_positive"], 1 - feats[f"{key}_electrons_positive"]))
    assert set(info["latent_aucs"]) == set(twin.LATENTS)


def test_twin_showers_follow_the_design_facts():
    rng = np.random.default_rng(0)
    n = 1500
    g = twin.shower_stats(twin.make_crops(rng, twin.sample_latent(rng, n, 0)))
    e = twin.shower_stats(twin.make_crops(rng, twin.sample_latent(rng, n, 1)))
    for s in (g, e):
        assert 0.93 < s["zero_fraction"] < 0.97          # about 95% of pixels empty
        assert abs(s["energy_sum"] - 1.24) < 0.06         # energy sum about 1.24 for both
        assert s["peak_at_centre"] > 0.95                 # shower centred on pixel (16, 16)
        assert -2.5 <= s["time_min"] and s["time_max"] <= 2.3
    assert abs(g["energy_sum"] - e["energy_sum"]) < 0.03
    assert g["max_pixel"] > e["max_pixel"] + 0.03       # photons peakier (0.72 against 0.64)
    assert e["width_phi"] > g["width_phi"] + 0.07       # electrons wider along phi (real: 1.27 against 1.05)
    assert abs(e["width_eta"] - g["width_eta"]) < 0.1   # little difference along eta (0.77 against 0.73)
    assert e["hit_pixels"] > g["hit_pixels"] + 1        # more hit pixels (real: 51 against 45)


def test_time_is_recorded_on_hit_pixels_only():
    rng = np.random.default_rng(1)
    X = twin.make_crops(rng, twin.sample_latent(rng, 200, 1))
    assert (X[..., 0] >= 0).all()
    assert not (X[..., 1][X[..., 0] == 0]).any()


def test_each_shower_shape_feature_separates_weakly_and_the_latents_together_strongly():
    """Issue 19: on real crops the phi width, max/sum and hit count each separate with AUC
    about 0.62; the twin's do too (0.55-0.70 here), every latent alone separates less than
    all four together, and the oracle on the latents bounds each feature."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(2)
    lat = np.concatenate([twin.sample_latent(rng, 1500, 0), twin.sample_latent(rng, 1500, 1)])
    y = np.repeat([0, 1], 1500)
    X = twin.make_crops(rng, lat)
    sep = lambda s: max(roc_auc_score(y, s), 1 - roc_auc_score(y, s))  # noqa: E731
    features = {"phi width": twin.shower_widths(X)[:, 1], "max/sum": twin.max_over_sum(X),
                "hit pixels": twin.hit_pixels(X)}
    aucs = {k: sep(v) for k, v in features.items()}
    assert all(0.55 < a < 0.70 for a in aucs.values()), aucs
    oracle = roc_auc_score(y, twin.latent_likelihood_ratio(lat))
    single = [roc_auc_score(y, r) for r in twin.latent_log_ratios(lat).T]
    assert all(0.55 < a < oracle - 0.05 for a in single), (single, oracle)
    assert oracle > max(aucs.values()) + 0.15 and oracle > 0.8


def test_oracle_refuses_latents_of_an_older_twin(tmp_path):
    np.savez(tmp_path / "latents.npz", photon=np.zeros(5, np.float32), electron=np.ones(5, np.float32))
    with pytest.raises(DataError, match="latents.npz.*regenerate"):
        twin.oracle_auc(tmp_path)


def test_twin_is_regenerated_only_when_its_parameters_change(tmp_path):
    twin.generate(tmp_path, 20, seed=1, chunk_rows=8)
    stamp = (tmp_path / twin.PHOTON_FILE).stat().st_mtime_ns
    assert twin.twin_is_current(tmp_path, 20, 1, 8)
    twin.generate(tmp_path, 20, seed=1, chunk_rows=8)
    assert (tmp_path / twin.PHOTON_FILE).stat().st_mtime_ns == stamp
    assert not twin.twin_is_current(tmp_path, 30, 1, 8)
    twin.generate(tmp_path, 30, seed=1, chunk_rows=8)
    with h5py.File(tmp_path / twin.PHOTON_FILE, "r") as f:
        assert f["X"].shape[0] == 30


def test_oracle_on_a_subset_uses_the_crops_of_that_subset(twin_dir):
    full = twin.oracle_auc(twin_dir)
    sub = twin.oracle_auc(twin_dir, np.arange(20), np.arange(20))
    assert full == pytest.approx(twin.generate(twin_dir, N, seed=5, chunk_rows=ROWS)["oracle_auc"])
    assert sub != pytest.approx(full)


# ----------------------------------------------------------------- splits
def test_split_is_disjoint_stratified_and_complete(twin_dir):
    r = CaloReader(twin_paths(twin_dir), seed=3)
    parts = [set(r.indices(s).tolist()) for s in ("train", "val", "test")]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert set().union(*parts) == set(range(2 * N))
    for s, frac in zip(("train", "val", "test"), (0.7, 0.15, 0.15)):
        counts = r.class_counts(s)
        assert abs(counts["photon"] - counts["electron"]) <= 1
        assert abs(r.size(s) - frac * 2 * N) <= 2 + 1e-9
    r2 = CaloReader(twin_paths(twin_dir), split=(0.8, 0.2), seed=3)
    assert r2.split_names == ("train", "test") and r2.size("train") == 144 and r2.size("test") == 36
    assert r2.size("val") == 0


def test_split_depends_on_the_seed_only(twin_dir):
    a = CaloReader(twin_paths(twin_dir), seed=3).indices("test")
    b = CaloReader(twin_paths(twin_dir), seed=3).indices("test")
    c = CaloReader(twin_paths(twin_dir), seed=4).indices("test")
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


# -------------------------------------------------------------- streaming
def _direct(folder, reader, split):
    """The split's crops and labels read straight from the files with h5py."""
    xs, ys = [], []
    for f, rows in zip(reader.files, reader.rows_by_file(split)):
        with h5py.File(f.path, "r") as h:
            xs.append(h["X"][:][rows])
            ys.append(h["y"][:][rows])
    return np.concatenate(xs), np.concatenate(ys)


@pytest.mark.parametrize("cache", [False, True])
def test_every_training_crop_once_per_epoch_with_its_label(twin_dir, cache):
    r = CaloReader(twin_paths(twin_dir), seed=3)
    X, y = _direct(twin_dir, r, "train")
    want = sorted(zip(fingerprints(X), y.tolist()))
    ds = r.dataset("train", batch_size=20, shuffle=True, cache=cache, shuffle_buffer=30)
    assert int(ds.cardinality()) == -(-len(X) // 20)
    orders = []
    for _ in range(2):
        got_x, got_y = [], []
        for xb, yb in ds:
            got_x.append(xb.numpy())
            got_y.append(yb.numpy())
        fp = fingerprints(np.concatenate(got_x))
        assert sorted(zip(fp, np.concatenate(got_y).tolist())) == want  # nothing lost, nothing repeated
        orders.append(fp)
    assert orders[0] != orders[1]  # a new order each epoch


@pytest.mark.parametrize("block_rows", [None, 2 * ROWS])
def test_reads_are_whole_chunks_never_single_crops(twin_dir, monkeypatch, block_rows):
    reads = []
    original = CaloReader.read_block

    def spy(reader, start, stop):
        reads.append((start, stop))
        return original(reader, start, stop)

    monkeypatch.setattr(CaloReader, "read_block", staticmethod(spy))
    h5_reads = []
    getitem = h5py.Dataset.__getitem__

    def h5_spy(self, key):
        if self.name == "/X":
            h5_reads.append(key)
        return getitem(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", h5_spy)
    r = CaloReader(twin_paths(twin_dir), seed=3, block_rows=block_rows)
    h5_reads.clear()  # inspection reads the first chunk of each file through h5py
    X, _ = r.read("test")
    assert len(X) == r.size("test")
    rows = block_rows or ROWS
    for start, stop in reads:
        assert start % rows == 0 and (stop - start == rows or stop == N)
    assert len(reads) == len(r.plan("test"))  # one read per block holding test crops
    assert h5_reads == []  # whole gzip chunks are inflated directly (read_direct_chunk), not through h5py


def test_plan_visits_each_chunk_once_and_interleaves_the_classes(twin_dir):
    r = CaloReader(twin_paths(twin_dir), seed=3)
    plan = r.plan("train", epoch=0, shuffle=True)
    keys = [(fi, c) for fi, c, _ in plan]
    assert len(keys) == len(set(keys)) == 2 * (-(-N // ROWS))
    assert sum(len(rows) for *_, rows in plan) == r.size("train")
    for _, c, rows in plan:
        assert (rows // ROWS == c).all()
    # interleaved: at every point both files have delivered about the same fraction of their rows
    totals = [sum(len(rows) for fi, _, rows in plan if fi == k) for k in (0, 1)]
    done = [0, 0]
    for fi, _, rows in plan:
        done[fi] += len(rows)
        assert abs(done[0] / totals[0] - done[1] / totals[1]) <= (ROWS + 1) / min(totals)
    assert [c for _, c, _ in r.plan("train", epoch=1, shuffle=True)] != [c for _, c, _ in plan]


def test_evaluation_stream_keeps_the_classes_interleaved(twin_dir):
    # the report keeps the first test crops for its t-SNE and per-class maps: both classes
    # must be there from the start of an unshuffled stream, not all photons first
    r = CaloReader(twin_paths(twin_dir), seed=3)
    first = [set(yb.numpy().tolist()) for _, yb in r.dataset("test", batch_size=6, shuffle=False).take(2)]
    assert first == [{0.0, 1.0}, {0.0, 1.0}]


def test_read_with_blocks_crossing_chunk_boundaries(twin_dir):
    r = CaloReader(twin_paths(twin_dir), seed=3, block_rows=7)
    X, y = r.read("val")
    Xd, yd = _direct(twin_dir, r, "val")
    np.testing.assert_array_equal(X, Xd)
    np.testing.assert_array_equal(y, yd)


def test_max_events_caps_each_file(twin_dir):
    r = CaloReader(twin_paths(twin_dir), seed=3, max_events=30)
    assert len(r.labels) == 60 and r.class_counts("train")["photon"] == r.class_counts("train")["electron"]


def test_one_file_with_both_classes(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.random((40, 32, 32, 2)).astype(np.float32)
    y = np.tile([0.0, 1.0], 20).astype(np.float32)
    path = write_crops(tmp_path / "crops.h5", X, y)
    assert file_role(path) is None
    r = CaloReader([path], split=(0.5, 0.5), seed=0)
    assert r.class_counts("train") == {"photon": 10, "electron": 10}
    Xr, yr = r.read("test")
    assert sorted(zip(fingerprints(Xr), yr)) == sorted(zip(fingerprints(X[r.indices("test")]), y[r.indices("test")]))


def test_mixup_mixes_images_and_labels_alike(twin_dir):
    r = CaloReader(twin_paths(twin_dir), seed=3)
    xb, yb = next(iter(r.dataset("train", batch_size=32, shuffle=True, mixup_alpha=0.4)))
    yb = yb.numpy()
    assert yb.shape == (32,) and ((yb > 0) & (yb < 1)).any()  # soft labels
    assert ((yb >= 0) & (yb <= 1)).all()


# ------------------------------------------------------------------ errors
def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(DataError, match="no such file") as e:
        CaloReader([tmp_path / "SinglePhotonPt50_IMGCROPS_n249k_RHv1.hdf5"])
    assert "SinglePhotonPt50" in str(e.value)


def test_not_hdf5(tmp_path):
    p = tmp_path / "photon.h5"
    p.write_text("not hdf5")
    with pytest.raises(DataError, match="not HDF5"):
        inspect_file(p)


def test_missing_X(tmp_path):
    p = tmp_path / "photon.h5"
    with h5py.File(p, "w") as f:
        f["images"] = np.zeros((4, 32, 32, 2), np.float32)
        f["y"] = np.zeros(4, np.float32)
    with pytest.raises(DataError, match="no dataset 'X'.*images"):
        inspect_file(p)


def test_wrong_crop_shape(tmp_path):
    p = write_crops(tmp_path / "photon.h5", np.zeros((4, 32, 32, 3), np.float32), np.zeros(4, np.float32))
    with pytest.raises(DataError, match=r"\(N, 32, 32, 2\).*\(4, 32, 32, 3\)"):
        inspect_file(p)


def test_labels_contradicting_the_file_role(tmp_path):
    p = write_crops(tmp_path / "SinglePhotonPt50.hdf5", np.zeros((6, 32, 32, 2), np.float32),
                    np.array([0, 0, 1, 0, 0, 0], np.float32))
    with pytest.raises(DataError, match="photon file.*1 x1"):
        inspect_file(p)


def test_labels_other_than_zero_and_one(tmp_path):
    p = write_crops(tmp_path / "crops.h5", np.zeros((4, 32, 32, 2), np.float32), np.array([0, 1, 2, 1], np.float32))
    with pytest.raises(DataError, match="'y' values 0 .*2 x1"):
        inspect_file(p)


def test_nan_in_the_first_chunk_is_refused_up_front(tmp_path):
    X = np.zeros((10, 32, 32, 2), np.float32)
    X[3, 5, 5, 0] = np.nan
    p = write_crops(tmp_path / "electron.h5", X, np.ones(10, np.float32))
    with pytest.raises(DataError, match="NaN.*row 3"):
        inspect_file(p)


def test_nan_in_a_later_chunk_surfaces_as_data_error_from_the_stream(tmp_path):
    X = np.zeros((24, 32, 32, 2), np.float32)
    X[20, 1, 1, 1] = np.nan
    g = write_crops(tmp_path / "photon.h5", X, np.zeros(24, np.float32))
    e = write_crops(tmp_path / "electron.h5", np.zeros((24, 32, 32, 2), np.float32), np.ones(24, np.float32))
    r = CaloReader([g, e], split=(0.5, 0.5), seed=0)
    ds = r.dataset("train", batch_size=8, shuffle=False, cache=False)
    with pytest.raises(DataError, match="photon.h5.*NaN.*row 20"):
        with r.data_errors():
            for _ in ds:
                pass
    with pytest.raises(DataError, match="NaN"):
        r.read("train")  # the in-memory path checks too


def test_data_errors_lets_other_errors_through(twin_dir):
    r = CaloReader(twin_paths(twin_dir), seed=3)
    with pytest.raises(KeyError):
        with r.data_errors():
            {}["missing"]
    assert calo.file_role("x/SingleElectronPt50_IMGCROPS.hdf5") == 1
