"""The notebook API: ``import kerahep`` registers kerahep's classes with Keras (without
importing Keras itself), ``kerahep.load_model`` and ``kerahep.score`` with inputs checked
against the model."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import kerahep
from kerahep.errors import DataError

MAKE = """
import keras
from kerahep.layers import Log1p
i = keras.Input((3,))
keras.Model(i, keras.layers.Dense(1)(Log1p()(i))).save({path!r})
"""


def _py(code: str, cwd):
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_import_kerahep_is_light_and_registers_its_classes_when_keras_comes(tmp_path):
    path = str(tmp_path / "m.keras")
    assert _py(MAKE.format(path=path), tmp_path).returncode == 0
    light = _py("import kerahep, sys; print('keras' in sys.modules, 'tensorflow' in sys.modules)", tmp_path)
    assert light.stdout.split() == ["False", "False"]  # the backend can still be chosen after import kerahep
    for order in ("import kerahep, keras", "import keras, kerahep"):
        out = _py(f"{order}\nm = keras.saving.load_model({path!r})\nprint(type(m.layers[1]).__name__)", tmp_path)
        assert out.returncode == 0 and out.stdout.strip() == "Log1p", (order, out.stderr[-2000:])
    plain = _py(f"import keras\nkeras.saving.load_model({path!r})", tmp_path)
    assert plain.returncode != 0 and "Log1p" in plain.stderr  # without kerahep Keras cannot rebuild it


def test_load_model_is_the_safe_loader():
    from kerahep.saving import load_model

    assert kerahep.load_model is load_model
    with pytest.raises(DataError, match="no such file"):
        kerahep.load_model("missing.keras")


@pytest.fixture(scope="module")
def dense():
    from kerahep.models.dense import build_dense_classifier

    rng = np.random.default_rng(0)
    names = ["Electron_pt_0", "m_ee", "nJet"]
    return build_dense_classifier(names, widths=(4,), adapt_data=rng.normal(size=(50, 3))), names


def test_score_takes_a_dataframe_or_a_dict_in_any_column_order(dense):
    model, names = dense
    rng = np.random.default_rng(1)
    X = rng.normal(size=(37, 3)).astype("float32")
    expected = np.asarray(model({n: X[:, i:i + 1] for i, n in enumerate(names)}))[:, 0]
    df = pd.DataFrame(X, columns=names).assign(target=1, sample="DY")[["sample", "nJet", "target", "m_ee",
                                                                       "Electron_pt_0"]]
    np.testing.assert_allclose(kerahep.score(model, df, batch_size=8), expected, rtol=1e-6, atol=1e-7)
    as_dict = {n: X[:, i] for i, n in enumerate(names)}  # 1-D columns are fine
    np.testing.assert_allclose(kerahep.score(model, as_dict), expected, rtol=1e-6, atol=1e-7)
    assert kerahep.score(model, df.iloc[:0]).shape == (0,)


def test_score_names_the_missing_columns(dense):
    model, names = dense
    df = pd.DataFrame({"Electron_pt_0": [1.0], "nJets": [2.0]})
    with pytest.raises(DataError, match=r"missing here: \['m_ee', 'nJet'\].*not among the model's: \['nJets'\]"):
        kerahep.score(model, df)
    with pytest.raises(DataError, match="DataFrame or a dict"):
        kerahep.score(model, np.zeros((2, 3)))


def test_score_takes_arrays_for_array_models_and_checks_their_shape():
    import keras

    i = keras.Input((4, 5, 2))
    model = keras.Model(i, keras.layers.Dense(1, activation="sigmoid")(keras.layers.Flatten()(i)))
    x = np.random.default_rng(2).normal(size=(9, 4, 5, 2)).astype("float32")
    np.testing.assert_allclose(kerahep.score(model, x, batch_size=4), np.asarray(model(x))[:, 0], rtol=1e-6)
    with pytest.raises(DataError, match=r"shape \(n, 4, 5, 2\).*found shape \(9, 5, 4, 2\)"):
        kerahep.score(model, x.transpose(0, 2, 1, 3))
    with pytest.raises(DataError, match="named columns are for models with named inputs"):
        kerahep.score(model, pd.DataFrame({"a": [1.0]}))
