"""CMS NanoAOD reader for ``dy_electron``: ROOT files -> flat electron and jet features.

The reader streams the ``Events`` tree with :func:`uproot` in bounded steps, reads only
the branches the features need, and turns the jagged electron and jet collections into
fixed-width columns with vectorised NumPy (no per-event Python loop). The prepared
dataset (CSV, or Parquet on request) has one row per selected event: the named feature
columns of :attr:`FeatureSpec.columns`, ``genWeight``, ``target`` (1 signal, 0
background), ``sample`` (the sample name, from the file name or the index list), and the
event's identity (:data:`ID_COLUMNS`): NanoAOD's ``run``, ``luminosityBlock`` and
``event``, the source ``file`` and the ``entry`` (row number, from 0) inside that file, so
every prepared row joins back to its NanoAOD event.

Conventions:

* Electrons and jets are taken in the order stored in the file (NanoAOD stores them
  sorted by decreasing pT); the first ``n_electrons`` / ``n_jets`` are kept.
* **Padding**: an event with fewer objects than columns gets ``0`` in every missing
  slot (``Electron_charge_1 == 0`` therefore also means "no second electron"). Pair
  features (``m_ee``, ``pt_ee``, ``dphi_ee``, ``os_ee``) are ``0`` for events with
  fewer than two electrons.
* ``nElectron`` and ``nJet`` count every stored object, not only the kept ones.
* The preselection keeps events with at least ``min_electrons`` electrons having
  ``pt > min_pt`` and ``|eta| < max_abs_eta``; events that fail it are counted per
  sample in the :class:`PrepareReport`, never silently dropped.
* Optional branches (``MET_pt``, ``genWeight``, ``Jet_btagDeepFlavB`` which some Run 3
  NanoAOD versions lack) are filled with a default (0, 1, 0) and listed in
  :attr:`PrepareReport.missing_optional`; a missing required branch raises
  :class:`~kerahep.errors.DataError` naming the branch and the file. ``run``,
  ``luminosityBlock`` and ``event`` are in every NanoAOD file and are required.
* The report records per sample the sum of ``genWeight`` over every event read (before
  the preselection), the normalisation of cross-section weights.

Example:
    >>> from kerahep.data.nanoaod import FeatureSpec, prepare_dataset, load_prepared
    >>> report = prepare_dataset(["DYJetsToLL_M-50.root"], ["TTJets.root"],
    ...                          "data/processed/electron_dataset.csv")  # doctest: +SKIP
    >>> df = load_prepared(report.output)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..dask_cluster import dask_client
from ..errors import ConfigError, DataError, KerahepError, check_output_path

log = logging.getLogger("kerahep")

TREE = "Events"
ELECTRON_FIELDS = ("pt", "eta", "phi", "miniPFRelIso_all", "miniPFRelIso_chg", "dz", "dxy", "ip3d", "charge")
JET_FIELDS = ("pt", "eta", "phi", "btagDeepFlavB")
PHYSICS_COLUMNS = ("m_ee", "pt_ee", "dphi_ee", "os_ee", "MET_pt", "n_bjets")
#: columns written after the features (not features themselves)
META_COLUMNS = ("genWeight", "target", "sample")
#: NanoAOD's event identifiers, in every NanoAOD file (required branches)
EVENT_ID_BRANCHES = ("run", "luminosityBlock", "event")
#: the last columns of a prepared dataset: where each row comes from (``file`` and ``entry``,
#: the row number inside that file's ``Events`` tree, from 0) and which event it is
ID_COLUMNS = EVENT_ID_BRANCHES + ("file", "entry")
#: types of the identifier columns (as NanoAOD stores run, luminosityBlock and event)
ID_DTYPES = {"run": np.uint32, "luminosityBlock": np.uint32, "event": np.uint64, "entry": np.int64}
#: optional branches and the value written where a file lacks them
OPTIONAL_DEFAULTS = {"MET_pt": 0.0, "genWeight": 1.0, "Jet_btagDeepFlavB": 0.0}
#: DeepJet (DeepFlavB) medium working point of 2018 UL (about 1% light mis-tag; other years differ
#: slightly: give ``FeatureSpec.btag_wp`` for the data-taking period of the files)
DEEPFLAVB_MEDIUM = 0.2783
#: integer-valued output columns
_INT_COLUMNS = ("Electron_charge", "nElectron", "nJet", "os_ee", "n_bjets")


@dataclass(frozen=True)
class SampleInfo:
    """One Monte Carlo sample of the CMS electron project.

    Attributes:
        name: short name, also the file name of the synthetic twin (``<name>.root``).
        role: ``"signal"`` or ``"background"``.
        process: the physics process.
        dataset: the start of the CMS dataset name on the CERN Open Data portal (the
            full name continues with tune, generator and campaign).
    """

    name: str
    role: str
    process: str
    dataset: str


SIGNAL_SAMPLES = {
    s.name: s
    for s in (
        SampleInfo("DYJetsToLL_M-10to50", "signal", "Drell-Yan Z/gamma* -> ll + jets, 10 < m(ll) < 50 GeV",
                   "DYJetsToLL_M-10to50_TuneCUETP8M1_13TeV-amcatnloFXFX-pythia8"),
        SampleInfo("DYJetsToLL_M-50", "signal", "Drell-Yan Z/gamma* -> ll + jets, m(ll) > 50 GeV",
                   "DYJetsToLL_M-50_TuneCUETP8M1_13TeV-amcatnloFXFX-pythia8"),
    )
}
BACKGROUND_SAMPLES = {
    s.name: s
    for s in (
        SampleInfo("ST_t-channel_top", "background", "single top quark, t-channel", "ST_t-channel_top_4f"),
        SampleInfo("ST_t-channel_antitop", "background", "single top antiquark, t-channel", "ST_t-channel_antitop_4f"),
        SampleInfo("ST_tW_top", "background", "single top quark, tW associated production", "ST_tW_top_5f"),
        SampleInfo("ST_tW_antitop", "background", "single top antiquark, tW associated production",
                   "ST_tW_antitop_5f"),
        SampleInfo("TTJets", "background", "top-quark pair production + jets", "TTJets_TuneCUETP8M1_13TeV"),
        SampleInfo("WW", "background", "WW diboson", "WW_TuneCUETP8M1_13TeV-pythia8"),
        SampleInfo("WZ", "background", "WZ diboson", "WZ_TuneCUETP8M1_13TeV-pythia8"),
        SampleInfo("ZZ", "background", "ZZ diboson", "ZZ_TuneCUETP8M1_13TeV-pythia8"),
    )
}
KNOWN_SAMPLES = {**SIGNAL_SAMPLES, **BACKGROUND_SAMPLES}
# longest names first so that "ST_t-channel_antitop" wins over shorter overlaps
_SAMPLE_PATTERNS = [
    (name, re.compile(r"(?:^|[_/])" + re.escape(name) + r"(?:[_.]|$)"))
    for name in sorted(KNOWN_SAMPLES, key=len, reverse=True)
]


def known_sample(text: str) -> str | None:
    """The known sample name that ``text`` (a file or index-list name) refers to, or None."""
    for name, pat in _SAMPLE_PATTERNS:
        if pat.search(text):
            return name
    return None


def sample_role(name: str) -> str | None:
    """``"signal"``, ``"background"`` or None for a sample name of the CMS electron project."""
    info = KNOWN_SAMPLES.get(known_sample(name) or "")
    return info.role if info else None


# --------------------------------------------------------------------------- inputs
def _is_url(spec: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", spec)) and not spec.startswith("file://")


def _check_url(url: str, origin: str) -> None:
    if url.startswith(("root://", "xroot://")):
        try:
            import fsspec_xrootd  # noqa: F401
        except ImportError:
            raise KerahepError(
                f"{origin}: {url} is an XRootD URL; reading it needs fsspec-xrootd, which is not installed. "
                "Install it with `pip install fsspec-xrootd` (and the XRootD client, e.g. "
                "`conda install -c conda-forge xrootd`), or download the files and pass local paths."
            ) from None


def _read_index(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, "a text index list (one file path or URL a line)", f"an unreadable file ({exc})") from None
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not _is_url(line):
            p = Path(line).expanduser()
            if not p.is_absolute() and not p.exists():
                p = path.parent / p
            if not p.exists():
                raise DataError(p, f"a ROOT file listed in the index {path}", "no such file")
            line = str(p)
        else:
            _check_url(line, str(path))
        out.append(line)
    if not out:
        raise DataError(path, "an index list with at least one file path or URL", "no entries")
    return out


def _is_index(path: Path) -> bool:
    return path.name.endswith("_file_index.txt") or path.suffix == ".txt"


def _index_sample(path: Path) -> str:
    stem = path.name
    for suffix in ("_file_index.txt", ".txt"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return known_sample(stem) or stem


def _file_sample(path: str, folder: str | None = None) -> str:
    stem = re.sub(r"\.root$", "", os.path.basename(path.rstrip("/")))
    return known_sample(stem) or (known_sample(folder) if folder else None) or stem


def expand_samples(specs) -> list[tuple[str, str]]:
    """Expand input specifications into ``(sample name, file path or URL)`` pairs.

    Args:
        specs: one or a list of: ROOT files, directories (their ``*.root`` files),
            glob patterns, CERN Open Data ``*_file_index.txt`` lists (one path or URL a
            line), or ``root://`` / ``https://`` URLs.

    The sample name is the known CMS sample name found in the file name, the folder
    name or the index-list name (``DYJetsToLL_M-50``, ``TTJets``...), else the file
    stem (or the index-list name).

    Raises:
        DataError: a missing file, an empty directory or glob, an empty index list.
        KerahepError: an XRootD URL without fsspec-xrootd installed.
    """
    if isinstance(specs, (str, os.PathLike)):
        specs = [specs]
    out: list[tuple[str, str]] = []
    for spec in specs:
        s = os.fspath(spec)
        if _is_url(s):
            _check_url(s, "input")
            out.append((_file_sample(s), s))
            continue
        p = Path(s).expanduser()
        if p.is_dir():
            files = sorted(str(f) for f in p.glob("*.root"))
            if not files:
                raise DataError(p, "a directory with *.root NanoAOD files", "no .root files")
            out += [(_file_sample(f, p.name), f) for f in files]
        elif p.is_file():
            if _is_index(p):
                sample = _index_sample(p)
                out += [(sample, f) for f in _read_index(p)]
            else:
                out.append((_file_sample(str(p), p.parent.name), str(p)))
        elif glob.has_magic(s):
            files = sorted(glob.glob(os.path.expanduser(s)))
            if not files:
                raise DataError(s, "files matching the pattern", "no match")
            for f in files:
                fp = Path(f)
                if _is_index(fp):
                    sample = _index_sample(fp)
                    out += [(sample, x) for x in _read_index(fp)]
                else:
                    out.append((_file_sample(f, fp.parent.name), f))
        else:
            raise DataError(p, "a NanoAOD ROOT file, a directory, a glob or a *_file_index.txt list", "no such file")
    return out


def expand_inputs(specs) -> list[str]:
    """Expand files, directories, globs and ``*_file_index.txt`` lists into file paths/URLs.

    See :func:`expand_samples` (which also returns the sample names).

    Example:
        >>> expand_inputs(["data/DY/", "CMS_mc_TTJets_file_index.txt"])  # doctest: +SKIP
    """
    return [f for _, f in expand_samples(specs)]


# --------------------------------------------------------------------------- features
@dataclass(frozen=True)
class FeatureSpec:
    """Which features to build and which events to keep.

    Args:
        n_electrons: electrons kept per event (padded with 0).
        n_jets: jets kept per event (padded with 0).
        preset: ``"physics"`` (default: also ``m_ee``, ``pt_ee``, ``dphi_ee``, ``os_ee``,
            ``MET_pt``, ``n_bjets``) or ``"seed"`` (the CMS electron project's columns:
            padded electrons and jets, ``nElectron``, ``nJet``).
        min_pt: preselection electron pT threshold (GeV).
        max_abs_eta: preselection electron |eta| limit.
        min_electrons: events need at least this many electrons passing ``min_pt`` and
            ``max_abs_eta`` (0 keeps every event).
        btag_wp: DeepFlavB threshold for ``n_bjets`` (default: medium working point).

    Example:
        >>> FeatureSpec(n_electrons=1, n_jets=0, preset="seed").columns[:3]
        ['Electron_pt_0', 'Electron_eta_0', 'Electron_phi_0']
    """

    n_electrons: int = 2
    n_jets: int = 4
    preset: str = "physics"
    min_pt: float = 10.0
    max_abs_eta: float = 2.5
    min_electrons: int = 1
    btag_wp: float = DEEPFLAVB_MEDIUM

    def __post_init__(self):
        def need(ok, msg):
            if not ok:
                raise ConfigError(msg)

        need(isinstance(self.n_electrons, (int, np.integer)) and self.n_electrons >= 1,
             f"n_electrons must be an integer >= 1, got {self.n_electrons!r}")
        need(isinstance(self.n_jets, (int, np.integer)) and self.n_jets >= 0,
             f"n_jets must be an integer >= 0, got {self.n_jets!r}")
        need(self.preset in ("physics", "seed"), f"feature preset must be 'physics' or 'seed', got {self.preset!r}")
        need(self.min_pt >= 0, f"min_pt must be >= 0 GeV, got {self.min_pt!r}")
        need(self.max_abs_eta > 0, f"max_abs_eta must be > 0, got {self.max_abs_eta!r}")
        need(isinstance(self.min_electrons, (int, np.integer)) and self.min_electrons >= 0,
             f"min_electrons must be an integer >= 0, got {self.min_electrons!r}")
        need(0.0 <= self.btag_wp <= 1.0, f"btag_wp must be in [0, 1], got {self.btag_wp!r}")

    @property
    def columns(self) -> list[str]:
        """Feature column names, in output order."""
        cols = [f"Electron_{f}_{i}" for i in range(self.n_electrons) for f in ELECTRON_FIELDS]
        cols += [f"Jet_{f}_{i}" for i in range(self.n_jets) for f in JET_FIELDS]
        cols += ["nElectron", "nJet"]
        if self.preset == "physics":
            cols += list(PHYSICS_COLUMNS)
        return cols

    @property
    def output_columns(self) -> list[str]:
        """Every column of a prepared dataset: features, then ``genWeight``, ``target``, ``sample``,
        then the identifiers ``run``, ``luminosityBlock``, ``event``, ``file``, ``entry``."""
        return self.columns + list(META_COLUMNS) + list(ID_COLUMNS)

    def branches(self) -> tuple[list[str], list[str]]:
        """(required, optional) branch names this spec reads."""
        required = [f"Electron_{f}" for f in ELECTRON_FIELDS] + ["Jet_pt"] + list(EVENT_ID_BRANCHES)
        if self.n_jets:
            required += ["Jet_eta", "Jet_phi"]
        optional = ["genWeight"]
        if self.preset == "physics":
            optional += ["MET_pt"]
        if self.n_jets or self.preset == "physics":
            optional += ["Jet_btagDeepFlavB"]
        return required, optional

    def dtype(self, column: str):
        base = re.sub(r"_\d+$", "", column)
        return np.int32 if base in _INT_COLUMNS else np.float32

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _field(events, name: str):
    """``events[name]`` for flat NanoAOD names, or ``events[coll][field]`` for zipped records."""
    coll, _, sub = name.partition("_")
    for keys in ((name,), (coll, sub) if sub else ()):
        if not keys:
            continue
        try:
            out = events
            for k in keys:
                out = out[k]
            return out
        except Exception:  # noqa: BLE001, S112 - KeyError, awkward's FieldNotFoundError: try the next form
            continue
    return None


def _has(events, name: str) -> bool:
    return _field(events, name) is not None


class _Jagged:
    """Flat content, counts and starts of a ``var * number`` array, via NumPy."""

    def __init__(self, arr, name: str):
        import awkward as ak

        try:
            self.counts = np.asarray(ak.to_numpy(ak.num(arr, axis=1)), dtype=np.int64)
            self.flat = np.asarray(ak.to_numpy(ak.flatten(arr, axis=1)))
        except Exception as exc:  # noqa: BLE001 - wrong structure from a user's file
            raise DataError("<events>", f"{name} as a jagged list per event (var * number)",
                            f"type {getattr(arr, 'type', type(arr).__name__)} ({exc})") from None
        self.starts = np.cumsum(self.counts) - self.counts

    def pad(self, n: int, dtype) -> np.ndarray:
        out = np.zeros((len(self.counts), n), dtype=dtype)
        for i in range(n):
            has = self.counts > i
            out[has, i] = self.flat[self.starts[has] + i]
        return out

    def count(self, mask_flat: np.ndarray) -> np.ndarray:
        """Per-event number of entries where ``mask_flat`` is true."""
        cs = np.concatenate([[0], np.cumsum(mask_flat, dtype=np.int64)])
        return cs[self.starts + self.counts] - cs[self.starts]


def _length(events) -> int:
    if isinstance(events, Mapping):
        for v in events.values():
            return len(v)
        return 0
    return len(events)


def _scalar(events, name: str, n: int):
    import awkward as ak

    arr = _field(events, name)
    if arr is None:
        return np.full(n, OPTIONAL_DEFAULTS[name], dtype=np.float32)
    return np.asarray(ak.to_numpy(arr), dtype=np.float32)


def preselection_mask(events, spec: FeatureSpec = FeatureSpec()) -> np.ndarray:
    """Boolean mask of events with at least ``spec.min_electrons`` good electrons.

    A good electron has ``pt > spec.min_pt`` and ``|eta| < spec.max_abs_eta``.
    """
    pt = _require(events, "Electron_pt")
    eta = _require(events, "Electron_eta")
    jp, je = _Jagged(pt, "Electron_pt"), _Jagged(eta, "Electron_eta")
    good = (jp.flat > spec.min_pt) & (np.abs(je.flat) < spec.max_abs_eta)
    return jp.count(good) >= spec.min_electrons


def _require(events, name: str):
    arr = _field(events, name)
    if arr is None:
        raise DataError("<events>", f"the branch {name!r}", "no such field in the events")
    return arr


def flatten_events(events, spec: FeatureSpec = FeatureSpec(), mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Flatten NanoAOD events into fixed-width feature columns (no preselection applied).

    Args:
        events: an awkward record array (or a dict of arrays) with NanoAOD fields
            ``Electron_pt``... (as uproot reads them), or zipped ``Electron``/``Jet``
            records. Optional fields (``MET_pt``, ``genWeight``, ``Jet_btagDeepFlavB``)
            may be absent and are then filled with 0, 1, 0.
        spec: the features to build.
        mask: optional boolean mask of the events to return (the preselection).

    Returns:
        ``{column: array}`` for every column of ``spec.columns`` plus ``genWeight``;
        float32, or int32 for charges, counts, ``os_ee`` and ``n_bjets``. Missing objects
        are padded with 0.

    Example:
        >>> import awkward as ak
        >>> ev = ak.Array({"Electron_pt": [[50.0], []], "Electron_eta": [[0.1], []]})  # doctest: +SKIP
    """
    n = _length(events)
    ele = {f: _Jagged(_require(events, f"Electron_{f}"), f"Electron_{f}") for f in ELECTRON_FIELDS}
    counts_e = ele["pt"].counts
    for f, j in ele.items():
        if len(j.flat) != len(ele["pt"].flat):
            raise DataError("<events>", f"Electron_{f} with one entry per electron (as Electron_pt)",
                            f"{len(j.flat)} entries against {len(ele['pt'].flat)}")
    jet_pt = _Jagged(_require(events, "Jet_pt"), "Jet_pt")
    jets = {"pt": jet_pt}
    need_jet = spec.n_jets > 0
    for f in JET_FIELDS[1:]:
        arr = _field(events, f"Jet_{f}")
        if arr is None:
            if f in ("eta", "phi") and need_jet:
                _require(events, f"Jet_{f}")
            continue
        jets[f] = _Jagged(arr, f"Jet_{f}")
        if len(jets[f].flat) != len(jet_pt.flat):
            raise DataError("<events>", f"Jet_{f} with one entry per jet (as Jet_pt)",
                            f"{len(jets[f].flat)} entries against {len(jet_pt.flat)}")

    sel = slice(None) if mask is None else np.asarray(mask, dtype=bool)
    cols: dict[str, np.ndarray] = {}
    epad = {f: ele[f].pad(spec.n_electrons, spec.dtype(f"Electron_{f}"))[sel] for f in ELECTRON_FIELDS}
    for i in range(spec.n_electrons):
        for f in ELECTRON_FIELDS:
            cols[f"Electron_{f}_{i}"] = epad[f][:, i]
    if spec.n_jets:
        n_sel = len(jet_pt.counts) if mask is None else int(np.count_nonzero(sel))
        jpad = {f: (jets[f].pad(spec.n_jets, np.float32)[sel] if f in jets
                    else np.full((n_sel, spec.n_jets), OPTIONAL_DEFAULTS[f"Jet_{f}"], np.float32))
                for f in JET_FIELDS}
        for i in range(spec.n_jets):
            for f in JET_FIELDS:
                cols[f"Jet_{f}_{i}"] = jpad[f][:, i]
    cols["nElectron"] = counts_e[sel].astype(np.int32)
    cols["nJet"] = jet_pt.counts[sel].astype(np.int32)

    if spec.preset == "physics":
        pt = ele["pt"].pad(2, np.float64)[sel]
        eta = ele["eta"].pad(2, np.float64)[sel]
        phi = ele["phi"].pad(2, np.float64)[sel]
        q = ele["charge"].pad(2, np.int32)[sel]
        two = counts_e[sel] >= 2
        dphi = np.abs(np.mod(phi[:, 0] - phi[:, 1] + np.pi, 2 * np.pi) - np.pi)
        m2 = 2.0 * pt[:, 0] * pt[:, 1] * (np.cosh(eta[:, 0] - eta[:, 1]) - np.cos(dphi))
        ptee = np.sqrt(np.maximum(pt[:, 0] ** 2 + pt[:, 1] ** 2 + 2.0 * pt[:, 0] * pt[:, 1] * np.cos(dphi), 0.0))
        cols["m_ee"] = np.where(two, np.sqrt(np.maximum(m2, 0.0)), 0.0).astype(np.float32)
        cols["pt_ee"] = np.where(two, ptee, 0.0).astype(np.float32)
        cols["dphi_ee"] = np.where(two, dphi, 0.0).astype(np.float32)
        cols["os_ee"] = (two & (q[:, 0] * q[:, 1] < 0)).astype(np.int32)
        cols["MET_pt"] = _scalar(events, "MET_pt", n)[sel]
        if "btagDeepFlavB" in jets:
            nb = jets["btagDeepFlavB"].count(jets["btagDeepFlavB"].flat > spec.btag_wp)
        else:
            nb = np.zeros(n, np.int64)
        cols["n_bjets"] = nb[sel].astype(np.int32)
    cols["genWeight"] = _scalar(events, "genWeight", n)[sel]
    return cols


