"""Reduced-precision exports (int8, bf16, fp16): what they cost is measured, and they are served."""

from __future__ import annotations

import functools
import json
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from triton_rerank import TritonRerankFunction
from triton_rerank.backends.runner_model import bf16_missing
from triton_rerank.model_sources import resolve_model
from triton_rerank.serving.export import (
    ExportCheckError,
    ExportError,
    export_bi_encoder,
    export_cross_encoder,
    is_exported,
)
from triton_rerank.serving.export import precision as precision_module
from triton_rerank.serving.export.precision import bf16_support, quantize_first_token_apart
from triton_rerank.serving.layout import RepositorySettings
from triton_rerank.serving.server import EmbeddedTritonServer, free_port_settings

QUERY = "what is the capital of france"
DOCUMENTS = ["paris is the capital of france", "", "berlin " * 30, "café 🚀", "the quick brown fox"]


@pytest.fixture(scope="module")
def int8_model(zoo) -> Path:
    """The folder of the zoo's int8 export of the tiny model (served as ``int8``)."""
    return zoo.repository / "int8_model"


def test_int8_export_quantizes_the_graph_and_reports_its_cost(int8_model):
    graph = onnx.load(str(int8_model / "1" / "model.onnx"))
    ops = Counter(node.op_type for node in graph.graph.node)
    assert ops["DynamicQuantizeLinear"] + ops["DynamicQuantizeMatMul"] > 0, ops  # activations quantized at run time
    assert {o.domain for o in graph.opset_import} <= {"", "com.microsoft"}  # still loads in the 24.10 container
    weights = [onnx.numpy_helper.to_array(t) for t in graph.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    # 7 bits (|w| <= 64): a u8 x s8 pair sums to at most 2 x 255 x 64 < 2^15, so CPUs without VNNI,
    # whose int8 dot products add pairs in saturating 16 bits, score as VNNI CPUs do
    assert weights and max(int(np.abs(w.astype(np.int16)).max()) for w in weights) <= 64

    report = json.loads((int8_model / "1" / "export.json").read_text())
    assert report["precision"] == "int8"
    assert report["max_abs_diff"] <= 1e-4  # the fp32 graph it was made from matched PyTorch
    reduced = report["reduced_precision"]
    assert reduced["precision"] == "int8" and reduced["pairs_checked"] == 96
    assert 0 < reduced["max_abs_diff"] < 1.0  # int8 moves scores, by a bounded amount
    assert 0.5 <= reduced["rank_correlation"] <= 1.0 and 0 <= reduced["top5_agreement"] <= 1.0


def test_int8_quantizes_the_first_token_of_the_early_feed_forward_layers_apart(int8_model):
    """[CLS] carries the largest activations: quantized with the other tokens it would set their
    scale. The tiny model has 2 layers, so only layer 0's two feed-forward MatMuls split; every
    MatMul is int8, and the embedding table stays fp32."""
    graph = onnx.load(str(int8_model / "1" / "model.onnx")).graph
    ops = Counter(node.op_type for node in graph.node)
    assert ops["MatMul"] == 0 and ops["Concat"] == 2 and ops["EmbedLayerNormalization"] == 1, ops
    first_rows = sorted(
        {node.name.split("encoder/")[-1].split("/FirstRow")[0] for node in graph.node if "/FirstRow" in node.name}
    )
    assert first_rows == ["layer.0/intermediate/dense/MatMul", "layer.0/output/dense/MatMul"]


def test_splitting_off_the_first_token_leaves_the_fp32_scores_unchanged(tiny_model, tmp_path):
    export_cross_encoder(str(tiny_model), tmp_path / "repo")
    whole = onnx.load(str(tmp_path / "repo" / "cross_encoder" / "1" / "model.onnx"))
    split = onnx.ModelProto()
    split.CopyFrom(whole)
    quantize_first_token_apart(split)
    assert Counter(node.op_type for node in split.graph.node)["Concat"] == 2
    rng = np.random.default_rng(0)
    inputs = {
        "input_ids": rng.integers(5, 60, size=(3, 9)),
        "attention_mask": np.array([[1] * 9, [1] * 5 + [0] * 4, [1] * 3 + [0] * 6]),  # padded rows too
        "token_type_ids": np.array([[0] * 4 + [1] * 5] * 3),
    }
    scores = [
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, inputs)[0]
        for model in (whole, split)
    ]
    np.testing.assert_allclose(scores[1], scores[0], atol=1e-6)


