"""The in-graph MFCC layer: Keras contract, parity with librosa, TFLite builtins."""

import keras
import librosa
import numpy as np
import pytest
import tensorflow as tf

from sercal_keras.audio import frontend
from sercal_keras.audio.mfcc_layer import MFCC
from tests.audio.audio_test_utils import speech_like
from tests.layer_test_utils import run_layer_test

# float32 graph vs librosa; the prototype measured 1.8e-4 on values up to 635.
LAYER_ATOL, LAYER_RTOL = 2e-3, 1e-5


def batch_of_signals():
    rng = np.random.default_rng(0)
    return np.stack(
        [
            speech_like(seed=0),
            speech_like(seed=1, f0=220.0) * 0.01,
            np.zeros(32000, np.float32),  # silence
            np.clip(speech_like(seed=2) * 30, -1, 1),  # clipping
            rng.uniform(-1, 1, 32000).astype(np.float32),  # full-scale noise
        ]
    )


def librosa_batch(x):
    return np.stack([librosa.feature.mfcc(y=s, sr=16000, n_mfcc=26) for s in x])


@pytest.mark.filterwarnings("ignore:The model does not have any trainable weights")
def test_layer_contract():
    run_layer_test(
        MFCC,
        init_kwargs={"n_mfcc": 13, "n_fft": 512, "hop_length": 128, "n_mels": 40, "top_db": 60.0},
        input_shape=(2, 4000),
        expected_output_shape=(2, 13, 32, 1),
        expected_num_trainable_weights=0,
    )


def test_default_shape_and_config():
    layer = MFCC()
    assert tuple(layer.compute_output_shape((None, 32000))) == (None, 26, 63, 1)
    assert tuple(layer.compute_output_shape((None, None))) == (None, 26, None, 1)
    config = layer.get_config()
    assert {k: config[k] for k in ("sample_rate", "n_mfcc", "n_fft", "hop_length", "n_mels")} == {
        "sample_rate": 16000, "n_mfcc": 26, "n_fft": 2048, "hop_length": 512, "n_mels": 128,
    }  # fmt: skip
    same = MFCC.from_feature_config(frontend.FeatureConfig())
    assert same.get_config() == {**config, "name": same.name}
    # mel bands left out: the FeatureConfig default of the representation, saved as the number
    log_mel = MFCC(representation="log_mel")
    assert log_mel.get_config()["n_mels"] == 64 == frontend.FeatureConfig(representation="log_mel").n_mels
    assert tuple(log_mel.compute_output_shape((None, 32000))) == (None, 64, 63, 1)


def test_bad_argument_names_the_value():
    with pytest.raises(ValueError, match="n_mfcc=0"):
        MFCC(n_mfcc=0)


def test_layer_equals_librosa_and_numpy():
    x = batch_of_signals()
    got = keras.ops.convert_to_numpy(MFCC()(x))[..., 0]
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, librosa_batch(x), atol=LAYER_ATOL, rtol=LAYER_RTOL)
    np.testing.assert_allclose(got, frontend.mfcc(x), atol=LAYER_ATOL, rtol=LAYER_RTOL)


def test_log_mel_layer_equals_numpy_and_round_trips():
    config = frontend.FeatureConfig(representation="log_mel", n_mels=64)
    layer = MFCC.from_feature_config(config)
    x = batch_of_signals()
    got = keras.ops.convert_to_numpy(layer(x))[..., 0]
    assert got.shape == (len(x), 64, 63)
    assert tuple(layer.compute_output_shape((None, 32000))) == (None, 64, 63, 1)
    np.testing.assert_allclose(got, frontend.mfcc(x, config), atol=LAYER_ATOL, rtol=LAYER_RTOL)
    assert MFCC.from_config(layer.get_config()).get_config() == layer.get_config()


def test_unknown_length_uses_the_generic_framing():
    x = batch_of_signals()[:2]
    fn = tf.function(MFCC().call, input_signature=[tf.TensorSpec((None, None), tf.float32)])
    got = fn(tf.constant(x)).numpy()[..., 0]
    np.testing.assert_allclose(got, frontend.mfcc(x), atol=LAYER_ATOL, rtol=LAYER_RTOL)


def test_mixed_precision_keeps_float32_inside():
    x = batch_of_signals()[:2]
    layer = MFCC(dtype="mixed_float16")
    out = layer(x)
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    # Only the final cast rounds: values up to ~1100 keep float16's 11-bit precision.
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(out)[..., 0].astype(np.float32), frontend.mfcc(x), rtol=2e-3, atol=0.05
    )


def test_saved_model_round_trip(tmp_path):
    inputs = keras.Input((32000,))
    model = keras.Model(inputs, MFCC(name="mfcc")(inputs))
    path = tmp_path / "mfcc.keras"
    model.save(path)
    revived = keras.models.load_model(path, safe_mode=True)
    x = batch_of_signals()[:2]
    np.testing.assert_allclose(revived.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_tflite_conversion_uses_builtin_ops_only_and_matches_librosa():
    from ai_edge_litert.interpreter import Interpreter

    inputs = keras.Input((32000,))
    model = keras.Model(inputs, MFCC()(inputs))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Flex ops
    flatbuffer = converter.convert()

    interpreter = Interpreter(model_content=flatbuffer)
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not any(op.startswith("Flex") or op == "CUSTOM" for op in ops), ops
    assert "RFFT2D" in ops
    x = batch_of_signals()
    expected = librosa_batch(x)
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    interpreter.resize_tensor_input(input_index, [len(x), 32000])
    interpreter.allocate_tensors()
    interpreter.set_tensor(input_index, x)
    interpreter.invoke()
    got = interpreter.get_tensor(output_index)
    assert got.shape == (len(x), 26, 63, 1)
    np.testing.assert_allclose(got[..., 0], expected, atol=LAYER_ATOL, rtol=LAYER_RTOL)
