import keras
import numpy as np
import pytest

from sercal_keras.layers import FocusAttention, MultiHeadSelfAttention
from tests.layer_test_utils import run_layer_test


def test_layer_contract():
    run_layer_test(
        FocusAttention,
        init_kwargs={"num_heads": 3, "temperature": 2.0, "beta_initializer": "zeros"},
        input_shape=(2, 9, 5),
        expected_output_shape=(2, 3, 1, 9),
        expected_num_trainable_weights=2,
    )


def _loud_at(position, positions=20, channels=6, seed=0):
    x = np.random.default_rng(seed).uniform(0.0, 0.2, size=(1, positions, channels)).astype("float32")
    x[0, position, 2] = 3.0
    return x


@pytest.mark.parametrize("position", [0, 7, 19])
def test_untrained_focus_map_peaks_at_the_loud_position(position):
    _, focus = FocusAttention(num_heads=2)(_loud_at(position), return_focus_map=True)
    focus = keras.ops.convert_to_numpy(focus)
    assert int(np.argmax(focus[0])) == position
    np.testing.assert_allclose(focus.sum(), 1.0, rtol=1e-5)


def test_bias_is_beta_log_focus_up_to_a_row_constant():
    x = _loud_at(4)
    layer = FocusAttention(num_heads=2, temperature=0.5, beta_initializer=keras.initializers.Constant(1.5))
    bias, focus = layer(x, return_focus_map=True)
    bias, focus = keras.ops.convert_to_numpy(bias), keras.ops.convert_to_numpy(focus)
    reference = 1.5 * np.log(focus[0])  # β · log f, the defining form
    difference = bias[0, 0, 0] - reference
    np.testing.assert_allclose(difference, difference[0], atol=1e-4)  # a constant per row


def _attention_mass_on(position, beta):
    x = _loud_at(position, seed=3)
    focus = FocusAttention(num_heads=2, beta_initializer=keras.initializers.Constant(beta))
    attention = MultiHeadSelfAttention(num_heads=2, head_dim=4, kernel_initializer=keras.initializers.GlorotUniform(seed=7))
    _, scores = attention(x, attention_bias=focus(x), return_attention_scores=True)
    return float(np.mean(keras.ops.convert_to_numpy(scores)[0, :, :, position]))


def test_positive_beta_moves_attention_to_the_loud_position():
    without = _attention_mass_on(11, beta=0.0)
    with_focus = _attention_mass_on(11, beta=2.0)
    assert with_focus > without + 0.2, (without, with_focus)


def test_zero_beta_is_plain_attention():
    x = _loud_at(5)
    attention = MultiHeadSelfAttention(num_heads=2, head_dim=4)
    plain = keras.ops.convert_to_numpy(attention(x))
    biased = keras.ops.convert_to_numpy(attention(x, attention_bias=FocusAttention(num_heads=2)(x)))
    np.testing.assert_array_equal(plain, biased)


@pytest.mark.parametrize("kwargs", [{"num_heads": 0}, {"temperature": 0.0}])
def test_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="Received"):
        FocusAttention(**kwargs)


def test_given_amplitude_replaces_the_feature_map_maximum():
    x = _loud_at(4)  # the feature map is loud at position 4 ...
    amplitude = np.zeros((1, 20), "float32")
    amplitude[0, 13] = 2.0  # ... the given amplitude at 13
    layer = FocusAttention(num_heads=2, temperature=0.5, beta_initializer=keras.initializers.Constant(1.5))
    bias, focus = layer(x, amplitude=amplitude, return_focus_map=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bias)[0, 1, 0], 1.5 / 0.5 * amplitude[0], atol=1e-5)
    assert int(np.argmax(keras.ops.convert_to_numpy(focus)[0])) == 13
