"""The README's Python API examples run as written (each in a fresh process, in a
temporary folder, so their results/ and data/ go there)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _examples() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_every_task_has_an_example():
    tasks = [block.splitlines()[0].lstrip("# ").split(":")[0] for block in _examples()]
    assert sorted(tasks) == ["dy_electron", "electron_photon", "hcal_dqm", "higgs_mae", "jet_ssl"]


@pytest.mark.slow
@pytest.mark.parametrize("block", _examples(), ids=lambda b: b.splitlines()[0].lstrip("# ").split(":")[0])
def test_readme_example_runs(block, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), KERAS_BACKEND="tensorflow")
    out = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, (out.stdout[-2000:], out.stderr[-4000:])
    assert out.stdout.strip(), "the example printed nothing"
