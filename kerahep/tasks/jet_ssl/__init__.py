"""jet_ssl: SimCLR pre-training on unlabelled 8-channel jet images, then few-label heads.

Stages of one ``train`` run:

1. ``pretrain``: SimCLR (:class:`kerahep.models.simclr.SimCLR`) of a ResNet-18 or a
   CNN-Transformer hybrid (:mod:`kerahep.models.encoders`) on the unlabelled file
   (``Dataset_Specific_Unlabelled.h5``), streamed in chunks.
2. For each label fraction ``f`` of ``data.label_fractions`` (nested, stratified subsets
   of the labelled training split), four ways to use ``f`` of the labels, each predicting
   the class ``y`` (top against QCD), the mass ``m`` and ``pt`` (GeV):

   * ``linear``: a linear probe on the frozen encoder's latents;
   * ``frozen``: small MLP heads on the frozen latents;
   * ``finetune``: the pre-trained encoder with the frozen stage's heads, all trained
     (lower learning rate);
   * ``scratch``: the same architecture trained from random weights (the supervised
     baseline).

``encoder.keras`` is the pre-trained encoder; ``model.keras`` (raw jet -> ``y``, ``m``,
``pt``) is the ``model.export`` variant at the largest label fraction. ``evaluate`` writes
the test metrics of ``model.keras``, ROC, true-against-predicted and resolution plots,
t-SNE of the latents, and one table (``downstream_table.json`` / ``.csv``) of every
method and label fraction: the rows of the models that are not saved come from training
(stored in the run directory), the exported model's row is scored again.

Presets: ``default`` (small widths, small synthetic twin, minutes on two CPU cores),
``hybrid`` (the same with the CNN-Transformer encoder) and ``full`` (ResNet-18 widths,
for the real 60,000 + 10,000 jets on a GPU).

Modules: :mod:`.config` (sections, presets, smoke overrides), :mod:`.data` (files to
:class:`~.data.JetSSLInputs`), :mod:`.models` (encoder, SimCLR and downstream builders),
:mod:`.stages` (the training stages of ``fit``), :mod:`.report` (metrics, table,
:class:`~.report.JetSSLResult`), :mod:`.plots` (figures), :mod:`.task` (the registered task).
"""

from .config import CLASS_NAMES, METHODS, JetSSLData, JetSSLModel, downstream_schedule, tag  # noqa: F401
from .data import JetSSLInputs, LabelledJets, StreamSettings, nested_subsets, target_stats  # noqa: F401
from .plots import fraction_plot  # noqa: F401
from .report import JetSSLResult, comparison, table_row  # noqa: F401
from .task import JetSSL  # noqa: F401
