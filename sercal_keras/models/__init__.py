"""Model builders: the paper preset (`fa_ca`) and its ablations."""

from sercal_keras.models.builder import CALIBRATION_FORMS, FOCUS_FORMS, VARIANTS, build_model

__all__ = ["CALIBRATION_FORMS", "FOCUS_FORMS", "VARIANTS", "build_model"]
