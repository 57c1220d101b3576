"""jet_ssl data: the synthetic twin's layout and physics, chunk-aligned streaming, bad input."""

import json

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kerahep.data import jets
from kerahep.data.synthetic.jets import LABELLED_FILE, UNLABELLED_FILE, generate_jets, oracle_auc, write_twin
from kerahep.errors import DataError

SHAPE = (125, 125, 8)


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    out = tmp_path_factory.mktemp("jet_twin")
    meta = write_twin(out, n_unlabelled=10, n_labelled=14, seed=3, chunk_rows=4)
    return out, meta


def test_twin_writes_the_real_file_layout(twin):
    out, meta = twin
    with h5py.File(out / UNLABELLED_FILE) as f:
        assert list(f.keys()) == ["jet"]
        assert f["jet"].shape == (10,) + SHAPE and f["jet"].dtype == np.float32
        assert f["jet"].compression == "gzip" and f["jet"].chunks == (4,) + SHAPE
        x = f["jet"][:]
    with h5py.File(out / LABELLED_FILE) as f:
        assert sorted(f.keys()) == ["Y", "jet", "m", "pT"]
        assert f["jet"].shape == (14,) + SHAPE
        for k in ("Y", "m", "pT"):
            assert f[k].shape == (14, 1), k  # 2-D like the real file
        assert set(np.unique(f["Y"][:])) <= {0.0, 1.0}
    assert np.isfinite(x).all()
    assert (x != 0).mean() < 0.05  # sparse
    energy = x[..., [0, 3, 4, 5, 6, 7]]
    assert energy.min() >= 0 and x[..., 0].max() > 1 and x[..., 3].max() > 0 and x[..., 4].max() > 0
    saved = json.loads((out / "twin.json").read_text())
    assert saved["params"]["n_unlabelled"] == 10 and saved["params"]["chunk_rows"] == 4
    assert saved["files"] == {"unlabelled": UNLABELLED_FILE, "labelled": LABELLED_FILE}
    assert "oracle_auc" in saved


def test_twin_is_rewritten_only_when_its_parameters_change(tmp_path):
    meta = write_twin(tmp_path, n_unlabelled=4, n_labelled=4, seed=0)
    stamp = (tmp_path / LABELLED_FILE).stat().st_mtime_ns
    assert write_twin(tmp_path, n_unlabelled=4, n_labelled=4, seed=0) == meta
    assert (tmp_path / LABELLED_FILE).stat().st_mtime_ns == stamp
    write_twin(tmp_path, n_unlabelled=4, n_labelled=6, seed=0)
    with h5py.File(tmp_path / LABELLED_FILE) as f:
        assert f["jet"].shape[0] == 6


def test_twin_physics_top_jets_are_heavier_three_prong_and_displaced():
    ys, ms, pts, d0 = [], [], [], []
    for img, y, m, pt, _ in generate_jets(240, seed=5, batch=120):
        ys.append(y), ms.append(m), pts.append(pt)
        d0.append(np.abs(img[..., 2]).sum(axis=(1, 2)))
    y, m, pt, d0 = map(np.concatenate, (ys, ms, pts, d0))
    top, qcd = y == 1, y == 0
    assert 0.35 < top.mean() < 0.65
    assert np.median(m[top]) > np.median(m[qcd]) + 30  # top mass peak against falling QCD mass
    assert 140 < np.median(m[top]) < 200
    assert 400 < pt.mean() < 650
    # b-hadron decays give displaced tracks; QCD has some too (charm, g -> bb, secondaries)
    assert np.median(d0[top]) > 2 * np.median(d0[qcd]) and np.median(d0[qcd]) > 0


# published on the real files (issue 19): SimCLR ResNet-18 AUC, jet mass and pT mean and std [GeV]
PUBLISHED = {"auc": 0.936, "m": (142.0, 51.0), "pT": (521.0, 106.0)}


