import numpy as np

from benchmarks.focus_strength import prior_spread
from sercal_keras.models import build_model


def test_spread_is_the_strongest_head_times_the_amplitude_range():
    model = build_model("fa", num_classes=3, focus_source="energy")  # standardisation = identity (mean 0, var 1)
    focus = model.get_layer("focus_attention")
    focus.beta.assign(np.array([1.0, 0.0, -3.0, 0.5], np.float32))
    focus.log_temperature.assign(np.log(2.0))
    x = np.random.default_rng(0).normal(size=(5, 26, 63)).astype("float32")
    x[:, 0, :] *= np.arange(1, 6)[:, None]  # segments with different c0 ranges
    columns = x[:, 0, :60].reshape(5, 15, 4).mean(-1)  # numpy: c0 per time column
    expected = 1.5 * np.median(columns.max(1) - columns.min(1))  # max |β/τ| = 3 / 2
    result = prior_spread(model, x)
    np.testing.assert_allclose(result["median_bias_spread"], expected, rtol=1e-5)
    np.testing.assert_allclose(result["odds_factor"], np.exp(expected), rtol=1e-5)
    assert result["strength_per_head"] == [0.5, 0.0, -1.5, 0.25] and result["segments"] == 5
