"""Reader of the UCI HIGGS table (``HIGGS.csv``, ``HIGGS.csv.gz``, tab- or space-separated
variants) into NumPy arrays and ``tf.data``, in chunks.

The file has no header; each line is the label (1 signal, 0 background) and 28 features:
21 low-level (lepton, missing energy, four jets) and 7 high-level invariant masses
(:data:`COLUMNS`). The original table is 8 GB uncompressed (11 million lines), so the
reader never loads it whole: it cuts the file into blocks of about ``chunksize`` lines
(:data:`CHUNK_LINES`), which :data:`PARSE_THREADS` threads parse at once with
``pyarrow.csv`` (``pandas.read_csv`` for the whitespace-separated variant), restricted to
a row range (the seed protocol: first 1.1 million lines train and validation, last 100k
test; see :mod:`kerahep.benchmarks.higgs_mae` for the parser's speed). Every chunk is
checked; a bad line raises :class:`~kerahep.errors.DataError` naming the file and the LINE
(1-based), what was expected and what was found.

Feature sets (:func:`feature_names`): ``low`` (the 21 low-level features, each azimuth as
cos phi, sin phi: 27 columns), ``all`` (``low`` plus the 7 masses: 34), ``raw`` (the 28
stored columns).

Modules:

* :mod:`.fileformat`: :class:`FileFormat`, :func:`sniff`, :func:`count_rows`,
  :func:`resolve_rows`;
* :mod:`.checks`: :func:`check_line`, :func:`diagnose`, :func:`checked_array`;
* :mod:`.streaming`: :func:`iter_chunks` (blocks of lines parsed on threads);
* :mod:`.chunks`: :func:`line_index`, :func:`plan`, :class:`HiggsStream` (chunks of a plain
  table read in a seeded order per epoch; a gzip stream in order);
* :mod:`.features`: :func:`transform`, :func:`phi_to_radians`;
* :mod:`.dataset`: :func:`read_higgs`, :func:`scan`, :func:`higgs_dataset`, :func:`write_higgs`.

Example::

    from kerahep.data.higgs import higgs_dataset, read_higgs
    ds = higgs_dataset("HIGGS.csv.gz", rows=(0, 1_000_000), batch_size=1024, shuffle_buffer=100_000)
    x_test, y_test = read_higgs("HIGGS.csv.gz", rows=(-100_000, None))
"""

from __future__ import annotations

from ...errors import ConfigError, DataError, is_user_os_error, os_error, user_os_errors
from ...schema import (  # the layout is part of the reader's public face
    BTAG_LEVELS,
    COLUMNS,
    FEATURE_SETS,
    HIGH_LEVEL,
    LOW_LEVEL,
    LOW_LEVEL_TRIG,
    N_COLUMNS,
    OBJECTS,
    PHI_MAX,
    RAW_FEATURES,
    feature_names,
    object_of,
)
from .checks import FLOAT32_MAX, LABELLED_LINE, UNLABELLED_LINE, check_line, checked_array, diagnose
from .chunks import HiggsStream
from .dataset import file_size_mb, higgs_dataset, read_higgs, scan, write_higgs
from .features import phi_to_radians, transform
from .fileformat import FileFormat, count_rows, gzip_open, resolve_rows, sniff
from .streaming import CHUNK_LINES, PARSE_THREADS, iter_chunks

__all__ = [
    "BTAG_LEVELS", "CHUNK_LINES", "COLUMNS", "FEATURE_SETS", "FLOAT32_MAX", "HIGH_LEVEL", "HiggsStream",
    "LABELLED_LINE", "LOW_LEVEL", "LOW_LEVEL_TRIG", "N_COLUMNS", "OBJECTS", "PARSE_THREADS", "PHI_MAX", "RAW_FEATURES",
    "UNLABELLED_LINE", "ConfigError", "DataError", "FileFormat", "check_line", "checked_array", "count_rows",
    "diagnose", "feature_names", "file_size_mb", "gzip_open", "higgs_dataset", "is_user_os_error", "iter_chunks",
    "object_of", "os_error", "phi_to_radians", "read_higgs", "resolve_rows", "scan", "sniff", "transform",
    "user_os_errors", "write_higgs",
]
