"""Output writers of ``kerahep predict``: one output file per input file, written chunk by chunk.

Every writer takes chunks ``{column: array}`` (the same columns, dtypes and trailing
shapes in every chunk, rows in the input's order) and the run's provenance record, and
writes to the path it is given (the caller gives a temporary name and renames it when the
writer is closed without error). The provenance goes where each format keeps metadata:

========  ==========================================  ============================================
format    columns                                     provenance
========  ==========================================  ============================================
root      branches of tree ``Events`` (uproot)        ``TObjString`` ``kerahep_provenance`` (JSON)
parquet   columns (pyarrow)                           schema metadata key ``kerahep`` (JSON)
csv       columns (pandas)                            first line ``# kerahep: {JSON}``; read with
                                                      ``pandas.read_csv(path, comment="#")``
hdf5      datasets at the root (h5py), resizable      root attributes ``kerahep_provenance`` (JSON)
                                                      and ``run_id``, ``model_sha256``, ...
========  ==========================================  ============================================

Columns of shape ``(n, d)`` (an embedding) stay 2-D in ROOT (a fixed-size array branch) and
HDF5; CSV and Parquet get ``name_0 .. name_{d-1}``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: format -> file extension of its outputs
EXTENSIONS = {"root": ".root", "parquet": ".parquet", "csv": ".csv", "hdf5": ".h5"}
FORMATS = tuple(EXTENSIONS)
#: the name under which every format stores the provenance record
PROVENANCE_KEY = "kerahep_provenance"


def flat_columns(chunk: dict) -> dict:
    """``chunk`` with every ``(n, d)`` column split into ``name_0 .. name_{d-1}`` (for tables)."""
    out = {}
    for name, arr in chunk.items():
        arr = np.asarray(arr)
        if arr.ndim == 1:
            out[name] = arr
        else:
            flat = arr.reshape(len(arr), -1)
            for i in range(flat.shape[1]):
                out[f"{name}_{i}"] = flat[:, i]
    return out


class Writer:
    """Base of the writers: ``write(chunk)`` any number of times, then ``close()``."""

    def __init__(self, path: Path, provenance: dict):
        self.path = Path(path)
        self.provenance = provenance
        self.rows = 0

    def write(self, chunk: dict) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Finish the file (called only when every chunk was written)."""

    def abort(self) -> None:
        """Release the file after an error (the caller removes it)."""
        self.close()


class RootWriter(Writer):
    """A ROOT file with tree ``Events`` (a friend tree of the input's ``Events``)."""

    def __init__(self, path, provenance):
        super().__init__(path, provenance)
        import uproot

        self.file = uproot.recreate(self.path)
        self.tree = None

    def write(self, chunk):
        chunk = {k: np.ascontiguousarray(v) for k, v in chunk.items()}
        if self.tree is None:
            types = {k: (v.dtype, v.shape[1:]) if v.ndim > 1 else v.dtype for k, v in chunk.items()}
            self.tree = self.file.mktree("Events", types, title="kerahep scores")
        if len(next(iter(chunk.values()))):
            self.tree.extend(chunk)
        self.rows += len(next(iter(chunk.values())))

    def close(self):
        if self.file is not None:
            self.file[PROVENANCE_KEY] = json.dumps(self.provenance, sort_keys=True)
            self.file.close()
            self.file = None

    def abort(self):
        if self.file is not None:
            self.file.close()
            self.file = None


class ParquetWriter(Writer):
    """A Parquet file; the provenance is the schema metadata ``kerahep``."""

    def __init__(self, path, provenance):
        super().__init__(path, provenance)
        self.writer = None

    def write(self, chunk):
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(flat_columns(chunk))
        if self.writer is None:
            schema = table.schema.with_metadata({"kerahep": json.dumps(self.provenance, sort_keys=True)})
            self.writer = pq.ParquetWriter(self.path, schema)
        self.writer.write_table(table.cast(self.writer.schema))
        self.rows += table.num_rows

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class CsvWriter(Writer):
    """A CSV file whose first line is ``# kerahep: {provenance JSON}``."""

    def __init__(self, path, provenance):
        super().__init__(path, provenance)
        self.file = open(self.path, "w", encoding="utf-8", newline="")
        self.file.write(f"# kerahep: {json.dumps(self.provenance, sort_keys=True)}\n")
        self.header = True

    def write(self, chunk):
        import pandas as pd

        frame = pd.DataFrame(flat_columns(chunk))
        frame.to_csv(self.file, index=False, header=self.header)
        self.header = False
        self.rows += len(frame)

    def close(self):
        if self.file is not None:
            self.file.close()
            self.file = None


class Hdf5Writer(Writer):
    """An HDF5 file with one resizable dataset per column; provenance in the root attributes."""

    def __init__(self, path, provenance):
        super().__init__(path, provenance)
        import h5py

        self.file = h5py.File(self.path, "w")
        self.file.attrs[PROVENANCE_KEY] = json.dumps(self.provenance, sort_keys=True)
        for key in ("run_id", "task", "kerahep_version", "config_sha256"):
            if self.provenance.get(key) is not None:
                self.file.attrs[key] = str(self.provenance[key])
        model = (self.provenance.get("models") or {}).get("model")
        if model:
            self.file.attrs["model_sha256"] = model["sha256"]

    def write(self, chunk):
        n = len(next(iter(chunk.values())))
        for name, arr in chunk.items():
            arr = np.asarray(arr)
            if name not in self.file:
                self.file.create_dataset(name, shape=(0, *arr.shape[1:]), maxshape=(None, *arr.shape[1:]),
                                         dtype=arr.dtype, chunks=True)
            ds = self.file[name]
            ds.resize(self.rows + n, axis=0)
            ds[self.rows:self.rows + n] = arr
        self.rows += n

    def close(self):
        if self.file is not None:
            self.file.close()
            self.file = None


WRITERS = {"root": RootWriter, "parquet": ParquetWriter, "csv": CsvWriter, "hdf5": Hdf5Writer}


def read_provenance(path) -> dict:
    """The provenance record of a ``kerahep predict`` output (any of the four formats)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".root":
        import uproot

        with uproot.open(path) as f:
            return json.loads(str(f[PROVENANCE_KEY]))
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return json.loads(pq.read_schema(path).metadata[b"kerahep"])
    if suffix == ".csv":
        with open(path, encoding="utf-8") as f:
            first = f.readline()
        return json.loads(first.split(":", 1)[1])
    import h5py

    with h5py.File(path, "r") as f:
        return json.loads(f.attrs[PROVENANCE_KEY])
