"""QAT: fake-quant fine-tuning whose learned ranges the converter turns into an int8 file."""

import numpy as np
import pytest

from export import checks, convert, edge_model, qat, tflite
from export.litert_runtime import LiteRTModel
from sercal_keras.errors import ConfigError
from tests.export.conftest import make_mfcc


@pytest.fixture(scope="module")
def trained_qat(trained_model):
    x, y = make_mfcc(64, seed=7)
    trained, losses = qat.train_qat(trained_model, x, y, epochs=1, batch_size=16, log=lambda m: None)
    return trained, losses


def test_qat_graph_has_fake_quant_everywhere(trained_qat):
    trained, losses = trained_qat
    assert len(losses) == 1 and np.isfinite(losses[0])
    names = {q.name for q in trained.quantizers}
    assert {"fq_block4", "fq_key", "fq_value", "fq_attention_logits", "fq_classifier_logits"} <= names
    assert all(q.mode == "fixed" for q in trained.quantizers)


def test_converter_uses_the_learned_ranges(trained_model, trained_qat, held_out):
    trained, _ = trained_qat
    graph = qat.qat_edge_graph(trained_model, trained, "mfcc")
    mean, std = edge_model.normalization_stats(trained_model)
    representative = edge_model.standardize(make_mfcc(32, seed=1)[0], mean, std)
    result = convert.convert(graph, "qat", representative)
    assert all(code["builtin"] for code in checks.operators(result.content))
    runner = LiteRTModel(result.content)
    assert runner.input["dtype"] == np.int8
    tensors = {t["index"]: t for t in runner.interpreter.get_tensor_details()}
    outputs = [tensors[int(op["outputs"][0])] for op in runner.interpreter._get_ops_details()
               if op["op_name"] == "CONV_2D"]
    conv = [t for t in outputs if "block4_conv" in t["name"]]
    assert len(conv) == 1, [t["name"] for t in outputs]
    # The block4 conv output carries exactly the range learned by its quantizer: scale = (max - min) / 255.
    quantizer = next(q for q in graph.quantizers if q.name == "fq_block4")
    lo, hi = (float(v) for v in quantizer.quant_range())
    assert conv[0]["quantization"][0] == pytest.approx((hi - lo) / 255, rel=1e-3)
    # And it still classifies like the float model.
    reference = trained_model.predict(held_out[0], verbose=0)
    probs = runner.predict(edge_model.standardize(held_out[0], mean, std))
    assert checks.compare(reference, probs)["agreement"] >= 0.8


def test_qat_mode_needs_training_data(run_dir, mfcc_npy, tmp_path):
    with pytest.raises(ConfigError, match="qat needs the run's training data"):
        tflite.export_tflite(run_dir, ["qat"], tmp_path / "out", representative_data=mfcc_npy,
                             log=lambda m: None)


def test_qat_arguments_are_checked(trained_model):
    x, y = make_mfcc(8, seed=0)
    with pytest.raises(ConfigError, match="--qat-target"):
        qat.train_qat(trained_model, x, y, target="soft", log=lambda m: None)
    with pytest.raises(ConfigError, match="--qat-epochs"):
        qat.train_qat(trained_model, x, y, epochs=0, log=lambda m: None)
