import numpy as np
import keras
import pytest

from helpers import run_layer_test, run_model_saving_test
from kerahep.layers import PositionEmbedding, TransformerBlock


def test_transformer_block_roundtrip_and_attention_shape(tmp_path):
    inp = keras.Input((5, 8))
    h = PositionEmbedding()(inp)
    h, scores = TransformerBlock(num_heads=2, return_attention=True, name="blk")(h)
    model = keras.Model(inp, [h, scores])
    x = np.random.default_rng(0).normal(size=(3, 5, 8)).astype("float32")
    out, att = model.predict(x, verbose=0)
    assert out.shape == (3, 5, 8) and att.shape == (3, 2, 5, 5)
    np.testing.assert_allclose(att.sum(-1), 1.0, rtol=1e-5)  # softmax rows
    # outputs and attention scores, reloaded here and in a fresh process
    result = run_model_saving_test(model, x, tmp_path, rtol=1e-5, atol=1e-6, fresh_process=True)
    np.testing.assert_allclose(result.reference["0"], out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.reference["1"], att, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make,shape", [
    (lambda: PositionEmbedding(name="pos"), (3, 5, 8)),
    (lambda: TransformerBlock(num_heads=2, name="blk"), (3, 5, 8)),
    (lambda: TransformerBlock(num_heads=2, key_dim=3, mlp_ratio=1.5, return_attention=True, activation="relu",
                              name="blk_att"), [(3, 5, 8), (3, 2, 5, 5)]),
], ids=["position", "block", "block_attention"])
def test_transformer_layers_serialize(make, shape, tmp_path):
    x = np.random.default_rng(2).normal(size=(3, 5, 8)).astype("float32")
    run_layer_test(make, x, tmp_path=tmp_path, expected_shape=shape, rtol=1e-5, atol=1e-6)


def test_transformer_block_mask_hides_padded_tokens():
    blk = TransformerBlock(num_heads=1, return_attention=True)
    x = np.random.default_rng(1).normal(size=(1, 4, 8)).astype("float32")
    mask = np.array([[True, True, False, False]])
    _, att = blk(x, mask=mask)
    att = keras.ops.convert_to_numpy(att)
    np.testing.assert_allclose(att[0, 0, :2, 2:], 0.0, atol=1e-6)
    # changing a masked token does not change the unmasked outputs
    x2 = x.copy()
    x2[0, 3] += 10.0
    y1, _ = blk(x, mask=mask)
    y2, _ = blk(x2, mask=mask)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(y1)[0, :2], keras.ops.convert_to_numpy(y2)[0, :2],
                               rtol=1e-5, atol=1e-5)
