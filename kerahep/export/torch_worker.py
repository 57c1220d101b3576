"""The torch route of the ONNX export, run in a subprocess with ``KERAS_BACKEND=torch``
(the backend is fixed once Keras is imported): load the ``.keras`` file, call the model
once on the sample inputs and export it with Keras' ``model.export(format="onnx")``.

``python -m kerahep.export.torch_worker JOB`` where JOB is a JSON object with ``model``,
``sample`` (an ``.npz`` of ``input_0``, ``input_1``, ...), ``names``, ``structure``
(``dict``, ``list`` or ``single``), ``out``, ``opset`` and ``unsafe_load``.
"""

from __future__ import annotations

import json
import sys


def main(argv=None) -> int:
    job = json.loads((argv or sys.argv[1:])[0])
    import numpy as np

    from kerahep.saving import load_model

    model = load_model(job["model"], safe_mode=not job.get("unsafe_load"))
    sample = np.load(job["sample"])
    arrays = [sample[f"input_{i}"] for i in range(len(job["names"]))]
    if job["structure"] == "dict":
        x = dict(zip(job["names"], arrays))
    elif job["structure"] == "list":
        x = arrays
    else:
        x = arrays[0]
    model.predict(x, verbose=0)
    model.export(job["out"], format="onnx", verbose=False, opset_version=job.get("opset"))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:  # one line for the parent's message
        print(f"kerahep-export-error: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
              file=sys.stderr)
        sys.exit(1)