# --------------------------------------------------------------------------- reading
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

    if not _is_url(path) and not os.path.exists(path):
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
    for cols, n_read, n_sel, _ in _iterate(info, spec, step_size, max_events):
        yield cols, n_read, n_sel


def _iterate(info: FileInfo, spec: FeatureSpec, step_size, max_events):
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
            out = _process_chunk(chunk, spec, path, start)
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


def _process_chunk(chunk, spec: FeatureSpec, path: str = "<events>", start: int = 0):
    """Preselect and flatten one step whose first event is entry ``start`` of its file:
    ``(columns with the identifiers, n_read, n_selected, sum of genWeight read)``."""
    import awkward as ak

    mask, cols = process_chunk(chunk, spec, path)
    try:
        for name in EVENT_ID_BRANCHES:
            cols[name] = np.asarray(ak.to_numpy(_require(chunk, name)))[mask].astype(ID_DTYPES[name])
    except DataError as err:
        raise DataError(path, err.expected, err.found) from None
    cols["entry"] = (int(start) + np.flatnonzero(mask)).astype(ID_DTYPES["entry"])
    sum_w = float(np.sum(_scalar(chunk, "genWeight", len(mask)), dtype=np.float64))
    return cols, len(mask), int(np.count_nonzero(mask)), sum_w


