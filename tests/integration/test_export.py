"""The export: files and tensor names, its self-check, refusals, and TorchScript served end to end."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from sentence_transformers import CrossEncoder
from tokenizers import Tokenizer
from transformers import BertConfig, BertForSequenceClassification

from tiny_models import (
    TINY_MAX_LENGTH,
    build_tiny_roberta_cross_encoder,
    build_tiny_xlmr_cross_encoder,
    windowed_reference,
)
from triton_rerank import TritonRerankFunction
from triton_rerank.serving import layout
from triton_rerank.serving import repository as repo
from triton_rerank.serving.export import ExportCheckError, ExportError, export_cross_encoder
from triton_rerank.serving.export import graphs as export_module
from triton_rerank.serving.server import EmbeddedTritonServer, free_port_settings

TOLERANCE = 1e-4


def test_onnx_export_writes_named_dynamic_tensors_that_match_the_config(tiny_repository):
    model = onnx.load(str(tiny_repository / "cross_encoder" / "1" / "model.onnx"))
    config = repo.load_config(tiny_repository / "cross_encoder" / "config.pbtxt")
    inputs = {i.name: i for i in model.graph.input}
    assert list(inputs) == [t.name for t in config.input] == list(layout.BERT_INPUTS)
    assert [o.name for o in model.graph.output] == [t.name for t in config.output] == ["logits"]
    for tensor in model.graph.input:
        dims = tensor.type.tensor_type.shape.dim
        assert [d.dim_param for d in dims] == ["batch", "sequence"]  # dynamic batch and sequence axes
        assert tensor.type.tensor_type.elem_type == onnx.TensorProto.INT64
    out_dims = model.graph.output[0].type.tensor_type.shape.dim
    assert out_dims[0].dim_param == "batch" and out_dims[1].dim_value == 1  # [batch, 1] = config dims [1]


def test_onnx_export_loads_in_the_24_10_containers_onnxruntime(tiny_repository):
    """onnxruntime 1.19 (Triton 24.10) reads IR version <= 10 and knows these domains."""
    for model in ("cross_encoder", "bi_encoder"):
        graph = onnx.load(str(tiny_repository / model / "1" / "model.onnx"))
        assert graph.ir_version <= 10, model
        assert {o.domain for o in graph.opset_import} <= {"", "com.microsoft"}, model
        assert next(o.version for o in graph.opset_import if o.domain == "") <= 21, model


def test_export_records_max_length_and_its_check(tiny_repository, tiny_model):
    tokenizer_config = repo.load_config(tiny_repository / "tokenizer" / "config.pbtxt")
    assert tokenizer_config.parameters["max_length"].string_value == str(TINY_MAX_LENGTH)
    report = json.loads((tiny_repository / "cross_encoder" / "1" / "export.json").read_text())
    assert report["model"] == str(tiny_model)
    assert report["max_abs_diff"] <= TOLERANCE and report["pairs_checked"] >= 5
    assert (tiny_repository / "tokenizer" / "1" / "tokenizer.json").exists()


def test_export_fails_loudly_and_writes_nothing_when_the_check_fails(tiny_model, tmp_path, monkeypatch):
    real_load_scorer = export_module.load_scorer

    def off_by_a_hundredth(path, device="cpu"):
        score = real_load_scorer(path, device)
        return lambda inputs: score(inputs) + 0.01

    monkeypatch.setattr(export_module, "load_scorer", off_by_a_hundredth)
    target = tmp_path / "repo"
    with pytest.raises(ExportCheckError, match=r"differs from the PyTorch model by 0\.01.*nothing was written"):
        export_cross_encoder(str(tiny_model), target)
    assert list(target.iterdir()) == []
    assert [p.name for p in tmp_path.iterdir()] == ["repo"]  # no staging folder left behind


def test_export_refuses_a_model_with_several_labels(tmp_path, tiny_model):
    folder = tmp_path / "two-labels"
    config = BertConfig.from_pretrained(tiny_model, num_labels=2)
    BertForSequenceClassification(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        (folder / name).write_bytes((tiny_model / name).read_bytes())
    with pytest.raises(ExportError, match="2 labels; a reranker must output one score per pair"):
        export_cross_encoder(str(folder), tmp_path / "repo")


def test_export_of_a_missing_folder_fails_with_its_name(tmp_path):
    with pytest.raises(OSError, match="no-such-model"):
        export_cross_encoder(str(tmp_path / "no-such-model"), tmp_path / "repo")


@pytest.fixture(scope="module")
def torchscript_server(tiny_model, tmp_path_factory):
    repository = tmp_path_factory.mktemp("repo-ts") / "model_repository"
    report = export_cross_encoder(str(tiny_model), repository, model_format="torchscript")
    assert report.max_abs_diff <= TOLERANCE
    assert (repository / "cross_encoder" / "1" / "model.pt").exists()
    with EmbeddedTritonServer(repository, free_port_settings()) as server:
        yield server


@pytest.mark.integration
def test_torchscript_export_serves_the_same_scores_under_the_same_names(torchscript_server, reference):
    cross_encoder, _ = reference
    long = "protein cell water " * 50
    documents = ["paris is the capital", "", long, "berlin " * 3, "😀 café"]
    queries = ["what is the capital of france", long]
    with TritonRerankFunction(torchscript_server.grpc_url) as rf:
        for query in queries:  # different padded lengths: the trace must not have frozen a shape
            expected = cross_encoder.predict([(query, d) for d in documents], activation_fn=torch.nn.Identity())
            np.testing.assert_allclose(rf.score(query, documents), expected, atol=TOLERANCE, rtol=0)
        for count in (1, 3, 40):
            assert rf.score("paris", ["paris france"] * count).shape == (count,)


@pytest.mark.integration
@pytest.mark.parametrize(
    "build", [build_tiny_roberta_cross_encoder, build_tiny_xlmr_cross_encoder], ids=["roberta", "xlm-r"]
)
def test_a_model_without_token_type_ids_is_exported_and_served_with_two_inputs(tmp_path, build):
    """RoBERTa (byte-level BPE) and XLM-RoBERTa (SentencePiece Unigram, the bge-reranker-v2-m3 class)."""
    folder = build(tmp_path / "tiny")
    repository = tmp_path / "repo"
    report = export_cross_encoder(str(folder), repository)
    assert report.model_inputs == ["input_ids", "attention_mask"]
    configs = {name: repo.load_config(repository / name / "config.pbtxt") for name in layout.MODEL_NAMES}
    assert [t.name for t in configs[layout.CROSS_ENCODER].input] == ["input_ids", "attention_mask"]
    rows = [name for name, _, _ in layout.ROW_TENSORS]  # what the tokenizer tells the aggregator
    assert [t.name for t in configs[layout.TOKENIZER].output] == ["input_ids", "attention_mask", *rows]
    query = "what is the capital of france"
    documents = [
        "paris is the capital",
        "",
        "berlin " * 60,
        "café 🚀",
        "Paris est la capitale de la France.",
        "東京は日本の首都です",
    ]
    expected = CrossEncoder(str(folder)).predict([(query, d) for d in documents], activation_fn=torch.nn.Identity())
    served = Tokenizer.from_file(str(repository / "tokenizer" / "1" / "tokenizer.json"))
    served.no_truncation()
    served.no_padding()
    with EmbeddedTritonServer(repository, free_port_settings()) as server:
        for url in (server.http_url, server.grpc_url):
            with TritonRerankFunction(url) as rf:
                np.testing.assert_allclose(rf.score(query, documents), expected, atol=TOLERANCE, rtol=0)
                # long documents: windows cut at this vocabulary's word starts, each scored as in-process
                details = rf.score_details(query, documents, long_documents="max", spans=True)
                want, spans = windowed_reference(
                    CrossEncoder(str(folder)), served, TINY_MAX_LENGTH, query, documents, "max"
                )
                np.testing.assert_allclose(details.scores, want, atol=TOLERANCE, rtol=0)
                assert [tuple(span) for span in details.spans] == spans


def test_exported_configs_parse_with_tritons_schema_and_equal_the_generator(tiny_repository):
    """The ensembles also carry the export's digest of the weights (``model_id``), which the score
    cache keys a version on: a new export of other weights is a new version."""
    import hashlib

    settings = layout.RepositorySettings(max_length=TINY_MAX_LENGTH, reserved_tokens=3)  # [CLS] [SEP] [SEP]
    for name, config in repo.build_configs(settings).items():
        exported = repo.load_config(tiny_repository / name / "config.pbtxt")
        if name == layout.RERANKER:
            files = sorted((tiny_repository / layout.CROSS_ENCODER / "1").iterdir())
            digest = hashlib.sha256(b"".join(f.read_bytes() for f in files if f.name != "export.json"))
            assert exported.parameters.pop("model_id").string_value == digest.hexdigest()[:16]
        assert exported == config, name


def test_torchscript_export_is_bound_to_the_device_it_can_trace_on(tiny_model, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: a KIND_GPU TorchScript export is possible here")
    with pytest.raises(ExportError, match="TorchScript trace runs only on the kind of device"):
        export_cross_encoder(
            str(tiny_model),
            tmp_path / "gpu",
            model_format="torchscript",
            settings=layout.RepositorySettings(device="gpu"),
        )
    export_cross_encoder(str(tiny_model), tmp_path / "auto", model_format="torchscript")
    config = repo.load_config(tmp_path / "auto" / "cross_encoder" / "config.pbtxt")
    assert [(g.kind, g.count) for g in config.instance_group] == [(repo.mc.ModelInstanceGroup.KIND_CPU, 1)]


def test_ensure_exported_skips_a_complete_export_and_redoes_a_stale_one(tiny_model, tmp_path):
    from triton_rerank.serving.export import ensure_exported

    repository = tmp_path / "repo"
    assert ensure_exported(repository, str(tiny_model), "cross-encoder") is not None
    assert ensure_exported(repository, str(tiny_model), "cross-encoder") is None
    config = repository / "tokenizer" / "config.pbtxt"
    config.write_text(config.read_text().replace(f'"{TINY_MAX_LENGTH}"', '"512"'))  # a config edited since
    assert ensure_exported(repository, str(tiny_model), "cross-encoder") is not None
    (repository / "cross_encoder" / "1" / "model.onnx").unlink()
    assert ensure_exported(repository, str(tiny_model), "cross-encoder") is not None
    for step in ("tokenizer", "aggregator"):  # code from an older release of the package is replaced
        code = repository / step / "1" / "model.py"
        code.write_text(code.read_text() + "\n# an older release\n")
        assert ensure_exported(repository, str(tiny_model), "cross-encoder") is not None
        assert ensure_exported(repository, str(tiny_model), "cross-encoder") is None


def test_export_if_missing_skips_the_same_settings_and_redoes_other_ones(tiny_model, tmp_path, capsys):
    """The compose export job runs this on every start: a GPU profile after a CPU one re-exports."""
    from triton_rerank.cli import main

    repository = tmp_path / "repo"
    args = ["export", "--model", str(tiny_model), "--repository", str(repository), "--if-missing", "--device", "cpu"]
    assert main(args) == 0
    assert "exported" in capsys.readouterr().out
    assert main(args) == 0
    assert "nothing to do" in capsys.readouterr().out
    gpu = [*args[:-1], "gpu", "--gpu-accelerator", "tensorrt-fp16"]
    assert main(gpu) == 0
    assert "exported" in capsys.readouterr().out
    config = repo.load_config(repository / "cross_encoder" / "config.pbtxt")
    assert config.instance_group[0].kind == repo.mc.ModelInstanceGroup.KIND_GPU
    (accelerator,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.parameters["precision_mode"] == "FP16"
    assert main(gpu) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert main([*args[:-1], "cpu", "--gpu-accelerator", "tensorrt"]) == 2
    assert "for ONNX models on a GPU" in capsys.readouterr().err
