"""The one contract check every sercal-keras layer goes through (after keras-hub's run_layer_test)."""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import keras
import numpy as np


def _random(shape: Sequence[int], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def run_layer_test(
    layer_cls,
    init_kwargs: Dict[str, Any],
    input_shape: Sequence[int],
    expected_output_shape: Sequence[int],
    expected_num_trainable_weights: Optional[int] = None,
    call_kwargs: Optional[Dict[str, Any]] = None,
    run_mixed_precision: bool = True,
) -> None:
    """Checks a layer's Keras contract.

    - config round trip (`from_config(get_config())`) and serialize/deserialize
      through the registered name `sercal_keras>Class`;
    - symbolic call on a `keras.Input` with unknown batch, and
      `compute_output_shape`, both giving `expected_output_shape`;
    - eager call on data with the expected shape; the deserialized copy with the
      same weights gives the same output;
    - a few `fit` steps that change every trainable weight (a gradient reaches it);
    - under `mixed_float16` the layer builds and runs and gives float16 outputs.
    """
    call_kwargs = call_kwargs or {}
    keras.utils.set_random_seed(0)  # initial weights are random: keep the check deterministic
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    for key, value in init_kwargs.items():
        assert key in config, f"get_config() lacks constructor argument {key!r}"
    rebuilt = layer_cls.from_config(config)
    assert rebuilt.get_config() == config

    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"] == f"sercal_keras>{layer_cls.__name__}"
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is layer_cls and revived.get_config() == config

    # Symbolic call with unknown batch.
    symbolic_input = keras.Input(tuple(input_shape[1:]))
    symbolic_output = layer(symbolic_input, **call_kwargs)
    assert tuple(symbolic_output.shape) == (None, *expected_output_shape[1:])
    assert tuple(layer.compute_output_shape((None, *input_shape[1:]))) == (None, *expected_output_shape[1:])

    # Eager call, and the revived layer with copied weights agrees.
    data = _random(input_shape, seed=0)
    output = keras.ops.convert_to_numpy(layer(data, **call_kwargs))
    assert output.shape == tuple(expected_output_shape)
    assert np.all(np.isfinite(output))
    revived(data, **call_kwargs)
    revived.set_weights(layer.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(revived(data, **call_kwargs)), output, rtol=1e-5, atol=1e-5)
    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights

    # A few fit steps move every trainable weight: the gradient reaches each one.
    fresh = layer_cls(**init_kwargs)
    model_input = keras.Input(tuple(input_shape[1:]))
    model = keras.Model(model_input, fresh(model_input, **call_kwargs))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    before = [keras.ops.convert_to_numpy(w).copy() for w in fresh.trainable_weights]
    target = _random(expected_output_shape, seed=1)
    # Several steps: identity-start layers (β = 0, W2 = 0) pass gradient to their
    # other weights only once the zero-initialised ones have moved.
    model.fit(data, target, batch_size=input_shape[0], epochs=3, verbose=0)
    after = [keras.ops.convert_to_numpy(w) for w in fresh.trainable_weights]
    for weight, old, new in zip(fresh.trainable_weights, before, after):
        assert not np.allclose(old, new), f"no gradient reached weight {weight.path}"

    if run_mixed_precision:
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy("mixed_float16")
        try:
            mixed = layer_cls(**init_kwargs)
            mixed_output = mixed(data, **call_kwargs)
            assert keras.backend.standardize_dtype(mixed_output.dtype) == "float16"
            assert np.all(np.isfinite(keras.ops.convert_to_numpy(mixed_output)))
        finally:
            keras.config.set_dtype_policy(previous)
