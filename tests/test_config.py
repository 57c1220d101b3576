import dataclasses

import pytest

from kerahep.config import Config, DataConfig, TrainingConfig, parse_value
from kerahep.errors import ConfigError, KerahepError
from kerahep.registry import get_task


@pytest.fixture
def cfg():
    return get_task("dy_electron").preset()


def test_preset_is_frozen_and_overrides_return_copies(cfg):
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.training.epochs = 3
    new = cfg.override(["training.epochs=3", "model.widths=(64, 32)", "data.n_jets=6", "training.precision=float32"])
    assert (new.training.epochs, new.model.widths, new.data.n_jets) == (3, (64, 32), 6)
    assert cfg.training.epochs != 3  # original untouched


def test_values_parsed_literally_and_coerced(cfg):
    new = cfg.override(["training.learning_rate=1", "training.clipnorm=none", "model.activation=gelu",
                        "data.force_synthetic=true", "data.split=(0.8, 0.2)"])
    assert new.training.learning_rate == 1.0 and isinstance(new.training.learning_rate, float)
    assert new.training.clipnorm is None
    assert new.model.activation == "gelu"
    assert new.data.force_synthetic is True and new.data.split == (0.8, 0.2)
    assert parse_value("(1, 2)") == (1, 2) and parse_value("abc") == "abc"


def test_unknown_key_lists_valid_keys(cfg):
    with pytest.raises(ConfigError) as exc:
        cfg.override(["training.epoch=3"])
    msg = str(exc.value)
    assert "training.epoch" in msg and "batch_size" in msg and "did you mean training.epochs" in msg
    with pytest.raises(ConfigError, match="valid sections"):
        cfg.override(["optim.lr=1"])
    with pytest.raises(ConfigError, match="section.key=value"):
        cfg.override(["epochs3"])


@pytest.mark.parametrize("item,needle", [
    ("training.batch_size=-4", "batch_size must be positive"),
    ("data.split=(0.5, 0.2, 0.2)", "sum to 1"),
    ("training.precision=half", "precision must be one of"),
    ("training.epochs=abc", "expects an integer"),
    ("data.features=everything", "physics or seed"),
    ("model.activation=nonexistent_act", "not a Keras activation"),
    ("run.run_id=../../etc", "no path separators"),
])
def test_bad_values_rejected_before_work(cfg, item, needle):
    with pytest.raises(ConfigError, match=needle):
        cfg.override([item])


def test_round_trip_through_dict(cfg):
    new = cfg.override(["training.epochs=2", "model.widths=(16,)", "data.paths=('a.csv',)"])
    again = Config.from_dict(new.to_dict())
    assert again == new


def test_base_sections_validate():
    with pytest.raises(ConfigError, match="sum to 1"):
        DataConfig(split=(0.9, 0.2)).validate()
    with pytest.raises(ConfigError, match="schedule must be one of"):
        TrainingConfig(schedule="triangle").validate()
    with pytest.raises(ConfigError, match="sum to 1"):  # a Config validates every section when it is made
        Config(task="dy_electron", data=DataConfig(split=(0.9, 0.2)))
    assert issubclass(ConfigError, KerahepError)


@pytest.mark.parametrize("order", [("model.dim=90", "model.num_heads=6"), ("model.num_heads=6", "model.dim=90")])
def test_overrides_of_a_section_apply_together_in_any_order(order):
    """Regression: 90 is a multiple of 6, but each value alone breaks the rule with the preset's
    other value (dim 64, 4 heads); one-at-a-time validation refused both orders."""
    cfg = get_task("hcal_dqm").preset().override(list(order))
    assert (cfg.model.dim, cfg.model.num_heads) == (90, 6)
    assert Config.from_dict(cfg.to_dict()) == cfg  # what --resume and scripts.evaluate rely on
    with pytest.raises(ConfigError, match="multiple of model.num_heads"):
        get_task("hcal_dqm").preset().override(["model.dim=90"])  # the rule is still checked


def test_a_configuration_built_in_python_round_trips():
    task = get_task("hcal_dqm")
    base = task.preset()
    cfg = dataclasses.replace(base, model=dataclasses.replace(base.model, dim=90, num_heads=6))
    assert Config.from_dict(cfg.to_dict()) == cfg


def test_cross_field_rules_of_other_sections_are_order_free_too():
    task = get_task("electron_photon")
    a = task.preset().override(["model.widths=(4, 8)", "model.blocks=(1, 1)"])
    b = task.preset().override(["model.blocks=(1, 1)", "model.widths=(4, 8)"])
    assert a == b and a.model.widths == (4, 8)
    with pytest.raises(ConfigError, match="same length"):
        task.preset().override(["model.widths=(4, 8)"])


def test_a_key_given_twice_takes_its_last_value(cfg):
    assert cfg.override(["training.epochs=2", "training.epochs=5"]).training.epochs == 5


def test_renamed_key_of_an_old_config_json_still_loads(cfg):
    d = cfg.to_dict()
    d["data"].pop("force_synthetic")
    d["data"]["synthetic"] = True  # as written before data.synthetic was renamed
    assert Config.from_dict(d).data.force_synthetic is True


def test_from_file_reads_json_and_yaml_and_names_the_file_on_errors(cfg, tmp_path):
    import json

    import yaml

    new = cfg.override(["training.epochs=2", "model.widths=(16, 8)"])
    (tmp_path / "config.json").write_text(json.dumps(new.to_dict()))
    assert Config.from_file(tmp_path / "config.json") == new
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"task": "dy_electron", "training": {"epochs": 2},
                                                    "model": {"widths": [16, 8]}}))
    assert Config.from_file(tmp_path / "c.yaml") == new
    (tmp_path / "bad.yaml").write_text("task: [unclosed")
    with pytest.raises(ConfigError, match="bad.yaml"):
        Config.from_file(tmp_path / "bad.yaml")
    (tmp_path / "neg.json").write_text(json.dumps({"task": "dy_electron", "training": {"batch_size": -1}}))
    with pytest.raises(ConfigError, match=r"neg.json: training.batch_size must be positive"):
        Config.from_file(tmp_path / "neg.json")
    with pytest.raises(ConfigError, match="missing.json"):
        Config.from_file(tmp_path / "missing.json")


def test_hcal_data_validate_is_now_scan_values_and_old_runs_load():
    cfg = get_task("hcal_dqm").preset()
    assert cfg.override(["data.validate=false"]).data.scan_values is False
    d = cfg.to_dict()
    d["data"].pop("scan_values")
    d["data"]["validate"] = False
    assert Config.from_dict(d).data.scan_values is False
