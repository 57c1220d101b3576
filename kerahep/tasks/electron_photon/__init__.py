"""electron_photon: electrons against photons from 32x32 calorimeter crops (energy, time).

The two ML4SCI HDF5 files (``SinglePhotonPt50_IMGCROPS_n249k_RHv1.hdf5``,
``SingleElectronPt50_IMGCROPS_n249k_RHv1.hdf5``) -> :class:`kerahep.data.calo.CaloReader`
(seeded stratified split on indices, chunked streaming into ``tf.data``) -> ResNet-15
(:func:`kerahep.models.resnet.build_resnet15`; variants ``two_channel``, ``energy``,
``time``, ``dual_stream``) -> test ROC/AUC with a bootstrap interval, accuracy,
classification report, confusion matrix, score distributions, t-SNE of the
``embedding`` layer, saliency and Grad-CAM (and Grad-CAM++) maps and mean images per
class. ``python -m scripts.compare_variants`` tabulates the newest complete run of every
trained variant (:func:`~.report.compare_runs`, read from the run directories).

Without files the task trains on the synthetic twin
(:mod:`kerahep.data.synthetic.electron_photon`) and reports its oracle AUC beside the
model's, on the same test crops.

Presets: ``default`` (a small twin, a few minutes on two CPU cores) and ``full`` (the
real files: more epochs, a bigger batch). Example::

    python -m scripts.train --task electron_photon --set model.variant=energy
    python -m scripts.train --task electron_photon --preset full \\
        --set "data.paths=('SinglePhotonPt50_IMGCROPS_n249k_RHv1.hdf5','SingleElectronPt50_IMGCROPS_n249k_RHv1.hdf5')"

Modules: :mod:`.config` (sections, presets, smoke overrides), :mod:`.data` (files to
:class:`~.data.ElectronPhotonInputs`, the twin), :mod:`.models` (the ResNet-15 builder and
the one supervised stage), :mod:`.report` (test metrics, :func:`~.report.compare_runs`),
:mod:`.plots` (mean crops, t-SNE, saliency and Grad-CAM maps, the comparison image),
:mod:`.task` (the registered task).
"""

from ...data.calo import CLASS_NAMES  # noqa: F401
from .config import ElectronPhotonData, ResNetModel  # noqa: F401
from .data import TWIN_SEED, ElectronPhotonInputs, twin_folder, twin_folder_of  # noqa: F401
from .models import build_resnet  # noqa: F401
from .report import COMPARISON_COLUMNS, CropSummary, compare_runs  # noqa: F401
from .task import ElectronPhoton  # noqa: F401
