"""A cheap fingerprint of the input files a run was trained on.

``evaluate_run`` without external files rebuilds a run's test split by reading the run's
input files again and selecting events by seed and position. If those files changed since
training (a dataset re-prepared, a file replaced, a real file appearing where the run used
the synthetic twin), the same indices select different events: training events can land
in "test" and the metrics are silently wrong. :func:`data_fingerprint` is recorded in
``metrics.json["data"]["fingerprint"]`` at training, and :func:`compare_fingerprints`
checks it before re-evaluation.

What is recorded, per input file: the resolved path, the size in bytes and ``mtime_ns``,
never a content hash (the real HIGGS file is 8 GB; hashing it would cost a minute of I/O
on every training and evaluation). Plus the data ``source`` and the split sizes
(``n_train``/``n_val``/``n_test``) the task reported.

How files are compared depends on the source:

* ``files`` (real data): path, size and ``mtime_ns`` must all match. A file rewritten with
  the same size is caught by its mtime; a copy restored with a new mtime is refused too
  (a false alarm is cheap, silently wrong test metrics are not).
* ``synthetic`` twins are regenerated deterministically (same parameters, same events)
  whenever they are missing, so a regenerated identical twin has a new mtime but the same
  data. A twin file with a parameter stamp (the ``params``/``parameters`` of
  ``<file stem>.json`` beside it, else of ``twin.json`` in its folder; recorded as a short
  SHA-256 of that JSON) is compared by file name, size and stamp: ``mtime_ns`` is recorded
  for information only, and the folder may differ (the twin regenerated under another
  working directory is the same data). A synthetic file without a stamp (a prepared copy
  of a twin at a path of the user's choosing, which nothing regenerates) is compared like
  real data: path, size and mtime.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

#: split sizes from ``TaskData.info`` that are recorded and compared
SPLIT_KEYS = ("n_train", "n_val", "n_test")

_NO_FILE = "no such file"


def _stamp(path: Path) -> str | None:
    """Short hash of the parameters of the synthetic twin that ``path`` belongs to, if stamped."""
    for meta in (path.with_suffix(".json"), path.parent / "twin.json"):
        if meta == path or not meta.is_file():
            continue
        try:
            record = json.loads(meta.read_text())
        except (OSError, ValueError):
            continue
        params = record.get("params", record.get("parameters")) if isinstance(record, dict) else None
        if params is not None:
            text = json.dumps(params, sort_keys=True, default=str)
            return hashlib.sha256(text.encode()).hexdigest()[:16]
    return None


def file_fingerprint(path, synthetic: bool = False) -> dict:
    """``{"path", "size", "mtime_ns"}`` of one input (``"stamp"`` too for a synthetic twin).

    URLs (``root://...``) are recorded by name only; a path that does not exist is recorded
    with ``size`` None, so both sides of a comparison see the same thing.
    """
    text = str(path)
    if "://" in text:
        return {"path": text, "size": None, "mtime_ns": None}
    p = Path(text).expanduser()
    try:
        p = p.resolve()
        st = p.stat()
    except OSError:
        return {"path": str(p), "size": None, "mtime_ns": None}
    rec = {"path": str(p), "size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}
    if synthetic:
        rec["stamp"] = _stamp(p)
    return rec


def data_fingerprint(data) -> dict:
    """The fingerprint of a :class:`~kerahep.tasks.base.TaskData`: source, files, split sizes."""
    synthetic = data.source == "synthetic"
    fp = {"source": data.source, "files": [file_fingerprint(p, synthetic) for p in data.paths]}
    for key in SPLIT_KEYS:
        if key in data.info:
            try:
                fp[key] = int(data.info[key])
            except (TypeError, ValueError):
                fp[key] = data.info[key]
    return fp


def _describe(rec: dict) -> str:
    if rec.get("size") is None:
        return _NO_FILE if "://" not in rec["path"] else "a remote file"
    parts = [f"{rec['size']} bytes"]
    if rec.get("mtime_ns") is not None:
        import datetime as _dt

        parts.append("modified " + _dt.datetime.fromtimestamp(rec["mtime_ns"] / 1e9).isoformat(timespec="seconds"))
    if rec.get("stamp"):
        parts.append(f"twin parameters {rec['stamp']}")
    return ", ".join(parts)


def compare_fingerprints(recorded: dict, found: dict) -> tuple[str, str, str] | None:
    """The first difference between two fingerprints as ``(path, expected, found)``, or None.

    The comparison rules are in the module docstring (mtime for real files; size and the
    parameter stamp for synthetic twins).
    """
    rec_files, new_files = recorded.get("files", []), found.get("files", [])
    first = (new_files or rec_files or [{"path": "<no input files>"}])[0]["path"]
    if recorded.get("source") != found.get("source"):
        return (first, f"{recorded.get('source')} data ("
                + ", ".join(f["path"] for f in rec_files) + ")",
                f"{found.get('source')} data (" + ", ".join(f["path"] for f in new_files) + ")")

    def key(f):  # a stamped twin by its name (its folder may differ), anything else by its path
        return Path(f["path"]).name if f.get("stamp") else f["path"]

    rec_keys, new_keys = [key(f) for f in rec_files], [key(f) for f in new_files]
    if rec_keys != new_keys:
        missing = [f["path"] for f, k in zip(rec_files, rec_keys) if k not in new_keys]
        extra = [f["path"] for f, k in zip(new_files, new_keys) if k not in rec_keys]
        path = (missing or extra or [first])[0]
        return (path, "the input files " + ", ".join(f["path"] for f in rec_files),
                "the input files " + ", ".join(f["path"] for f in new_files))
    for old, new in zip(rec_files, new_files):
        keys = ("size", "stamp") if old.get("stamp") else ("size", "mtime_ns")
        if any(old.get(k) != new.get(k) for k in keys):
            return (old["path"], "the file as at training (" + _describe(old) + ")", _describe(new))
    for split in SPLIT_KEYS:
        if split in recorded and split in found and recorded[split] != found[split]:
            return (first, f"{split}={recorded[split]} as at training", f"{split}={found[split]}")
    return None

