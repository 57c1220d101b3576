"""dy_electron configuration: its data and model sections and its presets."""

from __future__ import annotations

from dataclasses import dataclass

from ...config import Config, DataConfig, ModelConfig, RunSettings, TrainingConfig, check

PRESETS = ("physics", "seed")
#: overrides that make the smoke preset from the default one
SMOKE = ("data.data_dir='data/smoke'", "data.synthetic_events=300", "model.widths=(16,)", "training.epochs=1",
         "training.batch_size=64", "run.plot_pdf=false")


@dataclass(frozen=True)
class DyElectronData(DataConfig):
    """Data settings of dy_electron.

    Args:
        paths: prepared datasets (CSV or Parquet from ``scripts.prepare_dataset``); empty:
            ``<data_dir>/processed/electron_dataset.csv`` if it exists, else the synthetic twin.
        n_electrons, n_jets: objects kept per event (padded with zeros).
        features: ``physics`` or ``seed`` feature set (set by the preset).
        min_pt, max_abs_eta, min_electrons: preselection of the preparation.
        working_point: score threshold for the confusion matrix and accuracy.
        synthetic_events: events per synthetic sample.
        weights: event weights of training and metrics (:mod:`.weights`): ``none`` (default:
            every event counts once, as before weights existed), ``genWeight`` (the generator
            weight) or ``xsec`` (genWeight x cross-section x luminosity / the sample's sum of
            generator weights, from ``samples_file``).
        negative_weights: how negative weights enter the training loss: ``abs`` (default),
            ``keep`` or ``zero``; every metric keeps them as they are.
        samples_file: YAML or JSON file with ``luminosity`` (pb^-1) and ``samples``
            ({sample name: cross-section in pb}) for ``weights=xsec``; empty: the built-in
            table of the 13 TeV samples the task names (:data:`.weights.BUILTIN_TABLE`).
        luminosity: integrated luminosity in pb^-1 for ``weights=xsec`` (0: the samples
            file's, else 1000 pb^-1 = 1 fb^-1 with the built-in table).
    """

    n_electrons: int = 2
    n_jets: int = 4
    features: str = "physics"
    min_pt: float = 10.0
    max_abs_eta: float = 2.5
    min_electrons: int = 1
    working_point: float = 0.5
    synthetic_events: int = 3000
    weights: str = "none"
    negative_weights: str = "abs"
    samples_file: str = ""
    luminosity: float = 0.0

    def validate(self) -> None:
        from .weights import NEGATIVE_MODES, WEIGHT_MODES

        super().validate()
        check(self.weights in WEIGHT_MODES, f"data.weights must be one of {', '.join(WEIGHT_MODES)}, "
                                            f"got {self.weights!r}")
        check(self.negative_weights in NEGATIVE_MODES, f"data.negative_weights must be one of "
                                                       f"{', '.join(NEGATIVE_MODES)}, got {self.negative_weights!r}")
        check(self.luminosity >= 0, f"data.luminosity must be >= 0 (pb^-1; 0: from the samples file), "
                                    f"got {self.luminosity}")
        check(self.n_electrons >= 1, f"data.n_electrons must be >= 1, got {self.n_electrons}")
        check(self.n_jets >= 0, f"data.n_jets must be >= 0, got {self.n_jets}")
        check(self.features in ("physics", "seed"), f"data.features must be physics or seed, got {self.features!r}")
        check(0.0 < self.working_point < 1.0, f"data.working_point must be in (0, 1), got {self.working_point}")


@dataclass(frozen=True)
class DenseModel(ModelConfig):
    """Dense network settings.

    Args:
        widths: hidden layer widths.
        activation: hidden activation (any Keras activation name).
        dropout: dropout after each hidden layer.
        batch_norm: batch normalisation in the hidden layers.
    """

    name: str = "dense"
    widths: tuple = (128, 64, 32)
    activation: str = "relu"
    dropout: float = 0.1
    batch_norm: bool = False

    def validate(self) -> None:
        super().validate()
        check(len(self.widths) >= 1 and all(int(w) > 0 for w in self.widths),
              f"model.widths must be positive integers, got {self.widths!r}")
        import keras

        try:
            keras.activations.get(self.activation)
        except (ValueError, TypeError):
            check(False, f"model.activation {self.activation!r} is not a Keras activation")


def preset(task_name: str, name: str) -> Config:
    """The configuration of preset ``name`` (``physics`` or ``seed``: the feature set)."""
    return Config(
        task=task_name,
        preset=name,
        data=DyElectronData(features=name),
        model=DenseModel(),
        training=TrainingConfig(epochs=8, batch_size=256, learning_rate=2e-3, schedule="onecycle",
                                class_weight=True),
        run=RunSettings(),
    )


def feature_spec(data: DyElectronData):
    """The :class:`kerahep.data.nanoaod.FeatureSpec` of a data configuration."""
    from ...data.nanoaod import FeatureSpec

    return FeatureSpec(n_electrons=data.n_electrons, n_jets=data.n_jets, preset=data.features,
                       min_pt=data.min_pt, max_abs_eta=data.max_abs_eta, min_electrons=data.min_electrons)
