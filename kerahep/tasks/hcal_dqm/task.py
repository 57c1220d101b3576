"""The registered hcal_dqm task: ties its configuration, data, models and report together."""

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
class HcalDqm(Task):
    name = "hcal_dqm"
    description = "HCAL DigiOccupancy per lumisection: which run (ViT, MoE-ViT), attention and routing maps, monitoring"
    presets = task_config.PRESETS
    smoke = task_config.SMOKE
    monitor = "val_auc"
    monitor_mode = "max"
    artifacts = ("model", "autoencoder")
    result_type = task_models.HcalResult
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
        return task_data.load_inputs(self.name, config, self.resolve_inputs(config, paths), for_evaluation)

    def training_runs(self, config: Config) -> list[str]:
        """The run names the model of ``config`` was trained on, in class order."""
        return task_data.training_runs(config)

    # models
    def build_model(self, config: Config, data):
        return task_models.build_model(config, data)

    def build_autoencoder(self, config: Config, data):
        return task_models.build_autoencoder(config, data)

    def compile(self, model, config: Config, data, steps_per_epoch: int | None = None):
        if data.n_classes == 2:
            return super().compile(model, config, data, steps_per_epoch)
        return task_models.compile_multiclass(model, config, steps_per_epoch)

    def fit(self, ctx):
        return task_models.fit(ctx)

    def examples(self) -> dict:
        return task_models.examples()

    # report
    def evaluate(self, ctx, result, data) -> dict:
        return task_report.evaluate(ctx, result, data)

    # scoring new files
    def predict_file(self, run, path):
        """Chunks of class probabilities, anomaly score and flag per lumisection of a run file (see :mod:`.predict`)."""
        return task_predict.predict_file(run, path)
