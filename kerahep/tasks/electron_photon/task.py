"""The registered electron_photon task: ties its configuration, data, model and report together."""

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
class ElectronPhoton(Task):
    name = "electron_photon"
    description = "Electrons against photons from 32x32 ECAL crops (energy, time) with the ResNet-15 family"
    presets = task_config.PRESETS
    smoke = task_config.SMOKE
    monitor = "val_auc"
    monitor_mode = "max"
    #: outputs of ``predict`` (the first is the default): one row per crop, ``index``, ``score``, ``y``
    predict_formats = ("hdf5", "parquet")
    #: its own fit (:func:`.models.fit`) builds calibrated models and deep ensembles
    uncertainty_options = ("calibrate", "ensemble")

    def _preset(self, name: str) -> Config:
        return task_config.preset(self.name, self._check_preset(name))

    def describe_model(self, config: Config) -> str:
        return task_models.describe_model(config)

    # data
    def make_synthetic(self, config: Config) -> list:
        return task_data.make_synthetic(config)

    def load_data(self, config: Config, paths=None, for_evaluation: bool = False):
        return task_data.load_inputs(config, self.resolve_inputs(config, paths), for_evaluation)

    # model
    def build_model(self, config: Config, data=None):
        return task_models.build_model(config)

    def examples(self) -> dict:
        return task_models.examples()

    def fit(self, ctx):
        return task_models.fit(ctx)

    # report
    def evaluate(self, ctx, result, data) -> dict:
        return task_report.evaluate(ctx, result, data)

    # predict
    def predict_file(self, run, path):
        """Columns ``index``, ``score`` (P(electron)), ``y`` (when the file has it) and, with
        ``run.embedding``, ``embedding``, chunk by chunk (:func:`.predict.predict_file`)."""
        return task_predict.predict_file(run, path)
