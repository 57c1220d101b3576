"""electron_photon: electrons against photons from 32x32 calorimeter crops (energy, time).

The two ML4SCI HDF5 files (``SinglePhotonPt50_IMGCROPS_n249k_RHv1.hdf5``,
``SingleElectronPt50_IMGCROPS_n249k_RHv1.hdf5``) -> :class:`kerahep.data.calo.CaloReader`
(seeded stratified split on indices, chunked streaming into ``tf.data``) -> ResNet-15
(:func:`kerahep.models.resnet.build_resnet15`; variants ``two_channel``, ``energy``,
``time``, ``dual_stream``) -> test ROC/AUC with a bootstrap interval, accuracy,
classification report, confusion matrix, score distributions, t-SNE of the
``embedding`` layer, saliency and Grad-CAM (and Grad-CAM++) maps and mean images per
class, and a table comparing the newest complete run of every trained variant
(``<output_dir>/electron_photon/comparison.csv`` and ``.png``).

Without files the task trains on the synthetic twin
(:mod:`kerahep.data.synthetic.electron_photon`) and reports its oracle AUC beside the
model's, on the same test crops.

Presets: ``default`` (a small twin, a few minutes on two CPU cores) and ``full`` (the
real files: more epochs, a bigger batch). Example::

    python -m scripts.train --task electron_photon --set model.variant=energy
    python -m scripts.train --task electron_photon --preset full \\
        --set "data.paths=('SinglePhotonPt50_IMGCROPS_n249k_RHv1.hdf5','SingleElectronPt50_IMGCROPS_n249k_RHv1.hdf5')"
"""

from __future__ import annotations

import csv
import difflib
import io as _io
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import artifacts
from ..config import Config, DataConfig, ModelConfig, RunSettings, TrainingConfig, check
from ..errors import ConfigError, DataError
from ..registry import register_task
from .base import Task, TaskData

log = logging.getLogger("kerahep")

#: the twin's own seed: the twin depends on its size only, not on the run seed
TWIN_SEED = 0
CLASS_NAMES = ("photon", "electron")
COMPARISON_COLUMNS = ("variant", "run", "source", "roc_auc", "roc_auc_low", "roc_auc_high", "accuracy",
                      "n_test", "oracle_auc_test", "epochs", "model")


@dataclass(frozen=True)
class ElectronPhotonData(DataConfig):
    """Data settings of electron_photon.

    Args:
        paths: the photon and electron files (or one file holding both classes); empty:
            the synthetic twin under ``<data_dir>/synthetic/electron_photon``.
        test_paths: independent test files; then every crop of them is the test set and
            the files in ``paths`` give training and validation only.
        split: ``(train, val, test)`` fractions, or ``(train, test)`` (the ML4SCI 80/20
            protocol: no validation set, the last epoch's weights are tested).
        synthetic_events: crops per class of the synthetic twin.
        max_events: use only the first crops of each file.
        cache: read each split into memory once when it fits (half of the free memory);
            False always streams from the files.
        block_rows: rows per read (default: the files' HDF5 chunk rows).
        explain_samples: test crops per class for saliency and Grad-CAM maps (0: none).
        tsne_samples: test crops for the t-SNE of the embeddings (0: none).
    """

    synthetic_events: int = 3000
    test_paths: tuple = ()
    block_rows: int | None = None
    explain_samples: int = 100
    tsne_samples: int = 500

    def validate(self) -> None:
        super().validate()
        check(len(self.paths) <= 2 or all(str(p) for p in self.paths),
              f"data.paths must name HDF5 files, got {self.paths!r}")
        check(self.block_rows is None or self.block_rows > 0, f"data.block_rows must be positive, got {self.block_rows}")
        check(self.explain_samples >= 0, f"data.explain_samples must be >= 0, got {self.explain_samples}")
        check(self.tsne_samples >= 0, f"data.tsne_samples must be >= 0, got {self.tsne_samples}")
        check(self.split[0] > 0, f"data.split needs a positive training fraction, got {self.split!r}")


