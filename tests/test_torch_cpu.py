"""On Keras's torch backend kerahep runs CPU convolutions without oneDNN (its 1x1-convolution
weight gradient hangs or aborts on AMD EPYC virtual machines), unless KERAHEP_TORCH_ONEDNN=1."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[1]

PROBE = """
import sys
first = sys.argv[1]
if first == "keras":
    import keras, kerahep
else:
    import kerahep, keras
import torch
x = torch.randn(2, 4, 9, 9, requires_grad=True)
conv = torch.nn.Conv2d(4, 8, 1)
conv(x).sum().backward()  # a 1x1 convolution's weight gradient: the kernel that failed
print(keras.backend.backend(), torch.backends.mkldnn.enabled, conv.weight.grad.shape == (8, 4, 1, 1))
"""


def _probe(backend: str, first: str, **env) -> str:
    out = subprocess.run([sys.executable, "-c", PROBE, first], capture_output=True, text=True, timeout=300, cwd=REPO,
                         env=dict(os.environ, PYTHONPATH=str(REPO), KERAS_BACKEND=backend, **env))
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()[-3:]


@pytest.mark.parametrize("first", ["kerahep", "keras"])
def test_torch_backend_runs_convolutions_without_onednn(first):
    assert _probe("torch", first) == ["torch", "False", "True"]


def test_onednn_stays_on_when_asked_and_on_other_backends():
    assert _probe("torch", "kerahep", KERAHEP_TORCH_ONEDNN="1") == ["torch", "True", "True"]
    assert _probe("jax", "kerahep")[:2] == ["jax", "True"]  # torch imported by hand: left as it is
