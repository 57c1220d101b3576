"""The registered higgs_mae task: ties its configuration, data, models, stages and report together."""

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
from .result import HiggsResult


@register_task
class HiggsMae(Task):
    name = "higgs_mae"
    description = "HIGGS signal vs ttbar: masked Transformer autoencoder pre-training, classifier on its encoder"
    presets = task_config.PRESETS
    smoke = task_config.SMOKE
    monitor = "val_auc"
    monitor_mode = "max"
    artifacts = ("model", "encoder", "pretrainer")
    result_type = HiggsResult
    #: output formats of predict (the first is the default)
    predict_formats = ("csv", "parquet")

    def _preset(self, name: str) -> Config:
        return task_config.preset(self.name, self._check_preset(name))

    def describe_model(self, config: Config) -> str:
        return task_config.describe_model(config)

    # data
    def make_synthetic(self, config: Config) -> list:
        return task_data.make_synthetic(self.name, config)

    def load_data(self, config: Config, paths=None, for_evaluation: bool = False):
        return task_data.load_inputs(config, self.resolve_inputs(config, paths), for_evaluation)

    # models
    def build_autoencoder(self, config: Config, data, seed_offset: int = 0):
        return task_models.build_autoencoder(config, data, seed_offset)

    def build_model(self, config: Config, data):
        return task_models.build_model(config, data)

    def examples(self) -> dict:
        return task_models.examples()

    # training and report
    def fit(self, ctx) -> HiggsResult:
        return task_stages.fit(ctx)

    def evaluate(self, ctx, result, data) -> dict:
        return task_report.evaluate(ctx, result, data)

    # scoring new files
    def predict_file(self, run, path):
        """Chunks of line number, score (label when the file has it) of a HIGGS table (see :mod:`.predict`)."""
        return task_predict.predict_file(run, path)
