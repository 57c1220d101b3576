"""Shared fixtures: the real-data folder (skip without it, fail with
KERAHEP_REQUIRE_REALDATA=1), the optional Keras backends (skip without them, fail with
KERAHEP_REQUIRE_BACKENDS=1), quiet Keras, and a temporary results/data folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # scripts/ is a folder of the checkout, not an installed package
    sys.path.insert(0, str(REPO))
REALDATA = Path(os.environ.get("KERAHEP_REALDATA", REPO.parent / "shared" / "realdata"))


def realdata_path(*parts) -> Path:
    """Path of a file under ../shared/realdata; skip (or fail when required) if absent."""
    path = REALDATA.joinpath(*parts)
    if not path.exists():
        msg = f"real data file {path} is absent (../shared/realdata is beside the checkout in CI)"
        if os.environ.get("KERAHEP_REQUIRE_REALDATA") == "1":
            pytest.fail(msg + " and KERAHEP_REQUIRE_REALDATA=1")
        pytest.skip(msg)
    return path


@pytest.fixture
def realdata():
    return realdata_path


def require_backend(*modules: str) -> None:
    """Skip (or fail when ``KERAHEP_REQUIRE_BACKENDS=1``) unless ``jax``/``torch`` are installed."""
    import importlib.util

    for module in modules:
        if importlib.util.find_spec(module) is None:
            extra = {"hls4ml": "export", "onnx": "export", "onnxruntime": "export", "tf2onnx": "export"}.get(module,
                                                                                                         module)
            msg = f"{module} is not installed (pip install -e '.[{extra}]')"
            if os.environ.get("KERAHEP_REQUIRE_BACKENDS") == "1":
                pytest.fail(msg + " and KERAHEP_REQUIRE_BACKENDS=1")
            pytest.skip(msg)


@pytest.fixture
def backends():
    """``backends("jax", "torch")`` skips the test unless both are installed (see :func:`require_backend`)."""
    return require_backend


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A temporary current directory with results/ and data/ inside."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def pytest_terminal_summary(terminalreporter):
    """Report how many hostile-input cases each reader survived."""
    fuzz = sys.modules.get("fuzzing")
    if fuzz is not None and fuzz.CASES:
        total = sum(fuzz.CASES.values())
        per = ", ".join(f"{k} {v}" for k, v in sorted(fuzz.CASES.items()))
        terminalreporter.write_line(f"fuzzing: {total} hostile-input cases run ({per})")
