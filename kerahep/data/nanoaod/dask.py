"""The Dask path of :func:`~kerahep.data.nanoaod.prepare_dataset`: ``uproot.dask``
partitions of each file, processed on a ``dask.distributed`` cluster.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ...dask_cluster import dask_client
from ...errors import DataError, KerahepError
from .features import FeatureSpec
from .progress import count_step
from .reading import FileInfo, process_step
from .samples import TREE, source_name


def _dask_steps(info: FileInfo, stop: int, step_size) -> list[list[int]]:
    import uproot

    if isinstance(step_size, (int, np.integer)):
        per = int(step_size)
    else:
        with uproot.open(info.path) as f:
            per = int(f[TREE].num_entries_for(step_size, filter_name=info.branches))
    per = max(1, per)
    return [[a, min(a + per, stop)] for a in range(0, stop, per)]


def _dask_chunk(chunk, spec: FeatureSpec, path: str, start: int):
    import awkward as ak

    if not isinstance(chunk, Mapping):
        chunk = {k: chunk[k] for k in ak.fields(chunk)}
    return process_step(chunk, spec, path, start)


def run_dask(plan, spec: FeatureSpec, writer, samples, bar, scheduler, step_size):
    """Read every planned file as ``uproot.dask`` partitions on a cluster, write and count their rows."""
    try:
        import dask
        import uproot
    except ImportError as exc:
        raise KerahepError(f"--dask needs dask, distributed and dask-awkward: pip install 'kerahep[dask]' ({exc})") \
            from None

    with dask_client(scheduler, n_workers=2, threads_per_worker=1,
                     needs="dask, distributed and dask-awkward") as client:
        tasks, meta = [], []
        for sample, target, info, stop in plan:
            steps = _dask_steps(info, stop, step_size)
            if not steps:
                continue
            arr = uproot.dask({info.path: {"object_path": TREE, "steps": steps}}, filter_name=info.branches,
                              open_files=False)
            parts = arr.to_delayed()
            if len(parts) != len(steps):  # the entry numbers come from the steps: one partition each
                raise KerahepError(f"uproot.dask made {len(parts)} partitions of {info.path} for {len(steps)} steps")
            for part, (start, _) in zip(parts, steps):
                tasks.append(dask.delayed(_dask_chunk)(part, spec, info.path, start))
                meta.append((sample, target, info.path))
        futures = client.compute(tasks)
        last = None
        for fut, (sample, target, path) in zip(futures, meta):
            if last is not None and path != last[1]:
                bar.file_done()
            if last is None or path != last[1]:
                bar.file(sample, path)
            last = (sample, path)
            try:
                cols, n_read, n_sel, sum_w = fut.result()
            except DataError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise DataError(path, "readable NanoAOD baskets", f"a read error ({type(exc).__name__}: {exc})") \
                    from None
            fut.release()
            writer.write(cols, target, sample, source_name(path))
            count_step(samples[sample], n_read, n_sel, sum_w)
            bar.advance(n_read)
        if last is not None:
            bar.file_done()
