"""The registered higgs_mae task: ties its configuration, data, models, stages and report together."""

from __future__ import annotations

from ...config import Config
from ...registry import register_task
from ..base import Task
from . import config as _config
from . import data as _data
from . import models as _models
from . import report as _report
from . import stages as _stages
from .result import HiggsResult


@register_task
class HiggsMae(Task):
    name = "higgs_mae"
    description = "HIGGS signal vs ttbar: masked Transformer autoencoder pre-training, classifier on its encoder"
    presets = _config.PRESETS
    smoke = _config.SMOKE
    monitor = "val_auc"
    monitor_mode = "max"
    artifacts = ("model", "encoder", "pretrainer")
    result_type = HiggsResult

    def _preset(self, name: str) -> Config:
        return _config.preset(self.name, self._check_preset(name))

    def describe_model(self, config: Config) -> str:
        return _config.describe_model(config)

    # data
    def make_synthetic(self, config: Config) -> list:
        return _data.make_synthetic(self.name, config)

    def load_data(self, config: Config, paths=None, for_evaluation: bool = False):
        return _data.load_inputs(config, self.resolve_inputs(config, paths), for_evaluation)

    # models
    def build_autoencoder(self, config: Config, data, seed_offset: int = 0):
        return _models.build_autoencoder(config, data, seed_offset)

    def build_model(self, config: Config, data):
        return _models.build_model(config, data)

    def examples(self) -> dict:
        return _models.examples()

    # training and report
    def fit(self, ctx) -> HiggsResult:
        return _stages.fit(ctx)

    def evaluate(self, ctx, result, data) -> dict:
        return _report.evaluate(ctx, result, data)
