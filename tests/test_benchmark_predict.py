"""The predict benchmark runs and gives finite ratios (timings are never asserted)."""

from __future__ import annotations

import json
import math

from kerahep.benchmarks import predict as bench


def test_quick_rows_are_finite(smoke_run, tmp_path):
    """``run(quick=True)`` on dy_electron (the shared smoke run, registered so that it is not
    trained again), the throughput timed in this process: one throughput and one memory row,
    finite and positive."""
    run = smoke_run("dy_electron")
    (tmp_path / "dy_electron").mkdir()
    (tmp_path / "dy_electron" / "run.json").write_text(json.dumps({"run_dir": str(run.run_dir)}))
    rows = bench.run(quick=True, workdir=tmp_path, tasks=("dy_electron",),
                     sizes={"dy_electron": (4_000, 1_000, 250)}, isolate=False)
    assert [r.name for r in rows] == ["scoring throughput, predict on files vs model.predict in memory",
                                      "peak memory of predict, input grown tenfold"]
    for r in rows:
        assert r.task == "dy_electron"
        assert math.isfinite(r.ratio) and r.ratio > 0, r
        assert r.baseline > 0 and r.candidate > 0 and r.passed in (True, False)
    assert rows[1].extra["events"] == {"N": 1_000, "10N": 10_000}
    assert not (tmp_path / "dy_electron" / "files").exists(), "the grown files are removed"


def test_grow_root_keeps_branches(smoke_run, tmp_path):
    """The grown NanoAOD file has the source's branches and types, its events repeated."""
    import numpy as np
    import uproot

    run = smoke_run("dy_electron")
    src = bench.source_file("dy_electron", run.config)
    dst = bench.grow(src, tmp_path / src.name, 1_000)
    with uproot.open(src) as f, uproot.open(dst) as g:
        a, b = f["Events"], g["Events"]
        assert b.num_entries == 1_000
        assert {k: str(v.interpretation) for k, v in a.items()} == {k: str(v.interpretation) for k, v in b.items()}
        n = a.num_entries
        ea, eb = a.arrays(["nElectron", "Electron_pt", "event"]), b.arrays(["nElectron", "Electron_pt", "event"])
        reps = -(-1_000 // n)
        np.testing.assert_array_equal(np.tile(ea["nElectron"], reps)[:1_000], eb["nElectron"])
        assert eb["Electron_pt"][n:2 * n].tolist() == ea["Electron_pt"].tolist()
