"""hcal_dqm: tell HCAL runs apart from DigiOccupancy maps and monitor them lumisection by lumisection.

Data: one ``.npy`` file per run, ``(lumisections, 64 iEta, 72 iPhi)`` hit counts
(:mod:`kerahep.data.hcal`: memory-mapped, one class per run, two or more runs, split by
contiguous blocks of lumisections). Without files: the synthetic twin
(:mod:`kerahep.data.synthetic.hcal`) with injected dead and hot channels.

Models (``model.name``): ``vit`` or ``moe_vit`` (:mod:`kerahep.models.vit`), with the
log scaling and per-cell standardisation inside; plus a small autoencoder
(:mod:`kerahep.models.ae`, saved as ``autoencoder.keras``) whose residual map gives the
anomaly score of the monitoring view.

Evaluation: accuracy, ROC AUC (with a logistic regression on the mean occupancy of each
active iEta band as the baseline to beat), confusion matrix and ROC; attention-rollout
maps per run on the iEta x iPhi grid; for ``moe_vit`` the expert each patch goes to and
the expert load per run; the mean occupancy of each run and their difference; sample
maps; and the monitoring view: per lumisection the classifier's confidence in the true
run and the autoencoder's anomaly score against the lumisection number, with outliers
flagged at a ``model.false_alarm_rate`` threshold (:func:`robust_threshold` of the
validation lumisections).
On the twin the injected anomalies are known: the fraction flagged at a 1% false-alarm
rate is in ``metrics.json`` (``test.monitoring.efficiency_at_far``).

Presets: ``default`` (ViT on a small twin, a couple of minutes on 2 CPU cores),
``moe_vit``, ``hard`` (twin with a 2% intensity difference and 10000 lumisections per
run, as many as the real files: overlapping runs, about 3 minutes for the ViT) and
``full`` (larger model and longer training for the real 2 x 10000 lumisections).

Modules: :mod:`.config` (sections, presets, smoke overrides), :mod:`.data` (run files to
:class:`~.data.HcalInputs`; the class of each scored run), :mod:`.models` (classifier and
autoencoder builders, the two training stages, :class:`~.models.HcalResult`),
:mod:`.report` (metrics: classification, band-means baseline, maps), :mod:`.monitoring`
(anomaly scores, threshold, flags), :mod:`.plots` (the figures), :mod:`.task` (the
registered task).

Example::

    python -m scripts.train --task hcal_dqm
    python -m scripts.train --task hcal_dqm --preset moe_vit \\
        --set "data.paths=('Run355456_Dataset.npy', 'Run357479_Dataset.npy')"
"""

from .config import ANOMALY_SCORES, PRESETS, SMOKE, VARIANTS, HcalData, HcalModel  # noqa: F401
from .data import HcalInputs, classes_of, training_runs  # noqa: F401
from .models import HcalResult  # noqa: F401
from .monitoring import robust_threshold  # noqa: F401
from .report import band_baseline, occupancy  # noqa: F401
from .task import HcalDqm  # noqa: F401