@dataclass(frozen=True)
class ResNetModel(ModelConfig):
    """ResNet-15 settings (see :func:`kerahep.models.resnet.build_resnet15`).

    Args:
        variant: ``two_channel``, ``energy``, ``time`` or ``dual_stream``.
        widths: filters per stage.
        blocks: residual blocks per stage (2 + 2 + 3 blocks of two convolutions and the
            stem: ResNet-15).
        stem_kernel: kernel of the input convolution.
        stem_pool: 2x2 max pooling after the stem.
        preact: pre-activation residual blocks.
        se: squeeze-and-excitation in every block.
        pool: ``avg``, ``max`` or ``attention`` pooling before the head.
        attention_heads: heads of the attention pooling.
        groups: grouped convolutions in the residual blocks.
        dropout: dropout around the embedding layer.
        embedding_dim: width of the ``embedding`` layer.
        flip: random flips in eta and phi in training.
        erasing: probability of random erasing of a patch in training.
        mixup: MixUp alpha on training batches (0: off; applied in the input pipeline).
        time_width_factor: ``dual_stream``: width of the time trunk relative to the energy trunk.
        energy_log: scale of the ``log1p(E / scale)`` energy transform inside the model (0: off).
    """

    name: str = "resnet15"
    variant: str = "two_channel"
    widths: tuple = (8, 16, 32)
    blocks: tuple = (2, 2, 3)
    stem_kernel: int = 5
    stem_pool: bool = False
    preact: bool = False
    se: bool = False
    pool: str = "avg"
    attention_heads: int = 2
    groups: int = 1
    embedding_dim: int = 64
    flip: bool = True
    erasing: float = 0.0
    mixup: float = 0.0
    time_width_factor: float = 1.0
    energy_log: float = 0.002

    def validate(self) -> None:
        super().validate()
        from ..models.resnet import POOLS, VARIANTS

        if self.variant not in VARIANTS:
            hint = difflib.get_close_matches(str(self.variant), VARIANTS, n=1)
            raise ConfigError(f"model.variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}"
                              + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        check(self.pool in POOLS, f"model.pool must be one of {', '.join(POOLS)}, got {self.pool!r}")
        check(len(self.widths) >= 1 and len(self.blocks) >= 1, "model.widths and model.blocks must not be empty")
        check(all(isinstance(w, int) and w > 0 for w in self.widths), f"model.widths must be positive integers, got {self.widths!r}")
        check(all(isinstance(b, int) and b > 0 for b in self.blocks), f"model.blocks must be positive integers, got {self.blocks!r}")
        check(self.stem_kernel >= 1, f"model.stem_kernel must be >= 1, got {self.stem_kernel}")
        check(self.attention_heads >= 1, f"model.attention_heads must be >= 1, got {self.attention_heads}")
        check(self.groups >= 1, f"model.groups must be >= 1, got {self.groups}")
        check(self.embedding_dim > 0, f"model.embedding_dim must be positive, got {self.embedding_dim}")
        check(0.0 <= self.erasing <= 1.0, f"model.erasing must be a probability in [0, 1], got {self.erasing}")
        check(self.mixup >= 0.0, f"model.mixup must be >= 0 (0: off), got {self.mixup}")
        check(self.energy_log >= 0, f"model.energy_log must be >= 0 (0: off), got {self.energy_log}")
        check(self.time_width_factor > 0, f"model.time_width_factor must be positive, got {self.time_width_factor}")
        check(len(self.widths) == len(self.blocks),
              f"model.widths {self.widths!r} and model.blocks {self.blocks!r} need the same length (one per stage)")
        check(all(w % self.groups == 0 for w in self.widths),
              f"model.groups={self.groups} must divide every width in model.widths={self.widths!r}")


def twin_folder(config: Config) -> Path:
    return Path(config.data.data_dir) / "synthetic" / "electron_photon"


def twin_folder_of(paths) -> Path | None:
    """The folder of a synthetic twin when ``paths`` are its two files (twin.json and latents beside them)."""
    from ..data.synthetic import electron_photon as twin

    paths = [Path(p) for p in paths]
    folders = {p.resolve().parent for p in paths}
    if len(folders) != 1 or sorted(p.name for p in paths) != sorted(twin.FILES):
        return None
    folder = folders.pop()
    return folder if (folder / "twin.json").exists() and (folder / "latents.npz").exists() else None


@register_task
class ElectronPhoton(Task):
    name = "electron_photon"
    description = "Electrons against photons from 32x32 ECAL crops (energy, time) with the ResNet-15 family"
    presets = ("default", "full")
    smoke = ("data.data_dir='data/smoke'", "data.synthetic_events=60", "data.explain_samples=4",
             "data.tsne_samples=30", "model.widths=(4, 8)", "model.blocks=(1, 1)", "model.embedding_dim=8",
             "training.epochs=1", "training.steps_per_epoch=2", "training.batch_size=16")
    monitor = "val_auc"
    monitor_mode = "max"

    # --------------------------------------------------------------- presets
    def _preset(self, name: str) -> Config:
        name = self._check_preset(name)
        if name == "full":
            return Config(
                task=self.name, preset=name,
                data=ElectronPhotonData(synthetic_events=100000, shuffle_buffer=20000, explain_samples=500,
                                        tsne_samples=2000),
                model=ResNetModel(),
                training=TrainingConfig(epochs=30, batch_size=512, learning_rate=2e-3, schedule="onecycle",
                                        optimizer="adamw", weight_decay=1e-4, clipnorm=1.0, early_stopping=6),
                run=RunSettings(),
            )
        return Config(
            task=self.name, preset=name,
            data=ElectronPhotonData(),
            model=ResNetModel(),
            training=TrainingConfig(epochs=8, batch_size=128, learning_rate=3e-3, schedule="onecycle",
                                    optimizer="adamw", weight_decay=1e-4, clipnorm=1.0),
            run=RunSettings(),
        )

    def describe_model(self, config: Config) -> str:
        m = config.model
        opts = [o for o, on in (("preact", m.preact), ("se", m.se), (f"{m.pool}pool", m.pool != "avg"),
                                (f"groups{m.groups}", m.groups > 1)) if on]
        return "resnet15/" + m.variant + ("+" + "+".join(opts) if opts else "")

    # ------------------------------------------------------------------ data
    def resolve_paths(self, config: Config, paths=None) -> tuple[list[Path], str, dict | None]:
        """The files to read, their source and (for the twin) its twin.json."""
        d = config.data
        if paths:
            return [Path(p) for p in paths], "files", None
        if d.paths and not d.force_synthetic:
            return [Path(p) for p in d.paths], "files", None
        from ..data.synthetic import electron_photon as twin

        folder = twin_folder(config)
        if not twin.twin_is_current(folder, d.synthetic_events, TWIN_SEED):
            log.warning("Making the synthetic electron/photon twin (%d crops per class) under %s",
                        d.synthetic_events, folder)
        info = twin.generate(folder, d.synthetic_events, seed=TWIN_SEED, show_progress=config.run.verbose > 0)
        return [folder / f for f in twin.FILES], "synthetic", info

    def load_data(self, config: Config, paths=None, for_evaluation: bool = False) -> TaskData:
        from ..data.calo import CaloReader

        d, t = config.data, config.training
        files, source, _ = self.resolve_paths(config, paths)
        info: dict = {}
        if for_evaluation:  # an independent sample, scored in full (no data.max_events cap)
            reader = CaloReader(files, split=None, seed=config.run.seed, max_events=None,
                                block_rows=d.block_rows)
            test_reader, test_split = reader, "test"
            train = val = None
        else:
            reader = CaloReader(files, split=d.split, seed=config.run.seed, max_events=d.max_events,
                                block_rows=d.block_rows)
            two_way = len(reader.split_names) == 2
            if d.test_paths:
                same = {os.path.realpath(p) for p in map(str, files)} & {os.path.realpath(str(p)) for p in d.test_paths}
                if same:
                    raise DataError(sorted(same)[0], "test files (data.test_paths) apart from the training files",
                                    "a file given both in data.paths and in data.test_paths")
                test_reader = CaloReader(list(d.test_paths), split=None, seed=config.run.seed,
                                         max_events=d.max_events, block_rows=d.block_rows)
                test_split = "test"
                val_split = "test" if two_way else "val"
                if not two_way:
                    info["unused_in_file_test"] = reader.size("test")
            else:
                test_reader, test_split = reader, "test"
                val_split = None if two_way else "val"
            for c, n in reader.class_counts("train").items():
                if n == 0:
                    raise DataError(", ".join(map(str, files)), "crops of both classes (photon y=0, electron y=1)",
                                    f"no {c} crop in the training split")
            train = reader.dataset("train", t.batch_size, shuffle=True, cache=d.cache, shuffle_buffer=d.shuffle_buffer,
                                   repeat=t.steps_per_epoch is not None, mixup_alpha=config.model.mixup)
            val = reader.dataset(val_split, t.batch_size, cache=d.cache) if val_split else None
            info["n_train"] = reader.size("train")
            info["n_val"] = reader.size(val_split) if val_split else 0
            info["train_counts"] = reader.class_counts("train")
            if val_split:
                info["val_counts"] = reader.class_counts(val_split)
        test = test_reader.dataset(test_split, t.batch_size, cache=False)
        info["n_test"] = test_reader.size(test_split)
        info["test_counts"] = test_reader.class_counts(test_split)
        info["split"] = list(d.split) if not for_evaluation else None
        info["chunk_rows"] = {f.path.name: f.chunk_rows for f in reader.files}
        info["cache"] = bool(d.cache)
        extras = {"reader": reader, "test_reader": test_reader, "test_split": test_split}
        folder = twin_folder_of(test_reader.paths)
        if folder is not None:  # the synthetic twin (built in, or given as files): its oracle on these crops
            from ..data.synthetic import electron_photon as twin

            info["oracle_auc"] = artifacts.read_json(folder / "twin.json")["oracle_auc"]
            info["twin"] = str(folder)
            rows = dict(zip([p.name for p in test_reader.paths], test_reader.rows_by_file(test_split)))
            if all(len(rows.get(f, ())) for f in twin.FILES):
                info["oracle_auc_test"] = twin.oracle_auc(folder, rows[twin.PHOTON_FILE], rows[twin.ELECTRON_FILE])
        return TaskData(train=train, val=val, test=test, source=source, paths=[str(p) for p in files],
                        info=info, extras=extras)

    # ----------------------------------------------------------------- model
    def build_model(self, config: Config, data: TaskData):
        from ..models.resnet import build_resnet15

        m = config.model
        return build_resnet15(
            variant=m.variant, widths=tuple(m.widths), blocks=tuple(m.blocks), stem_kernel=m.stem_kernel,
            stem_pool=m.stem_pool, preact=m.preact, se=m.se, pool=m.pool, attention_heads=m.attention_heads,
            groups=m.groups, dropout=m.dropout, embedding_dim=m.embedding_dim, flip=m.flip, erasing=m.erasing,
            time_width_factor=m.time_width_factor, energy_log=m.energy_log or None, seed=config.run.seed)

    def examples(self) -> dict:
        """Tiny instances of every ResNet-15 variant and of all options together (backend matrix)."""
        from ..data.synthetic import electron_photon as twin
        from ..models.resnet import VARIANTS, build_resnet15
        from .base import ModelExample

        rng = np.random.default_rng(0)
        x = twin.make_crops(rng, twin.sample_latent(rng, 6, 1))
        y = np.array([0, 1] * 3, dtype="float32")
        tiny = dict(widths=(4, 8), blocks=(1, 1), embedding_dim=8)
        out = {f"resnet15_{v}": ModelExample(lambda v=v: build_resnet15(v, **tiny, seed=0), x, y) for v in VARIANTS}
        out["resnet15_options"] = ModelExample(
            lambda: build_resnet15("two_channel", **tiny, preact=True, se=True, pool="attention", groups=2,
                                   dropout=0.1, erasing=0.5, seed=0), x, y)
        return out

    def fit(self, ctx) -> dict:
        reader = ctx.data.extras.get("reader")
        model = ctx.build(lambda: self.build_model(ctx.config, ctx.data))
        with reader.data_errors() if reader is not None else _nullcontext():
            ctx.fit(model, stage="main")
        return {"model": model}

    # ------------------------------------------------------------ evaluation
    def evaluate(self, ctx, models: dict, data: TaskData) -> dict:
        from .. import evaluation, plotting

        cfg = ctx.config
        model = models["model"]
        reader = data.extras.get("test_reader")
        with reader.data_errors() if reader is not None else _nullcontext():
            y, score, means, keep_x, keep_y = scan_test(model, data.test, keep=max(cfg.data.tsne_samples,
                                                                                   2 * cfg.data.explain_samples))
        report = evaluation.binary_report(y, score, seed=cfg.run.seed, class_names=CLASS_NAMES)
        report["variant"] = cfg.model.variant
        if "oracle_auc_test" in data.info:
            report["oracle_auc_test"] = data.info["oracle_auc_test"]
            report["oracle_gap"] = data.info["oracle_auc_test"] - report["roc_auc"]
        pd = ctx.plots_dir
        label = f"{self.describe_model(cfg)} ({data.source})"
        plotting.roc_curve(y, score, pd / "roc.png", label=label)
        plotting.score_distributions(y, score, pd / "scores.png", class_names=CLASS_NAMES)
        plotting.confusion_matrix(report["confusion_matrix"], pd / "confusion.png", class_names=CLASS_NAMES,
                                  title=f"threshold {report['threshold']:g}")
        self._mean_images(means, pd)
        if cfg.data.tsne_samples and len(keep_x) >= 10:
            self._tsne(model, keep_x[: cfg.data.tsne_samples], keep_y[: cfg.data.tsne_samples], cfg, pd)
        if cfg.data.explain_samples and len(keep_x):
            report["explanations"] = self._explain(model, keep_x, keep_y, cfg, pd)
        table = update_comparison(ctx.run_dir.parent, current={
            "run": ctx.run_dir.name, "variant": cfg.model.variant, "source": data.source,
            "paths": data.paths, "report": report, "epochs": cfg.training.epochs,
            "model": self.describe_model(cfg)})
        if table:
            report["comparison"] = str(ctx.run_dir.parent / "comparison.csv")
            plotting.table_figure([[r[c] for c in COMPARISON_COLUMNS] for r in table], list(COMPARISON_COLUMNS),
                                  pd / "comparison.png", title="electron_photon: newest run of each variant")
        return report

    def _mean_images(self, means, pd):
        from .. import plotting

        present = [c for c in (0, 1) if means.get(c) is not None]
        if not present:
            return
        titles = [f"{CLASS_NAMES[c]} ({means['n'][c]} crops)" for c in present]
        axes = dict(xlabel="i$\\phi$", ylabel="i$\\eta$")
        plotting.image_grid([means[c][..., 0] for c in present], pd / "mean_energy.png", titles=titles, log=True,
                            suptitle="Mean energy per class (test crops, log scale)", **axes)
        plotting.image_grid([means[c][..., 1] for c in present], pd / "mean_time.png", titles=titles,
                            cmap="RdBu_r", symmetric=True, suptitle="Mean time per class (test crops)", **axes)
        if len(present) == 2:
            plotting.image_grid([means[1][..., 0] - means[0][..., 0], means[1][..., 1] - means[0][..., 1]],
                                pd / "mean_difference.png", titles=["energy: electron - photon",
                                                                    "time: electron - photon"],
                                cmap="RdBu_r", symmetric=True, suptitle="Difference of the class means", **axes)

    def _tsne(self, model, x, y, cfg, pd):
        from .. import explain, plotting

        feats = explain.embeddings(model, "embedding", x, batch_size=cfg.training.batch_size)
        pts = explain.tsne(feats, seed=cfg.run.seed, max_points=cfg.data.tsne_samples)
        names = np.array(CLASS_NAMES)[np.asarray(y[: len(pts)], dtype=int)]
        plotting.embedding_scatter(pts, names, pd / "tsne_embedding.png",
                                   title="t-SNE of the 'embedding' layer (test crops)", label="")

    def _explain(self, model, x, y, cfg, pd) -> dict:
        import keras

        from .. import explain, plotting
        from ..models.resnet import gradcam_layer

        if keras.backend.backend() != "tensorflow":
            log.warning("saliency and Grad-CAM maps need the TensorFlow backend; skipped on %s",
                        keras.backend.backend())
            return {"skipped": f"backend {keras.backend.backend()}"}
        n = cfg.data.explain_samples
        sel = np.concatenate([np.flatnonzero(y == c)[:n] for c in (0, 1)])
        xs, ys = x[sel], y[sel].astype(int)
        layer = gradcam_layer(model)
        out = {"n_per_class": {CLASS_NAMES[c]: int((ys == c).sum()) for c in (0, 1)}, "gradcam_layer": layer}
        maps = {
            "saliency": explain.saliency_maps(model, xs, targets=ys),
            "gradcam": explain.gradcam_maps(model, xs, targets=ys, layer=layer),
            "gradcam_plus_plus": explain.gradcam_maps(model, xs, targets=ys, layer=layer, plus_plus=True),
        }
        for kind, m in maps.items():
            per_class = explain.class_average(m, ys)
            imgs = [per_class[c] for c in (0, 1) if c in per_class]
            titles = [f"{CLASS_NAMES[c]} ({int((ys == c).sum())})" for c in (0, 1) if c in per_class]
            plotting.image_grid(imgs, pd / f"{kind}.png", titles=titles, xlabel="i$\\phi$", ylabel="i$\\eta$",
                                cmap="inferno", suptitle=f"{kind} averaged per class (score of the true class)")
        return out


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def scan_test(model, dataset, keep: int = 1000):
    """One pass over the test set: labels, scores, per-class mean crops and the first ``keep`` crops.

    Returns:
        ``(y, score, means, kept_x, kept_y)`` with ``means[c]`` the mean crop of class ``c``
        and ``means["n"][c]`` its count.
    """
    import keras

    ys, ps = [], []
    sums = {0: None, 1: None}
    counts = {0: 0, 1: 0}
    kept_x, kept_y, n_kept = [], [], 0
    for batch in dataset:
        x, y = batch[0], batch[1]
        p = keras.ops.convert_to_numpy(model(x, training=False)).reshape(-1)
        xn = np.asarray(keras.ops.convert_to_numpy(x))
        yn = np.asarray(keras.ops.convert_to_numpy(y)).reshape(-1)
        ys.append(yn)
        ps.append(p.astype(np.float32))
        for c in (0, 1):
            sel = yn == c
            if sel.any():
                s = xn[sel].sum(axis=0, dtype=np.float64)
                sums[c] = s if sums[c] is None else sums[c] + s
                counts[c] += int(sel.sum())
        if n_kept < keep:
            kept_x.append(xn[: keep - n_kept])
            kept_y.append(yn[: keep - n_kept])
            n_kept += len(kept_x[-1])
    means = {c: (sums[c] / counts[c]).astype(np.float32) for c in (0, 1) if counts[c]}
    means["n"] = counts
    y = np.concatenate(ys) if ys else np.zeros(0)
    score = np.concatenate(ps) if ps else np.zeros(0)
    kx = np.concatenate(kept_x) if kept_x else np.zeros((0, 32, 32, 2), np.float32)
    ky = np.concatenate(kept_y) if kept_y else np.zeros(0)
    return y, score, means, kx, ky.astype(int)


# ---------------------------------------------------------------- comparison
def _row_from_run(run_dir: Path) -> dict | None:
    try:
        metrics = artifacts.read_json(run_dir / "metrics.json")
        config = artifacts.read_json(run_dir / "config.json")
    except (OSError, ValueError):
        return None
    if metrics.get("status") != "complete" or metrics.get("task") != "electron_photon":
        return None
    test = metrics.get("test") or {}
    data = metrics.get("data") or {}
    return _row(run_dir.name, (config.get("model") or {}).get("variant", "two_channel"), data.get("source"),
                data.get("paths") or [], test, (config.get("training") or {}).get("epochs"),
                metrics.get("model", ""), (run_dir / "metrics.json").stat().st_mtime)


def _row(run, variant, source, paths, test, epochs, model, stamp) -> dict:
    ci = test.get("roc_auc_ci") or [float("nan"), float("nan")]
    return {"variant": variant, "run": run, "source": source, "roc_auc": _f(test.get("roc_auc")),
            "roc_auc_low": _f(ci[0]), "roc_auc_high": _f(ci[1]), "accuracy": _f(test.get("accuracy")),
            "n_test": int(test.get("n", 0) or 0), "oracle_auc_test": _f(test.get("oracle_auc_test")),
            "epochs": epochs, "model": model, "_paths": [os.path.basename(str(p)) for p in paths], "_stamp": stamp}


def _f(v):
    try:
        return round(float(v), 4)
    except (TypeError, ValueError):
        return float("nan")


def comparison_rows(task_root, current: dict | None = None) -> list[dict]:
    """The newest complete run of each variant under ``task_root`` (one row each).

    Only runs on the same data as ``current`` (same source and file names) are compared;
    ``current`` (the run being evaluated, not yet marked complete) replaces older runs of
    its variant. Without ``current`` the data of the newest complete run are used.
    """
    task_root = Path(task_root)
    rows = []
    for d in sorted(task_root.iterdir()) if task_root.exists() else ():
        if d.is_dir() and (current is None or d.name != current["run"]):
            r = _row_from_run(d)
            if r is not None:
                rows.append(r)
    if current is not None:
        r = current["report"]
        rows.append(_row(current["run"], current["variant"], current["source"], current["paths"], r,
                         current.get("epochs"), current.get("model", ""), float("inf")))
    if not rows:
        return []
    ref = max(rows, key=lambda r: r["_stamp"])
    same = [r for r in rows if r["source"] == ref["source"] and r["_paths"] == ref["_paths"]]
    newest: dict = {}
    for r in same:
        if r["variant"] not in newest or r["_stamp"] > newest[r["variant"]]["_stamp"]:
            newest[r["variant"]] = r
    from ..models.resnet import VARIANTS

    order = {v: i for i, v in enumerate(VARIANTS)}
    return sorted(newest.values(), key=lambda r: (order.get(r["variant"], 99), r["variant"]))


def update_comparison(task_root, current: dict | None = None) -> list[dict]:
    """Write ``comparison.csv`` and ``comparison.png`` under ``task_root`` when two or more
    variants have been trained; return the rows (empty when fewer than two)."""
    from .. import plotting

    rows = comparison_rows(task_root, current)
    if len(rows) < 2:
        return []
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COMPARISON_COLUMNS)
    for r in rows:
        w.writerow([r[c] for c in COMPARISON_COLUMNS])
    artifacts.write_text(Path(task_root) / "comparison.csv", buf.getvalue())
    plotting.table_figure([[r[c] for c in COMPARISON_COLUMNS] for r in rows], list(COMPARISON_COLUMNS),
                          Path(task_root) / "comparison.png", title="electron_photon: newest run of each variant")
    return rows
