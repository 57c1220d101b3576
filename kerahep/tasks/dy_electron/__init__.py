"""dy_electron: Drell-Yan electron events against top and diboson background.

CMS NanoAOD files -> :mod:`kerahep.data.nanoaod` (uproot + awkward, flattened to
fixed-width electron and jet features) -> ``data/processed/electron_dataset.csv`` ->
dense network with the feature scaling inside the model.

Presets: ``physics`` (default; adds m_ee, pT_ee, delta-phi, opposite charge, MET and the
number of b-tagged jets) and ``seed`` (the CMS electron project's columns only).

Event weights (``data.weights=none|genWeight|xsec``, ``data.negative_weights``,
``data.samples_file``) reach the loss as the third element of the batches and weight
every metric of the report.

Modules: :mod:`.config` (sections and presets), :mod:`.data` (files to
:class:`~.data.DyElectronInputs`), :mod:`.weights` (event weights and cross-sections),
:mod:`.models` (the dense classifier; one supervised stage), :mod:`.report` (metrics and
plots), :mod:`.task` (the registered task).
"""

from .config import DenseModel, DyElectronData, feature_spec  # noqa: F401
from .data import DEFAULT_DATASET, META_COLUMNS, DyElectronInputs, report_as_dict  # noqa: F401
from .task import DyElectron  # noqa: F401
from .weights import BUILTIN_CROSS_SECTIONS, read_samples_file  # noqa: F401
