"""kerahep: Keras 3 deep learning for collider physics, five HEP tasks end to end.

``import kerahep`` stays light: it does not import Keras or TensorFlow, so the Keras
backend can still be chosen (``KERAS_BACKEND``) after importing it. kerahep's layers and
models are registered with Keras as soon as Keras is imported (now, if it already is), so
after ``import kerahep`` plain ``keras.saving.load_model`` rebuilds any kerahep model.

Entry points::

    import kerahep

    model = kerahep.load_model("results/dy_electron/RUN/model.keras")   # safe mode
    scores = kerahep.score(model, dataframe)                          # DataFrame, dict or array

    from kerahep.registry import get_task, list_tasks
    from kerahep.training import evaluate_run, train
"""

import importlib.abc as _abc
import importlib.util as _util
import os as _os
import sys as _sys

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

__all__ = ["__version__", "load_model", "score"]


def __getattr__(name):
    """``kerahep.load_model`` and ``kerahep.score``, imported on first use (they need Keras)."""
    if name == "load_model":
        from .saving import load_model

        return load_model
    if name == "score":
        from .scoring import score

        return score
    raise AttributeError(f"module 'kerahep' has no attribute {name!r}")


def _register_with_keras() -> None:
    """Import kerahep's layer and model packages: importing them registers their classes;
    on the torch backend, apply :func:`_torch_cpu_convolutions`."""
    from . import layers, models  # noqa: F401

    _torch_cpu_convolutions()


def _torch_cpu_convolutions() -> None:
    """On Keras's torch backend, run CPU convolutions without oneDNN (``torch.backends.mkldnn``)
    unless ``KERAHEP_TORCH_ONEDNN=1``.

    torch 2.13.0's oneDNN kernel for the weight gradient of 1x1 convolutions
    (``jit_avx2_1x1_convolution_bwd_weights``) hangs with two threads and aborts the process
    with one on AMD EPYC virtual machines (seen training the jet_ssl ResNet-18, whose
    shortcuts are 1x1 convolutions); torch's own convolutions train the same models
    correctly there. GPUs (cuDNN) are not affected.
    """
    if _os.environ.get("KERAHEP_TORCH_ONEDNN") == "1" or "torch" not in _sys.modules:
        return
    try:
        import keras

        if keras.backend.backend() != "torch":
            return
        import torch

        torch.backends.mkldnn.enabled = False
    except Exception:  # noqa: BLE001 - a setting only; never break importing Keras
        pass


class _RegisterWhenKerasIsImported(_abc.MetaPathFinder):
    """Finds nothing itself; when ``keras`` is imported, lets the normal finders load it and
    registers kerahep's classes right after Keras has finished importing."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras":
            return None
        _sys.meta_path.remove(self)  # once: the real finders answer from here on
        spec = _util.find_spec("keras")
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader

        class _Loader(_abc.Loader):
            def __getattr__(self, name):  # everything else (resources, source) as the real loader
                return getattr(loader, name)

            def create_module(self, s):
                return loader.create_module(s)

            def exec_module(self, module):
                loader.exec_module(module)
                try:
                    _register_with_keras()
                except Exception:  # noqa: BLE001 - never break Keras' import; saving.load_model registers too
                    pass

        spec.loader = _Loader()
        return spec


if "keras" in _sys.modules:
    _register_with_keras()
elif not any(isinstance(f, _RegisterWhenKerasIsImported) for f in _sys.meta_path):
    _sys.meta_path.insert(0, _RegisterWhenKerasIsImported())
