"""sercal-keras: speech emotion recognition with Focus- and Calibration-Attention.

Importing this package registers every layer with Keras, so a saved model loads
with plain `keras.models.load_model(path)`.
"""

__version__ = "0.1.0"

from sercal_keras import layers  # noqa: F401  (registers the layers)
from sercal_keras.errors import (  # noqa: F401
    AudioDecodeError,
    ConfigError,
    CorpusLayoutError,
    ExportError,
    ModelFileError,
    SercalError,
    SpeakerStatisticsError,
)
from sercal_keras.layers import (  # noqa: F401
    CalibrationAttention,
    ConvCalibration,
    FeatureGateFocus,
    FocusAttention,
    MFCC,
    HeadFusionAttention,
    MultiHeadSelfAttention,
)
from sercal_keras.models import VARIANTS, build_model  # noqa: F401
from sercal_keras.inference import EmotionRecognizer  # noqa: F401,E402
from sercal_keras.ensemble import EmotionEnsemble  # noqa: F401,E402
