"""What a model looks at: t-SNE of embeddings from a named layer, saliency and Grad-CAM
(tf-keras-vis, TensorFlow backend), attention rollout (see :mod:`kerahep.models.vit`)."""

from __future__ import annotations

import numpy as np


def embeddings(model, layer_name: str, x, batch_size: int = 256) -> np.ndarray:
    """Outputs of the layer ``layer_name`` of ``model`` for inputs ``x``, flattened to 2-D.

    Taking them from a named layer (rather than "the layer before the last") keeps the
    shape right whatever head the model has.
    """
    import keras

    try:
        layer = model.get_layer(layer_name)
    except ValueError:
        from .errors import KerahepError

        names = [layer_.name for layer_ in model.layers]
        raise KerahepError(f"model {model.name!r} has no layer {layer_name!r}; layers: {', '.join(names)}") from None
    sub = keras.Model(model.inputs, layer.output)
    out = sub.predict(x, batch_size=batch_size, verbose=0)
    out = np.asarray(out)
    return out.reshape(len(out), -1)


def sample_rows(n: int, k: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``min(k, n)`` of ``n`` rows drawn at random without replacement (seeded).

    For plots of a subset (t-SNE): the first ``k`` rows of a file ordered by class or pT
    would be a biased subset. Index the features and their labels with the same rows.

    Example:
        >>> rows = sample_rows(10, 4, seed=1)
        >>> len(rows), bool((np.diff(rows) > 0).all())
        (4, True)
    """
    n = int(n)
    return np.sort(np.random.default_rng(seed).choice(n, min(int(k), n), replace=False))


def tsne(features, seed: int = 0, perplexity: float = 30.0, max_points: int = 3000):
    """2-D t-SNE (scikit-learn) of ``features``.

    With more than ``max_points`` rows it embeds the rows ``sample_rows(len(features),
    max_points, seed)`` (a seeded random subset, in order), not the first ones: select the
    rows first with :func:`sample_rows` to colour the points by their labels.
    """
    from sklearn.manifold import TSNE

    f = np.asarray(features, dtype=np.float32)
    if len(f) > max_points:
        f = f[sample_rows(len(f), max_points, seed)]
    perplexity = min(perplexity, max(2.0, (len(f) - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(f)


# ------------------------------------------------------------ saliency and Grad-CAM
def _require_tensorflow(what: str) -> None:
    """tf-keras-vis differentiates with TensorFlow's GradientTape: refuse other backends clearly."""
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        from .errors import KerahepError

        raise KerahepError(f"{what} uses tf-keras-vis, which needs the TensorFlow backend; the Keras backend is "
                           f"{backend!r} (run with KERAS_BACKEND=tensorflow)")


def _binary_targets(model, x, targets, batch_size: int) -> np.ndarray:
    if targets is not None:
        t = np.asarray(targets).astype(int).ravel()
        if len(t) != len(x):
            from .errors import KerahepError

            raise KerahepError(f"explanation targets: expected one per input ({len(x)}), found {len(t)}")
        return t
    p = np.asarray(model.predict(x, batch_size=batch_size, verbose=0)).reshape(len(x), -1)[:, 0]
    return (p >= 0.5).astype(int)


def _batched(fn, x, targets, batch_size: int) -> np.ndarray:
    import warnings

    out = []
    with warnings.catch_warnings():
        # tf-keras-vis passes the inputs as a list; Keras 3 warns about the structure only
        warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match")
        for i in range(0, len(x), batch_size):
            out.append(np.asarray(fn(x[i:i + batch_size], targets[i:i + batch_size]), dtype=np.float32))
    return np.concatenate(out) if out else np.zeros((0,) + tuple(x.shape[1:3]), np.float32)


def saliency_maps(model, x, targets=None, smooth_samples: int = 0, smooth_noise: float = 0.2,
                  batch_size: int = 64, normalize: bool = True) -> np.ndarray:
    """Saliency maps (|d score / d input|, max over channels) of a sigmoid binary classifier.

    Uses tf-keras-vis ``Saliency`` with ``ReplaceToLinear`` (gradients of the logit, not of
    the saturating sigmoid) and ``BinaryScore``.

    Args:
        model: a Keras model with one ``(batch, 1)`` sigmoid output and one image input.
        x: inputs ``(n, height, width, channels)``.
        targets: class (0/1) whose score each map explains; default the predicted class.
        smooth_samples: SmoothGrad samples (0: vanilla gradients).
        smooth_noise: SmoothGrad noise level.
        batch_size: inputs per gradient computation.
        normalize: scale each map to [0, 1].

    Returns:
        ``(n, height, width)`` float32.

    Raises:
        KerahepError: when the Keras backend is not TensorFlow.
    """
    _require_tensorflow("saliency_maps")
    from tf_keras_vis.saliency import Saliency
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import BinaryScore

    x = np.asarray(x, dtype=np.float32)
    targets = _binary_targets(model, x, targets, batch_size)
    sal = Saliency(model, model_modifier=ReplaceToLinear(), clone=True)
    return _batched(lambda xb, tb: sal(BinaryScore(list(tb)), xb, smooth_samples=smooth_samples,
                                       smooth_noise=smooth_noise, normalize_map=normalize), x, targets, batch_size)


def gradcam_maps(model, x, targets=None, layer: str | None = None, plus_plus: bool = False,
                 batch_size: int = 64, normalize: bool = True) -> np.ndarray:
    """Grad-CAM (or Grad-CAM++) maps of a sigmoid binary classifier, at the input resolution.

    Uses tf-keras-vis ``Gradcam``/``GradcamPlusPlus`` with ``ReplaceToLinear`` and
    ``BinaryScore`` on the feature map of layer ``layer`` (default: the last
    convolutional layer tf-keras-vis finds), expanded to the input size.

    Args:
        model: a Keras model with one ``(batch, 1)`` sigmoid output and one image input.
        x: inputs ``(n, height, width, channels)``.
        targets: class (0/1) whose score each map explains; default the predicted class.
        layer: name of the feature-map layer.
        plus_plus: Grad-CAM++ instead of Grad-CAM.
        batch_size: inputs per gradient computation.
        normalize: scale each map to [0, 1].

    Returns:
        ``(n, height, width)`` float32.

    Raises:
        KerahepError: when the Keras backend is not TensorFlow, or ``layer`` is not in the model.
    """
    _require_tensorflow("gradcam_maps")
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import BinaryScore

    if layer is not None and layer not in {lyr.name for lyr in model.layers}:
        from .errors import KerahepError

        raise KerahepError(f"model {model.name!r} has no layer {layer!r} for Grad-CAM")
    x = np.asarray(x, dtype=np.float32)
    targets = _binary_targets(model, x, targets, batch_size)
    cls = GradcamPlusPlus if plus_plus else Gradcam
    cam = cls(model, model_modifier=ReplaceToLinear(), clone=True)
    kw = {"penultimate_layer": layer} if layer is not None else {}
    return _batched(lambda xb, tb: cam(BinaryScore(list(tb)), xb, normalize_cam=normalize, **kw),
                    x, targets, batch_size)


def class_average(maps, labels) -> dict:
    """Mean map per class: ``{class: (height, width) array}`` for every class present in ``labels``."""
    maps = np.asarray(maps)
    labels = np.asarray(labels).astype(int).ravel()
    return {int(c): maps[labels == c].mean(axis=0) for c in np.unique(labels)}
