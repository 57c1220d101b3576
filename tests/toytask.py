"""A tiny registered task (two Gaussian blobs) for testing the training driver fast."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kerahep.config import Config, DataConfig, ModelConfig, RunSettings, TrainingConfig
from kerahep.registry import _TASKS, register_task
from kerahep.tasks.base import Task, TaskData


@dataclass(frozen=True)
class ToyData(DataConfig):
    n: int = 600
    shift: float = 1.5
    nan_at: int = -1  # put a NaN into this training row (to test divergence)
    sleep: float = 0.0  # seconds per training batch (to kill a run mid-epoch)


@dataclass
class ToyInputs(TaskData):
    x_train: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), "float32"))


class ToyTask(Task):
    name = "toy"
    presets = ("default",)
    monitor = "val_auc"
    monitor_mode = "max"

    def preset(self, name=None):
        self._check_preset(name)
        return Config(task=self.name, data=ToyData(), model=ModelConfig(name="toy"),
                      training=TrainingConfig(epochs=2, batch_size=32, learning_rate=0.03, schedule="onecycle"),
                      run=RunSettings(verbose=0))

    def load_data(self, config, paths=None, for_evaluation=False):
        import tensorflow as tf

        rng = np.random.default_rng(config.run.seed)
        n = config.data.n
        y = rng.integers(0, 2, n).astype("float32")
        x = rng.normal(size=(n, 4)).astype("float32")
        x[:, 0] += config.data.shift * y
        if config.data.nan_at >= 0:
            x[config.data.nan_at] = np.nan
            y[config.data.nan_at] = np.nan
        cut1, cut2 = int(0.7 * n), int(0.85 * n)
        mk = lambda a, b: tf.data.Dataset.from_tensor_slices((x[a:b], y[a:b])).batch(config.training.batch_size)
        train = mk(0, cut1)
        if config.data.sleep:
            import time

            def slow(x, y):
                tf.py_function(lambda: time.sleep(config.data.sleep), [], [])
                return x, y

            train = train.map(slow)
        return ToyInputs(train=train, val=mk(cut1, cut2), test=mk(cut2, n), source="synthetic",
                         paths=["<toy>"], info={"n_train": cut1}, x_train=x[:cut1])

    def build_model(self, config, data):
        import keras

        inp = keras.Input((4,))
        norm = keras.layers.Normalization()
        norm.adapt(np.nan_to_num(data.x_train))
        h = keras.layers.Dense(8, activation="relu")(norm(inp))
        return keras.Model(inp, keras.layers.Dense(1, activation="sigmoid", dtype="float32")(h))

    #: predict reads ``.npy`` arrays of shape (n, 4), optionally labelled by a (n,) ``<name>.y.npy``
    predict_formats = ("csv", "parquet", "hdf5", "root")

    def predict_file(self, run, path):
        from kerahep.errors import DataError

        x = np.load(path, mmap_mode="r")
        if x.ndim != 2 or x.shape[1] != 4:
            raise DataError(path, "an array of shape (n, 4)", f"shape {x.shape}")
        labels = path.with_name(path.name[:-4] + ".y.npy")
        y = np.load(labels) if labels.exists() else None
        for start in range(0, max(len(x), 1), run.chunk_size):
            sl = slice(start, start + run.chunk_size)
            if "boom" in path.name and start > 0:  # a read error in the middle of the file
                raise DataError(path, "readable rows", f"a corrupt block at row {start}")
            chunk = {"index": np.arange(len(x))[sl].astype(np.int64),
                     "score": np.asarray(run.score(np.asarray(x[sl])), np.float32).reshape(-1)}
            if y is not None:
                chunk["label"] = y[sl].astype(np.float32)
            if run.embedding:
                chunk["embedding"] = np.asarray(x[sl], np.float32)[:, :2]
            yield chunk


def register():
    if "toy" not in _TASKS:
        register_task(ToyTask)
    return _TASKS["toy"]
