"""higgs_mae ``predict``: score HIGGS tables with a trained run, one output row per input line.

Input: a HIGGS table as training reads it (:mod:`kerahep.data.higgs`: ``.csv`` or
``.csv.gz``, comma-, tab- or space-separated, no header), either with the label first (29
columns, as ``HIGGS.csv``) or without it (the 28 stored features only). The layout is
taken from the first line. An empty file (no line at all) gives an output with the
columns and no rows; everything else is checked as training's reader checks it, chunk
by chunk: a line with another column count, a field that is not a number, NaN or
infinity, a value beyond float32, a label other than 0/1 raise
:class:`~kerahep.errors.DataError` naming the file and the LINE (1-based), with what was
expected and what was found.

The file is read by training's own streaming reader (:func:`kerahep.data.higgs.iter_chunks`:
blocks of whole lines parsed by ``pyarrow.csv`` -- pandas for the space-separated variant --
on one thread per core, the next blocks parsing while one is scored), in blocks of about
``run.chunk_size / (threads + 1)`` lines (at most 8192; cut by size at a line end), so
that about ``run.chunk_size`` lines are in memory at once. Each block is transformed
exactly as training transforms its events (:func:`kerahep.data.higgs.transform` into the
run's ``data.features``, float32, on the parsing thread) and scored by the final
classifier (``model.keras``, the model the report scores the test set with).

Output columns, in the input's line order, one row per line:

* ``line`` (int64): the 1-based LINE number of the event in the input file; the files have
  no header, so line 1 is the first event (the numbering of the reader's error messages);
  ``line - 1`` is the 0-based row.
* ``score`` (float32): the classifier's P(signal).
* ``label`` (float32, 0 or 1): copied from the file when it has the label column; absent
  otherwise.
* ``embedding`` (float32, ``(n, d)``; ``embedding_0 ..`` in CSV and Parquet), with
  ``run.embedding`` only: the latent of the pre-trained masked-autoencoder encoder
  (``encoder.keras``, saved before any fine-tuning), pooled over its tokens as the
  classifier pools them (``model.pooling``: ``flatten`` gives tokens x dim values,
  ``mean`` gives dim).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...data import higgs as hr
from ...errors import DataError, KerahepError

#: the most lines of one parsed block (see :func:`block_lines`)
MAX_BLOCK_LINES = 8192


# ------------------------------------------------------------------------- layout
def first_line(path: Path) -> tuple[str, bool]:
    """``(first line, gzip)`` of ``path`` (``""`` for an empty file)."""
    with open(path, "rb") as f:
        is_gzip = f.read(2) == b"\x1f\x8b"
    opener = hr.gzip_open if is_gzip else open
    with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as f:
        return f.readline(), is_gzip


def sniff(path) -> tuple[hr.FileFormat | None, bool]:
    """``(format, labelled)`` of a file to score; ``(None, False)`` for an empty file.

    A labelled table is checked by the training reader's own :func:`kerahep.data.higgs.sniff`;
    a table of 28 columns is the same layout without the label.

    Raises:
        DataError: missing, unreadable or not a HIGGS table (naming the file).
    """
    path = Path(path)
    first, is_gzip = None, False
    if path.is_file():
        try:
            first, is_gzip = first_line(path)
        except (OSError, EOFError):
            first = None  # the reader's sniff says what is wrong
        if first == "":
            return None, False
    try:
        return hr.sniff(path), True
    except DataError:
        if first is None or not first.strip():
            raise
        sep = "\t" if "\t" in first else "," if "," in first else " "
        fmt = hr.FileFormat(path, sep, is_gzip)
        found = len(fmt.split(first))
        if found != hr.N_COLUMNS - 1:
            raise DataError(f"{path}, line 1", f"{hr.LABELLED_LINE} or {hr.UNLABELLED_LINE}",
                            f"{found} columns separated by {sep!r}") from None
        return fmt, False


def block_lines(chunk_size: int, threads: int | None = None) -> int:
    """Lines per parsed block for a memory bound of about ``chunk_size`` lines: the
    ``threads + 1`` blocks in flight share it, and no block is above :data:`MAX_BLOCK_LINES`
    (smaller blocks let the next ones parse while one is scored)."""
    from ...data.higgs.streaming import PARSE_THREADS

    threads = PARSE_THREADS if threads is None else max(1, int(threads))
    return max(1, min(int(chunk_size) // (threads + 1), MAX_BLOCK_LINES))


def iter_table(fmt: hr.FileFormat, labelled: bool, chunk_size: int, post=None):
    """Yield ``(labels or None, stored features (n, 28) float32, first line 1-based)`` chunks,
    every line checked: training's streaming reader (:func:`kerahep.data.higgs.iter_chunks`,
    the blocks parsed by ``pyarrow.csv`` on its threads while the caller scores the previous
    one) in blocks of :func:`block_lines` lines, so that about ``chunk_size`` lines are in
    memory at once. ``post`` (the feature transform) runs on the parsing threads and its
    result replaces the stored features."""
    return hr.iter_chunks(fmt.path, chunksize=block_lines(chunk_size), post=post, fmt=fmt, labelled=labelled)


# ------------------------------------------------------------------------ scoring
def pooled(run, x: np.ndarray) -> np.ndarray:
    """The pre-trained encoder's tokens of ``x``, pooled as the classifier pools them: ``(n, d)``."""
    tokens = np.asarray(run.score(x, "encoder"), dtype=np.float32)
    tokens = tokens.reshape(len(x), *run.models["encoder"].output.shape[1:])
    if run.config.model.pooling == "mean":
        return tokens.mean(axis=1)
    return tokens.reshape(len(x), -1)


def embedding_width(run) -> int:
    tokens, dim = run.models["encoder"].output.shape[1:]
    return int(dim) if run.config.model.pooling == "mean" else int(tokens) * int(dim)


def score_chunk(run, x: np.ndarray, first: int, labels) -> dict:
    """The output columns of one chunk of model inputs ``x`` (the stored features after
    :func:`kerahep.data.higgs.transform`) starting at line ``first``."""
    n = len(x)
    out = {"line": np.arange(first, first + n, dtype=np.int64),
           "score": (np.asarray(run.score(x, "model"), dtype=np.float32).reshape(n) if n
                     else np.zeros(0, np.float32))}
    if labels is not None:
        out["label"] = np.asarray(labels, dtype=np.float32)
    if run.embedding:
        out["embedding"] = pooled(run, x) if n else np.zeros((0, embedding_width(run)), np.float32)
    return out


def predict_file(run, path):
    """Yield the output chunks of one HIGGS table (see the module docstring)."""
    if run.embedding and "encoder" not in run.models:
        raise KerahepError(f"{run.run_dir}: --embedding needs the pre-trained encoder (encoder.keras), "
                           "which this run does not have")
    fmt, labelled = sniff(path)
    features = run.config.data.features

    def transform(raw):
        return hr.transform(raw, features)

    empty = transform(np.zeros((0, len(hr.RAW_FEATURES)), np.float32))
    if fmt is None:  # an empty file: the columns, no rows
        yield score_chunk(run, empty, 1, None)
        return
    chunks = 0
    for labels, x, first in iter_table(fmt, labelled, run.chunk_size, post=transform):
        chunks += 1
        yield score_chunk(run, x, first, labels)
    if not chunks:  # only reachable for a file the reader reads as no rows
        yield score_chunk(run, empty, 1, np.zeros(0, np.float32) if labelled else None)
