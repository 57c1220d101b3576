"""Preparation of a flat dataset from NanoAOD files: :func:`prepare_dataset`, its plan
(inputs expanded, every file inspected, events capped per sample), the streaming CSV or
Parquet writer and the :class:`PrepareReport`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import ConfigError, DataError, check_output_path
from .dask import run_dask
from .features import FeatureSpec
from .progress import Progress, count_step
from .reading import inspect_file, iterate
from .samples import ID_DTYPES, OPTIONAL_DEFAULTS, expand_samples, sample_role, source_name

log = logging.getLogger("kerahep")


@dataclass
class PrepareReport:
    """What :func:`prepare_dataset` did.

    Attributes:
        output: the written file.
        fmt: ``"csv"`` or ``"parquet"``.
        columns: the columns written, in order.
        samples: per sample: ``role``, ``target``, ``files``, ``events_read``,
            ``selected``, ``failed_preselection``, ``files_skipped`` (beyond the cap),
            ``sum_genWeight`` (over every event read, before the preselection: the
            normalisation of cross-section weights; the number of events read where the
            files lack ``genWeight``).
        files: every file read.
        missing_optional: per file, the optional branches filled with defaults.
        events_read, selected, failed_preselection: totals.
        seconds: wall time.
        engine: ``"serial"`` or ``"dask"``.
        spec: the :class:`FeatureSpec` as a dict.
    """

    output: str
    fmt: str
    columns: list
    samples: dict
    files: list
    missing_optional: dict
    events_read: int
    selected: int
    failed_preselection: int
    seconds: float
    engine: str = "serial"
    spec: dict = field(default_factory=dict)

    @property
    def events_per_second(self) -> float:
        return self.events_read / self.seconds if self.seconds > 0 else float("nan")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        lines = [f"{'sample':28s} {'role':10s} {'read':>9s} {'selected':>9s} {'failed':>9s}"]
        for name, s in self.samples.items():
            lines.append(f"{name:28s} {s['role']:10s} {s['events_read']:9d} {s['selected']:9d} "
                         f"{s['failed_preselection']:9d}")
        lines.append(f"{'total':28s} {'':10s} {self.events_read:9d} {self.selected:9d} {self.failed_preselection:9d}")
        for f, miss in self.missing_optional.items():
            lines.append(f"filled optional branches {', '.join(miss)} with defaults in {f}")
        lines.append(f"wrote {self.output} ({self.fmt}, {len(self.columns)} columns) in {self.seconds:.1f} s")
        return "\n".join(lines)


class _Writer:
    """Streams column chunks into one CSV or Parquet file with pyarrow."""

    def __init__(self, path: Path, fmt: str, columns: list[str], spec: FeatureSpec):
        import pyarrow as pa

        self.path, self.fmt, self.columns = path, fmt, columns
        types = []
        for c in columns:
            if c in ("sample", "file"):
                types.append(pa.string())
            elif c == "target":
                types.append(pa.int8())
            elif c in ID_DTYPES:
                types.append(pa.from_numpy_dtype(np.dtype(ID_DTYPES[c])))
            else:
                types.append(pa.from_numpy_dtype(np.dtype(spec.dtype(c))))
        self.schema = pa.schema(list(zip(columns, types)))
        self.rows = 0
        if fmt == "parquet":
            import pyarrow.parquet as pq

            self._w = pq.ParquetWriter(str(path), self.schema, compression="zstd")
            self._sink = None
        else:
            import pyarrow.csv as pacsv

            self._sink = (pa.CompressedOutputStream(str(path), "gzip") if str(path).endswith(".gz")
                          else pa.OSFile(str(path), "wb"))
            self._sink.write((",".join(columns) + "\n").encode())
            self._w = pacsv.CSVWriter(self._sink, self.schema,
                                      write_options=pacsv.WriteOptions(include_header=False,
                                                                       quoting_style="needed"))

    def write(self, cols: dict, target: int, sample: str, file: str):
        import pyarrow as pa

        n = len(next(iter(cols.values())))
        if n == 0:
            return
        arrays = []
        for c, t in zip(self.columns, self.schema.types):
            if c == "target":
                arrays.append(pa.array(np.full(n, target, np.int8)))
            elif c in ("sample", "file"):
                value = sample if c == "sample" else file
                arrays.append(pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), [value]).cast(t))
            else:
                arrays.append(pa.array(np.ascontiguousarray(cols[c]), type=t))
        self._w.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        self.rows += n

    def close(self):
        self._w.close()
        if self._sink is not None and not self._sink.closed:
            self._sink.close()


def _infer_fmt(out: Path, fmt: str | None) -> str:
    if fmt is None:
        return "parquet" if out.suffix in (".parquet", ".pq") else "csv"
    if fmt not in ("csv", "parquet"):
        raise ConfigError(f"output format must be 'csv' or 'parquet', got {fmt!r}")
    return fmt


_KEEP_OPEN_FILES = 16


def unique_files(paths) -> list:
    """``paths`` without repeats of the same local file (however it is spelt: relative,
    absolute, through a link), first spelling kept; URLs compare as given."""
    seen, out = set(), []
    for p in paths:
        s = str(p)
        key = s if "://" in s else os.path.realpath(s)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def _plan(signal, background, spec: FeatureSpec, max_events, keep_open: bool = True):
    """Expand the inputs, inspect every file (fail fast), and cap events per sample."""
    if max_events is not None and int(max_events) <= 0:
        raise ConfigError(f"max_events must be a positive number of events per sample, got {max_events!r}")
    groups: dict[str, dict] = {}
    for target, role, specs in ((1, "signal", signal), (0, "background", background)):
        for sample, path in expand_samples(specs or []):
            g = groups.setdefault(sample, {"role": role, "target": target, "paths": []})
            if g["target"] != target:
                raise ConfigError(f"sample {sample!r} is given both as signal and as background ({path})")
            g["paths"].append(path)
            known = sample_role(sample)
            if known and known != role:
                log.warning("sample %s is a %s sample of the CMS electron project but is used as %s",
                            sample, known, role)
    if not groups:
        raise ConfigError("no input files: give at least one signal or background file")
    plan = []  # (sample, target, FileInfo, entry_stop)
    samples = {}
    keep_open = keep_open and sum(len(g["paths"]) for g in groups.values()) <= _KEEP_OPEN_FILES
    try:
        for sample, g in groups.items():
            left = None if max_events is None else int(max_events)
            rep = {"role": g["role"], "target": g["target"], "files": [], "events_read": 0, "selected": 0,
                   "failed_preselection": 0, "files_skipped": 0, "sum_genWeight": 0.0}
            for path in unique_files(g["paths"]):
                if left is not None and left <= 0:
                    rep["files_skipped"] += 1  # beyond the per-sample cap: not opened
                    continue
                info = inspect_file(path, spec, keep_open=keep_open)
                stop = info.num_entries if left is None else min(info.num_entries, left)
                if left is not None:
                    left -= stop
                plan.append((sample, g["target"], info, stop))
                rep["files"].append(path)
            samples[sample] = rep
    except BaseException:
        _close(plan)
        raise
    return plan, samples


def _close(plan):
    for _, _, info, _ in plan:
        info.close()


def prepare_dataset(signal, background, out, spec: FeatureSpec = FeatureSpec(), max_events: int | None = None,
                    fmt: str | None = None, progress: bool = True, dask: bool = False, scheduler=None,
                    step_size="50 MB") -> PrepareReport:
    """Turn NanoAOD files into one flat dataset, one row per selected event.

    Args:
        signal: signal inputs (files, directories, globs, ``*_file_index.txt`` lists).
        background: background inputs (same forms).
        out: output file (``.csv``, ``.csv.gz`` or ``.parquet``), written atomically;
            a ``<out>.report.json`` with the :class:`PrepareReport` is written beside it.
        spec: features and preselection.
        max_events: cap on events read per sample (over all its files).
        fmt: ``"csv"`` or ``"parquet"``; default from the suffix of ``out``.
        progress: show a progress bar over files and events.
        dask: build the dataset with ``uproot.dask`` on a ``dask.distributed`` cluster.
        scheduler: address of an existing scheduler (with ``dask=True``); default: a
            local cluster of two workers on 127.0.0.1.
        step_size: events (int) or memory (``"50 MB"``) per read step.

    Returns:
        The :class:`PrepareReport` (also printed by the command line).

    Raises:
        DataError: ``out`` is a directory or in a folder that cannot be written (checked
            before any input is read), bad input files (see :func:`inspect_file`) or no
            event passing the preselection.

    Example:
        >>> report = prepare_dataset(["DYJetsToLL_M-50.root"], ["TTJets.root", "WW.root"],
        ...                          "electron_dataset.csv", max_events=10000)  # doctest: +SKIP
        >>> print(report.summary())  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    out = Path(out)
    fmt = _infer_fmt(out, fmt)
    check_output_path(out, "the prepared dataset")  # before any input is read
    check_output_path(Path(str(out) + ".report.json"), "the preparation report (beside the dataset)")
    plan, samples = _plan(signal, background, spec, max_events, keep_open=not dask)
    try:
        return _prepare(plan, samples, out, fmt, spec, progress, dask, scheduler, step_size, t0)
    finally:
        _close(plan)


