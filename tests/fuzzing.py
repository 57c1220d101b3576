"""Hostile-input fuzzing of every reader (issue: reliability and security).

Each reader is registered with a function that writes a small valid file and a function
that reads a file in full. Hypothesis then throws truncated, empty, bit-flipped and
random-byte variants at it: the reader must either read the file or raise the package's
own error (a :class:`~kerahep.errors.KerahepError`), within a bounded time, and never
crash or hang. Cases run are counted and printed at the end of the test session.

The command-line fuzzer (``test_cli_fuzz.py``) counts its cases in :data:`CASES` too, as
``cli_<command>`` (``cli_subprocess`` for those run as real processes).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

CASES: collections.Counter = collections.Counter()
READERS: dict = {}


@dataclass
class Reader:
    name: str
    suffix: str
    make_valid: Callable[[Path], Path]   # writes a small valid file into a folder, returns it
    read: Callable[[Path], object]       # reads it in full (raises KerahepError on bad input)
    rows: Callable[[object], list] = None  # what was read, as a list of comparable rows


def reader(name: str, suffix: str, rows=None):
    """Register ``make_valid`` (decorated) and then its ``read`` function (``@make_valid``).

    ``rows(result)`` turns what ``read`` returned into a list of hashable rows; a damaged
    file that still reads must give exactly the intact file's rows (or, where
    truncation at a record boundary is undetectable by the format, a prefix of them).
    """
    def deco(make_valid):
        def wrap(read):
            READERS[name] = Reader(name, suffix, make_valid, read, rows or (lambda r: [repr(r)]))
            return read
        return wrap
    return deco