@pytest.fixture(scope="module")
def int8_server(zoo):
    return zoo.server


@pytest.mark.integration
def test_int8_model_is_served_close_to_the_fp32_scores(int8_server, int8_model, reference):
    cross_encoder, _ = reference
    expected = cross_encoder.predict([(QUERY, d) for d in DOCUMENTS], activation_fn=torch.nn.Identity())
    bound = json.loads((int8_model / "1" / "export.json").read_text())
    with TritonRerankFunction(int8_server.grpc_url, model_name="int8") as rf:
        served = rf.score(QUERY, DOCUMENTS)
    difference = np.max(np.abs(served - expected))
    assert 0 < difference < 2 * bound["reduced_precision"]["max_abs_diff"] + 0.05


@pytest.mark.integration
def test_an_int8_score_does_not_depend_on_the_other_documents(int8_server, int8_model):
    """Dynamic quantization scales a whole batch at once; the export makes the runner score int8
    row by row, so a pair's score is its own whatever it is sent with."""
    config = (int8_model / "config.pbtxt").read_text()
    assert 'key: "runner_slice_rows"' in config and 'string_value: "1"' in config
    with TritonRerankFunction(int8_server.http_url, model_name="int8") as rf:
        together = rf.score(QUERY, DOCUMENTS)
        alone = np.array([rf.score(QUERY, [document])[0] for document in DOCUMENTS])
        reversed_order = rf.score(QUERY, DOCUMENTS[::-1])[::-1]
    np.testing.assert_array_equal(together, alone)
    np.testing.assert_array_equal(together, reversed_order)


def test_a_reduced_precision_below_the_asked_rank_correlation_writes_nothing(tiny_model, tmp_path):
    repository = tmp_path / "repo"
    with pytest.raises(ExportCheckError, match=r"int8 model.onnx keeps a rank correlation of only .* nothing"):
        export_cross_encoder(str(tiny_model), repository, precision="int8", min_rank_correlation=1.01)
    assert not (repository / "cross_encoder").exists()


def test_fp16_export_keeps_fp32_inputs_and_outputs_and_the_ranking(tiny_model, tmp_path):
    repository = tmp_path / "repo"
    report = export_cross_encoder(str(tiny_model), repository, precision="fp16")
    graph = onnx.load(str(repository / "cross_encoder" / "1" / "model.onnx"))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.graph.initializer)
    assert graph.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # config stays TYPE_FP32
    assert report.reduced_precision.max_abs_diff < 0.05
    assert report.reduced_precision.rank_correlation > 0.99


def test_int8_bi_encoder_keeps_the_retrieval_order(embedder_model, tmp_path):
    report = export_bi_encoder(embedder_model, tmp_path / "repo", precision="int8")
    reduced = report.reduced_precision
    assert reduced.max_abs_diff < 0.1 and reduced.rank_correlation > 0.95


def test_unknown_precision_and_reduced_torchscript_are_refused(tiny_model, tmp_path):
    with pytest.raises(ExportError, match="precision must be one of fp32, int8, fp16, bf16; got 'int4'"):
        export_cross_encoder(str(tiny_model), tmp_path / "a", precision="int4")
    with pytest.raises(ExportError, match="int8 is made from the ONNX graph"):
        export_cross_encoder(str(tiny_model), tmp_path / "b", model_format="torchscript", precision="int8")
    with pytest.raises(ExportError, match="bf16 is made from the ONNX graph"):
        export_cross_encoder(str(tiny_model), tmp_path / "b", model_format="torchscript", precision="bf16")
    with pytest.raises(ExportError, match="fp16 TorchScript is traced on the GPU it serves on"):
        export_cross_encoder(
            str(tiny_model),
            tmp_path / "c",
            model_format="torchscript",
            precision="fp16",
            settings=RepositorySettings(device="cpu"),
        )
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())


@pytest.fixture(scope="module")
def bf16_model(zoo) -> Path:
    """The folder of the zoo's bf16 export of the tiny model (served as ``bf16``, where this CPU has bf16)."""
    if bf16_support():
        pytest.skip(bf16_support())
    return zoo.repository / "bf16_model"


