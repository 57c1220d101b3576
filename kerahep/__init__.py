"""kerahep: Keras 3 deep learning for collider physics, five HEP tasks end to end.

The package keeps heavy imports (Keras, TensorFlow) out of ``import kerahep`` so that the
Keras backend can still be chosen (``KERAS_BACKEND``) after importing it. Entry points::

    from kerahep.registry import get_task, list_tasks
    from kerahep.training import train
    from kerahep.training import evaluate_run
"""

import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
