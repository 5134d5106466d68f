"""`triton-rerank distill` end to end on the tiny cross-encoder: students (BASE reading fewer tokens,
at fp32 and OpenVINO int8 calibrated on the collection) judged on dev, the cascade folder exported
beside the plain models and served by a real Triton, its served scores equal to the cascade in
process; the documents that reach the last stage get the very scores of BASE served alone. Then
each refusal, before any work where it can be."""

from __future__ import annotations

import json

import numpy as np
import pytest
from triton_counts import settled_stats

from tiny_models import build_tiny_bert_encoder
from triton_rerank import TritonRerankFunction
from triton_rerank.distill import DistillConfig, distill
from triton_rerank.errors import RerankInputError
from triton_rerank.training.data import TrainingDataError

pytestmark = pytest.mark.integration

QUERY = "what is the capital of france"
DOCUMENTS = [
    "paris is the capital of france",
    "berlin is the capital of germany",
    "the quick brown fox jumps over the lazy dog",
    "vaccines work by training the immune system",
    "protein is made in the cell",
    "the river water is cold",
    "a short document",
    "what does the fox say",
    "the largest city in germany is berlin",
    "how do vaccines work in the cell",
    "science of water",
    "paris france capital city",
]


def settings(beir_folder, tiny_model, output, **changes) -> DistillConfig:
    values = dict(data=beir_folder, model=str(tiny_model), output=output, depth=10, student_lengths="16")
    return DistillConfig(**(values | {"student_precisions": "fp32", "max_minutes": 10} | changes))


@pytest.fixture(scope="module")
def cascade(beir_folder, tiny_model, tmp_path_factory):
    """The tiny model distilled (fp32 student, so that the in-process reference is exact), with the
    tolerance wide: random weights rank nothing well, and the plumbing is what is tested."""
    output = tmp_path_factory.mktemp("distilled") / "cascade"
    report = distill(settings(beir_folder, tiny_model, output, tolerance=0.99, k=4))
    return output, report


@pytest.fixture(scope="module")
def served(cascade, tmp_path_factory):
    from triton_rerank.serving.export import export_model
    from triton_rerank.serving.layout import RepositorySettings
    from triton_rerank.serving.server import EmbeddedTritonServer, free_port_settings

    repository = tmp_path_factory.mktemp("cascade-repo") / "model_repository"
    export_model(str(cascade[0]), repository, "cross-encoder", settings=RepositorySettings(name="distilled"))
    with EmbeddedTritonServer(repository, free_port_settings()) as server:
        yield server, repository


def test_the_cascade_folder_holds_both_models_its_choice_and_the_report(cascade):
    output, report = cascade
    spec = json.loads((output / "cascade.json").read_text())
    assert spec["first"] == "student" and spec["last"] == "base" and spec["k"] == 4
    assert (spec["first_precision"], spec["first_format"], spec["first_calibration"]) == ("fp32", "onnx", "")
    assert json.loads((output / "distill-report.json").read_text()) == report
    student = json.loads((output / "student" / "tokenizer_config.json").read_text())
    assert student["model_max_length"] == 16
    base = json.loads((output / "base" / "tokenizer_config.json").read_text())
    assert base["model_max_length"] == 48 and not (output / "base" / "calibration.jsonl").exists()
    dev = report["dev"]
    assert dev["chosen"]["student"] == "fp32, 16 tokens" and dev["chosen"]["k"] == 4 and dev["chosen"]["holds"]
    assert 0 <= dev["base_ndcg@10"] <= 1 and report["settings"]["seed"] == 0 and report["queries"]["dev"] == 16
    assert (output / "README.md").read_text().startswith("---")
    assert not list(output.parent.glob(".*.partial"))


def test_an_openvino_int8_student_is_calibrated_on_the_collection_and_served_so(beir_folder, tiny_model, tmp_path):
    from triton_rerank.serving.export import export_model, is_exported
    from triton_rerank.serving.layout import RepositorySettings

    output = tmp_path / "cascade"
    report = distill(settings(beir_folder, tiny_model, output, student_precisions="int8-openvino", tolerance=0.99, k=4))
    spec = json.loads((output / "cascade.json").read_text())
    assert (spec["first_precision"], spec["first_format"]) == ("int8", "openvino")
    pairs = (output / "student" / spec["first_calibration"]).read_text().splitlines()
    assert len(pairs) == min(300, 3 * report["queries"]["calibration"]) and json.loads(pairs[0])["query"]
    repository = tmp_path / "repo"
    export_model(str(output), repository, "cross-encoder")
    assert (repository / "reranker_first_model" / "1" / "model.xml").exists()
    assert json.loads((repository / "reranker_first_model" / "1" / "export.json").read_text())[
        "calibration"
    ].startswith("sha256:")
    assert is_exported(
        repository, str(output / "base"), "cross-encoder", settings=RepositorySettings(name="reranker_last")
    )


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_served_scores_equal_the_cascade_in_process_and_base_alone_for_what_it_read(served, cascade, protocol):
    from triton_rerank.serving.export import reference_reranker

    server, _ = served
    url = server.grpc_url if protocol == "grpc" else server.http_url
    expected = reference_reranker(str(cascade[0]))([(QUERY, d) for d in DOCUMENTS])
    with TritonRerankFunction(url, model_name="distilled") as rf:
        got = rf.score(QUERY, DOCUMENTS)
        assert rf.limits()["cascade_k"] == 4
    np.testing.assert_allclose(got, expected, atol=1e-4)
    best = np.argsort(-got, kind="stable")[:4]
    with TritonRerankFunction(url, model_name="distilled_last") as base:
        alone = base.score(QUERY, [DOCUMENTS[i] for i in best])
    np.testing.assert_array_equal(got[best], alone)  # BASE's own scores, bit for bit
    assert got[best].min() > np.delete(got, best).max()  # and they rank above every other


