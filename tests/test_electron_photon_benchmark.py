"""electron_photon benchmark plumbing (no timings asserted): the PyTorch reference is the same
network as the Keras ResNet-15, and its row is skipped with a note when PyTorch is absent."""

from __future__ import annotations

import importlib.util

import numpy as np

from conftest import require_backend  # skips, or fails with KERAHEP_REQUIRE_BACKENDS=1 (CI)

from kerahep.benchmarks import electron_photon as bench


def test_torch_row_is_skipped_with_a_note_without_pytorch(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    (row,) = bench.torch_rows(tmp_path, quick=True)
    assert row.passed is None and "skipped" in row.notes and "torch" in row.notes.lower()
    assert not any(tmp_path.iterdir())  # nothing was generated or trained


def test_pytorch_reference_is_the_same_resnet15():
    require_backend("torch")
    import torch
    keras_model = bench.keras_model(augment=False)
    ref = bench.torch_resnet15()
    keras_params = sum(int(np.prod(w.shape)) for w in keras_model.trainable_weights)
    assert sum(p.numel() for p in ref.parameters()) == keras_params
    convs = [m for m in ref.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1)]
    assert len(convs) == 15
    assert tuple(ref(torch.zeros(2, 2, 32, 32)).shape) == (2, 1)
