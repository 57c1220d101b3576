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


def tsne(features, seed: int = 0, perplexity: float = 30.0, max_points: int = 3000):
    """2-D t-SNE (scikit-learn) of ``features`` (at most ``max_points`` rows, taken in order)."""
    from sklearn.manifold import TSNE

    f = np.asarray(features, dtype=np.float32)[:max_points]
    perplexity = min(perplexity, max(2.0, (len(f) - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(f)
