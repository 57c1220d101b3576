"""Scoring many files on Dask: one ``dask.distributed`` task per input file.

Each task loads the run once per worker (cached) and calls the same
:func:`kerahep.prediction.predict_file` as the serial path, so the outputs are the same
files; the client only collects the small summaries. Without a scheduler address a local
cluster of threads is started on the loopback interface (as ``prepare_dataset --dask``
does); with one, the workers must see the run directory and the inputs at the same paths.
"""

from __future__ import annotations

import functools

from ..dask_cluster import dask_client


@functools.lru_cache(maxsize=4)
def _worker_run(run_dir: str, batch_size: int, chunk_size: int, embedding: bool, unsafe_load: bool):
    from . import open_run

    return open_run(run_dir, batch_size=batch_size, chunk_size=chunk_size, embedding=embedding,
                    unsafe_load=unsafe_load)


def _score_one(run_dir, options, path, target, fmt, hashes):
    from . import predict_file

    run = _worker_run(run_dir, *options)
    return predict_file(run, path, target, fmt, hashes)


def predict_on_dask(run, pairs, fmt: str, hashes: dict, scheduler: str | None = None,
                    unsafe_load: bool = False) -> list[dict]:
    """Score ``pairs`` of ``(input, output)`` on a Dask cluster; results in the order of ``pairs``."""
    options = (run.batch_size, run.chunk_size, run.embedding, unsafe_load)
    with dask_client(scheduler, n_workers=1, threads_per_worker=2, needs="dask and distributed") as client:
        futures = [client.submit(_score_one, str(run.run_dir), options, str(path), str(target), fmt, hashes,
                                 key=f"kerahep-predict-{i}-{path.name}", pure=False)
                   for i, (path, target) in enumerate(pairs)]
        return [f.result() for f in futures]
