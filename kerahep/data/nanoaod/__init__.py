"""CMS NanoAOD reader for ``dy_electron``: ROOT files -> flat electron and jet features.

The reader streams the ``Events`` tree with :func:`uproot` in bounded steps, reads only
the branches the features need, and turns the jagged electron and jet collections into
fixed-width columns with vectorised NumPy. The prepared dataset (CSV, or Parquet on
request) has one row per selected event: the feature columns of
:attr:`FeatureSpec.columns`, ``genWeight``, ``target`` (1 signal, 0 background),
``sample`` and the event's identity (:data:`ID_COLUMNS`: ``run``, ``luminosityBlock``,
``event``, the source ``file`` and the ``entry`` inside it). Missing objects are padded
with 0; optional branches (``MET_pt``, ``genWeight``, ``Jet_btagDeepFlavB``) absent from a
file are filled with 0, 1, 0 and listed in :attr:`PrepareReport.missing_optional`.

Modules:

* :mod:`.samples`: tree, branch and column constants, :class:`SampleInfo` and the known
  samples, :func:`expand_samples` / :func:`expand_inputs` (files, folders, globs, index
  lists, URLs);
* :mod:`.features`: :class:`FeatureSpec`, :func:`preselection_mask`, :func:`flatten_events`;
* :mod:`.reading`: :class:`FileInfo`, :func:`inspect_file`, :func:`iterate_file`,
  :func:`process_chunk`;
* :mod:`.prepare`: :func:`prepare_dataset` and its :class:`PrepareReport`, with
  :mod:`.progress` (counts, progress bar) and :mod:`.dask` (the ``dask=True`` path);
* :mod:`.loading`: :func:`load_prepared`.

Example:
    >>> from kerahep.data.nanoaod import FeatureSpec, prepare_dataset, load_prepared
    >>> report = prepare_dataset(["DYJetsToLL_M-50.root"], ["TTJets.root"],
    ...                          "data/processed/electron_dataset.csv")  # doctest: +SKIP
    >>> df = load_prepared(report.output)  # doctest: +SKIP
"""

from __future__ import annotations

from ...dask_cluster import dask_client
from ...errors import ConfigError, DataError, KerahepError, check_output_path
from .features import FeatureSpec, flatten_events, preselection_mask
from .loading import load_prepared
from .prepare import PrepareReport, log, prepare_dataset
from .reading import FileInfo, inspect_file, iterate_file, process_chunk
from .samples import (
    BACKGROUND_SAMPLES,
    DEEPFLAVB_MEDIUM,
    ELECTRON_FIELDS,
    EVENT_ID_BRANCHES,
    ID_COLUMNS,
    ID_DTYPES,
    JET_FIELDS,
    KNOWN_SAMPLES,
    META_COLUMNS,
    OPTIONAL_DEFAULTS,
    PHYSICS_COLUMNS,
    SIGNAL_SAMPLES,
    TREE,
    SampleInfo,
    expand_inputs,
    expand_samples,
    known_sample,
    sample_role,
    source_name,
)

__all__ = [
    "BACKGROUND_SAMPLES", "DEEPFLAVB_MEDIUM", "ELECTRON_FIELDS", "EVENT_ID_BRANCHES", "ID_COLUMNS",
    "ID_DTYPES", "JET_FIELDS", "KNOWN_SAMPLES", "META_COLUMNS", "OPTIONAL_DEFAULTS", "PHYSICS_COLUMNS",
    "SIGNAL_SAMPLES", "TREE", "ConfigError", "DataError", "FeatureSpec", "FileInfo", "KerahepError",
    "PrepareReport", "SampleInfo", "check_output_path", "dask_client", "expand_inputs", "expand_samples",
    "flatten_events", "inspect_file", "iterate_file", "known_sample", "load_prepared", "log",
    "prepare_dataset", "preselection_mask", "process_chunk", "sample_role", "source_name",
]