def test_bf16_export_writes_openvino_ir_for_the_openvino_backend_and_reports_its_cost(bf16_model):
    weights = bf16_model / "1"
    assert sorted(p.name for p in weights.iterdir()) == ["export.json", "model.bin", "model.xml"]
    config = (bf16_model / "config.pbtxt").read_text()
    assert 'backend: "openvino"' in config and 'default_model_filename: "model.xml"' in config
    assert 'key: "HINT_BF16"' in config and 'string_value: "YES"' in config
    assert 'key: "runner_parallelism"' in config and 'string_value: "slices"' in config  # a slice per thread
    report = json.loads((weights / "export.json").read_text())
    assert report["precision"] == "bf16" and report["model_format"] == "openvino"
    assert report["max_abs_diff"] <= 1e-4  # the fp32 graph it was made from matched PyTorch
    reduced = report["reduced_precision"]
    assert 0 < reduced["max_abs_diff"] < 0.1  # bf16 keeps 8 bits of mantissa: scores move, a little
    assert reduced["rank_correlation"] >= 0.99  # the export's bar for bf16


@pytest.mark.integration
def test_bf16_model_is_served_near_the_fp32_scores(bf16_model, zoo, reference):
    cross_encoder, _ = reference
    expected = cross_encoder.predict([(QUERY, d) for d in DOCUMENTS], activation_fn=torch.nn.Identity())
    with TritonRerankFunction(zoo.server.grpc_url, model_name="bf16") as rf:
        served = rf.score(QUERY, DOCUMENTS)
        again = rf.score(QUERY, DOCUMENTS[::-1])[::-1]
    assert 0 < np.max(np.abs(served - expected)) < 0.1
    np.testing.assert_allclose(again, served, atol=0.02)  # batch-mates move a bf16 score by rounding only


def test_bf16_is_refused_on_a_cpu_without_bf16_instructions():
    assert "this CPU has no bf16 instructions (AVX512-BF16 or AMX" in bf16_missing(["FP32", "INT8", "BIN"])
    assert bf16_missing(["FP32", "BF16", "INT8"]) == ""


def test_a_bf16_export_on_a_cpu_without_bf16_writes_nothing(tiny_model, tmp_path, monkeypatch):
    reason = "bf16 cannot be exported here: " + bf16_missing(["FP32", "INT8"])
    monkeypatch.setattr(precision_module, "bf16_support", lambda: reason)
    with pytest.raises(ExportError, match="bf16 cannot be exported here: this CPU has no bf16 instructions"):
        export_cross_encoder(str(tiny_model), tmp_path / "repo", precision="bf16")
    assert not (tmp_path / "repo" / "cross_encoder").exists()


def test_bf16_is_a_cpu_tier(tiny_model, tmp_path):
    with pytest.raises(ValueError, match=r"model_format openvino \(bf16, int8\) serves CPUs; on a GPU export fp16"):
        export_cross_encoder(
            str(tiny_model), tmp_path / "repo", precision="bf16", settings=RepositorySettings(device="gpu")
        )


def test_openvino_int8_is_nncf_static_quantization_calibrated_on_the_pairs_given(tiny_model, tmp_path):
    import openvino as ov

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"query": QUERY, "document": d}) + "\n" for d in DOCUMENTS * 4))
    settings = RepositorySettings(model_format="openvino", device="cpu")
    report = export_cross_encoder(  # the tiny random model's scores are near-ties: int8 reorders them
        str(tiny_model), tmp_path / "repo", precision="int8", settings=settings, calibration=str(pairs),
        min_rank_correlation=0.5,
    )  # fmt: skip
    weights = tmp_path / "repo" / "cross_encoder" / "1" / "model.xml"
    ops = Counter(op.get_type_name() for op in ov.Core().read_model(str(weights)).get_ops())
    assert ops["FakeQuantize"] > 0, ops  # static int8: activation scales fixed at export
    config = (tmp_path / "repo" / "cross_encoder" / "config.pbtxt").read_text()
    assert 'backend: "openvino"' in config and "HINT_BF16" not in config  # the CPU's own default
    assert "runner_slice_rows" not in config  # fixed scales: batches as fp32 does, no row-by-row
    assert 'key: "runner_parallelism"' in config and 'string_value: "slices"' in config  # a slice per thread
    assert report.model_format == "openvino" and report.reduced_precision.rank_correlation >= 0.5
    # The export records its pairs, so that other pairs make a new export and the same ones do not.
    assert report.calibration.startswith("sha256:")
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"query": "q", "document": "d"}) + "\n")
    model, repository = resolve_model(str(tiny_model)), tmp_path / "repo"
    held = functools.partial(is_exported, repository, model, "cross-encoder", "int8", model_format="openvino")
    assert held(calibration=str(pairs)) and held(calibration=None)
    assert not held(calibration=str(other)) and not held(calibration="") and not held(calibration=str(tmp_path / "x"))
    with EmbeddedTritonServer(tmp_path / "repo", free_port_settings()) as server:
        with TritonRerankFunction(server.grpc_url) as rf:
            together = rf.score(QUERY, DOCUMENTS)
            alone = np.array([rf.score(QUERY, [document])[0] for document in DOCUMENTS])
    np.testing.assert_allclose(together, alone, atol=0.02)  # batch-mates move a score by float rounding only


