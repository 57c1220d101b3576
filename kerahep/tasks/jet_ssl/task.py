"""The registered jet_ssl task: ties its configuration, data, stages and report together."""

from __future__ import annotations

from ...config import Config
from ...registry import register_task
from ..base import Task
from . import config as task_config
from . import data as task_data
from . import models as task_models
from . import predict as task_predict
from . import report as task_report
from . import stages as task_stages


@register_task
class JetSSL(Task):
    name = "jet_ssl"
    description = ("SimCLR pre-training of a ResNet-18 or CNN-Transformer on unlabelled 8-channel jet images, "
                   "then few-label heads for top/QCD class, jet mass and pT")
    presets = task_config.PRESETS
    smoke = task_config.SMOKE
    monitor = "val_auc"
    monitor_mode = "max"
    artifacts = ("model", "encoder")
    result_type = task_report.JetSSLResult
    #: outputs of ``predict`` (the first is the default): one row per jet, ``index``, ``score``, ``m_pred``, ...
    predict_formats = ("hdf5", "parquet")

    def _preset(self, name: str) -> Config:
        return task_config.preset(self.name, self._check_preset(name))

    # data
    def make_synthetic(self, config: Config) -> list:
        return task_data.make_synthetic(self.name, config)

    def load_data(self, config: Config, paths=None, for_evaluation: bool = False):
        return task_data.load_inputs(config, self.resolve_inputs(config, paths), for_evaluation)

    # models
    def build_encoder(self, config: Config, channel_scales=None):
        """The encoder of ``config`` (raw jet -> latent vector)."""
        return task_models.build_encoder(config, channel_scales)

    def build_model(self, config: Config, data):
        """The SimCLR model (encoder, augmentations, projection head) of the pre-training stage."""
        return task_models.build_simclr(config, data.channel_scales)

    def describe_model(self, config: Config) -> str:
        return task_models.describe_model(config)

    def examples(self) -> dict:
        return task_models.examples()

    # training and report
    def fit(self, ctx):
        return task_stages.fit(ctx)

    def evaluate(self, ctx, result, data) -> dict:
        return task_report.evaluate(ctx, result, data)

    # predict
    def predict_file(self, run, path):
        """Columns ``index``, ``score`` (P(top)), ``m_pred`` and ``pt_pred`` (GeV), the targets ``y``, ``m``,
        ``pt`` (when the file has them) and, with ``run.embedding``, ``latent``, chunk by chunk
        (:func:`.predict.predict_file`)."""
        return task_predict.predict_file(run, path)
