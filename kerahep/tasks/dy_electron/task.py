"""The registered dy_electron task: ties its configuration, data, model and report together."""

from __future__ import annotations

from ...config import Config
from ...registry import register_task
from ..base import Task
from . import config as task_config
from . import data as task_data
from . import models as task_models
from . import predict as task_predict
from . import report as task_report


@register_task
class DyElectron(Task):
    name = "dy_electron"
    description = "Drell-Yan electron events against ttbar, single top and dibosons (CMS NanoAOD, dense NN)"
    presets = task_config.PRESETS
    smoke = task_config.SMOKE
    monitor = "val_auc"
    monitor_mode = "max"
    #: predict writes a friend of the NanoAOD Events tree (ROOT) by default
    predict_formats = ("root", "parquet")

    def _preset(self, name: str) -> Config:
        return task_config.preset(self.name, self._check_preset(name))

    # data
    def default_files(self, config: Config):
        return task_data.default_files(config)

    def make_synthetic(self, config: Config) -> list:
        return [task_data.synthetic_dataset(self.name, config)]

    def load_data(self, config: Config, paths=None, for_evaluation: bool = False):
        return task_data.load_inputs(config, self.resolve_inputs(config, paths), for_evaluation)

    # model
    def build_model(self, config: Config, data):
        return task_models.build_model(config, data)

    def compile(self, model, config: Config, data, steps_per_epoch=None):
        if config.data.weights == "none":
            return super().compile(model, config, data, steps_per_epoch)
        return task_models.compile_weighted(model, config, steps_per_epoch)

    def describe_model(self, config: Config) -> str:
        return task_models.describe_model(config)

    def examples(self) -> dict:
        return task_models.examples()

    # report
    def evaluate(self, ctx, result, data) -> dict:
        return task_report.evaluate(ctx, result, data)

    # predict
    def predict_file(self, run, path):
        """Score a NanoAOD file directly: one row per entry of its Events tree (:mod:`.predict`)."""
        return task_predict.predict_file(run, path)
