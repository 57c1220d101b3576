"""The shared whole-batch streaming module (kerahep.data.batches): per-epoch coverage, order,
seeding, class mixing, decode threads, errors naming their file, and the readers built on it."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from kerahep.data import batches
from kerahep.data.batches import BatchStream, Chunk
from kerahep.errors import ConfigError, DataError


def _plan(sizes, sources=None):
    """Chunks of consecutive global indices: chunk k holds ``sizes[k]`` rows (its key is its first index)."""
    out, at = [], 0
    for k, n in enumerate(sizes):
        out.append(Chunk(0 if sources is None else sources[k], at, at + n, key=at))
        at += n
    return out


def _load(chunk):
    """The global indices of a chunk (``key`` is where they start)."""
    return (np.arange(chunk.key, chunk.key + chunk.size),)


def _epoch(stream, epoch=None):
    return [b[0] for b in stream.batches(epoch)]


SIZES = [7, 3, 10, 1, 9, 8, 5]  # 43 rows, uneven chunks


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("batch_size", [1, 4, 16, 64])
def test_every_index_exactly_once_per_epoch_and_only_the_last_batch_smaller(shuffle, batch_size):
    stream = BatchStream(_plan(SIZES), _load, batch_size=batch_size, shuffle=shuffle, seed=3, window_rows=12,
                         threads=2)
    for epoch in range(3):
        got = _epoch(stream, epoch)
        assert sorted(np.concatenate(got).tolist()) == list(range(sum(SIZES)))
        assert all(len(b) == batch_size for b in got[:-1]) and 0 < len(got[-1]) <= batch_size
        assert len(got) == stream.n_batches
    if not shuffle:
        assert np.concatenate(got).tolist() == list(range(sum(SIZES)))  # plan order


def test_drop_remainder_keeps_only_full_batches():
    stream = BatchStream(_plan(SIZES), _load, batch_size=8, shuffle=True, seed=0, window_rows=10,
                         drop_remainder=True)
    got = _epoch(stream, 0)
    assert [len(b) for b in got] == [8] * (sum(SIZES) // 8) == [8] * stream.n_batches
    assert len(set(np.concatenate(got).tolist())) == sum(SIZES) // 8 * 8


def test_new_order_every_epoch_and_the_same_order_for_the_same_seed():
    def orders(seed):
        s = BatchStream(_plan(SIZES * 4), _load, batch_size=8, shuffle=True, seed=seed, window_rows=20, threads=3)
        return [np.concatenate(_epoch(s)).tolist() for _ in range(3)]  # epochs 0, 1, 2 in turn

    a, b, other = orders(5), orders(5), orders(6)
    assert a == b  # seeded: the same seed gives the same epochs
    assert a[0] != a[1] != a[2] != a[0]  # a new order every epoch
    assert a[0] != other[0]
    stream = BatchStream(_plan(SIZES * 4), _load, batch_size=8, shuffle=True, seed=5, window_rows=20)
    assert stream.order(1) != stream.order(0)  # the chunk order itself changes
    assert sorted(stream.order(1)) == list(range(len(SIZES) * 4))


def test_full_batches_of_a_two_class_plan_hold_both_classes():
    # class 0 in the chunks of source 0, class 1 in those of source 1: only mixing across
    # chunks can put both in a batch
    sizes = [32] * 12
    plan = _plan(sizes, sources=[0] * 6 + [1] * 6)

    def load(chunk):
        return np.arange(chunk.key, chunk.key + chunk.size), np.full(chunk.size, chunk.source)

    for seed in range(3):
        stream = BatchStream(plan, load, batch_size=16, shuffle=True, seed=seed, window_rows=64)
        got = list(stream.batches(0))
        assert sorted(np.concatenate([i for i, _ in got]).tolist()) == list(range(sum(sizes)))
        for _, label in got[:-1]:
            assert set(label.tolist()) == {0, 1}
    # without mixing, the batches would be one class each
    plain = BatchStream(plan, load, batch_size=16, shuffle=False)
    assert all(len(set(lab.tolist())) == 1 for _, lab in plain.batches(0))


def test_interleave_spreads_every_source_over_the_stream():
    plan = _plan([10] * 6 + [30] * 2, sources=[0] * 6 + [1] * 2)
    order = batches.interleave(plan, np.random.default_rng(0))
    assert sorted(order) == list(range(8))
    done, totals = {0: 0, 1: 0}, {0: 60, 1: 60}
    for i in order:
        done[plan[i].source] += plan[i].size
        assert abs(done[0] / totals[0] - done[1] / totals[1]) <= 30 / 60 + 1e-9


@pytest.mark.parametrize("threads", [1, 3])
def test_the_decode_thread_setting_is_honoured(threads):
    seen = set()

    def load(chunk):
        seen.add(threading.current_thread().name)
        return _load(chunk)

    stream = BatchStream(_plan([2] * 30), load, batch_size=4, shuffle=True, seed=0, window_rows=8, threads=threads)
    assert stream.threads == threads
    _epoch(stream, 0)
    assert seen and all(name.startswith("kerahep-decode") for name in seen)
    assert len(seen) <= threads
    if threads == 1:
        assert len(seen) == 1


def test_decode_threads_default_to_the_cpu_count_and_refuse_bad_values():
    assert batches.decode_threads(None) == (os.cpu_count() or 1)
    assert batches.decode_threads(5) == 5
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ConfigError, match="decode_threads"):
            batches.decode_threads(bad)


@pytest.mark.parametrize("task", ["electron_photon", "jet_ssl", "higgs_mae", "hcal_dqm"])
def test_data_decode_threads_is_a_validated_setting_of_each_streamed_task(task):
    from kerahep.registry import get_task

    config = get_task(task).preset()
    assert config.data.decode_threads is None
    assert config.override(["data.decode_threads=3"]).data.decode_threads == 3
    with pytest.raises(ConfigError, match="data.decode_threads"):
        config.override(["data.decode_threads=0"]).validate()


def test_an_error_in_one_chunk_surfaces_as_the_data_error_naming_the_file():
    tf = pytest.importorskip("tensorflow")

    def load(chunk):
        if chunk.key == 20:
            raise DataError("/data/run7.h5", "finite values in 'X'", "NaN in crop 21")
        return _load(chunk)

    stream = BatchStream(_plan(SIZES), load, batch_size=4, shuffle=True, seed=1, window_rows=8, threads=2)
    ds = stream.dataset(tf.TensorSpec((None,), tf.int64))
    with pytest.raises(DataError, match=r"/data/run7\.h5: expected finite values in 'X', found NaN in crop 21"):
        with stream.surface():
            for _ in ds:
                pass
    assert stream.pending.error is None  # surfaced once, then cleared
    with pytest.raises(DataError, match="run7"):  # the NumPy side raises it directly
        _epoch(stream, 0)


def test_dataset_has_the_cardinality_and_the_batches_of_the_stream():
    tf = pytest.importorskip("tensorflow")
    stream = BatchStream(_plan(SIZES), _load, batch_size=10, shuffle=True, seed=2, window_rows=15)
    ds = stream.dataset(tf.TensorSpec((None,), tf.int64))
    assert int(ds.cardinality()) == stream.n_batches == 5
    epochs = [np.concatenate([b.numpy() for b in ds]) for _ in range(2)]
    for got in epochs:
        assert sorted(got.tolist()) == list(range(sum(SIZES)))
    assert epochs[0].tolist() != epochs[1].tolist()


def test_cache_decodes_each_chunk_once_and_still_reshuffles():
    calls = []

    def load(chunk):
        calls.append(chunk.key)
        return _load(chunk)

    stream = BatchStream(_plan(SIZES), load, batch_size=6, shuffle=True, seed=4, window_rows=10, cache=True)
    first, second = (np.concatenate(_epoch(stream)).tolist() for _ in range(2))
    assert sorted(calls) == sorted(c.key for c in stream.chunks)  # once each, over both epochs
    assert sorted(first) == sorted(second) == list(range(sum(SIZES))) and first != second


def test_an_epoch_left_early_stops_its_decoding():
    calls = []

    def load(chunk):
        calls.append(chunk.key)
        return _load(chunk)

    stream = BatchStream(_plan([4] * 200), load, batch_size=4, shuffle=True, seed=0, window_rows=8, threads=2)
    it = stream.batches(0)
    next(it)
    it.close()
    assert len(calls) < 50  # decoded a little ahead, not the whole epoch


def test_cut_batches_carries_rows_across_windows_without_losing_any():
    parts = [(np.arange(a, b),) for a, b in [(0, 5), (5, 6), (6, 20), (20, 23)]]
    got = list(batches.cut_batches(iter(parts), 4, np.random.default_rng(0), window_rows=6))
    assert [len(b[0]) for b in got] == [4, 4, 4, 4, 4, 3]
    assert sorted(np.concatenate([b[0] for b in got]).tolist()) == list(range(23))


def test_batches_are_64_byte_aligned_views_that_tensorflow_can_take_without_a_copy():
    # rows of 8 kB (a calorimeter crop): every batch of a window starts on a 64-byte boundary
    data = np.arange(40 * 2048, dtype=np.float32).reshape(40, 2048)
    stream = BatchStream(_plan([10] * 4), lambda c: (data[c.start:c.stop],), batch_size=8, shuffle=True, seed=0,
                         window_rows=20)
    got = list(stream.batches(0))
    assert all(b[0].ctypes.data % 64 == 0 for b in got)
    assert sorted(np.concatenate([b[0][:, 0] for b in got]).tolist()) == sorted(data[:, 0].tolist())
    buf = batches.aligned_empty((3, 5), np.float64)
    assert buf.shape == (3, 5) and buf.dtype == np.float64 and buf.ctypes.data % 64 == 0


def test_decoding_stays_a_few_windows_ahead_when_the_consumer_stalls():
    import time

    calls = []

    def load(chunk):
        calls.append(chunk.key)
        return _load(chunk)

    stream = BatchStream(_plan([4] * 400), load, batch_size=4, shuffle=True, seed=0, window_rows=16, threads=2,
                         fields=[((), np.int64)])
    it = stream.batches(0)
    next(it)
    time.sleep(0.3)  # the threads may run ahead as far as they are allowed
    ahead = len(calls)
    it.close()
    # the current window (4 chunks) and two more (8): never the 400-chunk epoch
    assert 4 <= ahead <= 12


def _pieces_load(chunk, rows=3):
    """The global indices of a chunk as float64 pieces of ``rows``, every piece in the same buffer."""
    buf = np.empty(rows, np.float64)
    for a in range(0, chunk.size, rows):
        piece = buf[:min(rows, chunk.size - a)]
        piece[:] = np.arange(chunk.key + a, chunk.key + a + len(piece))
        yield piece, np.full(len(piece), chunk.key)


@pytest.mark.parametrize("cache", [False, True])
@pytest.mark.parametrize("fields", [None, [((), np.float32), ((), np.int64)]])
def test_a_loader_may_give_its_chunk_in_pieces_that_reuse_one_buffer(cache, fields):
    stream = BatchStream(_plan(SIZES), _pieces_load, batch_size=5, shuffle=True, seed=1, window_rows=12, threads=2,
                         cache=cache, fields=fields)
    plain = BatchStream(_plan(SIZES), lambda c: (np.arange(c.key, c.key + c.size, dtype=np.float32),
                                                 np.full(c.size, c.key)), batch_size=5, shuffle=True, seed=1,
                        window_rows=12, threads=2)
    for epoch in range(3):  # with cache, epochs 1 and 2 come from the kept rows
        got = list(stream.batches(epoch))
        want = list(plain.batches(epoch))
        assert [len(b[0]) for b in got] == [len(b[0]) for b in want]
        x = np.concatenate([b[0] for b in got])
        assert x.dtype == (np.float32 if fields else np.float64)  # cast to the fields' dtype where the rows land
        assert x.tolist() == np.concatenate([b[0] for b in want]).tolist()  # same rows, same order
        key = np.concatenate([b[1] for b in got])
        starts = {c.key: c for c in stream.chunks}
        assert all(starts[k].start <= v < starts[k].stop for k, v in zip(key.tolist(), x.astype(int).tolist()))


def test_a_loader_giving_too_few_rows_in_pieces_is_refused():
    def short(chunk):
        yield np.zeros(chunk.size - 1)

    stream = BatchStream(_plan([4, 4]), short, batch_size=2, fields=[((), np.float64)])
    with pytest.raises(ValueError, match="3 rows for a chunk of 4"):
        list(stream.batches(0))


def test_load_in_order_joins_the_pieces_of_a_chunk():
    got = list(batches.load_in_order(_plan(SIZES), range(len(SIZES)), lambda: __import__("contextlib").nullcontext(
        _pieces_load), threads=2, ahead_rows=8))
    assert np.concatenate([x for x, _ in got]).tolist() == list(range(sum(SIZES)))


@pytest.mark.parametrize("drop_remainder", [False, True])
def test_dataset_gives_the_batches_of_the_stream_cut_from_whole_windows(drop_remainder):
    tf = pytest.importorskip("tensorflow")

    def stream():
        return BatchStream(_plan(SIZES * 3), _load, batch_size=8, shuffle=True, seed=7, window_rows=20, threads=2,
                           drop_remainder=drop_remainder)

    reference, fed = stream(), stream()
    ds = fed.dataset(tf.TensorSpec((None,), tf.int64))
    assert int(ds.cardinality()) == reference.n_batches
    for epoch in range(2):  # the dataset's iterations are epochs 0, 1, ... of its stream
        want = [b[0].tolist() for b in reference.batches(epoch)]
        assert [b.numpy().tolist() for b in ds] == want  # rebatch cuts exactly the batches of batches()
    blocks = list(reference.blocks(0))
    assert len(blocks) < reference.n_batches  # tf.data is handed windows, fewer than the batches
    rows = np.concatenate([b[0] for b in blocks]).tolist()
    cut = np.concatenate([b[0] for b in reference.batches(0)]).tolist()
    assert rows[:len(cut)] == cut and len(rows) - len(cut) == (sum(SIZES) * 3 % 8 if drop_remainder else 0)


def test_window_buffers_are_reused_but_never_while_a_batch_still_refers_to_them():
    import weakref

    def among(refs, base):
        return any(r() is base for r in refs)

    stream = BatchStream(_plan([4] * 40), _load, batch_size=4, shuffle=True, seed=0, window_rows=16, threads=2)
    kept = list(stream.batches(0))  # held: their buffers must not be written again
    values = [b[0].copy() for b in kept]
    bases = [weakref.ref(b[0].base) for b in kept]
    for epoch in (1, 2):
        for _ in stream.batches(epoch):
            pass
    assert all((b[0] == v).all() for b, v in zip(kept, values))
    assert not any(among(bases, b[0].base) for b in stream.batches(3))  # still held: none reused
    del kept, values
    later = [weakref.ref(b[0].base) for b in stream.batches(4)]
    assert any(among(later, b[0].base) for b in stream.batches(5))  # released: written again, not new memory


def test_direct_chunk_pieces_give_the_rows_of_each_stored_chunk(tmp_path):
    h5py = pytest.importorskip("h5py")
    from kerahep.data.h5 import direct_chunk_reader

    data = np.random.default_rng(0).normal(size=(23, 6, 5)).astype(np.float32)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("X", data=data, chunks=(4, 6, 5), compression="gzip")
    with h5py.File(tmp_path / "x.h5", "r") as f:
        read = direct_chunk_reader(f["X"])
        got = [(first, rows.copy()) for first, rows in read.pieces(8, 23)]  # each piece reuses one buffer
        np.testing.assert_array_equal(read(8, 23), data[8:23])
    assert [first for first, _ in got] == [8, 12, 16, 20]
    np.testing.assert_array_equal(np.concatenate([r for _, r in got]), data[8:23])
