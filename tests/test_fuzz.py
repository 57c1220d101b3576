"""Every reader against truncated, empty, bit-flipped and random-byte files; the intact file
gives exactly the rows it was written with (read back with the plain library: pandas, NumPy,
h5py, uproot)."""

import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kerahep.errors import KerahepError

sys.path.insert(0, str(Path(__file__).parent))
from fuzzing import CASES, READERS, reader  # noqa: E402

FUZZ = settings(max_examples=25, deadline=20000, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


# ------------------------------------------------------------------ the readers
def _root_rows(chunks):
    out = []
    for cols, _, _ in chunks:
        keys = sorted(cols)
        out.extend(zip(*[np.asarray(cols[k]).tolist() for k in keys]))
    return out


def _frame_rows(df):
    return [tuple(r) for r in df.itertuples(index=False)]


@reader("nanoaod_root", ".root", rows=_root_rows)
def _valid_root(folder):
    from kerahep.data.synthetic.nanoaod import make_twin

    return Path(make_twin(folder / "twin", 40, seed=1)["signal"][0])


@_valid_root
def _read_root(path):
    from kerahep.data.nanoaod import FeatureSpec, iterate_file

    return [c for c in iterate_file(path, FeatureSpec())]


def _prepared_frame():
    import pandas as pd

    rng = np.random.default_rng(0)
    return pd.DataFrame({"Electron_pt_0": rng.random(30) * 50, "m_ee": rng.random(30) * 90,
                         "target": rng.integers(0, 2, 30), "sample": "DYJetsToLL_M-50"})


@reader("prepared_csv", ".csv", rows=_frame_rows)
def _valid_csv(folder):
    path = folder / "prepared.csv"
    _prepared_frame().to_csv(path, index=False)
    return path


@_valid_csv
def _read_csv(path):
    from kerahep.data.nanoaod import load_prepared

    return load_prepared(path)


def _array_rows(arrays):
    return [np.asarray(a).tobytes() for a in arrays]


@reader("calo_hdf5", ".hdf5", rows=_array_rows)
def _valid_calo(folder):
    from kerahep.data.synthetic.electron_photon import generate

    generate(folder, n_per_class=24, seed=0)
    return next(p for p in folder.iterdir() if p.name.startswith("SinglePhoton"))


@_valid_calo
def _read_calo(path):
    from kerahep.data.calo import CaloReader

    reader_ = CaloReader([path], split=(0.5, 0.5), roles=[None])  # (train, test)
    return [a for s in ("train", "test") for a in reader_.read(s)]


def _higgs_table():
    """(labels, the 28 stored features) of the valid HIGGS file."""
    rng = np.random.default_rng(0)
    raw = np.abs(rng.normal(1.0, 0.5, size=(30, 28)))
    return rng.integers(0, 2, 30).astype(float), raw


@reader("higgs_csv", ".csv", rows=_array_rows)
def _valid_higgs(folder):
    from kerahep.data.higgs import write_higgs

    labels, raw = _higgs_table()
    return write_higgs(folder / "HIGGS.csv", labels, raw, fmt="%.6e")


@_valid_higgs
def _read_higgs(path):
    from kerahep.data.higgs import read_higgs

    return list(read_higgs(path))


def _hcal_runs():
    rng = np.random.default_rng(0)
    return rng.poisson(5.0, size=(12, 64, 72)).astype(np.float64), rng.poisson(6.0, size=(12, 64, 72)).astype(np.float64)


@reader("hcal_npy", ".npy", rows=_array_rows)
def _valid_hcal(folder):
    path = folder / "Run1_Dataset.npy"
    run1, run2 = _hcal_runs()
    np.save(path, run1)
    np.save(folder / "Run2_Dataset.npy", run2)
    return path


@_valid_hcal
def _read_hcal(path):
    from kerahep.data.hcal import open_runs

    other = Path(_valid.__dict__.get("folders", {}).get("hcal_npy", path.parent)) / "Run2_Dataset.npy"
    if not other.exists():
        other = path.parent / "Run2_Dataset.npy"
    runs = open_runs([path, other])
    return [runs.read(0, 0, runs.sizes[0])]


@reader("jets_hdf5", ".h5", rows=_array_rows)
def _valid_jets(folder):
    from kerahep.data.synthetic.jets import write_jet_file

    return write_jet_file(folder / "labelled.h5", 6, seed=0, labelled=True, chunk_rows=2)


@_valid_jets
def _read_jets(path):
    from kerahep.data.jets import JetStream, read_targets

    targets = read_targets(path)
    return [JetStream([(path, None)], read_threads=1).read_all()] + [targets[k] for k in sorted(targets)]


# ------------------------------------------------------------------ the properties
def _valid(name):
    """(bytes, rows) of the intact file of reader ``name``."""
    cache = _valid.__dict__.setdefault("cache", {})
    if name not in cache:
        folder = Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-"))
        _valid.__dict__.setdefault("folders", {})[name] = str(folder)
        path = READERS[name].make_valid(folder)
        cache[name] = (path.read_bytes(), READERS[name].rows(READERS[name].read(path)))
    return cache[name]


def _valid_bytes(name):
    return _valid(name)[0]


def _attempt(name, data: bytes, must_fail: bool, intact_or_prefix: bool = False):
    """Read ``data``: it must raise KerahepError naming the file, or (``intact_or_prefix``)
    give the intact file's rows (a prefix where the format cannot tell), never other rows."""
    r = READERS[name]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"input{r.suffix}"
        path.write_bytes(data)
        CASES[name] += 1
        try:
            result = r.read(path)
        except KerahepError as exc:
            assert str(path) in str(exc), f"{name}: the error does not name the file: {exc}"
            return
        if must_fail:
            pytest.fail(f"{name}: a damaged file ({len(data)} bytes) was read without an error")
        if intact_or_prefix:
            got, full = r.rows(result), _valid(name)[1]
            ok = got == full or (name in TRUNCATION_MAY_READ and got == full[:len(got)])
            assert ok, f"{name}: a truncated file read as {len(got)} rows that differ from the intact file's"


NAMES = sorted(READERS)


# ------------------------------------------------------------ what each valid file holds
def _written_root(path, chunks):
    """Every event read; the selected ones are those the twin's generator counted as passing
    the preselection, each with its ids and event quantities from its entry of the tree."""
    import json

    import uproot

    twin = json.loads((path.parent / "twin.json").read_text())["samples"][path.stem]
    with uproot.open(path) as f:
        events = f["Events"].arrays(library="np")
    cols = {k: np.concatenate([np.asarray(c[k]) for c, _, _ in chunks]) for k in chunks[0][0]}
    assert sum(n for _, n, _ in chunks) == twin["events"] == len(events["event"])
    assert len(cols["entry"]) == sum(n for _, _, n in chunks) == twin["passing_default_preselection"] > 0
    for key in ("run", "luminosityBlock", "event", "MET_pt", "genWeight", "nElectron", "nJet"):
        np.testing.assert_array_equal(cols[key], events[key][cols["entry"]], err_msg=key)
    np.testing.assert_array_equal(cols["Electron_pt_0"], [pt[0] for pt in events["Electron_pt"][cols["entry"]]])


def _written_csv(path, frame):
    import pandas as pd

    pd.testing.assert_frame_equal(frame.reset_index(drop=True), _prepared_frame(), check_dtype=False)


def _h5(path) -> dict:
    import h5py

    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f}