@pytest.fixture(scope="module")
def jets_1200():
    parts = [(y, m, pt, lat) for _, y, m, pt, lat in generate_jets(1200, seed=11, batch=200)]
    return tuple(np.concatenate(k) for k in zip(*parts))


def test_twin_mass_and_pt_match_the_published_summaries(jets_1200):
    y, m, pt, _ = jets_1200
    # 1200 jets: sampling errors of about 1.5 GeV (m mean), 3 GeV (pT mean), 1-3 GeV (stds)
    assert abs(m.mean() - PUBLISHED["m"][0]) < 7 and abs(pt.mean() - PUBLISHED["pT"][0]) < 15
    for x, (_, std) in ((m, PUBLISHED["m"]), (pt, PUBLISHED["pT"])):
        assert abs(x.std() - std) < 0.08 * std


def test_twin_classes_overlap_partially_merged_tops_and_three_prong_qcd(jets_1200):
    y, m, _, _ = jets_1200
    top, qcd = y == 1, y == 0
    assert np.mean(m[top] < 120) > 0.1  # a top decay product outside R = 0.8
    assert np.mean((m[qcd] > 140) & (m[qcd] < 200)) > 0.17  # hard radiation: QCD in the top mass window


def test_twin_oracle_is_near_the_published_auc_not_near_one(jets_1200):
    y, _, _, lat = jets_1200
    auc = oracle_auc(lat, y)
    assert abs(auc - PUBLISHED["auc"]) < 0.03 and auc < 0.975  # generator version 1: 0.988


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 60), st.integers(1, 7), st.integers(1, 20), st.data())
def test_plan_reads_covers_every_index_once_in_whole_chunks(n, chunk, block, data):
    idx = np.array(sorted(data.draw(st.sets(st.integers(0, n - 1), max_size=n))), dtype=np.int64)
    plans = jets.plan_reads(idx, n, chunk, block)
    got = []
    chunks_read = []
    for start, stop, pos, off in plans:
        assert start % chunk == 0 and (stop % chunk == 0 or stop == n)
        assert stop - start <= max(chunk, block // chunk * chunk)
        np.testing.assert_array_equal(idx[pos], start + off)
        got.extend(idx[pos])
        for c in range(start // chunk, -(-stop // chunk)):
            chunks_read.append(c)
            assert np.any((idx >= c * chunk) & (idx < (c + 1) * chunk))  # no chunk without a wanted row
    assert sorted(got) == list(idx)
    assert len(chunks_read) == len(set(chunks_read))  # each chunk decompressed once


def test_stream_reads_chunk_aligned_slices_not_the_whole_file(twin, monkeypatch):
    out, _ = twin
    path = out / LABELLED_FILE
    with h5py.File(path) as f:
        ref = f["jet"][:]
    calls = []
    original = jets.JetStream._read

    def spy(reader, start, stop):
        calls.append((start, stop))
        return original(reader, start, stop)

    monkeypatch.setattr(jets.JetStream, "_read", staticmethod(spy))
    wanted = np.array([1, 2, 9, 13])
    for direct in (True, False):
        calls.clear()
        stream = jets.JetStream([(path, wanted)], block_bytes=8 * 125 * 125 * 8 * 4, direct_chunks=direct)
        np.testing.assert_array_equal(stream.read_all(), ref[wanted])
        for start, stop in calls:
            assert start % 4 == 0 and (stop % 4 == 0 or stop == 14)
            assert stop - start <= 8 < 14  # never the whole file
        assert sorted(calls) == [(0, 4), (8, 14)]  # chunk 1 (rows 4-7) holds no wanted row


@pytest.mark.parametrize("layout, direct", [
    (dict(chunks=(3,) + SHAPE, compression="gzip"), True),
    (dict(chunks=(3,) + SHAPE, compression="gzip", shuffle=True), False),
    (dict(chunks=(3, 125, 125, 4), compression="gzip"), False),
    (dict(chunks=(3,) + SHAPE), False),
    (dict(), False),
])
def test_direct_chunk_reads_equal_h5py_for_every_layout(tmp_path, layout, direct):
    x = np.zeros((8,) + SHAPE, np.float32)
    rng = np.random.default_rng(0)
    hits = rng.integers(0, 125, (400, 2))
    x[rng.integers(0, 8, 400), hits[:, 0], hits[:, 1], rng.integers(0, 8, 400)] = rng.exponential(3.0, 400)
    path = tmp_path / "layout.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("jet", data=x, **layout)
        assert (jets.direct_chunk_reader(ds) is not None) == direct
    for threads in (1, 3):  # reading ahead in threads gives the same jets in the same order
        stream = jets.JetStream([(path, [0, 4, 5, 7])], block_bytes=3 * 125 * 125 * 8 * 4, read_threads=threads)
        np.testing.assert_array_equal(stream.read_all(), x[[0, 4, 5, 7]])
        blocks = [pos.tolist() for _, pos in stream.iter_blocks(shuffle=True, seed=2)]
        assert sorted(sum(blocks, [])) == [0, 1, 2, 3]


def test_dataset_streams_every_jet_with_targets_reshaped_to_1d(twin):
    out, _ = twin
    path = out / LABELLED_FILE
    targets = jets.read_targets(path)
    assert all(v.shape == (14,) for v in targets.values())
    stream = jets.JetStream([(path, None)], targets=targets, block_bytes=4 * 125 * 125 * 8 * 4)
    ds = stream.dataset(batch_size=5, shuffle=True, seed=1, shuffle_buffer=6)
    assert int(ds.cardinality()) == 3
    orders = []
    for _ in range(2):
        ms, sums = [], []
        for x, t in ds:
            assert x.shape[1:] == SHAPE and t["m"].shape[1:] == (1,) and set(t) == {"y", "m", "pt"}
            ms.append(t["m"].numpy().ravel())
            sums.append(x.numpy().sum(axis=(1, 2, 3)))
        ms, sums = np.concatenate(ms), np.concatenate(sums)
        np.testing.assert_allclose(np.sort(ms), np.sort(targets["m"]))
        orders.append(ms)
    with h5py.File(path) as f:
        full = f["jet"][:]
    by_mass = dict(zip(targets["m"].tolist(), full.sum(axis=(1, 2, 3)).tolist()))
    np.testing.assert_allclose(sums, [by_mass[m] for m in ms.tolist()], rtol=1e-5)  # images stay with their targets
    assert not np.array_equal(orders[0], orders[1])  # a new order each epoch


def test_channel_scales_are_positive_per_channel(twin):
    out, _ = twin
    scales = jets.channel_scales(jets.JetStream([(out / UNLABELLED_FILE, None)]), max_jets=6)
    assert len(scales) == 8 and all(s > 0 for s in scales)
    assert scales[0] > scales[3]  # track pT deposits are larger than the spread ECAL cells


# ------------------------------------------------------------------ bad input
def _write(path, **arrays):
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v, chunks=(2,) + v.shape[1:] if v.ndim == 4 else None)
    return path


def _jets(n=4, shape=SHAPE):
    return np.zeros((n,) + shape, np.float32)


def _labels(n=4):
    return {"Y": np.array([[0.0], [1.0]] * (n // 2), np.float32), "m": np.full((n, 1), 150.0, np.float32),
            "pT": np.full((n, 1), 500.0, np.float32)}


@pytest.mark.parametrize("case, expect", [
    ("missing", "no such file"),
    ("not_hdf5", "unreadable"),
    ("wrong_key", "'jet'"),
    ("wrong_rank", "shape (4, 125, 125)"),
    ("wrong_channels", "8 channels"),
    ("wrong_size", "125x125"),
    ("nan_first_chunk", "NaN"),
    ("labels_missing", "missing ['m']"),
    ("labels_length", "3 entries in 'pT'"),
    ("labels_shape", "shape (4, 2)"),
])
def test_inspect_rejects_bad_files_naming_file_and_problem(tmp_path, case, expect):
    p = tmp_path / f"{case}.h5"
    lab = _labels()
    if case == "not_hdf5":
        p.write_text("not an hdf5 file")
    elif case == "wrong_key":
        _write(p, images=_jets())
    elif case == "wrong_rank":
        _write(p, jet=np.zeros((4, 125, 125), np.float32))
    elif case == "wrong_channels":
        _write(p, jet=_jets(shape=(125, 125, 3)))
    elif case == "wrong_size":
        _write(p, jet=_jets(shape=(64, 64, 8)))
    elif case == "nan_first_chunk":
        x = _jets()
        x[1, 3, 3, 2] = np.nan
        _write(p, jet=x)
    elif case == "labels_missing":
        _write(p, jet=_jets(), Y=lab["Y"], pT=lab["pT"])
    elif case == "labels_length":
        _write(p, jet=_jets(), Y=lab["Y"], m=lab["m"], pT=lab["pT"][:3])
    elif case == "labels_shape":
        _write(p, jet=_jets(), Y=lab["Y"], m=np.zeros((4, 2), np.float32), pT=lab["pT"])
    with pytest.raises(DataError) as err:
        jets.inspect_jet_file(p, labelled=case.startswith("labels") or None)
    assert str(p) in str(err.value) and expect in str(err.value), str(err.value)


@pytest.mark.parametrize("key, value, expect", [
    ("m", np.nan, "finite values in 'm'"),
    ("Y", 2.0, "labels 0 (QCD) or 1 (top)"),
])
def test_read_targets_rejects_nan_and_bad_labels(tmp_path, key, value, expect):
    lab = _labels()
    lab[key][2, 0] = value
    p = _write(tmp_path / "lab.h5", jet=_jets(), **lab)
    with pytest.raises(DataError, match=expect.replace("(", r"\(").replace(")", r"\)")) as err:
        jets.read_targets(p)
    assert str(p) in str(err.value)


@pytest.mark.parametrize("threads", [1, 2])
def test_nan_in_a_later_chunk_surfaces_as_data_error_from_tf_data(tmp_path, threads):
    x = _jets(8)
    x[6, 10, 10, 4] = np.inf
    p = _write(tmp_path / "late_nan.h5", jet=x)
    jets.inspect_jet_file(p)  # the first chunk is fine
    stream = jets.JetStream([(p, None)], block_bytes=2 * 125 * 125 * 8 * 4, read_threads=threads)
    ds = stream.dataset(batch_size=2)
    with pytest.raises(DataError, match="NaN or infinity in jet 6") as err:
        with jets.surface_errors(stream):
            for _ in ds:
                pass
    assert str(p) in str(err.value)


def test_stream_rejects_targets_of_the_wrong_length_naming_the_file(tmp_path):
    p = _write(tmp_path / "lab.h5", jet=_jets(), **_labels())
    with pytest.raises(DataError, match=r"one 'Y' target per selected jet \(4\).*3 entries") as err:
        jets.JetStream([(p, None)], targets={"Y": np.zeros(3, np.float32)})
    assert str(p) in str(err.value)


@pytest.mark.parametrize("change, expect", [("moved", "no such file"), ("corrupted", "unreadable file"),
                                            ("key_gone", "a readable dataset 'jet'")])
@pytest.mark.parametrize("via_tf_data", [False, True])
def test_file_moved_or_damaged_after_inspection_raises_data_error(tmp_path, change, expect, via_tf_data):
    p = _write(tmp_path / "jets.h5", jet=_jets())
    stream = jets.JetStream([(p, None)], read_threads=1)  # inspected now
    if change == "moved":
        p.rename(tmp_path / "elsewhere.h5")
    elif change == "corrupted":
        p.write_bytes(b"not an hdf5 file any more")
    else:
        _write(p, images=_jets())
    with pytest.raises(DataError, match=expect) as err:
        if via_tf_data:
            with jets.surface_errors(stream):
                for _ in stream.dataset(batch_size=2):
                    pass
        else:
            list(stream.iter_blocks())
    assert str(p) in str(err.value)
