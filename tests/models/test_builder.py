import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import sercal_keras
from sercal_keras.models import VARIANTS, build_model

ATTENTION_LAYERS = {
    "fa_ca": {"FocusAttention", "MultiHeadSelfAttention", "CalibrationAttention"},
    "mhsa": {"MultiHeadSelfAttention"},
    "fa": {"FocusAttention", "MultiHeadSelfAttention"},
    "ca": {"MultiHeadSelfAttention", "CalibrationAttention"},
    "head_fusion": {"HeadFusionAttention"},
}
ALL_ATTENTION = set().union(*ATTENTION_LAYERS.values()) | {"FeatureGateFocus", "ConvCalibration"}


def _layer_types(model):
    return {type(layer).__name__ for layer in model.layers} & ALL_ATTENTION


def _batch(n=16, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 26, 63)).astype("float32") * 20, rng.integers(0, classes, size=n)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_has_exactly_its_attention_layers(variant):
    model = build_model(variant, num_classes=4)
    assert _layer_types(model) == ATTENTION_LAYERS[variant]
    assert model.input_shape == (None, 26, 63) and model.output_shape == (None, 4)


def test_paper_backbone_shapes_and_size():
    model = build_model("fa_ca", num_classes=4)
    assert model.get_layer("first_concat").output.shape[1:] == (25, 62, 16)
    assert model.get_layer("positions").output.shape[1:] == (90, 80)
    assert model.get_layer("self_attention").output.shape[1:] == (90, 4, 64)
    # DESIGN.md §5: ~177 k parameters.
    assert 170_000 < model.count_params() < 185_000


def test_first_attempt_forms_are_options():
    model = build_model("fa_ca", focus_form="gate", calibration_form="conv")
    assert _layer_types(model) == {"FeatureGateFocus", "MultiHeadSelfAttention", "ConvCalibration"}
    local = build_model("ca", calibration_context=5)
    assert local.get_layer("calibration_attention").context_size == 5


def test_batch_norm_momentum_reaches_every_backbone_norm():
    norms = lambda model: [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]  # noqa: E731
    assert {l.momentum for l in norms(build_model("mhsa"))} == {0.99}
    fast = norms(build_model("mhsa", batch_norm_momentum=0.9))
    assert len(fast) == 6 and {l.momentum for l in fast} == {0.9}


def test_focus_from_input_energy_reads_mfcc_c0():
    model = build_model("fa", num_classes=4, focus_source="energy")
    energy = model.get_layer("input_energy")
    assert energy.input.name == model.get_layer("mfcc_standardization").output.name
    assert tuple(energy.output.shape) == (None, 90) and energy.grid == (6, 15)
    # Only c0 matters to the prior: with β moved, changing c0 changes the output, other rows do not reach it.
    focus = model.get_layer("focus_attention")
    focus.set_weights([np.full(4, 3.0, "float32"), focus.get_weights()[1]])
    x, _ = _batch(2)
    louder = x.copy()
    louder[:, 0, 30:40] += 200.0
    changed = keras.ops.convert_to_numpy(model.get_layer("input_energy")(louder)) - keras.ops.convert_to_numpy(
        model.get_layer("input_energy")(x))
    assert np.all(changed[:, 7:10] > 0) and np.allclose(changed[:, :7], 0)  # columns 7-9 cover frames 28-39


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_each_variant_learns_a_few_steps(variant):
    keras.utils.set_random_seed(0)
    x, y = _batch(32)
    model = build_model(variant, num_classes=4)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, batch_size=16, epochs=8, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0] * 0.9, losses


def test_fa_with_zero_beta_equals_mhsa_with_same_weights():
    x, _ = _batch(4)
    mhsa = build_model("mhsa", num_classes=4)
    fa = build_model("fa", num_classes=4)
    for layer in mhsa.layers:
        if layer.weights:
            fa.get_layer(layer.name).set_weights(layer.get_weights())
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(fa(x)), keras.ops.convert_to_numpy(mhsa(x))
    )
    # …and FA matters once β moves.
    focus = fa.get_layer("focus_attention")
    focus.set_weights([np.full(4, 2.0, "float32"), focus.get_weights()[1]])
    assert not np.allclose(keras.ops.convert_to_numpy(fa(x)), keras.ops.convert_to_numpy(mhsa(x)))


def test_standardization_uses_the_given_statistics():
    mean = np.linspace(-5, 5, 26).astype("float32")
    variance = np.linspace(1, 4, 26).astype("float32")
    model = build_model("mhsa", feature_mean=mean, feature_variance=variance)
    x, _ = _batch(2)
    out = keras.ops.convert_to_numpy(model.get_layer("mfcc_standardization")(x))
    np.testing.assert_allclose(out, (x - mean[:, None]) / np.sqrt(variance[:, None]), rtol=1e-4, atol=1e-4)


