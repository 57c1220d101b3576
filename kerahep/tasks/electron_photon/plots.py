"""electron_photon figures: mean crops per class, the t-SNE of the ``embedding`` layer, saliency
and Grad-CAM maps averaged per class, and the variant comparison as an image.

Every figure is seeded or deterministic, so re-evaluating a run redraws the same figures
under the same names: the t-SNE from ``run.seed`` on the first ``data.tsne_samples`` test
crops (the test stream has a fixed order), the maps from vanilla gradients (no SmoothGrad
noise) of the first ``data.explain_samples`` test crops of each class.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ...data.calo import CLASS_NAMES

log = logging.getLogger("kerahep")

_AXES = dict(xlabel="i$\\phi$ (crop pixel)", ylabel="i$\\eta$ (crop pixel)")
#: colour-bar quantities of the crops' two channels: the files do not give their units (the
#: energy cannot be GeV: a 50 GeV particle's crop sums to about 1.2), hence arbitrary units
ENERGY, TIME = "mean hit energy [a.u.]", "mean hit time [a.u.]"
#: what each explanation map is, for its colour bar
MAP_QUANTITY = {"saliency": "|d logit / d input| (each map scaled to [0, 1])",
                "gradcam": "Grad-CAM relevance (each map scaled to [0, 1])",
                "gradcam_plus_plus": "Grad-CAM++ relevance (each map scaled to [0, 1])"}


def mean_images(means: dict, counts: dict, plots_dir: Path) -> None:
    """``mean_energy.png``, ``mean_time.png`` and (both classes present) ``mean_difference.png``.

    Args:
        means: ``{class: (32, 32, 2) mean crop}`` for the classes present.
        counts: ``{class: crops}``.
    """
    from ... import plotting

    present = [c for c in (0, 1) if means.get(c) is not None]
    if not present:
        return
    titles = [f"{CLASS_NAMES[c]} ({counts[c]} crops)" for c in present]
    plotting.image_grid([means[c][..., 0] for c in present], plots_dir / "mean_energy.png", titles=titles, log=True,
                        shared=True, cbar_label=ENERGY, suptitle="Mean energy per class (test crops, log scale)",
                        **_AXES)
    plotting.image_grid([means[c][..., 1] for c in present], plots_dir / "mean_time.png", titles=titles,
                        cmap="RdBu_r", symmetric=True, shared=True, cbar_label=TIME,
                        suptitle="Mean time per class (test crops)", **_AXES)
    if len(present) == 2:
        plotting.image_grid([means[1][..., 0] - means[0][..., 0], means[1][..., 1] - means[0][..., 1]],
                            plots_dir / "mean_difference.png", titles=["energy: electron - photon",
                                                                       "time: electron - photon"],
                            cmap="RdBu_r", symmetric=True, cbar_label=[f"difference of {ENERGY}", f"difference of {TIME}"],
                            suptitle="Difference of the class means", **_AXES)


def tsne_embedding(model, x, y, seed: int, batch_size: int, plots_dir: Path) -> None:
    """``tsne_embedding.png``: t-SNE (seeded with ``seed``) of the ``embedding`` layer for crops ``x``."""
    from ... import explain, plotting

    feats = explain.embeddings(model, "embedding", x, batch_size=batch_size)
    pts = explain.tsne(feats, seed=seed, max_points=len(x))
    names = np.array(CLASS_NAMES)[np.asarray(y[: len(pts)], dtype=int)]
    plotting.embedding_scatter(pts, names, plots_dir / "tsne_embedding.png",
                               title="t-SNE of the 'embedding' layer (test crops)", label="")


def explanation_maps(model, x, y, n_per_class: int, plots_dir: Path) -> dict:
    """``saliency.png``, ``gradcam.png`` and ``gradcam_plus_plus.png``: maps of the score of the
    true class, averaged per class over the first ``n_per_class`` crops of each class, both
    classes on one colour scale, with the electron minus photon map beside them.

    Returns:
        What the report records: crops per class and the Grad-CAM layer, or ``skipped``
        off the TensorFlow backend (tf-keras-vis differentiates with TensorFlow).
    """
    import keras

    from ... import explain, plotting
    from ...models.resnet import gradcam_layer

    if keras.backend.backend() != "tensorflow":
        log.warning("saliency and Grad-CAM maps need the TensorFlow backend; skipped on %s",
                    keras.backend.backend())
        return {"skipped": f"backend {keras.backend.backend()}"}
    sel = np.concatenate([np.flatnonzero(y == c)[:n_per_class] for c in (0, 1)])
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
        plotting.image_grid(imgs, plots_dir / f"{kind}.png", titles=titles, cmap="inferno", shared=True,
                            difference=True, cbar_label=MAP_QUANTITY[kind], diff_label=f"difference of {kind} relevance",
                            suptitle=f"{kind} averaged per class (score of the true class), one scale", **_AXES)
    return out


def comparison_figure(frame, path) -> Path:
    """The variant comparison (:func:`.report.compare_runs`) as a table image at ``path``."""
    from ... import plotting

    return plotting.table_figure(frame.astype(object).values.tolist(), list(frame.columns), path,
                                 title="electron_photon: newest run of each variant")
