"""The serialization helpers of tests/helpers.py fail when they should.

Toy layers are registered under the test-only package ``kerahep_test_helpers``: they exist
only once this module is imported, which the fresh-process test relies on.
"""

import keras
import numpy as np
import pytest
from keras import ops

from helpers import run_layer_test, run_model_saving_test

PACKAGE = "kerahep_test_helpers"


@keras.saving.register_keras_serializable(package=PACKAGE)
class Scale(keras.layers.Layer):
    """``x * scale + bias`` with a trainable bias: a correct layer."""

    def __init__(self, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def build(self, input_shape):
        self.bias = self.add_weight(name="bias", shape=(int(input_shape[-1]),), initializer="random_normal")

    def call(self, x):
        return x * self.scale + self.bias

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ScaleDroppingArgument(Scale):
    """Bug: ``get_config`` leaves ``scale`` out, so a reloaded layer has the default."""

    def get_config(self):
        config = super().get_config()
        del config["scale"]
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class ScaleWithWrongValue(Scale):
    """Bug: ``get_config`` names ``scale`` but writes the default value."""

    def get_config(self):
        return {**super().get_config(), "scale": 1.0}


@keras.saving.register_keras_serializable(package=PACKAGE)
class CalibratedShift(keras.layers.Layer):
    """Bug: a shift set after construction is neither in the config nor a weight: lost on saving."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.shift = 0.0

    def call(self, x):
        return x + self.shift


@keras.saving.register_keras_serializable(package=PACKAGE)
class UnseededNoise(keras.layers.Layer):
    """Bug: the seed argument is left out of the config, so a reloaded layer draws other noise."""

    def __init__(self, stddev=1.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.stddev = float(stddev)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training:
            return x
        return x + self.stddev * keras.random.normal(ops.shape(x), seed=self.seed_generator)

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SeededNoise(UnseededNoise):
    """The fixed ``UnseededNoise``: the seed is in the config."""

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def _x(shape=(4, 3), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _model(layer, shape=(3,)):
    inp = keras.Input(shape)
    return keras.Model(inp, layer(inp), name="toy")


def test_a_correct_layer_passes(tmp_path):
    result = run_layer_test(lambda: Scale(2.5, name="scale"), _x(), tmp_path=tmp_path, expected_shape=(4, 3),
                            atol=0, rtol=0)
    assert result.loaded_layer.scale == 2.5
    with pytest.raises(AssertionError, match="output shapes"):
        run_layer_test(lambda: Scale(2.5), _x(), tmp_path=tmp_path, expected_shape=(4, 4))


def test_a_config_without_a_constructor_argument_fails(tmp_path):
    with pytest.raises(AssertionError, match=r"leaves out constructor arguments \['scale'\]"):
        run_layer_test(lambda: ScaleDroppingArgument(2.5), _x(), tmp_path=tmp_path)


def test_a_config_with_a_wrong_value_fails_on_the_outputs(tmp_path):
    with pytest.raises(AssertionError, match=r"from_config\(get_config\(\)\), training=False"):
        run_layer_test(lambda: ScaleWithWrongValue(2.5), _x(), tmp_path=tmp_path)


def test_a_random_layer_without_its_seed_fails_in_training_mode_only(tmp_path):
    with pytest.raises(AssertionError, match=r"leaves out constructor arguments \['seed'\]"):
        run_layer_test(lambda: UnseededNoise(0.5, seed=3), _x(), tmp_path=tmp_path, compare_training=True)
    # the .keras comparison catches it too: reloaded with seed=None, it draws other noise
    model = _model(UnseededNoise(0.5, seed=3))
    with pytest.raises(AssertionError, match="reloaded in this process"):
        run_model_saving_test(model, _x(), tmp_path, training=True)
    run_model_saving_test(model, _x(), tmp_path, training=False, atol=0, rtol=0)  # inference is the identity
    # with the seed in the config the same layer passes, training outputs included
    result = run_layer_test(lambda: SeededNoise(0.5, seed=3), _x(), tmp_path=tmp_path, compare_training=True,
                            atol=0, rtol=0)
    assert not np.allclose(result.saving.reference["training=True"], _x())


def test_a_model_whose_reloaded_output_differs_fails(tmp_path):
    layer = CalibratedShift(name="shift")
    model = _model(layer)
    run_model_saving_test(model, _x(), tmp_path)  # shift 0: nothing is lost yet
    layer.shift = 0.5
    with pytest.raises(AssertionError, match="toy reloaded in this process"):
        run_model_saving_test(model, _x(), tmp_path)
    # within the tolerance it passes, beyond it fails
    layer.shift = 1e-7
    run_model_saving_test(model, _x(), tmp_path, atol=1e-6, rtol=0)
    with pytest.raises(AssertionError):
        run_model_saving_test(model, _x(), tmp_path, atol=1e-8, rtol=0)


def test_dict_inputs_and_dict_outputs_are_compared_by_name(tmp_path):
    a, b = keras.Input((3,), name="a"), keras.Input((3,), name="b")
    shift = CalibratedShift(name="shift")
    model = keras.Model({"a": a, "b": b}, {"sum": a + b, "shifted": shift(b)}, name="dicts")
    x = {"a": _x(seed=1), "b": _x(seed=2)}
    result = run_model_saving_test(model, x, tmp_path, atol=0, rtol=0)
    assert sorted(result.reference) == ["shifted", "sum"]
    shift.shift = 2.0
    with pytest.raises(AssertionError, match="output 'shifted'"):
        run_model_saving_test(model, x, tmp_path)


def toy_outputs(model, x):
    """Module-level (picklable) outputs for the fresh process."""
    return {"y": model(x, training=False), "twice": 2.0 * model(x, training=False)}


def test_fresh_process_needs_the_module_that_registers_the_layer(tmp_path):
    model = _model(Scale(3.0, name="scale"))
    result = run_model_saving_test(model, _x(), tmp_path, outputs=toy_outputs, fresh_process=True,
                                   imports=("test_helpers",), atol=0, rtol=0)
    assert "kerahep" not in " ".join(result.fresh["imported_before_load"])
    assert sorted(result.fresh["outputs"]) == ["twice", "y"] and result.fresh["modules"] == []
    # without the import the class is unknown in a fresh process (here it is registered)
    with pytest.raises(AssertionError, match=r"(?s)fresh process failed.*kerahep_test_helpers>Scale"):
        run_model_saving_test(model, _x(), tmp_path, fresh_process=True, imports=("kerahep.layers",))
    with pytest.raises(TypeError, match="picklable"):
        run_model_saving_test(model, _x(), tmp_path, outputs=lambda m, x: m(x), fresh_process=True)


def test_assert_image_not_blank_fails_on_blank_figures(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from helpers import assert_image_not_blank

    fig, ax = plt.subplots()
    ax.plot([0, 1, 2], [0, 1, 4])
    fig.savefig(tmp_path / "drawn.png")
    assert_image_not_blank(tmp_path / "drawn.png")
    empty = plt.figure()  # saved before anything was drawn: one colour
    empty.savefig(tmp_path / "empty.png")
    plt.close("all")
    with pytest.raises(AssertionError, match="blank"):
        assert_image_not_blank(tmp_path / "empty.png")
    (tmp_path / "fake.png").write_bytes(b"not a png")
    with pytest.raises(AssertionError, match="not a PNG"):
        assert_image_not_blank(tmp_path / "fake.png")
    with pytest.raises(AssertionError, match="no image"):
        assert_image_not_blank(tmp_path / "missing.png")
