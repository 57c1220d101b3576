"""Distributed NanoAOD preparation (uproot.dask + dask-awkward on dask.distributed) equals the serial path."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import require_backend  # noqa: E402 - skips, or fails with KERAHEP_REQUIRE_BACKENDS=1 (CI)

require_backend("dask_awkward", "distributed", allow_module_level=True)
import distributed  # noqa: E402

from kerahep.data.nanoaod import ID_COLUMNS, FeatureSpec, load_prepared, prepare_dataset  # noqa: E402 (after the check)
from kerahep.data.synthetic.nanoaod import make_twin  # noqa: E402


def _rows(df):
    """The rows as a sorted list of tuples (the set of rows, order-free): sample and source file,
    the event ids and entry as integers, the features as float32."""
    num = [c for c in df.columns if c not in ("sample",) + ID_COLUMNS]
    ids = ["run", "luminosityBlock", "event", "entry"]
    return sorted(zip(df["sample"], df["file"], *df[ids].to_numpy(np.int64).T.tolist(),
                      *df[num].to_numpy(np.float32).T.tolist()))


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_rows_as_serial(tmp_path):
    files = make_twin(tmp_path / "twin", 200, seed=5)
    sig, bkg = files["signal"], files["background"][:2] + files["background"][-1:]
    spec = FeatureSpec(n_jets=2)
    serial = prepare_dataset(sig, bkg, tmp_path / "serial.csv", spec=spec, max_events=150, progress=False)
    # default: a LocalCluster of two workers on 127.0.0.1, several partitions per file
    dist = prepare_dataset(sig, bkg, tmp_path / "dask.csv", spec=spec, max_events=150, progress=False,
                           dask=True, step_size=40)
    a, b = load_prepared(tmp_path / "serial.csv"), load_prepared(tmp_path / "dask.csv")
    assert dist.engine == "dask" and serial.engine == "serial"
    assert len(b) == dist.selected == serial.selected > 0
    assert list(a.columns) == list(b.columns)
    assert _rows(a) == _rows(b)
    assert dist.samples == serial.samples  # per-sample read / selected / failed counts and files

    # an existing scheduler given by address
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://",
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        prepare_dataset(sig[:1], bkg[:1], tmp_path / "sched.parquet", spec=spec, max_events=150,
                        progress=False, dask=True, scheduler=cluster.scheduler_address, step_size=64)
    c = load_prepared(tmp_path / "sched.parquet")
    keep = a["sample"].isin(["DYJetsToLL_M-10to50", "ST_t-channel_top"])
    assert _rows(c) == _rows(a[keep])