# --------------------------------------------------------------------------- preparation
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


def _unique_files(paths) -> list:
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
            for path in _unique_files(g["paths"]):
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
    from ..artifacts import atomic_path, write_json

    columns = spec.output_columns
    missing = {info.path: list(info.missing_optional) for _, _, info, _ in plan if info.missing_optional}
    total = sum(stop for *_, stop in plan)
    suffix = "".join(out.suffixes) or (".parquet" if fmt == "parquet" else ".csv")
    with atomic_path(out, suffix=suffix) as tmp:
        writer = _Writer(tmp, fmt, columns, spec)
        try:
            with _Progress(progress, len(plan), total) as bar:
                if dask:
                    _run_dask(plan, spec, writer, samples, bar, scheduler, step_size)
                else:
                    for sample, target, info, stop in plan:
                        bar.file(sample, info.path)
                        for cols, n_read, n_sel, sum_w in _iterate(info, spec, step_size, stop):
                            writer.write(cols, target, sample, source_name(info.path))
                            _count(samples[sample], n_read, n_sel, sum_w)
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


def _count(rep: dict, n_read: int, n_sel: int, sum_w: float):
    rep["events_read"] += n_read
    rep["selected"] += n_sel
    rep["failed_preselection"] += n_read - n_sel
    rep["sum_genWeight"] += sum_w