def test_focus_prior_init_starts_the_attention_on_the_loudest_positions():
    plain = build_model("fa", num_classes=4).get_layer("focus_attention")
    strong_model = build_model("fa", num_classes=4, focus_prior_init=0.6)
    strong = strong_model.get_layer("focus_attention")
    positions = np.abs(np.random.default_rng(0).normal(size=(2, 90, 80))).astype("float32")
    # The prior bias is (β/τ)·amplitude with τ = 1: positive and largest where loud, from step 0.
    bias = keras.ops.convert_to_numpy(strong(positions))
    np.testing.assert_allclose(bias[:, 0, 0], 0.6 * positions.max(axis=-1), rtol=1e-5)
    assert np.all(keras.ops.convert_to_numpy(plain(positions)) == 0)  # the default starts as plain MHSA
    rebuilt = keras.models.model_from_json(strong_model.to_json())  # the initial strength is part of the config
    np.testing.assert_allclose(keras.ops.convert_to_numpy(rebuilt.get_layer("focus_attention").beta), 0.6)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_further_attention_blocks_repeat_the_variant_and_start_as_the_identity(variant):
    one = build_model(variant, num_classes=4)
    three = build_model(variant, num_classes=4, attention_blocks=3)
    types = [type(layer).__name__ for layer in three.layers if type(layer).__name__ in ALL_ATTENTION]
    assert sorted(types) == sorted(list(ATTENTION_LAYERS[variant]) * 3)
    assert three.get_layer("attention_residual_3").output.shape[1:] == (90, 80)
    for layer in one.layers:  # the shared layers keep their names: copy the one-block model's weights
        three.get_layer(layer.name).set_weights(layer.get_weights())
    x, _ = _batch(4)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(three(x)), keras.ops.convert_to_numpy(one(x)), atol=1e-6)


def test_a_further_attention_block_learns_from_its_identity_start():
    import tensorflow as tf

    model = build_model("fa_ca", num_classes=4, attention_blocks=2)
    x, y = _batch(8)
    with tf.GradientTape() as tape:
        loss = keras.losses.sparse_categorical_crossentropy(y, model(x, training=True))
    projection = model.get_layer("attention_output_2")
    grads = tape.gradient(loss, [projection.kernel, model.get_layer("self_attention_2").trainable_weights[0]])
    assert float(tf.reduce_max(tf.abs(grads[0]))) > 0  # the zero projection is not stuck
    # the block's attention itself only gets a gradient once the projection has moved off zero
    assert grads[1] is None or float(tf.reduce_max(tf.abs(grads[1]))) == 0


@pytest.mark.parametrize(
    "kwargs",
    [{"variant": "transformer"}, {"num_classes": 1}, {"focus_form": "x"}, {"feature_mean": [0.0] * 3},
     {"focus_source": "waveform"}, {"focus_source": "energy", "focus_form": "gate"},
     {"batch_norm_momentum": 1.0}, {"focus_form": "gate", "focus_prior_init": 0.5},
     {"focus_prior_init": "strong"}, {"focus_prior_init": float("nan")}, {"attention_blocks": 0},
     {"attention_blocks": 1.5}, {"attention_blocks": True}],
)
def test_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="Received"):
        build_model(**kwargs)


def test_saved_models_load_in_a_fresh_process_with_identical_predictions(tmp_path):
    x, _ = _batch(3)
    for variant in sorted(VARIANTS) + ["gate_conv", "fa_ca_energy", "fa_ca_2blocks"]:
        if variant == "fa_ca_2blocks":
            model = build_model("fa_ca", num_classes=4, attention_blocks=2)
            model.get_layer("attention_output_2").set_weights(
                [w + 0.05 for w in model.get_layer("attention_output_2").get_weights()])
        elif variant == "gate_conv":
            model = build_model("fa_ca", focus_form="gate", calibration_form="conv", calibration_context=None)
        elif variant == "fa_ca_energy":
            model = build_model("fa_ca", num_classes=4, focus_source="energy", calibration_context=3)
        else:
            model = build_model(variant, num_classes=4, feature_mean=np.arange(26.0))
        # Move the identity-start weights so the round trip is not trivially equal.
        for layer in model.layers:
            if layer.name in ("focus_attention", "calibration_attention", "focus_attention_2",
                              "calibration_attention_2"):
                layer.set_weights([w + 0.3 for w in layer.get_weights()])
        model.save(tmp_path / f"{variant}.keras")
        np.save(tmp_path / f"{variant}.npy", keras.ops.convert_to_numpy(model(x)))
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(
        f"""
        import pathlib, numpy as np, keras, sercal_keras
        root = pathlib.Path({str(tmp_path)!r})
        x = np.load(root / "x.npy")
        for path in sorted(root.glob("*.keras")):
            model = keras.models.load_model(path)  # safe_mode=True, no custom_objects
            expected = np.load(path.with_suffix(".npy"))
            # eager call vs compiled predict: oneDNN may sum in another order (last-ulp differences);
            # a lost weight would move the outputs by far more (the weights were moved by 0.3)
            np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
            print("ok", path.stem)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("ok ") == len(VARIANTS) + 3
