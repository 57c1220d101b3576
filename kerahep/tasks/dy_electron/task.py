"""The registered dy_electron task: ties its configuration, data, model and report together."""

from __future__ import annotations

from ...config import Config
from ...registry import register_task
from ..base import Task
from . import config as _config
from . import data as _data
from . import models as _models
from . import report as _report


@register_task
class DyElectron(Task):
    name = "dy_electron"
    description = "Drell-Yan electron events against ttbar, single top and dibosons (CMS NanoAOD, dense NN)"
    presets = _config.PRESETS
    smoke = _config.SMOKE
    monitor = "val_auc"
    monitor_mode = "max"

    def _preset(self, name: str) -> Config:
        return _config.preset(self.name, self._check_preset(name))

    # data
    def default_files(self, config: Config):
        return _data.default_files(config)

    def make_synthetic(self, config: Config) -> list:
        return [_data.synthetic_dataset(self.name, config)]

    def load_data(self, config: Config, paths=None, for_evaluation: bool = False):
        return _data.load_inputs(config, self.resolve_inputs(config, paths), for_evaluation)

    # model
    def build_model(self, config: Config, data):
        return _models.build_model(config, data)

    def compile(self, model, config: Config, data, steps_per_epoch=None):
        if config.data.weights == "none":
            return super().compile(model, config, data, steps_per_epoch)
        return _models.compile_weighted(model, config, steps_per_epoch)

    def describe_model(self, config: Config) -> str:
        return _models.describe_model(config)

    def examples(self) -> dict:
        return _models.examples()

    # report
    def evaluate(self, ctx, result, data) -> dict:
        return _report.evaluate(ctx, result, data)