def _written_calo(path, arrays):
    """The train and test crops are the file's crops (each once) with their labels."""
    stored = _h5(path)
    rows = lambda x, y: sorted((a.tobytes(), float(b)) for a, b in zip(x, y))  # noqa: E731
    assert rows(np.concatenate(arrays[0::2]), np.concatenate(arrays[1::2])) == rows(stored["X"], stored["y"])


def _written_higgs(path, arrays):
    from kerahep.data.higgs import transform

    labels, raw = _higgs_table()
    stored = np.loadtxt(path, delimiter=",")  # the numbers as written (6 significant digits)
    np.testing.assert_allclose(stored[:, 1:], raw, rtol=1e-6)
    x, y = arrays
    np.testing.assert_array_equal(y, labels)
    np.testing.assert_allclose(x, transform(stored[:, 1:], "low"), rtol=1e-6)


def _written_hcal(path, arrays):
    (maps,) = arrays
    np.testing.assert_array_equal(maps, _hcal_runs()[0].astype(np.float32))


def _written_jets(path, arrays):
    stored = _h5(path)
    np.testing.assert_array_equal(arrays[0], stored["jet"])
    for got, key in zip(arrays[1:], ("Y", "m", "pT"), strict=True):  # read_targets' keys, sorted
        np.testing.assert_array_equal(got, stored[key].reshape(-1), err_msg=key)


WRITTEN = {"nanoaod_root": _written_root, "prepared_csv": _written_csv, "calo_hdf5": _written_calo,
           "higgs_csv": _written_higgs, "hcal_npy": _written_hcal, "jets_hdf5": _written_jets}


@pytest.mark.parametrize("name", NAMES)
def test_valid_file_reads_the_rows_it_was_written_with(name, tmp_path):
    path = READERS[name].make_valid(tmp_path)
    WRITTEN[name](path, READERS[name].read(path))


@pytest.mark.parametrize("name", NAMES)
def test_empty_file_refused(name):
    _attempt(name, b"", must_fail=True)


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_truncated_file_refused(name, data):
    valid = _valid_bytes(name)
    cut = data.draw(st.integers(min_value=1, max_value=len(valid) - 1), label="cut")
    _attempt(name, valid[:cut], must_fail=False, intact_or_prefix=True)


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_bit_flips_read_or_refused(name, data):
    valid = bytearray(_valid_bytes(name))
    for _ in range(data.draw(st.integers(1, 8), label="flips")):
        i = data.draw(st.integers(0, len(valid) - 1), label="offset")
        valid[i] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    _attempt(name, bytes(valid), must_fail=False)


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(blob=st.binary(min_size=1, max_size=4096))
def test_random_bytes_refused(name, blob):
    _attempt(name, blob, must_fail=True)


# A CSV cut at a line boundary is still a valid, shorter CSV: reading it is right.
TRUNCATION_MAY_READ = {"prepared_csv"}


def test_prepared_csv_cut_at_a_line_boundary_caught_by_its_report(tmp_path):
    import json

    path = READERS["prepared_csv"].make_valid(tmp_path)
    lines = path.read_text().splitlines(keepends=True)
    Path(str(path) + ".report.json").write_text(json.dumps({"selected": len(lines) - 1}))
    _read_csv(path)  # intact: reads
    path.write_text("".join(lines[:-3]))  # three whole rows lost
    with pytest.raises(KerahepError, match="rows"):
        _read_csv(path)
