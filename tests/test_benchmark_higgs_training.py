"""The higgs_mae training row (kerahep.benchmarks.higgs_mae.training_rows): the default masked
autoencoder fed by the streamed reader against the same events from memory, one epoch each."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")


def test_training_row_compares_the_same_events_and_the_same_model_streamed_and_in_memory(monkeypatch, tmp_path):
    import kerahep.benchmarks as bench
    from kerahep.benchmarks import higgs_mae

    seen = {}

    def fake_fit_rates(models, data, epochs_of, repeats):
        seen.update(models=models, data=data, epochs_of=epochs_of, repeats=repeats)
        return {"streamed": 90.0, "memory": 100.0}

    monkeypatch.setattr(bench, "fit_rates", fake_fit_rates)
    (row,) = higgs_mae.training_rows(tmp_path, quick=True)
    assert row.name == "MAE pre-training, streamed vs in-memory epoch"
    assert (row.baseline, row.candidate, row.target, row.passed) == (100.0, 90.0, ">= 0.95", False)
    assert seen["repeats"] == 2 and seen["epochs_of"] == {"streamed": 20_000, "memory": 20_000}

    def rows(ds):
        xs, ys = zip(*((x.numpy(), y.numpy()) for x, y in ds))
        return np.concatenate(xs), np.concatenate(ys)

    (xs, ys), (xm, ym) = rows(seen["data"]["streamed"]), rows(seen["data"]["memory"])
    assert len(xs) == len(xm) == 20_000
    # the same events on both sides, in different orders
    order_s, order_m = np.lexsort(xs.T), np.lexsort(xm.T)
    np.testing.assert_allclose(xs[order_s], xm[order_m], rtol=1e-6)
    np.testing.assert_array_equal(ys[order_s], ym[order_m])
    # the same default model, from the same seed
    ws, wm = (m.get_weights() for m in (seen["models"]["streamed"], seen["models"]["memory"]))
    assert len(ws) == len(wm) > 0 and all(np.array_equal(a, b) for a, b in zip(ws, wm))
