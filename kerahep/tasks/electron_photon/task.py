"""The registered electron_photon task: ties its configuration, data, model and report together."""

from __future__ import annotations

from ...config import Config
from ...registry import register_task
from ..base import Task
from . import config as _config
from . import data as _data
from . import models as _models
from . import report as _report


@register_task
class ElectronPhoton(Task):
    name = "electron_photon"
    description = "Electrons against photons from 32x32 ECAL crops (energy, time) with the ResNet-15 family"
    presets = _config.PRESETS
    smoke = _config.SMOKE
    monitor = "val_auc"
    monitor_mode = "max"

    def _preset(self, name: str) -> Config:
        return _config.preset(self.name, self._check_preset(name))

    def describe_model(self, config: Config) -> str:
        return _models.describe_model(config)

    # data
    def make_synthetic(self, config: Config) -> list:
        return _data.make_synthetic(config)

    def load_data(self, config: Config, paths=None, for_evaluation: bool = False):
        return _data.load_inputs(config, self.resolve_inputs(config, paths), for_evaluation)

    # model
    def build_model(self, config: Config, data=None):
        return _models.build_model(config)

    def examples(self) -> dict:
        return _models.examples()

    def fit(self, ctx):
        return _models.fit(ctx)

    # report
    def evaluate(self, ctx, result, data) -> dict:
        return _report.evaluate(ctx, result, data)
