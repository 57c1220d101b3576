"""higgs_mae: masked Transformer autoencoder on HIGGS low-level features, then classification.

One ``train`` run pre-trains a :class:`~kerahep.models.mae.MaskedAutoencoder` to
reconstruct masked objects, trains a classifier head on its frozen encoder, optionally
fine-tunes both, and for the comparison trains the same Transformer from scratch and
gradient-boosted trees (:mod:`.stages`).

Artifacts: ``model.keras`` (the final classifier: raw features -> signal probability),
``encoder.keras`` (the pre-trained encoder, before any fine-tuning: raw features ->
tokens), ``pretrainer.keras`` (the whole autoencoder, for reconstruction) and
``fit_result.json`` (the comparison rows and test scores of the classifiers not saved).

Evaluation (:mod:`.report`): ROC AUC with bootstrap interval and accuracy of the final
model; ``comparison.json``/``.csv`` comparing on the same test events the frozen-encoder
classifier, the fine-tuned one, the Transformer from scratch and scikit-learn
``HistGradientBoostingClassifier`` on the same features and on all 28 stored columns;
``reconstruction.json``/``.csv`` with per-feature MSE, MAE and Pearson correlation of
reconstructed masked features, and true-against-reconstructed plots. Re-evaluating the
run rewrites the same files.

Presets: ``default`` (the synthetic twin, a few minutes on 2 CPU cores),
``realdata_small`` (train on ``../shared/realdata/higgs/binary.train``, test on
``binary.test``) and ``seed`` (the seed protocol on the real ``HIGGS.csv.gz``: first
1 million lines train, next 100k validation, last 100k test).

Modules: :mod:`.config` (sections, row ranges, presets), :mod:`.data` (files to
:class:`~.data.HiggsInputs`), :mod:`.models` (builders and compile), :mod:`.stages` (the
training stages and baselines), :mod:`.result` (:class:`~.result.HiggsResult`),
:mod:`.report` (metrics and tables), :mod:`.plots` (its figures), :mod:`.task` (the
registered task).
"""

from .config import HiggsData, HiggsModel, realdata_dir  # noqa: F401
from .data import WHOLE_READ_LIMIT_BYTES, HiggsInputs  # noqa: F401
from .result import HiggsResult  # noqa: F401
from .task import HiggsMae  # noqa: F401
