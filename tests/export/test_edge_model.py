"""The edge graphs reproduce the Keras model (float) exactly enough, for every variant."""

import keras
import numpy as np
import pytest

from export import edge_model
from sercal_keras.errors import ModelFileError
from sercal_keras.models import build_model
from tests.export.conftest import make_mfcc


def _perturbed(variant: str, **options):
    """An untrained model whose BN statistics, FA and CA are away from their identity starts."""
    x, _ = make_mfcc(16, seed=5)
    model = build_model(variant, num_classes=3, num_heads=2, head_dim=8, feature_mean=x.mean(axis=(0, 2)),
                        feature_variance=x.var(axis=(0, 2)), **options)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.2, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, layer.moving_variance.shape))
            layer.gamma.assign(rng.uniform(0.5, 1.5, layer.gamma.shape))
            layer.beta.assign(rng.normal(0, 0.1, layer.beta.shape))
    classifier = model.get_layer("classifier")
    classifier.kernel.assign(classifier.kernel * 40.0)  # confident outputs: differences show
    names = {layer.name for layer in model.layers}
    if "focus_attention" in names:
        model.get_layer("focus_attention").beta.assign(np.array([2.0, -1.0], np.float32))
    if "calibration_attention" in names:
        excite = model.get_layer("calibration_attention").excite_dense
        excite.kernel.assign(rng.normal(0, 1.0, excite.kernel.shape))
        excite.bias.assign(np.array([1.0, -2.0], np.float32))
    if "attention_output_2" in names:  # a second block that is not the identity
        second = model.get_layer("attention_output_2")
        second.kernel.assign(rng.normal(0, 0.1, second.kernel.shape))
    return model, x


@pytest.mark.parametrize("variant", ["fa_ca", "mhsa", "fa", "ca"])
def test_explicit_graph_matches_keras(variant):
    model, x = _perturbed(variant)
    graph = edge_model.mfcc_edge_model(model)
    assert graph.form == "explicit"
    assert graph.model.input_shape == (1, 26, 63)
    reference = model.predict(x, verbose=0)
    # The perturbation must matter, or this test could not fail: outputs are far from uniform.
    assert np.abs(reference - 1.0 / 3).max() > 0.05
    assert edge_model.explicit_matches(model, graph, x) < 1e-5


@pytest.mark.parametrize("options, reason", [({"focus_source": "energy"}, "input energy"),
                                             ({"calibration_context": 3}, "local context"),
                                             ({"attention_blocks": 2}, "more than one attention block")])
def test_forms_outside_the_explicit_graph_fall_back_and_convert_to_int8(options, reason):
    from export import convert

    model, x = _perturbed("fa_ca", **options)
    graph = edge_model.mfcc_edge_model(model)
    assert graph.form == "sliced" and reason in graph.note
    assert edge_model.explicit_matches(model, graph, x) < 1e-5
    mean, std = edge_model.normalization_stats(model)
    result = convert.convert(graph, "int8", edge_model.standardize(x, mean, std))  # builtin ops, or it raises
    assert len(result.content) > 0


def test_head_fusion_falls_back_to_the_sliced_graph():
    model, x = _perturbed("head_fusion")
    graph = edge_model.mfcc_edge_model(model)
    assert graph.form == "sliced" and "self_attention" in graph.note
    assert edge_model.explicit_matches(model, graph, x) < 1e-5
    with pytest.raises(ModelFileError, match="explicit edge graph"):
        edge_model.mfcc_edge_model(model, form="explicit")


def test_normalization_stats_are_the_models(trained_model):
    mean, std = edge_model.normalization_stats(trained_model)
    layer = trained_model.get_layer("mfcc_standardization")
    np.testing.assert_allclose(mean, np.asarray(layer.mean).reshape(-1), rtol=1e-6)
    np.testing.assert_allclose(std, np.sqrt(np.asarray(layer.variance).reshape(-1)), rtol=1e-5)


def test_waveform_graph_matches_numpy_frontend_then_keras(trained_model):
    from sercal_keras.audio.frontend import FeatureConfig, mfcc

    config = FeatureConfig()
    rng = np.random.default_rng(0)
    t = np.arange(config.segment_samples) / config.sample_rate
    waves = np.stack([0.2 * np.sin(2 * np.pi * f * t) + 0.01 * rng.standard_normal(t.size) for f in (180, 420)])
    waves = waves.astype(np.float32)
    graph = edge_model.waveform_edge_model(trained_model, config)
    assert graph.model.input_shape == (1, config.segment_samples)
    got = np.concatenate([np.asarray(graph.model(w[None])) for w in waves])
    expected = trained_model.predict(mfcc(waves, config), verbose=0)
    np.testing.assert_allclose(got, expected, atol=2e-3)


def test_not_a_sercal_model_is_rejected():
    inputs = keras.Input((26, 63))
    plain = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
    with pytest.raises(ModelFileError, match="mfcc_standardization"):
        edge_model.mfcc_edge_model(plain)
