"""Reading NanoAOD files: opening the ``Events`` tree, checking its branches
(:func:`inspect_file`) and streaming its events in bounded steps (:func:`iterate_file`,
:func:`process_chunk`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ...errors import DataError
from .features import FeatureSpec, flatten_events, preselection_mask, require, scalar
from .samples import EVENT_ID_BRANCHES, ID_DTYPES, TREE, is_url


@dataclass
class FileInfo:
    """What :func:`inspect_file` found: entries, branches to read, optional ones missing."""

    path: str
    num_entries: int
    branches: list[str]
    missing_optional: list[str]
    #: the open (file, tree) kept from the inspection for the read that follows, or None
    handle: tuple | None = field(default=None, repr=False, compare=False)

    def close(self):
        if self.handle is not None:
            self.handle[0].close()
            self.handle = None


def _open_tree(path: str):
    import uproot

    if not is_url(path) and not os.path.exists(path):
        raise DataError(path, "a NanoAOD ROOT file", "no such file")
    try:
        f = uproot.open(path)
    except FileNotFoundError:
        raise DataError(path, "a NanoAOD ROOT file", "no such file") from None
    except Exception as exc:  # noqa: BLE001 - uproot raises many types for non-ROOT input
        raise DataError(path, "a ROOT file (NanoAOD)", f"not a readable ROOT file ({type(exc).__name__}: {exc})") from None
    try:
        tree = f[TREE]
    except Exception:  # noqa: BLE001
        keys = sorted({k.split(";")[0] for k in f.keys(recursive=False)})
        f.close()
        raise DataError(path, f"a TTree {TREE!r}", f"keys {keys[:10]}") from None
    if not hasattr(tree, "num_entries") or not hasattr(tree, "iterate"):
        f.close()
        raise DataError(path, f"{TREE!r} to be a TTree", f"a {type(tree).__name__}")
    return f, tree


def inspect_file(path, spec: FeatureSpec = FeatureSpec(), keep_open: bool = False) -> FileInfo:
    """Open ``path``, check its ``Events`` tree has the branches ``spec`` needs.

    Args:
        path: a ROOT file (or URL).
        spec: the features (which branches are required and which optional).
        keep_open: keep the file open in ``FileInfo.handle`` for the read that follows
            (NanoAOD headers with ~1500 branches take a while to parse).

    Raises:
        DataError: missing file, not a ROOT file, no ``Events`` tree, or a required
            branch absent (the message names the branch and the file).
    """
    path = os.fspath(path)
    f, tree = _open_tree(path)
    ok = False
    try:
        keys = set(tree.keys())
        required, optional = spec.branches()
        missing = [b for b in required if b not in keys]
        if missing:
            raise DataError(path, f"NanoAOD branch {missing[0]!r} in the {TREE!r} tree",
                            f"no such branch (missing: {', '.join(missing)}; the file has {len(keys)} branches)")
        present_opt = [b for b in optional if b in keys]
        info = FileInfo(path, int(tree.num_entries), required + present_opt,
                        [b for b in optional if b not in keys], handle=(f, tree) if keep_open else None)
        ok = True
        return info
    finally:
        if not (ok and keep_open):
            f.close()


def iterate_file(path, spec: FeatureSpec = FeatureSpec(), step_size="50 MB", max_events: int | None = None,
                 missing_optional: list | None = None) -> Iterator[tuple[dict[str, np.ndarray], int, int]]:
    """Stream the selected events of one NanoAOD file in bounded steps.

    Reads only the branches ``spec`` needs with ``tree.iterate``.

    Args:
        path: a ROOT file (or URL).
        spec: features and preselection.
        step_size: events per step (int) or memory per step (``"50 MB"``).
        max_events: read at most this many events from the start of the file.
        missing_optional: a list that receives the optional branches the file lacks.

    Yields:
        ``(columns, n_read, n_selected)`` per step: the feature columns of the events
        passing the preselection with ``genWeight`` and their identifiers ``run``,
        ``luminosityBlock``, ``event`` and ``entry`` (row in the file), the events read
        and how many passed.
    """
    info = inspect_file(os.fspath(path), spec, keep_open=True)
    if missing_optional is not None:
        missing_optional.extend(info.missing_optional)
    for cols, n_read, n_sel, _ in iterate(info, spec, step_size, max_events):
        yield cols, n_read, n_sel


def iterate(info: FileInfo, spec: FeatureSpec, step_size, max_events):
    """``(columns, n_read, n_selected, sum of genWeight read)`` per step of one file."""
    path = info.path
    stop = info.num_entries if max_events is None else min(info.num_entries, int(max_events))
    if stop <= 0:
        info.close()
        return
    f, tree = info.handle if info.handle is not None else _open_tree(path)
    info.handle = None
    try:
        it = tree.iterate(info.branches, step_size=step_size, entry_stop=stop, library="ak", how=dict)
        start = 0
        while True:
            try:
                chunk = next(it)
            except StopIteration:
                break
            except Exception as exc:  # noqa: BLE001 - corrupt baskets, truncated files
                raise DataError(path, "readable NanoAOD baskets", f"a read error ({type(exc).__name__}: {exc})") from None
            out = process_step(chunk, spec, path, start)
            start += out[1]
            yield out
    finally:
        f.close()


def process_chunk(events, spec: FeatureSpec = FeatureSpec(), path: str = "<events>") -> tuple[np.ndarray, dict]:
    """Preparation's preselection and features of one step of NanoAOD events.

    The one place where the preparation (serial and Dask) and dy_electron's ``predict``
    turn events into model features, so a scored file gets exactly training's selection
    and features.

    Args:
        events: the events of one step (as :func:`flatten_events` takes them).
        spec: features and preselection.
        path: the file the events come from, named in errors.

    Returns:
        ``(mask, columns)``: the boolean :func:`preselection_mask` over every event of
        ``events``, and the :func:`flatten_events` columns (every feature of
        ``spec.columns`` and ``genWeight``) of the events it selects, in order.

    Raises:
        DataError: a branch the features need is absent or of the wrong structure (naming
            ``path``).
    """
    try:
        mask = preselection_mask(events, spec)
        return mask, flatten_events(events, spec, mask=mask)
    except DataError as err:
        raise DataError(path, err.expected, err.found) from None


def process_step(chunk, spec: FeatureSpec, path: str = "<events>", start: int = 0):
    """Preselect and flatten one step whose first event is entry ``start`` of its file:
    ``(columns with the identifiers, n_read, n_selected, sum of genWeight read)``."""
    import awkward as ak

    mask, cols = process_chunk(chunk, spec, path)
    try:
        for name in EVENT_ID_BRANCHES:
            cols[name] = np.asarray(ak.to_numpy(require(chunk, name)))[mask].astype(ID_DTYPES[name])
    except DataError as err:
        raise DataError(path, err.expected, err.found) from None
    cols["entry"] = (int(start) + np.flatnonzero(mask)).astype(ID_DTYPES["entry"])
    sum_w = float(np.sum(scalar(chunk, "genWeight", len(mask)), dtype=np.float64))
    return cols, len(mask), int(np.count_nonzero(mask)), sum_w
