"""Input files of a benchmark grown to a size: the events of a task's synthetic twin
repeated to exactly N rows, in the same format (ROOT ``Events`` trees re-written with
uproot ``mktree``/``extend``, jagged branches as records with their ``n<name>`` counters;
HDF5 datasets tiled with the source's dtype and compression, chunks of at least 1 MiB;
CSV lines repeated, gzip kept; ``.npy`` tiled along axis 0)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np


def grow(src: Path, dst: Path, events: int) -> Path:
    """``dst``: the events of ``src`` repeated to exactly ``events`` rows (same format)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    name = src.name.lower()
    if name.endswith(".root"):
        return grow_root(src, dst, events)
    if name.endswith((".h5", ".hdf5")):
        return grow_hdf5(src, dst, events)
    if name.endswith((".csv", ".csv.gz", ".txt", ".gz")):
        return grow_lines(src, dst, events)
    if name.endswith(".npy"):
        return grow_npy(src, dst, events)
    raise ValueError(f"{src}: no way to grow this kind of file")


def _repeats(n: int, events: int) -> int:
    if n == 0:
        raise ValueError("cannot grow an empty file")
    return -(-events // n)


def grow_root(src: Path, dst: Path, events: int, block: int = 20_000) -> Path:
    """The ``Events`` tree of ``src`` tiled to ``events`` entries (baskets of ``block`` entries).

    Jagged branches are written back as records of their counter (``nElectron`` ->
    ``Electron_pt``, ... as NanoAOD names them), so the copy has the source's branches, types
    and counters."""
    import awkward as ak
    import uproot

    with uproot.open(src) as f:
        tree = f["Events"]
        groups, flat = {}, []
        for b in tree.branches:
            count = getattr(b, "count_branch", None)
            if count is not None:
                groups.setdefault(count.name, []).append(b.name)
            else:
                flat.append(b.name)
        arrays = tree.arrays(library="ak")
    n = len(arrays)
    columns, types = {}, {}
    for name in flat:
        if name in groups:
            continue  # a counter: written by uproot from its record
        columns[name] = ak.to_numpy(arrays[name])
        columns[name] = columns[name].astype(columns[name].dtype.newbyteorder("="))
        types[name] = columns[name].dtype
    for counter, members in groups.items():
        record = counter[1:]
        if not counter.startswith("n") or not all(m.startswith(record + "_") for m in members):
            raise ValueError(f"{src}: jagged branches {members} of counter {counter} are not named {record}_*")
        columns[record] = ak.zip({m[len(record) + 1:]: arrays[m] for m in members})
        types[record] = columns[record].type.content
    reps = _repeats(n, min(block, events))
    tile = {k: (ak.concatenate([v] * reps) if isinstance(v, ak.Array) else np.tile(v, reps)) for k, v in columns.items()}
    size = len(next(iter(tile.values())))
    with uproot.recreate(dst, compression=uproot.ZLIB(1)) as out:
        t = out.mktree("Events", types, counter_name=lambda c: "n" + c,
                       field_name=lambda outer, inner: outer + "_" + inner)
        done = 0
        while done < events:
            k = min(size, events - done)
            t.extend({name: v[:k] for name, v in tile.items()})
            done += k
    return dst


def grow_hdf5(src: Path, dst: Path, events: int, min_chunk_bytes: int = 2 ** 20) -> Path:
    """Every dataset of ``src`` whose first axis is the rows tiled to ``events`` rows (others
    copied): the source's dtype and compression; its chunks, with at least ``min_chunk_bytes``
    per chunk (the smoke twins' chunks of a few rows are an artefact of their size)."""
    import h5py

    with h5py.File(src, "r") as f, h5py.File(dst, "w") as out:
        n = max(int(ds.shape[0]) for ds in f.values() if isinstance(ds, h5py.Dataset) and ds.ndim)
        for key, attr in f.attrs.items():
            out.attrs[key] = attr
        for key, ds in f.items():
            if not isinstance(ds, h5py.Dataset) or not ds.ndim or ds.shape[0] != n:
                f.copy(ds, out, name=key)
                continue
            data = ds[...]
            row_bytes = max(1, data[:1].nbytes)
            chunks = None
            if ds.chunks is not None:
                rows = max(ds.chunks[0], -(-min_chunk_bytes // row_bytes))
                chunks = (min(rows, events),) + tuple(ds.chunks[1:])
            new = out.create_dataset(key, shape=(events,) + ds.shape[1:], dtype=ds.dtype, chunks=chunks,
                                     compression=ds.compression, compression_opts=ds.compression_opts,
                                     shuffle=ds.shuffle)
            for k, v in ds.attrs.items():
                new.attrs[k] = v
            step = max(n, (64 * 2 ** 20 // (row_bytes * n)) * n)  # whole copies, about 64 MB per write
            tile = np.concatenate([data] * (step // n))
            for start in range(0, events, step):
                stop = min(events, start + step)
                new[start:stop] = tile[: stop - start]
    return dst


def grow_lines(src: Path, dst: Path, events: int) -> Path:
    """The lines of ``src`` (a text table, gzip or not) repeated to ``events`` lines."""
    gz_in = src.name.lower().endswith(".gz")
    with (gzip.open(src, "rb") if gz_in else open(src, "rb")) as f:
        lines = f.read().splitlines(keepends=True)
    if lines and not lines[-1].endswith(b"\n"):
        lines[-1] += b"\n"
    n = len(lines)
    block = b"".join(lines * max(1, 20_000 // max(n, 1)))
    per_block = n * max(1, 20_000 // max(n, 1))
    with (gzip.open(dst, "wb", compresslevel=1) if dst.name.lower().endswith(".gz") else open(dst, "wb")) as out:
        done = 0
        while done + per_block <= events:
            out.write(block)
            done += per_block
        out.write(b"".join((lines * _repeats(n, max(events - done, 1)))[: events - done]))
    return dst


def grow_npy(src: Path, dst: Path, events: int) -> Path:
    """``src`` tiled along axis 0 to ``events`` rows (written through a memory map)."""
    a = np.load(src, mmap_mode="r")
    out = np.lib.format.open_memmap(dst, mode="w+", dtype=a.dtype, shape=(events,) + a.shape[1:])
    block = np.asarray(a)
    for start in range(0, events, len(block)):
        stop = min(events, start + len(block))
        out[start:stop] = block[: stop - start]
    out.flush()
    del out
    return dst
