"""The shared reader rows of the benchmarks (kerahep.benchmarks.readers): how rates are timed
and when the reachability row says the targets cannot be met on the machine."""

from __future__ import annotations

import itertools

import pytest

from kerahep.benchmarks import measure_rates
from kerahep.benchmarks.readers import REACHABLE, reachable_row


class FakeClock:
    """A clock that each side's epoch advances by a set time (``advance``)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def side(clock, items, durations):
    durations = itertools.cycle(durations)
    calls = []

    def epoch():
        calls.append(clock.now)
        clock.now += next(durations)
        return items

    epoch.calls = calls
    return epoch


def test_measure_rates_warms_up_then_alternates_and_takes_the_best_epoch():
    clock = FakeClock()
    # first call is the warm-up (10 s, never counted); then 2, 1, 4 s per epoch of 100 items
    a = side(clock, 100, [10.0, 2.0, 1.0, 4.0])
    b = side(clock, 50, [10.0, 1.0])
    rates = measure_rates({"a": a, "b": b}, repeats=3, clock=clock)
    assert rates["a"].epochs == rates["b"].epochs == 3
    assert rates["a"].best == pytest.approx(100.0)   # 100 items in the best 1 s
    assert rates["a"].median == pytest.approx(50.0)  # of 50, 100, 25 items/s
    assert rates["a"].seconds == pytest.approx(7.0)  # the warm-up is not timed
    assert rates["b"].best == pytest.approx(50.0)
    # alternating: a, b, a, b, ... after the two warm-ups
    assert a.calls[1] < b.calls[1] < a.calls[2] < b.calls[2]
    assert len(a.calls) == len(b.calls) == 4


def test_measure_rates_times_short_epochs_until_every_side_has_min_seconds():
    clock = FakeClock()
    short = side(clock, 10, [1 / 64])  # exact in binary: 64 epochs make 1 s
    slow = side(clock, 10, [0.5])
    rates = measure_rates({"short": short, "slow": slow}, repeats=2, min_seconds=1.0, clock=clock)
    # the short side needs 64 epochs for its 1 s; both sides take part in every round
    assert rates["short"].epochs == rates["slow"].epochs == 64
    assert rates["short"].seconds == pytest.approx(1.0)
    # without min_seconds only the rounds asked for
    assert measure_rates({"short": side(clock, 10, [0.01])}, repeats=2, clock=clock)["short"].epochs == 2
    # and never more than max_rounds
    capped = measure_rates({"short": side(clock, 10, [0.01])}, repeats=2, min_seconds=100.0, max_rounds=7,
                           clock=clock)
    assert capped["short"].epochs == 7


@pytest.mark.parametrize("memory, limit, ok, says", [
    (100.0, 60.0, False, "no streamed reader reaches the 0.9 target"),
    (100.0, 660.0, False, "no reader reaches the 0.5 target"),
    (100.0, 150.0, True, "both reader targets are within reach"),
    (100.0, 90.0, True, "both reader targets are within reach"),
    (100.0, 200.0, True, "both reader targets are within reach"),
])
def test_reachable_row_says_which_target_the_machine_rules_out(memory, limit, ok, says):
    row = reachable_row("t", "items/s", memory, limit)
    assert row.ratio == pytest.approx(limit / memory)
    assert row.passed is ok
    assert says in row.notes
    assert row.target == f"{REACHABLE[0]:g} .. {REACHABLE[1]:g}"
    if not ok and limit < memory:
        assert "<= about 0.60" in row.notes  # the ceiling of the streamed row
    if not ok and limit > memory:
        assert "<= about 0.15" in row.notes  # the ceiling of the decode row


def test_reader_rows_time_all_sides_together_and_share_their_rates(monkeypatch):
    """The four rows come from one measurement: the reachability row reuses the in-memory and the
    limit rates of the first two rows, and the thread row the reader's own rates."""
    import numpy as np
    import tensorflow as tf

    from kerahep.benchmarks import readers

    monkeypatch.setitem(readers.TIMING, True, (3, 0.02))  # tiny epochs: 3 rounds, or more for 0.02 s a side
    x = np.zeros((64, 3), np.float32)

    def ds(n):
        return tf.data.Dataset.from_tensor_slices((x[:n], x[:n, 0])).batch(16)

    built = []

    def decode(threads):
        built.append(threads)
        return ds(64)

    limit_calls = []

    def limit(threads):
        def run():
            limit_calls.append(threads)
            return 64
        return run

    rows = readers.reader_rows("t", "rows/s", ds(48), ds(64), decode, limit, quick=True, notes="tiny",
                               limit_notes="nothing")
    names = [r.name for r in rows]
    assert names == ["reader, streamed vs in-memory epoch", "reader decode rate vs physical limit",
                     "reader rate, 2 vs 1 decode threads", "targets reachable: physical limit vs in-memory epoch",
                     "streamed epoch, tf.data autotuning off vs on (median epoch)"]
    stream, dec, slope, reach, tuned = rows
    assert (stream.target, dec.target, slope.target) == (">= 0.9", ">= 0.5", "")
    assert reach.baseline == stream.baseline and reach.candidate == dec.baseline
    # the 1- and 2-thread rates stay apart from the default's, also where the default is 2 threads
    assert slope.extra["rates"]["1"] == slope.baseline and slope.extra["rates"]["2"] == slope.candidate
    assert slope.extra["rates"]["default"] == dec.candidate and slope.extra["default_threads"] == built[0]
    assert sorted(built[1:]) == [1, 2] and built[0] >= 1  # the default threads, then 1 and 2
    epochs = stream.extra["epochs"]
    assert set(epochs) == {"streamed", "memory", "reader", "reader_1", "reader_2", "limit", "autotuned"}
    medians = stream.extra["median"]
    assert (tuned.baseline, tuned.candidate) == (medians["autotuned"], medians["streamed"])
    assert len(set(epochs.values())) == 1 and epochs["limit"] >= 3  # every side in every round
    assert len(limit_calls) == epochs["limit"] + 1  # and a warm-up call
    assert ">= 3 rounds, >= 0.02 s per side" in stream.notes
