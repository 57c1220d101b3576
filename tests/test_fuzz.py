"""Every reader against truncated, empty, bit-flipped and random-byte files."""

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


@reader("prepared_csv", ".csv", rows=_frame_rows)
def _valid_csv(folder):
    import pandas as pd

    path = folder / "prepared.csv"
    rng = np.random.default_rng(0)
    pd.DataFrame({"Electron_pt_0": rng.random(30) * 50, "m_ee": rng.random(30) * 90,
                  "target": rng.integers(0, 2, 30), "sample": "DYJetsToLL_M-50"}).to_csv(path, index=False)
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

    reader_ = CaloReader([path], split=(0.5, 0.5), roles=[None])
    return [a for s in ("train", "val") for a in reader_.read(s)]


@reader("higgs_csv", ".csv", rows=_array_rows)
def _valid_higgs(folder):
    from kerahep.data.higgs import write_higgs

    rng = np.random.default_rng(0)
    raw = np.abs(rng.normal(1.0, 0.5, size=(30, 28)))
    return write_higgs(folder / "HIGGS.csv", rng.integers(0, 2, 30).astype(float), raw, fmt="%.6e")


@_valid_higgs
def _read_higgs(path):
    from kerahep.data.higgs import read_higgs

    return list(read_higgs(path))


@reader("hcal_npy", ".npy", rows=_array_rows)
def _valid_hcal(folder):
    rng = np.random.default_rng(0)
    path = folder / "Run1_Dataset.npy"
    np.save(path, rng.poisson(5.0, size=(12, 64, 72)).astype(np.float64))
    np.save(folder / "Run2_Dataset.npy", rng.poisson(6.0, size=(12, 64, 72)).astype(np.float64))
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


@pytest.mark.parametrize("name", NAMES)
def test_valid_file_reads(name, tmp_path):
    READERS[name].read(READERS[name].make_valid(tmp_path))


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
