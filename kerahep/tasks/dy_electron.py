"""dy_electron: Drell-Yan electron events against top and diboson background.

CMS NanoAOD files -> :mod:`kerahep.data.nanoaod` (uproot + awkward, flattened to
fixed-width electron and jet features) -> ``data/processed/electron_dataset.csv`` ->
dense network with the feature scaling inside the model.

Presets: ``physics`` (default; adds m_ee, pT_ee, delta-phi, opposite charge, MET and the
number of b-tagged jets) and ``seed`` (the CMS electron project's columns only).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import Config, DataConfig, ModelConfig, RunSettings, TrainingConfig, check
from ..errors import DataError
from ..registry import register_task
from .base import Task, TaskData

log = logging.getLogger("kerahep")

DEFAULT_DATASET = Path("processed") / "electron_dataset.csv"
META_COLUMNS = ("target", "sample", "weight", "genWeight", "event", "run", "luminosityBlock", "file")


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
    """

    n_electrons: int = 2
    n_jets: int = 4
    features: str = "physics"
    min_pt: float = 10.0
    max_abs_eta: float = 2.5
    min_electrons: int = 1
    working_point: float = 0.5
    synthetic_events: int = 3000

    def validate(self) -> None:
        super().validate()
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


def feature_spec(data: DyElectronData):
    """The :class:`kerahep.data.nanoaod.FeatureSpec` of a data configuration."""
    from ..data.nanoaod import FeatureSpec

    return FeatureSpec(n_electrons=data.n_electrons, n_jets=data.n_jets, preset=data.features,
                       min_pt=data.min_pt, max_abs_eta=data.max_abs_eta, min_electrons=data.min_electrons)