def source_name(path: str) -> str:
    """The ``file`` column of a prepared row: local files as absolute paths (the rows join back
    to their files from any working directory), URLs as given."""
    return path if _is_url(path) else os.path.abspath(path)


class _Progress:
    """A rich progress bar over files and events (or nothing)."""

    def __init__(self, enabled: bool, n_files: int, n_events: int):
        self.enabled, self.n_files, self.n_events = enabled, n_files, n_events

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True))
            self.p.__enter__()
            self.tf = self.p.add_task("files", total=self.n_files)
            self.te = self.p.add_task("events", total=self.n_events)
        return self

    def file(self, sample, path):
        if self.enabled:
            self.p.update(self.tf, description=f"files ({sample}: {os.path.basename(path)})")

    def file_done(self, n: int = 1):
        if self.enabled:
            self.p.advance(self.tf, n)

    def advance(self, n_events: int):
        if self.enabled:
            self.p.advance(self.te, n_events)

    def __exit__(self, *exc):
        if self.enabled:
            self.p.__exit__(*exc)
        return False


# --------------------------------------------------------------------------- dask
def _dask_steps(info: FileInfo, stop: int, step_size) -> list[list[int]]:
    import uproot

    if isinstance(step_size, (int, np.integer)):
        per = int(step_size)
    else:
        with uproot.open(info.path) as f:
            per = int(f[TREE].num_entries_for(step_size, filter_name=info.branches))
    per = max(1, per)
    return [[a, min(a + per, stop)] for a in range(0, stop, per)]


