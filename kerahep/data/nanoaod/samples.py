"""The names of NanoAOD: tree, branch and column constants, the known CMS samples, and
the expansion of inputs (files, directories, globs, ``*_file_index.txt`` lists, URLs) into
``(sample, file)`` pairs.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import DataError, KerahepError


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


def is_url(spec: str) -> bool:
    """Whether ``spec`` is a URL (``root://``, ``https://``...) rather than a local path (``file://`` is local)."""
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
        if not is_url(line):
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
        if is_url(s):
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


def source_name(path: str) -> str:
    """The ``file`` column of a prepared row: local files as absolute paths (the rows join back
    to their files from any working directory), URLs as given."""
    return path if is_url(path) else os.path.abspath(path)
