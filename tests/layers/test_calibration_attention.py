import keras
import numpy as np
import pytest

from sercal_keras.layers import CalibrationAttention
from tests.layer_test_utils import run_layer_test


@pytest.mark.parametrize("context_size", [None, 3])
def test_layer_contract(context_size):
    run_layer_test(
        CalibrationAttention,
        init_kwargs={"context_size": context_size},
        input_shape=(2, 9, 3, 4),
        expected_output_shape=(2, 9, 3, 4),
        expected_num_trainable_weights=4,
    )


def _heads(seed=0, shape=(2, 11, 4, 5)):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


@pytest.mark.parametrize("context_size", [None, 5])
def test_identity_at_initialisation(context_size):
    heads = _heads()
    layer = CalibrationAttention(context_size=context_size)
    out, weights = layer(heads, return_weights=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(weights), 1.0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out), heads, rtol=1e-6)


def test_weights_lie_in_open_interval_0_2():
    layer = CalibrationAttention()
    heads = _heads() * 3.0  # moderate values: float32 sigmoid saturates to exactly 1 beyond ~17
    layer(heads)
    kernel, bias = layer.excite_dense.get_weights()
    layer.excite_dense.set_weights([np.random.default_rng(1).normal(size=kernel.shape), bias + 2.0])
    weights = keras.ops.convert_to_numpy(layer(heads, return_weights=True)[1])
    assert np.all(weights > 0.0) and np.all(weights < 2.0)
    assert weights.max() > 1.5  # really moved away from 1


def test_a_head_is_switched_off_through_the_excite_bias():
    heads = _heads()
    layer = CalibrationAttention()
    layer(heads)
    kernel, bias = layer.excite_dense.get_weights()
    bias[2] = -30.0
    layer.excite_dense.set_weights([kernel, bias])
    out = keras.ops.convert_to_numpy(layer(heads))
    np.testing.assert_allclose(out[:, :, 2], 0.0, atol=1e-8)
    np.testing.assert_allclose(out[:, :, [0, 1, 3]], heads[:, :, [0, 1, 3]], rtol=1e-6)


def test_local_context_only_sees_its_window():
    layer = CalibrationAttention(context_size=3)
    heads = _heads(shape=(1, 12, 4, 5))
    layer(heads)
    # Non-trivial excitation so the weights depend on the input.
    kernel, bias = layer.excite_dense.get_weights()
    layer.excite_dense.set_weights([np.random.default_rng(2).normal(size=kernel.shape), bias])
    before = keras.ops.convert_to_numpy(layer(heads))
    changed = heads.copy()
    changed[0, 9:] += 10.0  # positions 9.. are outside the window of position 5 (4..6)
    after = keras.ops.convert_to_numpy(layer(changed))
    np.testing.assert_allclose(after[0, :8], before[0, :8], rtol=1e-6)  # windows 0..7 do not reach 9
    assert not np.allclose(after[0, 8], before[0, 8])  # position 8's window reaches 9


def test_rejects_even_context():
    with pytest.raises(ValueError, match="context_size"):
        CalibrationAttention(context_size=4)
