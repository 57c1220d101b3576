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
                        "data.synthetic=true", "data.split=(0.8, 0.2)"])
    assert new.training.learning_rate == 1.0 and isinstance(new.training.learning_rate, float)
    assert new.training.clipnorm is None
    assert new.model.activation == "gelu"
    assert new.data.synthetic is True and new.data.split == (0.8, 0.2)
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
    with pytest.raises(ConfigError):
        DataConfig(split=(0.9, 0.2))
    with pytest.raises(ConfigError):
        TrainingConfig(schedule="triangle")
    assert issubclass(ConfigError, KerahepError)
