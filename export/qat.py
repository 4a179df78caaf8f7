"""Quantization-aware training (QAT) as fake-quant fine-tuning in Keras 3.

Why not tensorflow-model-optimization: TFMOT 0.8.1 (the latest) only takes
tf_keras (Keras 2) models. Probed with tensorflow-cpu 2.21.0, tf-keras 2.21.0,
keras 3.15.1 in a throwaway venv: `tfmot.quantization.keras.quantize_model`
on our Keras 3 functional model, and even on a one-layer Keras 3
`Sequential`, raises `ValueError: `to_quantize` can only either be a keras
Sequential or Functional model.` (tensorflow/model-optimization#1119); on
tf_keras it rejects `EinsumDense` and `MultiHeadAttention` ("Layer
einsum_dense:<class '...EinsumDense'> is not supported. You can quantize this
layer by passing a `tfmot.quantization.keras.QuantizeConfig` instance to the
`quantize_annotate_layer` API."). Installing it also pulls in `tf-keras` and
the full `tensorflow` wheel on top of `tensorflow-cpu`.

What this module does instead: it builds the explicit edge graph
(`export.edge_model`, BN folded) with fake-quant nodes — per-output-channel
symmetric 8-bit on every kernel (`fake_quant_with_min_max_vars_per_channel`,
range = the kernel's current max |w|) and per-tensor 8-bit on every
activation (`fake_quant_with_min_max_vars`, range an EMA of batch min/max,
started from a calibration pass) — and fine-tunes it on the run's training
segments, by default distilling the float model's probabilities (the goal is
to *agree* with the float model). The TFLite converter then reads the learned
ranges from the FakeQuant nodes (and calibrates only what they do not cover,
e.g. the softmax input), giving a full-int8 file (`--mode qat`).
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional

import numpy as np

from sercal_keras.errors import ConfigError

TARGETS = ("teacher", "labels")


def _copy_weights(source, target) -> int:
    """Copies weights between two edge graphs layer by layer (same names); returns the count."""
    by_name = {layer.name: layer for layer in source.layers if layer.weights}
    copied = 0
    for layer in target.layers:
        if layer.weights and layer.name in by_name:
            layer.set_weights(by_name[layer.name].get_weights())
            copied += 1
    return copied


def _distillation_loss(temperature: float):
    """KL(teacher_T ‖ student_T)·T², from probabilities (softmax(log p / T) = softmax(z / T))."""
    from keras import ops

    def loss(teacher_tempered, student_probs):
        logits = ops.log(ops.clip(student_probs, 1e-7, 1.0)) / temperature
        log_student = logits - ops.logsumexp(logits, axis=-1, keepdims=True)
        return -ops.sum(teacher_tempered * log_student, axis=-1) * (temperature ** 2)

    return loss


def _tempered(probs: np.ndarray, temperature: float) -> np.ndarray:
    logits = np.log(np.clip(probs, 1e-7, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    tempered = np.exp(logits)
    return (tempered / tempered.sum(axis=1, keepdims=True)).astype(np.float32)


def train_qat(model, features: np.ndarray, labels: Optional[np.ndarray], epochs: int = 3,
              batch_size: int = 32, learning_rate: float = 1e-5, target: str = "teacher", seed: int = 0,
              temperature: float = 4.0, log: Callable[[str], None] = print):
    """Fine-tunes the fake-quant edge graph of `model`.

    Args:
        model: the trained float Keras model (raw MFCC input).
        features: training segments, raw MFCC `(n, F, T)`.
        labels: their classes `(n,)` (needed for `target="labels"`).
        epochs: fine-tuning epochs.
        batch_size: batch size.
        learning_rate: Adam learning rate (small: this is fine-tuning).
        target: `"teacher"` (distil the float model: KL between its and the
            student's probabilities softened with `temperature`) or `"labels"`
            (cross-entropy with the true classes: further training, which
            moves the model away from the float one).
        temperature: distillation temperature (the teacher is ~one-hot on its
            own training data; softening keeps the ranking of the other classes).
        seed: the random seed of shuffling.
        log: progress messages.

    Returns:
        `(trained, history)`: a `train(...)` function's result: the batched
        QAT graph (`EdgeGraph`, quantizers fixed) and the per-epoch loss list.
    """
    import keras

    from export.edge_model import mfcc_edge_model, normalization_stats, standardize

    if target not in TARGETS:
        raise ConfigError(f"--qat-target must be one of {TARGETS}. Received: {target!r}")
    if not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"--qat-epochs must be an int >= 1. Received: {epochs!r}")
    if len(features) == 0:
        raise ConfigError("QAT needs training segments; none were found")
    if target == "labels" and labels is None:
        raise ConfigError("--qat-target labels needs labelled training segments")
    keras.utils.set_random_seed(seed)
    x = standardize(features, *normalization_stats(model))
    if target == "teacher":
        teacher = np.asarray(model.predict(features, batch_size=64, verbose=0), np.float32)
        y = _tempered(teacher, temperature)
        loss = _distillation_loss(temperature)
    else:
        y = np.asarray(labels, np.int64)
        loss = "sparse_categorical_crossentropy"

    graph = mfcc_edge_model(model, batch_size=None, qat=True)
    graph.set_quantizer_mode("observe")  # start the ranges at the float model's min/max
    for start in range(0, len(x), 64):
        graph.model(x[start:start + 64], training=False)
    graph.set_quantizer_mode("train")
    graph.model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, jit_compile=False)
    history = graph.model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)
    losses = [float(v) for v in history.history["loss"]]
    log(f"QAT: {epochs} epochs on {len(x)} segments (target {target}), loss "
        + " → ".join(f"{v:.4f}" for v in losses))
    graph.set_quantizer_mode("fixed")
    return graph, losses


def qat_edge_graph(model, trained, input_kind: str = "mfcc", feature_config=None):
    """The batch-1 edge graph (`mfcc` or `waveform` input) carrying the trained QAT weights and ranges."""
    from export.edge_model import mfcc_edge_model, waveform_edge_model

    if input_kind == "mfcc":
        graph = mfcc_edge_model(model, batch_size=1, qat=True)
    elif input_kind == "waveform":
        graph = waveform_edge_model(model, feature_config, batch_size=1, qat=True)
    else:
        raise ConfigError(f"input kind must be 'mfcc' or 'waveform'. Received: {input_kind!r}")
    copied = _copy_weights(trained.model, graph.model)
    expected = sum(1 for layer in trained.model.layers if layer.weights)
    if copied != expected:
        raise RuntimeError(f"QAT weight transfer copied {copied} of {expected} layers")
    graph.set_quantizer_mode("fixed")
    graph.note = "explicit graph trained with fake-quant nodes (QAT)"
    return graph


def quantizer_ranges(graph) -> Dict[str, List[float]]:
    """The learned `[min, max]` of every activation quantizer (for the sidecar/report)."""
    ranges = {}
    for quantizer in graph.quantizers:
        lo, hi = quantizer.quant_range()
        ranges[quantizer.name] = [round(float(lo), 6), round(float(hi), 6)]
    return ranges
