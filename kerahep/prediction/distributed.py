"""Scoring many files on Dask: one ``dask.distributed`` task per input file.

Each task loads the run once per worker (cached) and calls the same
:func:`kerahep.prediction.predict_file` as the serial path, so the outputs are the same
files; the client only collects the small summaries. Without a scheduler address a local
cluster of threads is started on the loopback interface (as ``prepare_dataset --dask``
does); with one, the workers must see the run directory and the inputs at the same paths.
"""

from __future__ import annotations

import functools

from ..errors import KerahepError


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
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:
        raise KerahepError(f"--dask needs dask and distributed: pip install 'kerahep[dask]' ({exc})") from None
    cluster = None
    try:
        if scheduler:
            client = Client(scheduler, timeout="20s")
        else:
            cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp://",
                                   host="127.0.0.1", dashboard_address=None)
            client = Client(cluster)
    except OSError as exc:
        raise KerahepError(f"cannot reach the dask scheduler {scheduler!r}: {exc}") from None
    options = (run.batch_size, run.chunk_size, run.embedding, unsafe_load)
    try:
        futures = [client.submit(_score_one, str(run.run_dir), options, str(path), str(target), fmt, hashes,
                                 key=f"kerahep-predict-{i}-{path.name}", pure=False)
                   for i, (path, target) in enumerate(pairs)]
        return [f.result() for f in futures]
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
