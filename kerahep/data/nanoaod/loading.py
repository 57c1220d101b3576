"""Loading a prepared dataset: :func:`load_prepared` and its checks (complete file, numeric
values, row count, exactly the features of a :class:`FeatureSpec`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ...errors import DataError
from .features import FeatureSpec
from .samples import ID_COLUMNS, META_COLUMNS

log = logging.getLogger("kerahep")


def load_prepared(path, spec: FeatureSpec | None = None, bookkeeping=()):
    """Read a prepared dataset (CSV, CSV.gz or Parquet) into a pandas DataFrame.

    Args:
        path: the file written by :func:`prepare_dataset`.
        spec: when given, the frame holds exactly the features of ``spec`` (every column of
            ``spec.columns`` must be present) and the bookkeeping columns of the file
            (:data:`META_COLUMNS`, :data:`ID_COLUMNS` and ``bookkeeping``), in the file's
            order. Any other column is dropped before the values are checked, with one
            warning (``kerahep`` logger) naming the file and the columns: a column the
            preset does not build never becomes a model input, not even a copy of ``target``.
            Without ``spec`` every column is returned.
        bookkeeping: further column names (with ``spec``) kept without a warning.

    Raises:
        DataError: missing or corrupt file, missing ``target``/``sample`` columns, missing
            features of ``spec`` (names the file and every missing column), empty or
            non-numeric or missing values (names the file, the column and the first bad row).
    """
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise DataError(path, "a prepared dataset (CSV or Parquet)", "no such file")
    is_parquet = path.suffix in (".parquet", ".pq")
    if not is_parquet and path.suffix == ".csv" and path.stat().st_size > 0:
        with open(path, "rb") as f:  # every complete CSV ends with a newline: catch a cut-off last row
            f.seek(-1, os.SEEK_END)
            if f.read(1) not in (b"\n", b"\r"):
                raise DataError(path, "a complete CSV file ending with a newline",
                                "a last line without one (the file was cut off while written or copied)")
    try:
        if is_parquet:
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, low_memory=False)
    except pd.errors.EmptyDataError:
        raise DataError(path, "a CSV file with a header and rows", "an empty file") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        what = "Parquet" if is_parquet else "CSV"
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(path, f"a readable {what} dataset", f"a corrupt file ({msg})") from None
    except Exception as exc:  # noqa: BLE001 - pyarrow raises its own error types
        raise DataError(path, "a readable dataset", f"a corrupt file ({type(exc).__name__}: {exc})") from None
    absent = [c for c in ("target", "sample") if c not in df.columns]
    if absent:
        raise DataError(path, "columns target, sample" + (f", {', '.join(spec.columns[:4])} ..." if spec else ""),
                        f"missing {', '.join(absent)} "
                        f"(columns: {', '.join(map(str, df.columns[:8]))}{' ...' if df.shape[1] > 8 else ''})")
    if spec is not None:
        df = _exact_features(df, path, spec, bookkeeping)
    if len(df) == 0:
        raise DataError(path, "at least one row", "a header without rows")
    feats = [c for c in df.columns if c not in ("sample",)]
    for c in feats:
        if c == "file":  # the source file of each row (a path or URL)
            continue
        if not pd.api.types.is_numeric_dtype(df[c]):
            bad = pd.to_numeric(df[c], errors="coerce").isna() & df[c].notna()
            row = int(np.flatnonzero(bad.to_numpy())[0]) if bad.any() else 0
            raise DataError(path, f"numbers in column {c!r}",
                            f"{df[c].iloc[row]!r} at data row {row + 1} (a corrupt or mixed-up file)")
    nan = df[feats].isna().to_numpy()
    if nan.any():
        row, col = np.argwhere(nan)[0]
        raise DataError(path, "a value in every column of every row",
                        f"an empty value in column {feats[col]!r} at data row {row + 1} (truncated or corrupt file)")
    side = Path(str(path) + ".report.json")
    if side.exists():  # the preparation report knows how many rows were written
        import json

        try:
            expected = json.loads(side.read_text(encoding="utf-8")).get("selected")
        except ValueError:
            expected = None
        if isinstance(expected, int) and expected != len(df):
            raise DataError(path, f"{expected} rows (as its {side.name} records)", f"{len(df)} rows")
    if df["sample"].isna().any():
        row = int(np.flatnonzero(df["sample"].isna().to_numpy())[0])
        raise DataError(path, "a sample name in every row", f"an empty one at data row {row + 1}")
    return df


def _exact_features(df, path: Path, spec: FeatureSpec, bookkeeping=()):
    """``df`` restricted to the features of ``spec`` and the bookkeeping columns (see :func:`load_prepared`)."""
    cols = [str(c) for c in df.columns]
    missing = [c for c in spec.columns if c not in cols]
    settings = f"features={spec.preset}, n_electrons={spec.n_electrons}, n_jets={spec.n_jets}"
    if missing:
        shown = ", ".join(missing[:24]) + (f" and {len(missing) - 24} more" if len(missing) > 24 else "")
        raise DataError(path, f"the {len(spec.columns)} feature columns of the preset ({settings})",
                        f"missing {shown} ({len(missing)} of them; prepared with other settings? prepare it "
                        "again with these, or set data.features, data.n_electrons and data.n_jets to the file's)")
    keep = set(spec.columns) | set(META_COLUMNS) | set(ID_COLUMNS) | set(bookkeeping)
    extra = [c for c in cols if c not in keep]
    if extra:
        log.warning("%s: ignoring column(s) %s: neither features of the preset (%s) nor bookkeeping; "
                    "the model takes exactly the preset's %d features", path, ", ".join(extra), settings,
                    len(spec.columns))
        df = df.loc[:, [c in keep for c in cols]]
    return df
