"""The UCI HIGGS column layout, shared by the reader (:mod:`kerahep.data.higgs`) and the
masked-autoencoder builders (:mod:`kerahep.models.mae`), so neither imports the other.

No file format and no TensorFlow here: names, groups and the known discrete levels only.
"""

from __future__ import annotations

from .errors import ConfigError

#: The 29 columns of a HIGGS line (no header in the file).
COLUMNS = (
    "label",
    "lepton_pT", "lepton_eta", "lepton_phi",
    "missing_energy_magnitude", "missing_energy_phi",
    "jet_1_pt", "jet_1_eta", "jet_1_phi", "jet_1_btag",
    "jet_2_pt", "jet_2_eta", "jet_2_phi", "jet_2_btag",
    "jet_3_pt", "jet_3_eta", "jet_3_phi", "jet_3_btag",
    "jet_4_pt", "jet_4_eta", "jet_4_phi", "jet_4_btag",
    "m_jj", "m_jjj", "m_lv", "m_jlv", "m_bb", "m_wbb", "m_wwbb",
)
N_COLUMNS = len(COLUMNS)
RAW_FEATURES = COLUMNS[1:]
LOW_LEVEL = RAW_FEATURES[:21]
HIGH_LEVEL = RAW_FEATURES[21:]
OBJECTS = ("lepton", "missing_energy", "jet_1", "jet_2", "jet_3", "jet_4")

#: The stored azimuths are standardised: |phi| <= about 1.743 stands for |phi| <= pi.
PHI_MAX = 1.7433
#: b-tag levels of each jet column in the real file (standardised discrete tagger output).
BTAG_LEVELS = {
    "jet_1_btag": (0.0, 1.087, 2.173),
    "jet_2_btag": (0.0, 1.107, 2.215),
    "jet_3_btag": (0.0, 1.274, 2.548),
    "jet_4_btag": (0.0, 1.551, 3.102),
}
FEATURE_SETS = ("low", "all", "raw")

def _transformed_low_level() -> tuple:
    out = []
    for name in LOW_LEVEL:
        if name.endswith("_phi"):
            base = name[: -len("_phi")]
            out += [f"{base}_cos_phi", f"{base}_sin_phi"]
        else:
            out.append(name)
    return tuple(out)


LOW_LEVEL_TRIG = _transformed_low_level()


def feature_names(features: str = "low") -> tuple:
    """Column names of the feature set ``low`` (27), ``all`` (34) or ``raw`` (28)."""
    if features == "low":
        return LOW_LEVEL_TRIG
    if features == "all":
        return LOW_LEVEL_TRIG + HIGH_LEVEL
    if features == "raw":
        return RAW_FEATURES
    raise ConfigError(f"HIGGS feature set must be one of {FEATURE_SETS}, got {features!r}")


def object_of(name: str) -> str:
    """The physics object a feature belongs to (``lepton``, ``jet_2``, ..., ``high_level``)."""
    for obj in OBJECTS:
        if name.startswith(obj + "_") or name == obj:
            return obj
    return "high_level"
