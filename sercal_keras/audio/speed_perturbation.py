"""Speed perturbation of a waveform (Ko et al., 2015): the training-data copies at 0.9x / 1.1x.

The definition lives in `frontend.py` (numpy only), so the edge runtime's
test-time copies are made by the same function as the training copies.
"""

from sercal_keras.audio.frontend import SPEED_RANGE, change_speed

__all__ = ["SPEED_RANGE", "change_speed"]