@register_task
class DyElectron(Task):
    name = "dy_electron"
    description = "Drell-Yan electron events against ttbar, single top and dibosons (CMS NanoAOD, dense NN)"
    presets = ("physics", "seed")
    smoke = ("data.data_dir='data/smoke'", "data.synthetic_events=300", "model.widths=(16,)", "training.epochs=1",
             "training.batch_size=64")
    monitor = "val_auc"
    monitor_mode = "max"

    def _preset(self, name: str) -> Config:
        name = self._check_preset(name)
        return Config(
            task=self.name,
            preset=name,
            data=DyElectronData(features=name),
            model=DenseModel(),
            training=TrainingConfig(epochs=8, batch_size=256, learning_rate=2e-3, schedule="onecycle",
                                    class_weight=True),
            run=RunSettings(),
        )

    # ------------------------------------------------------------------ data
    def dataset_paths(self, config: Config, paths=None) -> tuple[list[Path], str]:
        """The prepared dataset files to read and their source ("files" or "synthetic").

        With no paths, the prepared real dataset under ``data_dir`` is used when present;
        otherwise the synthetic twin is made, prepared and used.
        """
        d = config.data
        if paths:
            return [Path(p) for p in paths], "files"
        if d.paths and not d.force_synthetic:
            return [Path(p) for p in d.paths], "files"
        default = Path(d.data_dir) / DEFAULT_DATASET
        if default.exists() and not d.force_synthetic:
            return [default], "files"
        return [self.synthetic_dataset(config)], "synthetic"

    def synthetic_dataset(self, config: Config) -> Path:
        """Make (once) the NanoAOD twin under ``<data_dir>/synthetic/dy_electron`` and prepare it."""
        from ..data.nanoaod import prepare_dataset
        from ..data.synthetic.nanoaod import make_twin
        from ..artifacts import read_json, write_json

        d = config.data
        root = Path(d.data_dir) / "synthetic" / self.name
        out = root / f"electron_dataset_{d.features}_e{d.n_electrons}_j{d.n_jets}.csv"
        params = {"events_per_sample": d.synthetic_events, "seed": config.run.seed,
                  "spec": [d.n_electrons, d.n_jets, d.features, d.min_pt, d.max_abs_eta, d.min_electrons]}
        stamp = out.with_suffix(".json")
        if out.exists() and stamp.exists() and read_json(stamp).get("params") == params:
            return out
        log.warning("Making the synthetic NanoAOD twin of dy_electron under %s", root)
        files = make_twin(root / "nanoaod", d.synthetic_events, seed=config.run.seed)
        report = prepare_dataset(files["signal"], files["background"], out, spec=feature_spec(d), progress=False)
        twin = read_json(root / "nanoaod" / "twin.json") if (root / "nanoaod" / "twin.json").exists() else {}
        write_json(stamp, {"params": params, "source": "synthetic", "oracle_auc": twin.get("oracle_auc"),
                           "report": _report_dict(report)})
        return out

    def load_frame(self, paths):
        import pandas as pd

        from ..data.nanoaod import load_prepared

        frames = [load_prepared(p) for p in paths]
        for p, f in zip(paths[1:], frames[1:]):
            if list(f.columns) != list(frames[0].columns):
                diff = sorted(set(f.columns) ^ set(frames[0].columns))
                raise DataError(p, f"the columns of {paths[0]} (files prepared with the same settings)",
                                f"columns differing in {diff[:8]}" if diff else "the same columns in another order")
        df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        for col in ("target", "sample"):
            if col not in df.columns:
                raise DataError(paths[0], f"a prepared dataset with a '{col}' column", f"columns {list(df.columns)[:12]}")
        return df

    @staticmethod
    def feature_columns(df) -> list[str]:
        return [c for c in df.columns if c not in META_COLUMNS and np.issubdtype(df[c].dtype, np.number)]

    def load_data(self, config: Config, paths=None, for_evaluation: bool = False) -> TaskData:
        import tensorflow as tf

        from ..data.splits import stratified_split
        from ..evaluation import class_weights

        files, source = self.dataset_paths(config, paths)
        meta = _dataset_meta(files)
        if meta and all(m.get("source") == "synthetic" for m in meta.values()):
            source = "synthetic"  # a prepared copy of the twin (prepare_dataset --synthetic)
        df = self.load_frame(files)
        feats = self.feature_columns(df)
        y = df["target"].to_numpy()
        if not np.isin(y, (0, 1)).all():
            bad = sorted(set(np.unique(y)) - {0, 1})[:5]
            raise DataError(files[0], "target values 0 (background) or 1 (signal)", f"{bad}")
        X = df[feats].to_numpy(dtype=np.float32)
        if not np.isfinite(X).all():
            col = feats[int(np.flatnonzero(~np.isfinite(X).all(axis=0))[0])]
            raise DataError(files[0], "finite feature values", f"NaN or infinity in column {col!r}")
        samples = df["sample"].astype(str).to_numpy()
        if for_evaluation:
            parts = [np.zeros(0, int), np.zeros(0, int), np.arange(len(df))]
        else:
            strat = np.char.add(samples.astype(str), y.astype(int).astype(str))
            parts = stratified_split(strat, tuple(config.data.split) if len(config.data.split) == 3
                                     else (config.data.split[0], 0.0, config.data.split[1]), seed=config.run.seed)
        bs = config.training.batch_size

        def make(idx, shuffle):
            """Batches of the events ``idx``; training reshuffles all of them every epoch.

            The prepared file holds one sample after another and the split keeps file order,
            so a shuffle buffer smaller than the split (``data.shuffle_buffer``) left most
            batches of one class; shuffling the event indices (cheap) mixes them all.
            """
            if len(idx) == 0:
                return None
            xs, ys = tf.constant(X[idx]), tf.constant(y[idx].astype(np.float32))

            def take(i):
                xb = tf.gather(xs, i)
                return {f: xb[:, k:k + 1] for k, f in enumerate(feats)}, tf.gather(ys, i)

            ds = tf.data.Dataset.range(len(idx))
            if shuffle:
                ds = ds.shuffle(len(idx), seed=config.run.seed, reshuffle_each_iteration=True)
            return ds.batch(bs).map(take, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

        tr, va, te = parts
        info = {
            "n_train": int(len(tr)), "n_val": int(len(va)), "n_test": int(len(te)),
            "n_signal": int((y == 1).sum()), "n_background": int((y == 0).sum()),
            "features": feats,
            "samples": {s: int(c) for s, c in zip(*np.unique(samples, return_counts=True))},
        }
        if meta:
            info["preparation"] = meta
            oracle = [m.get("oracle_auc") for m in meta.values() if m.get("oracle_auc")]
            if source == "synthetic" and oracle:
                info["oracle_auc"] = float(oracle[0])
        return TaskData(
            train=make(tr, True), val=make(va, False), test=make(te, False), source=source,
            paths=[str(p) for p in files], info=info,
            class_weight=class_weights(y[tr]) if config.training.class_weight and len(tr) else None,
            extras={"X": X, "y": y, "samples": samples, "features": feats, "split": parts},
        )

    # ----------------------------------------------------------------- model
    def build_model(self, config: Config, data: TaskData):
        from ..models.dense import build_dense_classifier

        m = config.model
        tr = data.extras["split"][0]
        adapt = data.extras["X"][tr] if len(tr) else data.extras["X"]
        return build_dense_classifier(data.extras["features"], widths=m.widths, activation=m.activation,
                                      dropout=m.dropout, batch_norm=m.batch_norm, adapt_data=adapt)

    def describe_model(self, config: Config) -> str:
        return f"dense{tuple(config.model.widths)}"

    def examples(self) -> dict:
        from ..models.dense import build_dense_classifier
        from .base import ModelExample

        rng = np.random.default_rng(0)
        names = ["Electron_pt_0", "Electron_eta_0", "m_ee", "nJet"]
        X = rng.normal(size=(16, 4)).astype("float32")
        return {"dense": ModelExample(
            build=lambda: build_dense_classifier(names, widths=(8, 4), dropout=0.1, batch_norm=True, adapt_data=X),
            x={n: X[:, i:i + 1] for i, n in enumerate(names)}, y=(X[:, 0] > 0).astype("float32"))}

    # ------------------------------------------------------------ evaluation
    def evaluate(self, ctx, models: dict, data: TaskData) -> dict:
        from .. import evaluation, plotting

        model = models["model"]
        inputs = [str(getattr(t, "name", "")).split(":")[0] for t in model.inputs]
        feats = list(data.extras["features"])
        if sorted(inputs) != sorted(feats):
            missing, extra = sorted(set(inputs) - set(feats)), sorted(set(feats) - set(inputs))
            raise DataError(data.paths[0], f"the {len(inputs)} feature columns the model was trained on"
                                           + (f" (missing here: {missing[:8]})" if missing else ""),
                            f"{len(feats)} feature columns" + (f", {extra[:8]} not among the model's" if extra else "")
                            + " (prepared with other settings? prepare it with the run's preset)")
        te = data.extras["split"][2]
        y, score = evaluation.predict_dataset(model, data.test)
        wp = ctx.config.data.working_point
        report = evaluation.binary_report(y, score, threshold=wp, seed=ctx.config.run.seed)
        if "oracle_auc" in data.info:
            report["oracle_auc"] = data.info["oracle_auc"]
        samples = data.extras["samples"][te]
        report["per_sample"] = {
            s: {"n": int((samples == s).sum()), "target": int(y[samples == s][0]),
                "mean_score": float(score[samples == s].mean()),
                "selected_fraction": float((score[samples == s] >= wp).mean())}
            for s in np.unique(samples)
        }
        p = ctx.plots_dir
        plotting.roc_curve(y, score, p / "roc.png", label=f"dense (AUC {report['roc_auc']:.3f})")
        plotting.score_distributions(y, score, p / "scores.png")
        plotting.score_distributions(y, score, p / "scores_per_sample.png", groups=samples)
        plotting.confusion_matrix(report["confusion_matrix"], p / "confusion.png",
                                  title=f"working point {wp:g}")
        return report


def _report_dict(report) -> dict:
    import dataclasses

    if dataclasses.is_dataclass(report):
        d = dataclasses.asdict(report)
    else:
        d = dict(getattr(report, "__dict__", {}))
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}


def _dataset_meta(files) -> dict:
    """What is known of each prepared dataset: the twin's stamp (``.json``) and the preparation
    report (``.report.json``) written beside it, merged."""
    from ..artifacts import read_json

    out = {}
    for f in files:
        meta = {}
        # the twin's stamp (source, oracle AUC) and prepare_dataset's report: both, report last
        for cand in (Path(f).with_suffix(".json"), Path(str(f) + ".report.json")):
            if cand.exists():
                try:
                    meta.update(read_json(cand))
                except ValueError:
                    pass
        if meta:
            out[str(f)] = meta
    return out