def test_openvino_format_is_for_int8_and_bf16_and_a_bad_calibration_file_says_so(tiny_model, tmp_path):
    settings = RepositorySettings(model_format="openvino", device="cpu")
    with pytest.raises(ExportError, match="model format openvino serves int8 or bf16 exports, not fp32"):
        export_cross_encoder(str(tiny_model), tmp_path / "a", settings=settings)
    bad = tmp_path / "pairs.jsonl"
    bad.write_text('{"query": "q"}\n')
    with pytest.raises(ExportError, match=r"pairs.jsonl line 1: .*'document'"):
        export_cross_encoder(str(tiny_model), tmp_path / "b", precision="int8", settings=settings, calibration=str(bad))
    assert not (tmp_path / "b" / "cross_encoder").exists()


def test_a_graph_past_protobufs_2_gb_keeps_its_weights_in_one_file_beside_it(
    tiny_model, int8_model, tmp_path, monkeypatch
):
    from tokenizers import Tokenizer

    from triton_rerank.backends.tokenizer_model import encode
    from triton_rerank.serving.export import graphs
    from triton_rerank.serving.layout import BERT_INPUTS

    for module in (graphs, precision_module):  # every graph counts as large
        monkeypatch.setattr(module, "PROTOBUF_LIMIT", 1000)
    repository = tmp_path / "repo"
    export_cross_encoder(str(tiny_model), repository, precision="int8", min_rank_correlation=0.5)
    folder = repository / "cross_encoder" / "1"
    assert {f.name for f in folder.iterdir()} == {"model.onnx", "model.onnx.data", "export.json"}
    assert (folder / "model.onnx").stat().st_size < (folder / "model.onnx.data").stat().st_size
    tokenizer = Tokenizer.from_file(str(repository / "tokenizer" / "1" / "tokenizer.json"))
    rows = encode(tokenizer, [(QUERY, d) for d in DOCUMENTS], BERT_INPUTS)
    small = graphs.load_scorer(int8_model / "1" / "model.onnx")
    assert np.array_equal(graphs.load_scorer(folder / "model.onnx")(rows), small(rows))  # the same graph

    export_cross_encoder(
        str(tiny_model), repository, precision="int8", settings=RepositorySettings(model_format="openvino")
    )
    assert {f.name for f in folder.iterdir()} == {"model.xml", "model.bin", "export.json"}  # no ONNX left behind


def test_a_graph_in_many_files_is_saved_as_one_file_of_weights_beside_it(tiny_model, tmp_path, monkeypatch):
    from triton_rerank.serving.export import graphs

    source = tmp_path / "src"
    export_cross_encoder(str(tiny_model), source)
    model = onnx.load(str(source / "cross_encoder" / "1" / "model.onnx"))
    path = tmp_path / "split" / "model.onnx"
    path.parent.mkdir()
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=False, size_threshold=0)
    files = graphs.graph_files(path)
    assert len(files) > 10 and all(f.exists() for f in files)  # as torch.onnx.export writes a model over 2 GB
    monkeypatch.setattr(graphs, "PROTOBUF_LIMIT", 1000)
    graphs.save_graph(onnx.load(str(path)), path, replacing=files)
    assert {f.name for f in path.parent.iterdir()} == {"model.onnx", "model.onnx.data"}
    assert graphs.graph_files(path) == [path, path.parent / "model.onnx.data"]
    graphs.remove_graph(path)
    assert list(path.parent.iterdir()) == []
