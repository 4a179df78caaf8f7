import keras
import numpy as np
import pytest

from sercal_keras.layers import FocusAttention, InputEnergy, MultiHeadSelfAttention
from tests.layer_test_utils import run_layer_test


def _reference(mfcc, grid, coefficient=0):
    """numpy: mean of the coefficient over each column's frames, repeated for every row."""
    height, width = grid
    stride = mfcc.shape[2] // width
    columns = mfcc[:, coefficient, : width * stride].reshape(len(mfcc), width, stride).mean(-1)
    return np.concatenate([columns] * height, axis=1)


@pytest.mark.filterwarnings("ignore:The model does not have any trainable weights")
def test_layer_contract():
    # No weights: the gradient check has nothing to move, the rest of the contract holds.
    run_layer_test(
        InputEnergy,
        init_kwargs={"grid": (3, 5), "coefficient": 1},
        input_shape=(2, 4, 21),
        expected_output_shape=(2, 15),
        expected_num_trainable_weights=0,
    )


@pytest.mark.parametrize("grid, frames", [((6, 15), 63), ((2, 4), 17), ((1, 3), 3)])
def test_matches_numpy_reference(grid, frames):
    mfcc = np.random.default_rng(0).normal(size=(3, 5, frames)).astype("float32")
    out = keras.ops.convert_to_numpy(InputEnergy(grid=grid)(mfcc))
    np.testing.assert_allclose(out, _reference(mfcc, grid), rtol=1e-5, atol=1e-6)


def test_position_order_is_row_major_like_the_model_reshape():
    # A loud frame range at column 2 of a 2x4 grid lights positions 2 and 6 (h * width + w).
    mfcc = np.zeros((1, 3, 16), "float32")
    mfcc[0, 0, 8:12] = 5.0
    out = keras.ops.convert_to_numpy(InputEnergy(grid=(2, 4))(mfcc))[0]
    assert sorted(np.flatnonzero(out)) == [2, 6]


def test_loud_input_frames_draw_focus_attention():
    rng = np.random.default_rng(1)
    mfcc = rng.normal(0, 0.1, size=(1, 4, 20)).astype("float32")
    mfcc[0, 0, 12:16] += 4.0  # column 3 of a (2, 5) grid
    positions = rng.normal(size=(1, 10, 6)).astype("float32")
    amplitude = InputEnergy(grid=(2, 5))(mfcc)
    focus = FocusAttention(num_heads=2, beta_initializer=keras.initializers.Constant(2.0))
    attention = MultiHeadSelfAttention(num_heads=2, head_dim=4, kernel_initializer=keras.initializers.GlorotUniform(seed=2))
    _, scores = attention(positions, attention_bias=focus(positions, amplitude=amplitude), return_attention_scores=True)
    mass = keras.ops.convert_to_numpy(scores)[0].mean(axis=(0, 1))  # attention received per key
    assert mass[3] + mass[8] > 0.8, mass


@pytest.mark.parametrize(
    "kwargs, shape, match",
    [({"grid": (0, 4)}, None, "grid"), ({"grid": (2, 4), "coefficient": -1}, None, "coefficient"),
     ({"grid": (2, 4), "coefficient": 5}, (1, 5, 16), "out of range"), ({"grid": (2, 9)}, (1, 5, 8), "frames")],
)
def test_rejects_bad_arguments(kwargs, shape, match):
    with pytest.raises(ValueError, match=match):
        layer = InputEnergy(**kwargs)
        layer(np.zeros(shape, "float32"))
