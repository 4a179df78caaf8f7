"""TFLite (LiteRT) export of sercal-keras models and the quantization accuracy report.

- `python -m export.tflite <run> --mode float32|float16|dynamic|int8|qat|all --input mfcc|waveform|both`
  writes verified `.tflite` files with `<name>.json` model cards (`export.tflite`).
- `python -m export.report <run>` writes the quantization accuracy report (`export.report`).

Modules: `edge_model` (the edge graphs), `convert` (modes), `representative`
(calibration/evaluation data), `checks` (operators, LiteRT verification),
`qat` (fake-quant fine-tuning), `latency`, and `litert_runtime` (numpy +
LiteRT only, shareable with the edge runtime). This file imports nothing, so
`export.litert_runtime` and `export.latency` load without TensorFlow or Keras.
"""