def _prepare(plan, samples, out: Path, fmt: str, spec: FeatureSpec, progress, dask, scheduler, step_size, t0):
    from ...artifacts import atomic_path, write_json

    columns = spec.output_columns
    missing = {info.path: list(info.missing_optional) for _, _, info, _ in plan if info.missing_optional}
    total = sum(stop for *_, stop in plan)
    suffix = "".join(out.suffixes) or (".parquet" if fmt == "parquet" else ".csv")
    with atomic_path(out, suffix=suffix) as tmp:
        writer = _Writer(tmp, fmt, columns, spec)
        try:
            with Progress(progress, len(plan), total) as bar:
                if dask:
                    run_dask(plan, spec, writer, samples, bar, scheduler, step_size)
                else:
                    for sample, target, info, stop in plan:
                        bar.file(sample, info.path)
                        for cols, n_read, n_sel, sum_w in iterate(info, spec, step_size, stop):
                            writer.write(cols, target, sample, source_name(info.path))
                            count_step(samples[sample], n_read, n_sel, sum_w)
                            bar.advance(n_read)
                        bar.file_done()
        finally:
            writer.close()
        n_read = sum(s["events_read"] for s in samples.values())
        n_sel = sum(s["selected"] for s in samples.values())
        if n_sel == 0:
            per = "; ".join(f"{k}: 0 of {v['events_read']}" for k, v in samples.items())
            raise DataError(
                out, f"at least one event passing the preselection (>= {spec.min_electrons} electron(s) with "
                f"pt > {spec.min_pt:g} GeV and |eta| < {spec.max_abs_eta:g})",
                f"nothing passed the preselection: 0 of {n_read} events ({per})")
    report = PrepareReport(
        output=str(out), fmt=fmt, columns=columns, samples=samples,
        files=[info.path for _, _, info, _ in plan], missing_optional=missing, events_read=n_read,
        selected=n_sel, failed_preselection=n_read - n_sel, seconds=time.perf_counter() - t0,
        engine="dask" if dask else "serial", spec=spec.to_dict())
    write_json(Path(str(out) + ".report.json"), report.to_dict())
    for f, miss in missing.items():
        log.warning("%s lacks optional branch(es) %s: filled with defaults %s", f, ", ".join(miss),
                    {m: OPTIONAL_DEFAULTS[m] for m in miss})
    return report