def test_a_call_larger_than_a_stage_takes_is_still_one_cascade(served, cascade):
    """The stages take 128 rows per request; the cascade splits a call of 300 itself and still sends
    only its best k on to BASE."""
    from triton_rerank.serving.export import reference_reranker

    server, _ = served
    documents = [f"{DOCUMENTS[i % len(DOCUMENTS)]} {i}" for i in range(300)]
    before = settled_stats(server.http_url)  # the earlier tests' last requests counted
    with TritonRerankFunction(server.grpc_url, model_name="distilled") as rf:
        got = rf.score(QUERY, documents)
    after = settled_stats(server.http_url)
    np.testing.assert_allclose(got, reference_reranker(str(cascade[0]))([(QUERY, d) for d in documents]), atol=1e-4)
    calls = {name: after[name]["requests"] - before.get(name, {}).get("requests", 0)
             for name in ("distilled", "distilled_first", "distilled_last")}  # fmt: skip
    assert calls == {"distilled": 1, "distilled_first": 3, "distilled_last": 1}  # 128 + 128 + 44, then the best 4


def test_an_existing_output_and_a_model_that_is_no_cross_encoder_are_refused_at_once(beir_folder, tiny_model, tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(RerankInputError, match="exists"):
        distill(settings(beir_folder, tiny_model, tmp_path / "taken"))
    encoder = build_tiny_bert_encoder(tmp_path / "encoder")
    with pytest.raises(RerankInputError, match="not a cross-encoder"):
        distill(settings(beir_folder, encoder, tmp_path / "out"))
    with pytest.raises(RerankInputError, match="--student-precisions must name some of"):
        distill(settings(beir_folder, tiny_model, tmp_path / "out", student_precisions="int4"))
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".*.partial"))


def test_a_collection_too_small_and_a_budget_too_small_are_refused_with_what_they_need(
    beir_folder, tiny_model, tmp_path
):
    with pytest.raises(TrainingDataError, match="too small to distil from"):
        distill(settings(beir_folder, tiny_model, tmp_path / "out", max_dev_queries=5))
    with pytest.raises(TrainingDataError, match="fewer than --depth 50"):
        distill(settings(beir_folder, tiny_model, tmp_path / "out", depth=50))
    with pytest.raises(RerankInputError, match="--max-minutes 0.01 is too small.*give at least"):
        distill(settings(beir_folder, tiny_model, tmp_path / "out", max_minutes=0.01))
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".*.partial"))


def test_a_cascade_dev_does_not_hold_is_not_written_and_the_refusal_quotes_both_figures(
    beir_folder, tiny_model, tmp_path, monkeypatch, capsys
):
    import triton_rerank.distill.runner as runner
    from triton_rerank.cli import main

    row = {"student": "int8-openvino, 64 tokens", "k": 3, "ndcg@10": 0.4123, "cost": 0.3, "holds": False}
    verdict = {"holds": False, "best": row, "chosen": None, "base_ndcg@10": 0.5, "tried": [row]}
    monkeypatch.setattr(runner, "choose", lambda *args: verdict)
    out = tmp_path / "out"
    flags = ["distill", "--data", str(beir_folder), "--model", str(tiny_model), "--output", str(out), "--depth",
             "10", "--student-precisions", "fp32", "--student-lengths", "16"]  # fmt: skip
    assert main(flags) == 2
    err = capsys.readouterr().err
    assert (
        "does not rank like BASE: nDCG@10 0.4123 at best (k=3, student int8-openvino, 64 tokens) against BASE's "
        "0.5000" in err
    )
    assert not out.exists() and not list(tmp_path.glob(".*.partial"))
    assert main([*flags, "--tolerance", "-1"]) == 2
    assert "--tolerance must be in [0, 1)" in capsys.readouterr().err


def test_a_score_cache_passes_a_cascade_by(served, cascade):
    """A cascade's score of a pair depends on the call's other documents: no pair of it is cached."""
    server, _ = served
    with TritonRerankFunction(server.grpc_url, model_name="distilled", score_cache="memory") as rf:
        first = rf.score(QUERY, DOCUMENTS)
        before = settled_stats(server.http_url)["distilled"]["requests"]
        np.testing.assert_array_equal(rf.score(QUERY, DOCUMENTS), first)
        assert settled_stats(server.http_url)["distilled"]["requests"] == before + 1
        assert len(rf._async.score_cache) == 0 and rf._async.score_cache.counts.as_dict()["hits"] == 0


def test_evaluate_serves_a_cascade_folder_and_ranks_as_it_does_in_process(
    cascade, embedder_model, beir_folder, tmp_path, capsys
):
    """`evaluate --reranker-model OUT`: exported and served as any reranker; its in-process reference is
    the cascade too, each list one call, so served and in-process rank the same candidates alike."""
    from in_process import ran

    out = tmp_path / "evaluation.json"
    result = ran(capsys, "evaluate.py", "--data", str(beir_folder), "--split", "train",
                 "--reranker-model", str(cascade[0]), "--embedder-model", embedder_model,
                 "--repository", str(tmp_path / "repo"), "--index", "FLAT", "--first-stage", "dense",
                 "--retrieve-k", "10", "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())["results"]
    assert rows["reranked: Triton on Milvus top-10 (served)"] == pytest.approx(
        rows["reranked: CrossEncoder on Milvus top-10 (in-process)"], abs=1e-9
    )
    assert (
        (tmp_path / "repo" / "reranker" / "1" / "model.py").read_bytes().startswith(b'"""Triton Python-backend cascade')
    )
