"""TensorBoard holds the whole run (issue 16): the test metrics as scalars, the configuration
as HParams, the report's tables as text, one folder of curves per stage; and the terminal
names each stage on its progress bar and prints a table of the stages.

One two-stage training of the toy task (tests/toytask.py), shared by the module.
"""

import contextlib
import csv
import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import toytask  # noqa: E402

from kerahep import artifacts  # noqa: E402
from kerahep.training.callbacks import stage_label  # noqa: E402
from kerahep.training.context import STAGE_COLUMNS, stage_table  # noqa: E402


class StagedToy(toytask.ToyTask):
    """The toy task in two stages, whose report writes a table (``comparison.csv``)."""

    name = "toy_staged"

    def fit(self, ctx):
        model = ctx.build(lambda: self.build_model(ctx.config, ctx.data))
        ctx.fit(model, stage="pretrain", epochs=1)
        ctx.fit(model, stage="finetune_1p0", epochs=2)
        return self.result_type(models={"model": model})

    def evaluate(self, ctx, result, data):
        test = super().evaluate(ctx, result, data)
        artifacts.write_table([{"model": "toy|net", "auc": test["roc_auc"]}, {"model": "coin", "auc": 0.5}],
                              ctx.run_dir / "comparison.csv")
        return test


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """``(RunResult, stdout of the training)`` of one two-stage toy run."""
    from kerahep.registry import _TASKS, register_task
    from kerahep.training import train

    if "toy_staged" not in _TASKS:
        register_task(StagedToy)
    root = tmp_path_factory.mktemp("staged")
    cfg = _TASKS["toy_staged"].preset().override(["run.verbose=2", f"run.output_dir='{root / 'results'}'"])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        res = train(cfg)
    return res, out.getvalue()


def _events(folder, **guidance):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"tensors": 0, **guidance})
    acc.Reload()
    return acc


def _tensor(event):
    import tensorflow as tf

    return tf.make_ndarray(event.tensor_proto)


def _value(acc, tag):
    (event,) = acc.Tensors(tag)
    return _tensor(event)


