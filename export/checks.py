"""Checks of a converted file: its operators, and its outputs against the Keras model.

- `operators(content)` reads the operator codes from the flatbuffer itself
  (not from an interpreter, which could not even load a Flex op), and
  `assert_builtin_only` fails on any custom or Flex operator.
- `verify_agreement` runs the file with LiteRT (`ai_edge_litert`) on held-out
  inputs and compares it with the Keras model's probabilities: top-1
  agreement, max |Δp|, mean KL divergence. Below the threshold it raises
  `ExportError`, before anything is written.
"""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from sercal_keras.errors import ExportError


def operators(content: bytes) -> List[Dict[str, Any]]:
    """The operator codes of every subgraph: `{"name", "builtin", "custom_code"}`, one per code."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    try:
        model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    except Exception as error:  # noqa: BLE001
        raise ExportError(f"not a readable TFLite flatbuffer ({type(error).__name__}: {error})") from error
    names = {value: key for key, value in vars(schema.BuiltinOperator).items() if not key.startswith("_")}
    codes = []
    for code in model.operatorCodes:
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
        codes.append({"name": custom or names.get(builtin, f"BUILTIN_{builtin}"),
                      "builtin": names.get(builtin) != "CUSTOM" and not custom,
                      "custom_code": custom})
    return codes


def non_builtin_ops(content: bytes) -> List[str]:
    """Names of the custom/Flex operators in a file (empty for builtin-only files)."""
    return [code["name"] for code in operators(content) if not code["builtin"]]


def assert_builtin_only(content: bytes, what: str = "model") -> None:
    """Raises `ExportError` if the file uses any custom or Flex (SELECT_TF_OPS) operator."""
    bad = non_builtin_ops(content)
    if bad:
        raise ExportError(
            f"the converted {what} uses non-builtin operators {bad}; LiteRT on a Pi/Android cannot run "
            "them without the Flex delegate. Rewrite the op with builtin-convertible TF ops."
        )


def kl_divergence(p: np.ndarray, q: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """KL(p‖q) per row, with both clipped to `eps` and renormalised."""
    p = np.clip(np.asarray(p, np.float64), eps, None)
    q = np.clip(np.asarray(q, np.float64), eps, None)
    p /= p.sum(axis=1, keepdims=True)
    q /= q.sum(axis=1, keepdims=True)
    return np.sum(p * np.log(p / q), axis=1)


def compare(reference: np.ndarray, probs: np.ndarray) -> Dict[str, float]:
    """Top-1 agreement, max |Δp| and mean KL(reference‖probs) of two probability arrays."""
    reference = np.asarray(reference, np.float32)
    probs = np.asarray(probs, np.float32)
    if reference.shape != probs.shape or reference.ndim != 2:
        raise ExportError(f"cannot compare outputs of shapes {reference.shape} and {probs.shape}")
    if not np.all(np.isfinite(probs)):
        return {"agreement": 0.0, "max_abs_diff": float("inf"), "mean_kl": float("inf"), "count": len(probs)}
    return {
        "agreement": float(np.mean(reference.argmax(1) == probs.argmax(1))),
        "max_abs_diff": float(np.max(np.abs(reference - probs))),
        "mean_kl": float(np.mean(kl_divergence(reference, probs))),
        "count": int(len(probs)),
    }


def verify_agreement(content: bytes, inputs: np.ndarray, reference: np.ndarray, min_agreement: float,
                     what: str = "model", max_abs_diff: float = None) -> Dict[str, float]:
    """Runs the file with LiteRT on `inputs` and checks it against `reference` probabilities.

    Args:
        content: the `.tflite` bytes.
        inputs: edge-graph inputs `(n, ...)` (standardised MFCC or waveforms).
        reference: the Keras model's probabilities on the same segments `(n, classes)`.
        min_agreement: the lowest acceptable top-1 agreement (0..1).
        what: names the model in the error.
        max_abs_diff: optionally also require max |Δp| below this (float files).

    Returns:
        `compare(reference, tflite_probs)`.

    Raises:
        ExportError: agreement below `min_agreement`, |Δp| too large, or not finite.
    """
    from export.litert_runtime import LiteRTModel

    try:
        runner = LiteRTModel(content, num_threads=1)
        probs = runner.predict(inputs)
    except Exception as error:  # noqa: BLE001  (LiteRT raises RuntimeError/ValueError)
        raise ExportError(f"LiteRT cannot run the converted {what}: {type(error).__name__}: {error}") from error
    result = compare(reference, probs)
    if result["agreement"] < min_agreement:
        raise ExportError(
            f"the converted {what} agrees with the Keras model on only {result['agreement']:.1%} of "
            f"{result['count']} held-out segments (threshold {min_agreement:.1%}; max |Δp| "
            f"{result['max_abs_diff']:.3g}); nothing was written. Try --mode qat, --keep-float, a larger "
            "--representative-size, or lower --min-agreement if this is expected."
        )
    if max_abs_diff is not None and not result["max_abs_diff"] <= max_abs_diff:
        raise ExportError(
            f"the converted {what} differs from the Keras model by up to {result['max_abs_diff']:.3g} in "
            f"probability (allowed {max_abs_diff}); the conversion is wrong; nothing was written."
        )
    return result
