"""Features of NanoAOD events: :class:`FeatureSpec`, field access on awkward records, the
preselection and the flattening of jagged electrons and jets into fixed-width columns.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ...errors import ConfigError, DataError
from .samples import (
    DEEPFLAVB_MEDIUM,
    ELECTRON_FIELDS,
    EVENT_ID_BRANCHES,
    ID_COLUMNS,
    JET_FIELDS,
    META_COLUMNS,
    OPTIONAL_DEFAULTS,
    PHYSICS_COLUMNS,
)


#: integer-valued output columns
_INT_COLUMNS = ("Electron_charge", "nElectron", "nJet", "os_ee", "n_bjets")


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

    def check_aligned(self, ref: "_Jagged", name: str, ref_name: str, per: str) -> None:
        """Refuse a branch whose entries do not line up with ``ref``'s, event by event (a
        damaged file: ``Electron_eta`` with another number of entries than ``Electron_pt``)."""
        if np.array_equal(self.counts, ref.counts):
            return
        if len(self.flat) != len(ref.flat):
            found = f"{len(self.flat)} entries against {len(ref.flat)}"
        elif len(self.counts) != len(ref.counts):
            found = f"{len(self.counts)} events against {len(ref.counts)}"
        else:
            i = int(np.flatnonzero(self.counts != ref.counts)[0])
            found = f"{self.counts[i]} entries against {ref.counts[i]} in event {i} of the step"
        raise DataError("<events>", f"{name} with one entry per {per} (as {ref_name})", found)


def _length(events) -> int:
    if isinstance(events, Mapping):
        for v in events.values():
            return len(v)
        return 0
    return len(events)


def scalar(events, name: str, n: int):
    """The per-event float32 branch ``name``, or its :data:`OPTIONAL_DEFAULTS` value where absent."""
    import awkward as ak

    arr = _field(events, name)
    if arr is None:
        return np.full(n, OPTIONAL_DEFAULTS[name], dtype=np.float32)
    return np.asarray(ak.to_numpy(arr), dtype=np.float32)


def preselection_mask(events, spec: FeatureSpec = FeatureSpec()) -> np.ndarray:
    """Boolean mask of events with at least ``spec.min_electrons`` good electrons.

    A good electron has ``pt > spec.min_pt`` and ``|eta| < spec.max_abs_eta``.
    """
    pt = require(events, "Electron_pt")
    eta = require(events, "Electron_eta")
    jp, je = _Jagged(pt, "Electron_pt"), _Jagged(eta, "Electron_eta")
    je.check_aligned(jp, "Electron_eta", "Electron_pt", "electron")
    good = (jp.flat > spec.min_pt) & (np.abs(je.flat) < spec.max_abs_eta)
    return jp.count(good) >= spec.min_electrons


def require(events, name: str):
    """The field ``name`` of ``events``; :class:`DataError` where it is absent."""
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
    ele = {f: _Jagged(require(events, f"Electron_{f}"), f"Electron_{f}") for f in ELECTRON_FIELDS}
    counts_e = ele["pt"].counts
    for f, j in ele.items():
        j.check_aligned(ele["pt"], f"Electron_{f}", "Electron_pt", "electron")
    jet_pt = _Jagged(require(events, "Jet_pt"), "Jet_pt")
    jets = {"pt": jet_pt}
    need_jet = spec.n_jets > 0
    for f in JET_FIELDS[1:]:
        arr = _field(events, f"Jet_{f}")
        if arr is None:
            if f in ("eta", "phi") and need_jet:
                require(events, f"Jet_{f}")
            continue
        jets[f] = _Jagged(arr, f"Jet_{f}")
        jets[f].check_aligned(jet_pt, f"Jet_{f}", "Jet_pt", "jet")

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
        cols["MET_pt"] = scalar(events, "MET_pt", n)[sel]
        if "btagDeepFlavB" in jets:
            nb = jets["btagDeepFlavB"].count(jets["btagDeepFlavB"].flat > spec.btag_wp)
        else:
            nb = np.zeros(n, np.int64)
        cols["n_bjets"] = nb[sel].astype(np.int32)
    cols["genWeight"] = scalar(events, "genWeight", n)[sel]
    return cols
