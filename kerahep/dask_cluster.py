"""The Dask client that ``--dask`` work runs on: an existing scheduler when its address is
given, otherwise a local in-process cluster that is closed afterwards. Shared by the
NanoAOD preparation (one task per file chunk) and ``kerahep predict`` (one task per file)."""

from __future__ import annotations

import contextlib

from .errors import KerahepError


@contextlib.contextmanager
def dask_client(scheduler: str | None, n_workers: int, threads_per_worker: int, needs: str):
    """Yield a ``dask.distributed.Client``; close it (and the local cluster) on exit.

    Args:
        scheduler: address of a running scheduler, or None for a local cluster of
            ``n_workers`` workers with ``threads_per_worker`` threads each (threads, not
            processes: the workers share the already imported Keras and uproot).
        needs: the packages named in the install hint when distributed is missing.
    """
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:
        raise KerahepError(f"--dask needs {needs}: pip install 'kerahep[dask]' ({exc})") from None
    cluster = None
    try:
        if scheduler:
            client = Client(scheduler, timeout="20s")
        else:
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=False,
                                   protocol="tcp://", host="127.0.0.1", dashboard_address=None)
            client = Client(cluster)
    except OSError as exc:
        raise KerahepError(f"cannot reach the dask scheduler {scheduler!r}: {exc}") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