def _numbers(d, prefix):
    """Every finite number of metrics.json's test metrics, by its '/' name (written independently)."""
    out = {}
    for k, v in (d.items() if isinstance(d, dict) else enumerate(d)):
        if isinstance(v, (dict, list)):
            out.update(_numbers(v, f"{prefix}/{k}"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v):
            out[f"{prefix}/{k}"] = v
    return out


def test_test_metrics_are_scalars_equal_to_metrics_json(staged):
    res, _ = staged
    test = json.loads((res.run_dir / "metrics.json").read_text())["test"]
    expected = _numbers(test, "test")
    assert {"test/roc_auc", "test/roc_auc_ci/0", "test/confusion_matrix/1/1",
            "test/classification_report/macro avg/recall"} <= set(expected)
    acc = _events(res.run_dir / "tensorboard" / "evaluation")
    written = {t for t in acc.Tags()["tensors"] if t.startswith("test/")}
    assert written == set(expected)
    for tag, value in expected.items():
        assert float(_value(acc, tag)) == pytest.approx(value, rel=1e-6), tag
    assert "roc" in acc.Tags()["tensors"]  # the plots stay images beside them


def test_configuration_is_an_hparams_session(staged):
    from tensorboard.plugins.hparams import plugin_data_pb2

    res, _ = staged
    acc = _events(res.run_dir / "tensorboard")
    content = acc.PluginTagToContent("hparams")
    assert "_hparams_/session_start_info" in content
    info = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    hp = info.hparams
    assert hp["task"].string_value == "toy_staged"
    assert hp["training.learning_rate"].number_value == pytest.approx(0.03)
    assert hp["training.batch_size"].number_value == 32
    assert hp["training.schedule"].string_value == "onecycle"
    assert hp["run.resume"].HasField("bool_value") and hp["run.resume"].bool_value is False
    assert json.loads(hp["data.split"].string_value) == [0.7, 0.15, 0.15]
    assert "training.steps_per_epoch" not in hp  # None is no hparam value
    assert info.group_name == f"toy_staged/{res.run_dir.name}"


def test_report_tables_and_stage_table_are_markdown_text(staged):
    res, _ = staged
    acc = _events(res.run_dir / "tensorboard" / "evaluation")
    tags = set(acc.Tags()["tensors"])
    assert "tables/comparison" in tags and not any(t.startswith("tables/history") for t in tags)
    table = _value(acc, "tables/comparison").item().decode()
    lines = table.splitlines()
    assert lines[0] == "| model | auc |" and lines[1] == "| --- | --- |"
    assert lines[2].startswith("| toy\\|net | ") and lines[3] == "| coin | 0.5 |"
    stages = _value(acc, "training/stages").item().decode().splitlines()
    assert stages[0] == "| " + " | ".join(STAGE_COLUMNS) + " |"
    assert stages[2].startswith("| pretrain | 1 | val_auc ") and stages[3].startswith("| fine-tune (100% labels) | 2 |")


def test_each_stage_has_its_own_curves(staged):
    res, _ = staged
    board = res.run_dir / "tensorboard"
    for stage, epochs in (("pretrain", 1), ("finetune_1p0", 2)):
        with open(res.run_dir / f"history_{stage}.csv", newline="") as f:
            losses = [float(r["loss"]) for r in csv.DictReader(f)]
        acc = _events(board / stage / "train")
        logged = [float(_tensor(e)) for e in acc.Tensors("epoch_loss")]
        assert len(logged) == epochs and logged == pytest.approx(losses, rel=1e-5), stage
        assert "epoch_auc" in _events(board / stage / "validation").Tags()["tensors"]
    assert not (board / "main").exists()


def test_publishing_again_replaces_the_summaries(staged, tmp_path):
    from kerahep.training.trainer import publish_tensorboard

    res, _ = staged
    run = tmp_path / "toy_staged" / res.run_dir.name
    shutil.copytree(res.run_dir, run)
    publish_tensorboard(run)  # as a resumed publication: no stage records
    assert len(list((run / "tensorboard" / "evaluation").glob("events.out.tfevents.*"))) == 1
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 1
    acc = _events(run / "tensorboard" / "evaluation")
    assert len(acc.Tensors("test/roc_auc")) == 1 and "training/stages" not in acc.Tags()["tensors"]


def test_progress_bars_name_their_stage_and_records_hold_the_stages(staged):
    res, out = staged
    assert "pretrain: epoch 1/1" in out
    assert "fine-tune (100% labels): epoch 1/2" in out and "fine-tune (100% labels): epoch 2/2" in out
    assert "Epoch 1/2" not in out  # Keras' own line is replaced
    assert [(s["stage"], s["epochs"], s["monitor"]) for s in res.stages] == \
        [("pretrain", 1, "val_auc"), ("finetune_1p0", 2, "val_auc")]
    with open(res.run_dir / "history_finetune_1p0.csv", newline="") as f:
        best = max(float(r["val_auc"]) for r in csv.DictReader(f))
    assert res.stages[1]["best"] == pytest.approx(best) and res.stages[1]["seconds"] > 0


@pytest.mark.parametrize("stage, label", [
    ("main", "training"), ("pretrain", "pretrain"), ("finetune_1p0", "fine-tune (100% labels)"),
    ("linear_10pct", "linear probe (10% labels)"), ("frozen_0p5pct", "frozen-encoder heads (0.5% labels)"),
    ("scratch_0p1", "from scratch (10% labels)"), ("heads", "heads"), ("autoencoder", "autoencoder"),
    ("scratch", "from scratch"), ("finetune_best", "fine-tune (best)"), ("my_stage", "my stage"),
])
def test_stage_names(stage, label):
    assert stage_label(stage) == label


def test_stage_table_rows_and_print(capsys):
    from kerahep.commands.train import print_stages

    stages = [{"stage": "pretrain", "label": "pretrain", "epochs": 3, "monitor": "val_loss", "mode": "min",
               "best": 0.123456, "seconds": 12.345},
              {"stage": "linear_1pct", "label": "linear probe (1% labels)", "epochs": 5, "monitor": "val_loss",
               "mode": "min", "best": None, "seconds": None}]
    assert stage_table(stages) == [("pretrain", "3", "val_loss 0.1235", "12.3"),
                                   ("linear probe (1% labels)", "5", "-", "resumed")]
    print_stages(stages)
    out = capsys.readouterr().out
    assert "training stages" in out
    for cell in ("pretrain", "val_loss 0.1235", "12.3", "linear probe (1% labels)", "resumed"):
        assert cell in out
