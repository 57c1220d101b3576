"""HIGGS streams shuffled by chunk (issue 18): a plain table's chunks read in a seeded, per-epoch
permuted order (byte offsets found once, kept), a gzip stream's kept chunks reordered per epoch,
file order without shuffling; every event once per epoch, exact line numbers in errors."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from kerahep.data import higgs as hr
from kerahep.data.higgs import chunks
from kerahep.data.synthetic.higgs import generate
from kerahep.errors import DataError

N, CS, BS = 3000, 250, 50  # 12 chunks of 250 lines, batches of 50


@pytest.fixture(scope="module")
def table():
    ev = generate(N // 2, seed=11)
    raw = np.array(ev["raw"], dtype=np.float64)
    raw[:, 0] = np.arange(len(raw))  # lepton_pT holds the line's index: every event says where it came from
    return np.asarray(ev["label"]), raw


@pytest.fixture(scope="module")
def files(tmp_path_factory, table):
    y, raw = table
    d = tmp_path_factory.mktemp("higgs_shuffle")
    return {ext: hr.write_higgs(d / f"HIGGS.{ext}", y, raw, fmt="%.9g") for ext in ("csv", "csv.gz")}


def _epochs(ds, n):
    """``n`` epochs of ``ds``, each ``(x, y)`` concatenated, and its batch sizes."""
    out = []
    for _ in range(n):
        batches = list(ds.as_numpy_iterator())
        out.append((np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]),
                    [len(b[1]) for b in batches]))
    return out


def _lines(x):
    return x[:, 0].astype(np.int64)


def _assert_every_event_once(x, y, x_ref, y_ref, first_line):
    order = np.argsort(_lines(x))
    np.testing.assert_array_equal(_lines(x)[order], np.arange(first_line, first_line + len(x_ref)))
    np.testing.assert_array_equal(x[order], x_ref)
    np.testing.assert_array_equal(y[order], y_ref)


def _chunk_order(x, size):
    """Chunks (line // size) in the order the stream delivered them, checking each comes whole."""
    ids = _lines(x) // size
    blocks = ids.reshape(-1, size)  # a window of one chunk: every run of `size` rows is one chunk
    assert (blocks == blocks[:, :1]).all()
    return blocks[:, 0].tolist()


# ------------------------------------------------------------------ (a) plain tables, shuffled
def test_plain_csv_reads_its_chunks_in_a_new_seeded_order_every_epoch(files):
    x_ref, y_ref = hr.read_higgs(files["csv"], features="raw")

    def make(seed):
        return hr.higgs_dataset(files["csv"], features="raw", batch_size=BS, shuffle_buffer=CS, seed=seed,
                                chunksize=CS, threads=3)

    ds = make(3)
    assert int(ds.cardinality()) == math.ceil(N / BS)
    epochs = _epochs(ds, 4)
    orders = []
    for x, y, sizes in epochs:
        assert sizes == [BS] * (N // BS)
        _assert_every_event_once(x, y, x_ref, y_ref, 0)
        order = _chunk_order(x, CS)
        assert sorted(order) == list(range(N // CS))
        orders.append(order)
    assert len({tuple(o) for o in orders}) == 4  # a new chunk order every epoch
    assert all(o != sorted(o) for o in orders)
    # the first batch of an epoch is not the first lines of the range: it comes from another chunk
    first_chunks = [int(_lines(x[:BS]).min()) // CS for x, _, _ in epochs]
    assert sum(c != 0 for c in first_chunks) >= 3, first_chunks
    # rows are mixed within the window too, not read in line order
    assert any((np.diff(_lines(x[:CS])) < 0).any() for x, _, _ in epochs)
    # the same seed: the same batches, epoch by epoch, from another dataset; another seed: others
    again = _epochs(make(3), 4)
    for (x, y, _), (x2, y2, _) in zip(epochs, again):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    other = _epochs(make(4), 1)[0][0]
    assert _chunk_order(other, CS) != orders[0]


@pytest.mark.parametrize("sep", ["\t", " "])  # pyarrow for one-character separators, pandas for whitespace
def test_tab_and_space_separated_tables_are_shuffled_by_chunk_too(tmp_path, table, sep):
    y, raw = table
    path = hr.write_higgs(tmp_path / "HIGGS.txt", y[:1000], raw[:1000], sep=sep, fmt="%.9g")
    x_ref, y_ref = hr.read_higgs(path, features="raw")
    ds = hr.higgs_dataset(path, features="raw", batch_size=BS, shuffle_buffer=100, seed=1, chunksize=100, cache=True)
    epochs = _epochs(ds, 3)  # the last two from the cache, still reordered
    for x, yy, _ in epochs:
        _assert_every_event_once(x, yy, x_ref, y_ref, 0)
    orders = [_chunk_order(x, 100) for x, _, _ in epochs]
    assert len({tuple(o) for o in orders}) == 3 and all(o != sorted(o) for o in orders)


def test_a_cached_plain_csv_serves_later_epochs_from_memory_in_new_orders(tmp_path, table):
    y, raw = table
    path = hr.write_higgs(tmp_path / "HIGGS.csv", y, raw, fmt="%.9g")
    stream = hr.HiggsStream(path, features="raw", batch_size=BS, shuffle_buffer=CS, chunksize=CS, cache=True)
    first = np.concatenate([b[0] for b in stream.batches()])
    os.remove(path)  # later epochs cannot read the file: they come from the cache
    second = np.concatenate([b[0] for b in stream.batches()])
    assert sorted(_lines(second)) == list(range(N)) and _chunk_order(second, CS) != _chunk_order(first, CS)


# ------------------------------------------------------------------ (b) row ranges
@pytest.mark.parametrize("rows,max_rows,first,stop", [
    ((-700, None), None, N - 700, N),
    ((100, -200), None, 100, N - 200),
    ((50, None), 333, 50, 383),
    ((123, 2000), None, 123, 2000),
    ((2990, 3000), None, 2990, 3000),
])
def test_shuffled_row_ranges_follow_the_reader_rules(files, rows, max_rows, first, stop):
    path = files["csv"]
    x_ref, y_ref = hr.read_higgs(path, rows=rows, features="raw", max_rows=max_rows)
    assert len(x_ref) == stop - first
    ds = hr.higgs_dataset(path, rows=rows, features="raw", batch_size=32, shuffle_buffer=40, seed=2, chunksize=37,
                          max_rows=max_rows)
    for x, y, _ in _epochs(ds, 2):
        _assert_every_event_once(x, y, x_ref, y_ref, first)
    start, end = hr.resolve_rows(path, rows)
    plan = chunks.plan(hr.sniff(path), start, end, max_rows=max_rows, chunksize=37)
    # chunks of exactly 37 whole lines (the last fewer), each starting at its exact line
    assert [c.start for c in plan] == list(range(first, stop, 37)) and plan[-1].stop == stop


def test_a_row_range_beyond_the_file_is_the_iter_chunks_error(files):
    for path in (files["csv"], files["csv.gz"]):
        for rows, words in [((2900, 3100), r"lines 2901-3100 for the row range \(2900, 3100\), found a file that "
                                            r"ends at line 3000"),
                            ((3100, 3200), r"more than 3100 lines for the row range \(3100, 3200\)")]:
            with pytest.raises(DataError, match=words) as streamed:
                stream = hr.HiggsStream(path, rows, shuffle_buffer=CS, chunksize=CS)  # a plain file: raised here
                with stream.surface():  # a gzip stream finds out while reading
                    _epochs(stream.dataset(), 1)
            with pytest.raises(DataError) as read:
                hr.read_higgs(path, rows=rows)
            assert str(streamed.value) == str(read.value)


def test_the_line_index_is_found_once_per_file_and_range(tmp_path, table, monkeypatch):
    y, raw = table
    path = hr.write_higgs(tmp_path / "HIGGS.csv", y[:600], raw[:600], fmt="%.9g")
    calls = []
    scan = chunks._scan
    monkeypatch.setattr(chunks, "_scan", lambda *a: calls.append(a[1:]) or scan(*a))
    for _ in range(2):  # a second dataset of the same range, and every epoch, reuse it
        _epochs(hr.higgs_dataset(path, rows=(10, 500), features="raw", shuffle_buffer=60, chunksize=60), 2)
    assert calls == [(10, 500, 60)]
    _epochs(hr.higgs_dataset(path, rows=(0, 500), features="raw", shuffle_buffer=60, chunksize=60), 1)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a changed file is indexed again
    _epochs(hr.higgs_dataset(path, rows=(10, 500), features="raw", shuffle_buffer=60, chunksize=60), 1)
    assert calls == [(10, 500, 60), (0, 500, 60), (10, 500, 60)]


# ------------------------------------------------------------------ (c) a bad line
def test_a_bad_line_in_a_shuffled_plain_csv_names_its_file_and_line(tmp_path, files):
    lines = files["csv"].read_text().splitlines(keepends=True)
    lines[1733] = lines[1733].replace(lines[1733].split(",")[4], "abc", 1)
    path = tmp_path / "HIGGS.csv"
    path.write_text("".join(lines))
    expect = rf"{path}, line 1734: expected a number in column 5 \(missing_energy_magnitude\), found 'abc'"
    stream = hr.HiggsStream(path, rows=(100, None), features="raw", batch_size=BS, shuffle_buffer=CS, seed=5,
                            chunksize=CS, threads=2)
    with pytest.raises(DataError, match=expect), stream.surface():  # through tf.data, as the task does
        for _ in stream.dataset():
            pass
    with pytest.raises(DataError, match=expect):  # the batches themselves
        for _ in stream.batches():
            pass
    with pytest.raises(Exception, match="line 1734"):  # a bare dataset: tf.data's error, message kept
        _epochs(hr.higgs_dataset(path, shuffle_buffer=CS, chunksize=CS), 1)
    with pytest.raises(DataError, match=expect):  # the pre-check of the task
        hr.scan(path, rows=(100, None), chunksize=CS)


# ------------------------------------------------------------------ (d) gzip
def _displacement(x, first=0):
    """How far each event lands from its place in file order (large: chunks were reordered)."""
    return int(np.abs(_lines(x) - first - np.arange(len(x))).max())


def test_a_cached_gzip_stream_takes_its_chunks_in_a_new_order_every_epoch(files):
    x_ref, y_ref = hr.read_higgs(files["csv.gz"], features="raw")
    ds = hr.higgs_dataset(files["csv.gz"], features="raw", batch_size=BS, shuffle_buffer=CS, seed=7, chunksize=CS,
                          cache=True)
    epochs = _epochs(ds, 4)
    for x, y, _ in epochs:
        _assert_every_event_once(x, y, x_ref, y_ref, 0)
    lines = [_lines(x).tolist() for x, _, _ in epochs]
    assert len({tuple(li) for li in lines}) == 4
    # the first pass follows the file (mixed within windows); the kept chunks are then reordered
    assert _displacement(epochs[0][0]) < N // 3
    assert all(_displacement(x) > N // 3 for x, _, _ in epochs[1:])
    again = _epochs(hr.higgs_dataset(files["csv.gz"], features="raw", batch_size=BS, shuffle_buffer=CS, seed=7,
                                     chunksize=CS, cache=True), 4)
    assert [_lines(x).tolist() for x, _, _ in again] == lines
    # without the cache every epoch reads the stream again, in file order, mixed within windows
    plain = _epochs(hr.higgs_dataset(files["csv.gz"], features="raw", batch_size=BS, shuffle_buffer=CS, seed=7,
                                     chunksize=CS), 2)
    assert all(_displacement(x) < N // 3 for x, _, _ in plain)
    assert _lines(plain[0][0]).tolist() != _lines(plain[1][0]).tolist()


# ------------------------------------------------------------------ (e) no shuffling
@pytest.mark.parametrize("ext", ["csv", "csv.gz"])
@pytest.mark.parametrize("shuffle_buffer,cache", [(0, False), (1, False), (0, True)])
def test_without_shuffling_every_format_is_read_in_file_order(files, ext, shuffle_buffer, cache):
    x_ref, y_ref = hr.read_higgs(files[ext], rows=(7, 2500), features="raw")
    ds = hr.higgs_dataset(files[ext], rows=(7, 2500), features="raw", batch_size=BS, shuffle_buffer=shuffle_buffer,
                          chunksize=CS, cache=cache)
    for x, y, sizes in _epochs(ds, 2):
        assert sizes == [BS] * (2493 // BS) + [2493 % BS]
        np.testing.assert_array_equal(x, x_ref)
        np.testing.assert_array_equal(y, y_ref)
