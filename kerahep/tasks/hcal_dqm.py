"""hcal_dqm: tell HCAL runs apart from DigiOccupancy maps and monitor them lumisection by lumisection.

Data: one ``.npy`` file per run, ``(lumisections, 64 iEta, 72 iPhi)`` hit counts
(:mod:`kerahep.data.hcal`: memory-mapped, one class per run, two or more runs, split by
contiguous blocks of lumisections). Without files: the synthetic twin
(:mod:`kerahep.data.synthetic.hcal`) with injected dead and hot channels.

Models (``model.name``): ``vit`` or ``moe_vit`` (:mod:`kerahep.models.vit`), with the
log scaling and per-cell standardisation inside; plus a small autoencoder
(:mod:`kerahep.models.ae`, saved as ``autoencoder.keras``) whose residual map gives the
anomaly score of the monitoring view.

Evaluation: accuracy, ROC AUC (with a logistic regression on the mean occupancy of each
active iEta band as the baseline to beat), confusion matrix and ROC; attention-rollout
maps per run on the iEta x iPhi grid; for ``moe_vit`` the expert each patch goes to and
the expert load per run; the mean occupancy of each run and their difference; sample
maps; and the monitoring view: per lumisection the classifier's confidence in the true
run and the autoencoder's anomaly score against the lumisection number, with outliers
flagged at a ``model.false_alarm_rate`` threshold (:func:`robust_threshold` of the
validation lumisections).
On the twin the injected anomalies are known: the fraction flagged at a 1% false-alarm
rate is in ``metrics.json`` (``test.monitoring.efficiency_at_far``).

Presets: ``default`` (ViT on a small twin, a couple of minutes on 2 CPU cores),
``moe_vit``, ``hard`` (twin with a 2% intensity difference and 10000 lumisections per
run, as many as the real files: overlapping runs, about 3 minutes for the ViT) and
``full`` (larger model and longer training for the real 2 x 10000 lumisections).

Example::

    python -m scripts.train --task hcal_dqm
    python -m scripts.train --task hcal_dqm --preset moe_vit \\
        --set "data.paths=('Run355456_Dataset.npy', 'Run357479_Dataset.npy')"
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass
from typing import ClassVar
from pathlib import Path

import numpy as np

from ..config import Config, DataConfig, ModelConfig, RunSettings, TrainingConfig, check
from ..errors import DataError, KerahepError
from ..registry import register_task
from .base import Task, TaskData

log = logging.getLogger("kerahep")

VARIANTS = ("vit", "moe_vit")
ANOMALY_SCORES = ("mse", "max", "top")


@dataclass(frozen=True)
class HcalData(DataConfig):
    """Data settings of hcal_dqm.

    Args:
        paths: one ``.npy`` file per run (class = position); empty: the synthetic twin.
        synthetic_events: lumisections per run of the twin.
        n_runs: runs (classes) of the twin.
        separation: relative intensity difference between consecutive runs of the twin
            (real runs: about 0.15; 0.02 is a hard regime).
        anomaly_fraction: fraction of the twin's lumisections with injected dead or hot channels.
        n_blocks: contiguous blocks per run for the block split.
        chunk_size: lumisections per read from the memory-mapped files.
        scan_values: scan the files for NaN, infinities and negative counts when opening them
            (was ``data.validate``).
        adapt_samples: training maps used to adapt the per-cell standardisation.
        max_events: keep the first ``max_events`` lumisections of each run.
    """

    synthetic_events: int = 1000
    n_runs: int = 2
    separation: float = 0.15
    anomaly_fraction: float = 0.05
    n_blocks: int = 20
    chunk_size: int = 256
    RENAMED: ClassVar[dict] = {**DataConfig.RENAMED, "validate": "scan_values"}

    scan_values: bool = True
    adapt_samples: int = 2000

    def validate(self) -> None:
        super().validate()
        check(self.n_runs >= 2, f"data.n_runs must be >= 2 (one class per run), got {self.n_runs}")
        check(self.separation >= 0, f"data.separation must be >= 0, got {self.separation}")
        check(0 <= self.anomaly_fraction < 0.5, f"data.anomaly_fraction must be in [0, 0.5), got {self.anomaly_fraction}")
        check(self.n_blocks >= 2, f"data.n_blocks must be >= 2, got {self.n_blocks}")
        check(self.chunk_size >= 1, f"data.chunk_size must be >= 1, got {self.chunk_size}")
        check(self.adapt_samples >= 1, f"data.adapt_samples must be >= 1, got {self.adapt_samples}")


@dataclass(frozen=True)
class HcalModel(ModelConfig):
    """Model settings of hcal_dqm.

    Args:
        name: ``vit`` or ``moe_vit``.
        patch_size: ``(iEta, iPhi)`` cells per patch (8x8: 8 x 9 patches over 64 x 72).
        dim, depth, num_heads, mlp_ratio: Transformer width, blocks, heads and MLP ratio.
        dropout: dropout in embeddings, blocks and head.
        log_scale: factor after ``log(1 + counts)`` (classifier and autoencoder).
        normalize: per-cell standardisation after the logarithm.
        num_experts, top_k, capacity_factor, aux_loss_weight, moe_every: the
            mixture-of-experts blocks of ``moe_vit``.
        autoencoder: train the anomaly autoencoder too (the monitoring view needs it).
        ae_latent, ae_hidden, ae_epochs: its bottleneck, hidden width and epochs.
        anomaly_score: ``top`` (mean of the 8 largest squared residuals: a failing channel
            group stands out even when the rest of the map is reconstructed imperfectly),
            ``mse`` (mean squared residual, the classic reconstruction error) or ``max``.
        false_alarm_rate: fraction of good lumisections the monitoring may flag.
    """

    name: str = "vit"
    patch_size: tuple = (8, 8)
    dim: int = 64
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 2.0
    dropout: float = 0.1
    log_scale: float = 0.15
    normalize: bool = True
    num_experts: int = 4
    top_k: int = 2
    capacity_factor: float | None = 1.25
    aux_loss_weight: float = 0.01
    moe_every: int = 2
    autoencoder: bool = True
    ae_latent: int = 16
    ae_hidden: int = 128
    ae_epochs: int = 5
    anomaly_score: str = "top"
    false_alarm_rate: float = 0.01

    def validate(self) -> None:
        super().validate()
        if self.name not in VARIANTS:
            hint = difflib.get_close_matches(str(self.name), VARIANTS, n=1)
            check(False, f"model.name must be one of {VARIANTS}, got {self.name!r}"
                          + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        ps = tuple(self.patch_size)
        check(len(ps) in (1, 2) and all(isinstance(v, int) and v >= 1 for v in ps),
              f"model.patch_size must be one or two positive integers, got {self.patch_size!r}")
        check(self.dim >= 1 and self.depth >= 1 and self.num_heads >= 1,
              f"model.dim, model.depth and model.num_heads must be >= 1, got {self.dim}, {self.depth}, {self.num_heads}")
        check(self.dim % self.num_heads == 0, f"model.dim ({self.dim}) must be a multiple of model.num_heads "
                                               f"({self.num_heads})")
        check(self.mlp_ratio > 0 and self.log_scale > 0, "model.mlp_ratio and model.log_scale must be positive")
        check(self.num_experts >= 1, f"model.num_experts must be >= 1, got {self.num_experts}")
        check(1 <= self.top_k <= self.num_experts,
              f"model.top_k must be between 1 and model.num_experts ({self.num_experts}), got {self.top_k}")
        check(self.aux_loss_weight >= 0, f"model.aux_loss_weight must be >= 0, got {self.aux_loss_weight}")
        check(self.moe_every >= 1, f"model.moe_every must be >= 1, got {self.moe_every}")
        check(self.ae_latent >= 1 and self.ae_hidden >= 1 and self.ae_epochs >= 0,
              "model.ae_latent and model.ae_hidden must be >= 1 and model.ae_epochs >= 0")
        check(self.anomaly_score in ANOMALY_SCORES,
              f"model.anomaly_score must be one of {ANOMALY_SCORES}, got {self.anomaly_score!r}")
        check(0 < self.false_alarm_rate < 0.5, f"model.false_alarm_rate must be in (0, 0.5), got {self.false_alarm_rate}")

    @property
    def patch(self) -> tuple[int, int]:
        ps = tuple(int(v) for v in self.patch_size)
        return (ps[0], ps[0]) if len(ps) == 1 else ps


@register_task
class HcalDqm(Task):
    name = "hcal_dqm"
    description = "HCAL DigiOccupancy per lumisection: which run (ViT, MoE-ViT), attention and routing maps, monitoring"
    presets = ("default", "moe_vit", "hard", "full")
    smoke = ("data.data_dir='data/smoke'", "data.synthetic_events=200", "data.anomaly_fraction=0.1",
             "data.adapt_samples=200", "model.dim=16", "model.depth=2", "model.num_heads=2", "model.ae_hidden=64",
             "model.ae_latent=8", "model.ae_epochs=1", "training.epochs=1", "training.batch_size=32")
    monitor = "val_auc"
    monitor_mode = "max"
    artifacts = ("model", "autoencoder")

    # ---------------------------------------------------------------- presets
    def _preset(self, name: str) -> Config:
        name = self._check_preset(name)
        data = HcalData()
        model = HcalModel()
        training = TrainingConfig(epochs=5, batch_size=64, learning_rate=1e-3, optimizer="adamw", weight_decay=1e-4,
                                  schedule="onecycle", warmup_fraction=0.1, loss="binary_crossentropy")
        if name == "moe_vit":
            model = HcalModel(name="moe_vit")
        elif name == "hard":  # overlapping runs: more lumisections, no dropout (the signal is a 2% intensity shift)
            data = HcalData(separation=0.02, synthetic_events=10000)
            model = HcalModel(dropout=0.0)
            training = TrainingConfig(epochs=6, batch_size=64, learning_rate=1e-3, schedule="onecycle")
        elif name == "full":
            data = HcalData(synthetic_events=10000)
            model = HcalModel(dim=128, depth=6, num_heads=8, ae_epochs=20)
            training = TrainingConfig(epochs=30, batch_size=128, learning_rate=5e-4, schedule="onecycle",
                                      early_stopping=5)
        return Config(task=self.name, preset=name, data=data, model=model, training=training, run=RunSettings())

    def describe_model(self, config: Config) -> str:
        m = config.model
        ph, pw = m.patch
        text = f"{m.name}(patch {ph}x{pw}, dim {m.dim}, depth {m.depth}, heads {m.num_heads}"
        if m.name == "moe_vit":
            text += f", {m.num_experts} experts top-{m.top_k} every {m.moe_every} blocks, capacity {m.capacity_factor}"
        return text + ")"

    # ------------------------------------------------------------------- data
    def twin_dir(self, config: Config) -> Path:
        return Path(config.data.data_dir) / "synthetic" / self.name

    def expected_classes(self, config: Config) -> int:
        d = config.data
        return len(d.paths) if d.paths and not d.force_synthetic else d.n_runs

    def load_data(self, config: Config, paths=None, for_evaluation: bool = False) -> TaskData:
        from ..data import hcal

        d = config.data
        twin = None
        if paths:
            files, source = [Path(p) for p in paths], "files"
        elif d.paths and not d.force_synthetic:
            files, source = [Path(p) for p in d.paths], "files"
        else:
            from ..data.synthetic.hcal import ensure_twin

            twin = ensure_twin(self.twin_dir(config), n_lumisections=d.synthetic_events, n_runs=d.n_runs,
                               separation=d.separation, anomaly_fraction=d.anomaly_fraction, seed=config.run.seed)
            files, source = [Path(p) for p in twin["paths"]], "synthetic"
        classes = self.expected_classes(config)
        runs = hcal.open_runs(files, max_events=d.max_events, validate=d.scan_values,
                              min_runs=1 if for_evaluation else 2)
        if runs.n_classes > classes or (not for_evaluation and runs.n_classes != classes):
            raise DataError(files[-1], f"{classes} run files (one per class of the model)", f"{runs.n_classes}")
        if for_evaluation:
            runs.classes = self._classes_of(config, runs, files)
        if for_evaluation:
            segments = [[], [], [(r, 0, n) for r, n in enumerate(runs.sizes)]]
        else:
            segments = hcal.split_segments(runs.sizes, d.split, n_blocks=d.n_blocks, seed=config.run.seed)
        bs = config.training.batch_size
        label_mode = "binary" if classes == 2 else "categorical"
        n_maps = sum(runs.sizes)
        cache = bool(d.cache) and hcal.fits_in_memory(n_maps, runs.shape)
        common = {"chunk_size": d.chunk_size, "label_mode": label_mode, "shuffle_buffer": d.shuffle_buffer,
                  "num_classes": classes}
        train = hcal.make_dataset(runs, segments[0], bs, training=True, seed=config.run.seed, cache=cache, **common)
        val = hcal.make_dataset(runs, segments[1], bs, cache=cache, **common)
        test = hcal.make_dataset(runs, segments[2], bs, **common)
        names = runs.names
        split_names = ("train", "val", "test")
        per_class = {s: {names[r]: int(sum(b - a for rr, a, b in seg if rr == r)) for r in range(runs.n_classes)}
                     for s, seg in zip(split_names, segments)}
        info = {
            "n_train": hcal.count(segments[0]), "n_val": hcal.count(segments[1]), "n_test": hcal.count(segments[2]),
            "runs": names, "classes": per_class, "map_shape": list(runs.shape),
            "split": "independent sample (every lumisection in test)" if for_evaluation
            else f"contiguous blocks of lumisections ({d.n_blocks} per run)",
            "files": runs.summary() if d.scan_values else {r.name: {"path": str(r.path), "lumisections": len(r)}
                                                          for r in runs.runs},
        }
        anomalies = None
        if twin is not None:
            info["twin"] = {k: twin[k] for k in ("params", "oracle_auc", "oracle_auc_pairs", "n_anomalies")}
            anomalies = _load_truth(self.twin_dir(config), names)
        else:
            anomalies = _load_truth(files[0].parent, names) if len({f.parent for f in files}) == 1 else None
        class_weight = None
        if config.training.class_weight and info["n_train"]:
            from ..evaluation import class_weights

            labels = np.concatenate([np.full(b - a, r) for r, a, b in segments[0]])
            class_weight = class_weights(labels)
        return TaskData(
            train=train, val=val, test=test, source=source, paths=[str(f) for f in files], info=info,
            class_weight=class_weight,
            extras={"runs": runs, "segments": segments, "names": names, "anomalies": anomalies,
                    "twin_dir": str(self.twin_dir(config)) if twin is not None else None,
                    "n_classes": classes, "label_mode": label_mode},
        )

    def training_runs(self, config: Config) -> list[str]:
        """The run names the model of ``config`` was trained on, in class order."""
        from ..data import hcal

        d = config.data
        if d.paths and not d.force_synthetic:
            return [hcal.run_name(p) for p in d.paths]
        from ..data.synthetic.hcal import run_numbers

        return [f"Run{n}" for n in run_numbers(d.n_runs)]

    def _classes_of(self, config: Config, runs, files) -> list[int]:
        """Class of each scored file: that of the training run with the same name, so files
        given in another order (or one run alone) keep the labels the model learnt; files of
        runs the model never saw are labelled by position, as when training."""
        trained = self.training_runs(config)
        known = [n in trained for n in runs.names]
        if all(known):
            classes = [trained.index(n) for n in runs.names]
            if classes != list(range(len(classes))):
                log.info("hcal_dqm: scoring %s with the classes the model learnt for them: %s", runs.names,
                         dict(zip(runs.names, classes)))
            return classes
        if any(known):
            i = known.index(False)
            raise DataError(files[i], f"a run the model was trained on ({', '.join(trained)}) like the other files "
                                      f"given, or only new runs (labelled by position)", f"run {runs.names[i]}")
        return list(range(runs.n_classes))

    # ------------------------------------------------------------------ model
    def _adapt_data(self, config: Config, data: TaskData):
        from ..data import hcal

        runs, segments = data.extras["runs"], data.extras["segments"]
        seg = segments[0] if hcal.count(segments[0]) else segments[2]
        return hcal.sample_maps(runs, seg, config.data.adapt_samples)

    def build_model(self, config: Config, data: TaskData):
        from ..models.vit import build_moe_vit, build_vit

        m = config.model
        shape = data.extras["runs"].shape
        common = dict(num_classes=data.extras["n_classes"], patch_size=m.patch, dim=m.dim, depth=m.depth,
                      num_heads=m.num_heads, mlp_ratio=m.mlp_ratio, dropout=m.dropout, log_scale=m.log_scale,
                      normalize=m.normalize, adapt_data=self._adapt_data(config, data) if m.normalize else None)
        if m.name == "moe_vit":
            return build_moe_vit(shape, num_experts=m.num_experts, top_k=m.top_k, capacity_factor=m.capacity_factor,
                                 aux_loss_weight=m.aux_loss_weight, moe_every=m.moe_every, **common)
        return build_vit(shape, **common)

    def build_autoencoder(self, config: Config, data: TaskData):
        from ..models.ae import build_autoencoder

        m = config.model
        return build_autoencoder(data.extras["runs"].shape, latent_dim=m.ae_latent, hidden=m.ae_hidden,
                                 log_scale=m.log_scale, normalize=m.normalize,
                                 adapt_data=self._adapt_data(config, data) if m.normalize else None)

    def examples(self) -> dict:
        """Tiny ViT, MoE-ViT (three runs) and autoencoder instances for the backend matrix."""
        from ..models.ae import build_autoencoder
        from ..models.vit import build_moe_vit, build_vit
        from .base import ModelExample

        rng = np.random.default_rng(0)
        x = rng.poisson(40.0, size=(6, 16, 24)).astype("float32")
        x[:, 5:10] = 0.0
        tiny = dict(patch_size=(8, 8), dim=16, depth=2, num_heads=2, adapt_data=x)
        return {
            "hcal_vit": ModelExample(lambda: build_vit((16, 24), **tiny), x, np.array([0, 1] * 3, "float32")),
            "hcal_moe_vit": ModelExample(
                lambda: build_moe_vit((16, 24), num_classes=3, num_experts=3, top_k=2, moe_every=1, **tiny), x,
                np.eye(3, dtype="float32")[[0, 1, 2] * 2], loss="categorical_crossentropy"),
            "hcal_autoencoder": ModelExample(lambda: build_autoencoder((16, 24), latent_dim=4, hidden=16, adapt_data=x),
                                             x, np.zeros_like(x), loss="mse"),
        }

    def compile(self, model, config: Config, data: TaskData, steps_per_epoch: int | None = None):
        import keras

        from ..optimizers import make_optimizer

        if data.extras.get("n_classes", 2) == 2:
            return super().compile(model, config, data, steps_per_epoch)
        loss = (keras.losses.CategoricalFocalCrossentropy() if config.training.loss == "focal"
                else keras.losses.CategoricalCrossentropy())
        model.compile(optimizer=make_optimizer(config.training, steps_per_epoch), loss=loss,
                      metrics=[keras.metrics.AUC(name="auc"), keras.metrics.CategoricalAccuracy(name="accuracy")],
                      jit_compile=config.training.jit)
        return model

    def fit(self, ctx) -> dict:
        from ..models.ae import zero_targets
        from ..optimizers import make_optimizer

        cfg, data = ctx.config, ctx.data
        model = ctx.build(lambda: self.build_model(cfg, data))
        ctx.fit(model, stage="main")
        models = {"model": model}
        if cfg.model.autoencoder:
            epochs = cfg.model.ae_epochs
            ae = ctx.build(lambda: self.build_autoencoder(cfg, data))

            def compile_ae(m, steps):
                m.compile(optimizer=make_optimizer(cfg.training, steps, epochs=epochs), loss="mse",
                          jit_compile=cfg.training.jit)

            ctx.fit(ae, train=zero_targets(data.train), val=zero_targets(data.val) if data.val is not None else None,
                    stage="autoencoder", epochs=epochs, class_weight=None, monitor="val_loss", mode="min",
                    compile_fn=compile_ae)
            models["autoencoder"] = ae
        return models

    # ------------------------------------------------------------- evaluation
    def evaluate(self, ctx, models: dict, data: TaskData) -> dict:
        from .. import evaluation, plotting
        from ..data import hcal

        if data.test is None:
            raise KerahepError("hcal_dqm: the test split is empty; give data.split a test fraction")
        cfg = ctx.config
        runs, names = data.extras["runs"], data.extras["names"]
        segments = data.extras["segments"]
        k = data.extras["n_classes"]
        trained = self.training_runs(cfg)
        by_class = {runs.class_of(i): n for i, n in enumerate(names)}
        class_names = [by_class.get(c, trained[c] if c < len(trained) else f"class {c}") for c in range(k)]
        model = models["model"]
        plots = ctx.plots_dir
        y, p = evaluation.predict_dataset(model, data.test)
        run_idx, ls = hcal.split_order(segments[2])
        if k == 2:
            labels = y.astype(int)
            proba = np.stack([1.0 - p, p], axis=1)
            report = evaluation.binary_report(labels, p, seed=cfg.run.seed, class_names=class_names)
        else:
            labels = y.argmax(axis=1)
            proba = p
            report = evaluation.multiclass_report(labels, p, class_names=class_names, seed=cfg.run.seed)

        # --- baseline: logistic regression on the mean occupancy of each active band
        baseline = self._band_baseline(runs, segments, labels, k, cfg.run.seed)
        report["baseline_logreg_band_means"] = baseline["summary"]
        if baseline["summary"].get("roc_auc") is not None:
            report["auc_minus_baseline"] = float(report["roc_auc"] - baseline["summary"]["roc_auc"])
            if baseline["score"] is not None:
                ci = paired_auc_difference_ci(labels, p, baseline["score"], seed=cfg.run.seed)
                report["auc_minus_baseline_ci"] = ci
                # reached: not even one standard error below the baseline (the 68% interval's top is >= 0)
                report["reaches_baseline"] = bool(ci[1] >= 0)
        twin_dir = data.extras.get("twin_dir")
        if twin_dir and k == 2:
            from sklearn.metrics import roc_auc_score

            from ..data.synthetic.hcal import load_latents

            lat = load_latents(twin_dir)
            latent = np.array([lat[names[r]][lumi] for r, lumi in zip(run_idx, ls)])
            if len(np.unique(labels)) == 2:
                report["oracle_auc_test"] = float(roc_auc_score(labels, latent))

        # --- classification plots
        if k == 2:
            curves = {"logistic regression, band means": (labels, baseline["score"])} \
                if baseline["score"] is not None else None
            plotting.roc_curve(labels, p, plots / "roc.png", label=model.name, curves=curves)
            plotting.score_distributions(labels, p, plots / "scores.png", class_names=class_names)
        else:
            curves = {f"{class_names[c]} vs rest": ((labels == c).astype(int), proba[:, c]) for c in range(1, k)}
            plotting.roc_curve((labels == 0).astype(int), proba[:, 0], plots / "roc.png",
                               label=f"{class_names[0]} vs rest", curves=curves)
        plotting.confusion_matrix(report["confusion_matrix"], plots / "confusion.png", class_names=class_names)

        # --- maps
        report["occupancy"] = self._occupancy_maps(runs, segments, plots)
        self._sample_maps(runs, run_idx, ls, plots)
        maps_x, maps_r = self._map_subset(runs, segments[2], per_run=200)
        report["attention"] = self._attention_maps(model, maps_x, maps_r, runs, plots)
        if any(layer.name.endswith("_moe") for layer in model.layers):
            report["routing"] = self._routing_maps(model, maps_x, maps_r, runs, class_names, plots)

        # --- monitoring view
        confidence = proba[np.arange(len(labels)), labels]
        report["monitoring"] = self._monitoring(ctx, models.get("autoencoder"), data, run_idx, ls, labels,
                                                confidence, proba.argmax(axis=1), names, plots)
        return report

    # .................................................................. helpers
    @staticmethod
    def _band_baseline(runs, segments, test_labels, k, seed) -> dict:
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import accuracy_score, roc_auc_score
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        from ..data import hcal

        if not hcal.count(segments[0]):
            return {"summary": {"roc_auc": None, "note": "no training split (independent sample)"}, "score": None}
        mean_map = _mean_map(runs)
        bands, active = hcal.find_bands(mean_map), mean_map > 0

        def features(seg):
            xs, ys = [], []
            for x, r, _ in hcal.iterate(runs, seg):
                xs.append(hcal.band_features(x, bands, active))
                ys.append(np.full(len(x), r))
            return np.concatenate(xs), np.concatenate(ys)

        xtr, ytr = features(segments[0])
        xte, _ = features(segments[2])
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed)).fit(xtr, ytr)
        proba = np.zeros((len(xte), k))
        proba[:, clf.classes_] = clf.predict_proba(xte)
        present = np.unique(test_labels)
        if k == 2:
            score = proba[:, 1]
            auc = float(roc_auc_score(test_labels, score)) if len(present) == 2 else None
        else:
            score = None
            auc = float(roc_auc_score(test_labels, proba, multi_class="ovr", labels=list(range(k)))) \
                if len(present) == k else None
        return {"summary": {"roc_auc": auc, "accuracy": float(accuracy_score(test_labels, proba.argmax(axis=1))),
                            "bands_ieta": [list(b) for b in bands],
                            "features": "mean occupancy over the active cells of each band"},
                "score": score}

    @staticmethod
    def _map_subset(runs, segments, per_run: int = 200):
        """Up to ``per_run`` test maps of each run, spread over its test lumisections."""
        from ..data import hcal

        xs, rs = [], []
        for r in range(runs.n_classes):
            seg = [s for s in segments if s[0] == r]
            x = hcal.sample_maps(runs, seg, max(int(per_run), 1))
            xs.append(x)
            rs.append(np.full(len(x), r))
        return np.concatenate(xs), np.concatenate(rs)

    @staticmethod
    def _occupancy_maps(runs, segments, plots) -> dict:
        from .. import plotting

        means = [r.mean_map if r.mean_map is not None else np.asarray(r.array[: min(len(r), 500)]).mean(axis=0)
                 for r in runs.runs]
        names = runs.names
        images, titles = [], []
        for n, m in zip(names, means):
            images.append(m)
            titles.append(f"{n}: mean occupancy")
        out = {"mean": {n: float(m.mean()) for n, m in zip(names, means)},
               "active_mean": {n: float(m[m > 0].mean()) if (m > 0).any() else 0.0 for n, m in zip(names, means)}}
        diffs = {}
        for i in range(1, len(means)):
            d = means[i] - means[0]
            images.append(d)
            titles.append(f"{names[i]} - {names[0]}")
            rel = np.divide(d, means[0], out=np.zeros_like(d), where=means[0] > 0)
            diffs[f"{names[i]}-{names[0]}"] = {"mean_difference": float(d.mean()),
                                               "relative_difference_active": float(rel[means[0] > 0].mean())
                                               if (means[0] > 0).any() else 0.0}
        out["differences"] = diffs
        h, w = runs.shape
        plotting.image_grid(images[: len(names)], plots / "occupancy_mean.png", titles=titles[: len(names)],
                            xlabel="iPhi index", ylabel="iEta index", extent=(0, w, 0, h),
                            suptitle="Mean DigiOccupancy per lumisection")
        if len(names) > 1:
            plotting.image_grid(images[len(names):], plots / "occupancy_difference.png", titles=titles[len(names):],
                                xlabel="iPhi index", ylabel="iEta index", extent=(0, w, 0, h), cmap="RdBu_r",
                                symmetric=True, suptitle="Difference of mean occupancy between runs")
        return out

    @staticmethod
    def _sample_maps(runs, run_idx, ls, plots, per_run: int = 2):
        from .. import plotting

        images, titles = [], []
        for r in range(runs.n_classes):
            mine = ls[run_idx == r]
            if not len(mine):
                continue
            for j in np.unique(np.linspace(0, len(mine) - 1, per_run).round().astype(int)):
                images.append(np.asarray(runs.runs[r].array[int(mine[j])], dtype=np.float64))
                titles.append(f"{runs.names[r]} LS {int(mine[j])}")
        if images:
            h, w = runs.shape
            plotting.image_grid(images, plots / "sample_maps.png", titles=titles, xlabel="iPhi index",
                                ylabel="iEta index", log=True, extent=(0, w, 0, h), suptitle="Sample lumisections")

    @staticmethod
    def _attention_maps(model, x, r, runs, plots) -> dict:
        from .. import plotting
        from ..models.vit import rollout_maps

        maps = rollout_maps(model, x)
        names = runs.names
        images, titles, out = [], [], {}
        active = _mean_map(runs) > 0
        for c in range(runs.n_classes):
            if not (r == c).any():
                continue
            m = maps[r == c].mean(axis=0)
            images.append(m)
            titles.append(f"{names[c]}: attention rollout")
            out[names[c]] = {"relevance_on_active_cells": float(m[active].sum() / max(m.sum(), 1e-12)),
                             "n_maps": int((r == c).sum())}
        out["active_cell_fraction"] = float(active.mean())
        h, w = runs.shape
        plotting.image_grid(images, plots / "attention_rollout.png", titles=titles, xlabel="iPhi index",
                            ylabel="iEta index", extent=(0, w, 0, h), cmap="magma",
                            suptitle="Attention rollout per run (mean over test lumisections)")
        return out

    @staticmethod
    def _routing_maps(model, x, r, runs, class_names, plots) -> dict:
        from ..models.vit import routing, tokens_to_map

        gates = routing(model, x)
        patch = model.get_layer("patchify")
        out = {}
        first_maps, load_rows = [], {}
        for layer, g in gates.items():
            e = g.shape[-1]
            top = np.where(g.sum(axis=-1) > 0, g.argmax(axis=-1), -1)  # (B, N): first choice, -1 dropped
            info = {"load": {}, "dropped_fraction": {}, "first_choice_maps": {}}
            row = []
            for c in range(runs.n_classes):
                sel = r == c
                if not sel.any():
                    continue
                assigned = (g[sel] > 0).reshape(-1, e)
                load = assigned.sum(axis=0) / max(assigned.sum(), 1)
                info["load"][class_names[c]] = load.round(4).tolist()
                info["dropped_fraction"][class_names[c]] = float((top[sel] < 0).mean())
                counts = np.stack([(top[sel] == j).sum(axis=0) for j in range(-1, e)], axis=1)  # (N, e+1)
                mode = counts.argmax(axis=1) - 1
                info["first_choice_maps"][class_names[c]] = mode.tolist()
                first_maps.append((f"{layer}: {class_names[c]}",
                                   tokens_to_map(mode[None].astype(float), patch.grid, patch.patch_size,
                                                 patch.image_shape)[0]))
                row.append(load)
            load_rows[layer] = row
            modes = list(info["first_choice_maps"].values())
            if len(modes) >= 2:
                info["patches_same_expert_all_runs"] = float(np.mean(np.all(np.array(modes) == modes[0], axis=0)))
            out[layer] = info
        h, w = runs.shape
        _categorical_maps(first_maps, plots / "routing_maps.png", n_experts=next(iter(gates.values())).shape[-1],
                          extent=(0, w, 0, h))
        _expert_load_plot(load_rows, [n for i, n in enumerate(class_names) if (r == i).any()],
                          plots / "expert_load.png")
        return out

    def _monitoring(self, ctx, ae, data, run_idx, ls, labels, confidence, predicted, names, plots) -> dict:
        from sklearn.metrics import roc_auc_score

        from ..models.ae import anomaly_scores

        cfg = ctx.config
        far = cfg.model.false_alarm_rate
        how = cfg.model.anomaly_score
        wrong = predicted != labels
        out = {"classifier": {"misassigned": int(wrong.sum()), "misassigned_fraction": float(wrong.mean()),
                              "flag": "lumisections whose most probable class is not their run's"}}
        truth = None
        anomalies = data.extras.get("anomalies")
        if anomalies is not None:
            truth = np.array([int(lumi) in anomalies.get(names[r], {}) for r, lumi in zip(run_idx, ls)])
        score, threshold, source, residuals = None, None, None, {}
        if ae is not None:
            score = anomaly_scores(ae, data.test, how=how)
            if data.val is not None:
                reference, source = anomaly_scores(ae, data.val, how=how), "validation lumisections"
            else:
                reference, source = score, "scored lumisections (no validation split)"
            threshold = robust_threshold(reference, far)
            source = (f"log-normal fit (median and MAD of log score) to the {source}, "
                      f"{100 * (1 - far):g}th percentile; robust to anomalies among them")
            flagged = score > threshold
            out["autoencoder"] = {"score": how, "threshold": threshold, "threshold_from": source,
                                  "n_flagged": int(flagged.sum()), "flagged_fraction": float(flagged.mean()),
                                  "flagged": [[names[int(r)], int(lumi)]
                                              for r, lumi in zip(run_idx[flagged], ls[flagged])][:200]}
            if truth is not None and truth.any() and (~truth).any():
                clean_thr = float(np.quantile(score[~truth], 1.0 - far))
                out["n_injected"] = int(truth.sum())
                out["efficiency_at_far"] = float((score[truth] > clean_thr).mean())
                out["far"] = far
                out["efficiency_at_far_note"] = (f"fraction of test lumisections with injected dead/hot channels whose "
                                                 f"score exceeds the {100 * (1 - far):g}th percentile of the clean "
                                                 f"test lumisections (false-alarm rate {far:g})")
                out["flag_efficiency"] = float(flagged[truth].mean())
                out["false_alarm_rate_observed"] = float(flagged[~truth].mean())
                out["anomaly_auc"] = float(roc_auc_score(truth, score))
                kinds = np.array([anomalies[names[r]][int(lumi)]["kind"] if t else "" for r, lumi, t in
                                  zip(run_idx, ls, truth)])
                out["efficiency_at_far_by_kind"] = {kd: float((score[kinds == kd] > clean_thr).mean())
                                                    for kd in np.unique(kinds[truth])}
            import keras

            worst = np.argsort(score)[::-1][:4]
            runs = data.extras["runs"]
            maps = np.stack([np.asarray(runs.runs[int(run_idx[i])].array[int(ls[i])], np.float32) for i in worst])
            residuals = dict(zip(worst.tolist(), keras.ops.convert_to_numpy(ae(maps, training=False))))
            _residual_plot(residuals, worst, run_idx, ls, names, anomalies, score, runs.shape,
                           plots / "anomaly_residuals.png")
        _monitoring_plot(run_idx, ls, names, confidence, wrong, score, threshold, truth, plots / "monitoring.png")
        return out


# ------------------------------------------------------------------------ utilities
def paired_auc_difference_ci(labels, score_a, score_b, n_boot: int = 300, cl: float = 0.68, seed: int = 0) -> list:
    """Central ``cl`` interval of ``AUC(a) - AUC(b)`` from paired bootstrap resamples of the same events.

    Resampling the events once for both scores keeps their correlation, so the interval
    is much narrower than the two AUC intervals side by side: whether a model reaches a
    baseline on the same test set is read from it.
    """
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels).astype(int).ravel()
    a, b = np.asarray(score_a, np.float64).ravel(), np.asarray(score_b, np.float64).ravel()
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(labels), len(labels))
        if labels[idx].min() == labels[idx].max():
            continue
        diffs.append(roc_auc_score(labels[idx], a[idx]) - roc_auc_score(labels[idx], b[idx]))
    if not diffs:
        return [float("nan"), float("nan")]
    lo, hi = np.quantile(diffs, [(1 - cl) / 2, 1 - (1 - cl) / 2])
    return [float(lo), float(hi)]


def robust_threshold(scores, false_alarm_rate: float = 0.01) -> float:
    """Alarm threshold for anomaly scores from a reference sample that may hold anomalies.

    The bulk of the (positive) scores is taken as log-normal, its centre and width
    estimated by the median and the MAD of ``log(score)`` (a few anomalous lumisections
    do not move them); the threshold is that distribution's ``1 - false_alarm_rate``
    quantile. A plain quantile of the reference would sit on the anomalies whenever
    they are more frequent than the false-alarm rate.
    """
    from scipy.stats import norm

    s = np.log(np.clip(np.asarray(scores, dtype=np.float64), 1e-300, None))
    med = float(np.median(s))
    mad = 1.4826 * float(np.median(np.abs(s - med)))
    if not mad > 0:  # half the scores or more are equal: no width to fit; the plain quantile then
        return float(np.quantile(np.asarray(scores, dtype=np.float64), 1.0 - false_alarm_rate))
    return float(np.exp(med + norm.ppf(1.0 - false_alarm_rate) * mad))


def _mean_map(runs) -> np.ndarray:
    maps = [r.mean_map for r in runs.runs if r.mean_map is not None]
    if maps:
        return np.mean(maps, axis=0)
    return np.mean([np.asarray(r.array[: min(len(r), 500)], dtype=np.float64).mean(axis=0) for r in runs.runs], axis=0)


def _load_truth(folder, names):
    from ..data.synthetic.hcal import ANOMALIES_FILE, load_anomalies

    folder = Path(folder)
    if not (folder / ANOMALIES_FILE).exists():
        return None
    try:
        truth = load_anomalies(folder)
    except (ValueError, KeyError, OSError):
        return None
    return truth if any(n in truth for n in names) else None


def _categorical_maps(items, path, n_experts: int, extent):
    import matplotlib.pyplot as plt
    from matplotlib.colors import BoundaryNorm, ListedColormap

    from ..artifacts import save_figure
    from ..plotting import _style

    _style()
    n = len(items)
    cols = min(n, 2)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 5 * rows), squeeze=False)
    colours = ["#bbbbbb"] + [plt.get_cmap("tab10")(i % 10) for i in range(n_experts)]
    cmap = ListedColormap(colours)
    norm = BoundaryNorm(np.arange(-1.5, n_experts + 0.5), cmap.N)
    for ax, (title, img) in zip(axes.ravel(), items):
        art = ax.imshow(img, origin="lower", cmap=cmap, norm=norm, aspect="auto", extent=extent,
                        interpolation="nearest")
        ax.set_title(title, fontsize=12)
        ax.set_xlabel("iPhi index", fontsize=12)
        ax.set_ylabel("iEta index", fontsize=12)
        cb = fig.colorbar(art, ax=ax, ticks=range(-1, n_experts))
        cb.ax.set_yticklabels(["dropped"] + [f"expert {i}" for i in range(n_experts)], fontsize=10)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle("Most frequent first-choice expert per patch", fontsize=14)
    return save_figure(fig, path)


def _expert_load_plot(load_rows: dict, class_names, path):
    import matplotlib.pyplot as plt

    from ..artifacts import save_figure
    from ..plotting import _style

    _style()
    n = len(load_rows)
    fig, axes = plt.subplots(1, n, figsize=(6.5 * n, 5), squeeze=False)
    for ax, (layer, rows) in zip(axes[0], load_rows.items()):
        rows = np.asarray(rows)
        e = rows.shape[1]
        width = 0.8 / max(len(rows), 1)
        for i, row in enumerate(rows):
            ax.bar(np.arange(e) + (i - (len(rows) - 1) / 2) * width, row, width=width, label=class_names[i])
        ax.axhline(1.0 / e, color="grey", ls="--", lw=1, label="balanced")
        ax.set_xticks(range(e), [f"expert {j}" for j in range(e)], fontsize=11)
        ax.set_ylabel("fraction of token assignments", fontsize=12)
        ax.set_title(layer, fontsize=13)
        ax.legend(fontsize=10)
    return save_figure(fig, path)


def _monitoring_plot(run_idx, ls, names, confidence, wrong, score, threshold, truth, path):
    import matplotlib.pyplot as plt

    from ..artifacts import save_figure
    from ..plotting import _style

    _style()
    present = [r for r in range(len(names)) if (run_idx == r).any()]
    n_rows = 2 if score is not None else 1
    fig, axes = plt.subplots(n_rows, len(present), figsize=(7 * len(present), 4.2 * n_rows), squeeze=False,
                             sharex="col")
    for j, r in enumerate(present):
        sel = run_idx == r
        x = ls[sel]
        ax = axes[0, j]
        c = confidence[sel]
        bad = wrong[sel]
        ax.scatter(x[~bad], c[~bad], s=6, color="tab:blue", label="lumisection")
        if bad.any():
            ax.scatter(x[bad], c[bad], s=18, color="red", marker="x", label=f"other run ({int(bad.sum())})")
        ax.set_ylim(-0.03, 1.03)
        ax.set_ylabel("confidence in true run", fontsize=12)
        ax.set_title(names[r], fontsize=13)
        ax.legend(fontsize=9, loc="lower left")
        if score is not None:
            ax = axes[1, j]
            s = score[sel]
            flag = s > threshold
            ax.scatter(x[~flag], s[~flag], s=6, color="tab:blue", label="lumisection")
            ax.scatter(x[flag], s[flag], s=22, color="red", marker="x", label=f"flagged ({int(flag.sum())})")
            if truth is not None:
                t = truth[sel]
                ax.scatter(x[t], s[t], s=60, facecolors="none", edgecolors="black", label=f"injected ({int(t.sum())})")
            ax.axhline(threshold, color="red", ls="--", lw=1, label="threshold")
            ax.set_yscale("log")
            ax.set_ylabel("anomaly score (AE)", fontsize=12)
            ax.legend(fontsize=9, loc="upper left")
        axes[-1, j].set_xlabel("lumisection", fontsize=12)
    fig.suptitle("Monitoring: per-lumisection scores", fontsize=14)
    return save_figure(fig, path)


def _residual_plot(residuals, order, run_idx, ls, names, anomalies, score, shape, path):
    """Autoencoder residual maps (observed - expected, per-cell standardised) of the most anomalous maps."""
    from .. import plotting

    images, titles = [], []
    for i in order:
        if int(i) not in residuals:
            continue
        r, lumi = int(run_idx[i]), int(ls[i])
        images.append(residuals[int(i)])
        rec = (anomalies or {}).get(names[r], {}).get(lumi)
        tag = f"\ninjected {rec['kind']}: iEta {rec['ieta']}, iPhi {rec['iphi']}" if rec else "\n(nothing injected)"
        titles.append(f"{names[r]} LS {lumi}, score {score[i]:.3g}{tag}")
    if images:
        h, w = shape
        # titles take two lines (run, lumisection, score; the injected truth): no suptitle over them
        plotting.image_grid(images, path, titles=titles, xlabel="iPhi index", ylabel="iEta index", cmap="RdBu_r",
                            symmetric=True, extent=(0, w, 0, h))