def _dask_chunk(chunk, spec: FeatureSpec, path: str, start: int):
    import awkward as ak

    if not isinstance(chunk, Mapping):
        chunk = {k: chunk[k] for k in ak.fields(chunk)}
    return _process_chunk(chunk, spec, path, start)


def _run_dask(plan, spec: FeatureSpec, writer, samples, bar, scheduler, step_size):
    try:
        import dask
        import uproot
    except ImportError as exc:
        raise KerahepError(f"--dask needs dask, distributed and dask-awkward: pip install 'kerahep[dask]' ({exc})") \
            from None

    with dask_client(scheduler, n_workers=2, threads_per_worker=1,
                     needs="dask, distributed and dask-awkward") as client:
        tasks, meta = [], []
        for sample, target, info, stop in plan:
            steps = _dask_steps(info, stop, step_size)
            if not steps:
                continue
            arr = uproot.dask({info.path: {"object_path": TREE, "steps": steps}}, filter_name=info.branches,
                              open_files=False)
            parts = arr.to_delayed()
            if len(parts) != len(steps):  # the entry numbers come from the steps: one partition each
                raise KerahepError(f"uproot.dask made {len(parts)} partitions of {info.path} for {len(steps)} steps")
            for part, (start, _) in zip(parts, steps):
                tasks.append(dask.delayed(_dask_chunk)(part, spec, info.path, start))
                meta.append((sample, target, info.path))
        futures = client.compute(tasks)
        last = None
        for fut, (sample, target, path) in zip(futures, meta):
            if last is not None and path != last[1]:
                bar.file_done()
            if last is None or path != last[1]:
                bar.file(sample, path)
            last = (sample, path)
            try:
                cols, n_read, n_sel, sum_w = fut.result()
            except DataError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise DataError(path, "readable NanoAOD baskets", f"a read error ({type(exc).__name__}: {exc})") \
                    from None
            fut.release()
            writer.write(cols, target, sample, source_name(path))
            _count(samples[sample], n_read, n_sel, sum_w)
            bar.advance(n_read)
        if last is not None:
            bar.file_done()


# --------------------------------------------------------------------------- loading
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
