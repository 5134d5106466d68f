"""`triton-rerank train` end to end on tiny models: negatives mined from a real Milvus Lite
collection through the served embedder, dev evaluation, the refusal when not better, nothing
half-written, and the trained folder exported and served with the scores CrossEncoder.predict gives."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from triton_rerank import TritonEmbedFunction, TritonRerankFunction
from triton_rerank.cli import main
from triton_rerank.errors import RerankInputError
from triton_rerank.ingest import ingest, read_documents
from triton_rerank.store import MilvusStore
from triton_rerank.training import TrainConfig, train
from triton_rerank.training.runner import NotBetterError

pytestmark = pytest.mark.integration


def ingested(tmp_path_factory, triton_server, beir_folder) -> str:
    uri = str(tmp_path_factory.mktemp("milvus") / "documents.db")
    with MilvusStore(uri, index="FLAT") as store, TritonEmbedFunction(triton_server.grpc_url) as embed:
        ingest(read_documents(beir_folder), store, embed.encode)
        assert store.count() == 32
    return uri


@pytest.fixture(scope="module")
def collection(tmp_path_factory, triton_server, beir_folder):
    return ingested(tmp_path_factory, triton_server, beir_folder)


@pytest.fixture(scope="module")
def searched_collection(tmp_path_factory, triton_server, beir_folder):
    """A collection of its own, opened while it is fresh: pymilvus reuses its gRPC channel to a Milvus
    Lite file, and after minutes idle Lite answers that channel's keepalive pings with GOAWAY
    ("too_many_pings"), which failed the next open once."""
    return ingested(tmp_path_factory, triton_server, beir_folder)


def config(beir_folder, tiny_model, output, **changes) -> TrainConfig:
    settings = dict(
        data=beir_folder,
        model=str(tiny_model),
        output=output,
        max_minutes=5,  # a time budget no run here reaches: the step budget ends every run, on any machine
        max_steps=10,
        evaluations=2,
        dev_fraction=0.25,
        mining_depth=10,
        dev_depth=10,
        hard_negatives=3,
        batch_size=8,
        max_length=48,
    )
    return TrainConfig(**{**settings, **changes})


@pytest.fixture(scope="module")
def trained(beir_folder, collection, triton_server, tiny_model, tmp_path_factory):
    """The tiny cross-encoder trained on negatives mined from the Milvus collection."""
    output = tmp_path_factory.mktemp("trained") / "model"
    settings = config(beir_folder, tiny_model, output, milvus_uri=collection, triton_url=triton_server.grpc_url)
    return output, train(dataclasses.replace(settings, force=True))


def test_trained_from_a_milvus_collection_exports_and_serves_its_own_scores(trained, tiny_model, tmp_path):
    from sentence_transformers.cross_encoder import CrossEncoder

    from triton_rerank.serving.export import export_cross_encoder
    from triton_rerank.serving.server import EmbeddedTritonServer, free_port_settings

    output, report = trained
    # searched as the pipeline searches this collection by default: ingest gave it BM25
    assert report["first_stage"] == "hybrid (relative 0.75/0.25) (Milvus collection 'documents')"
    mining = report["mining"]
    # a third of the 32 queries is dev (no fewer than that for small sets); 10 hits each
    assert report["queries"] == {"train": 22, "dev": 10}
    assert mining["positives"] == 22 and mining["candidates"] == 220
    assert mining["judged_positive"] == 22  # every title finds its own document in its top 10
    assert mining["hard"] + mining["over_margin"] == 220 - 22
    # The step budget ended it (the time budget would give the machine's count: 9 were seen on shared cores).
    assert report["recipe"]["steps"] == 10 and len(report["dev_results"]["curve"]) == 2
    for point in report["dev_results"]["curve"]:  # blended (the checkpoint's criterion) and alone
        assert {"minutes", "step", "dev_ndcg@10", "reranker_alone"} == set(point)
        assert 0 <= point["reranker_alone"] <= point["dev_ndcg@10"] <= 1  # alone is one of the blends tried
    assert json.loads((output / "train-report.json").read_text()) == report
    assert "Dev nDCG@10 during training" in (output / "README.md").read_text()

    model = CrossEncoder(str(output), device="cpu")
    assert model.max_length == 48
    base = CrossEncoder(str(tiny_model), device="cpu")
    pairs = [("how vaccines work", "the immune system learns"), ("paris", "the capital of france is paris")]
    assert not np.allclose(model.predict(pairs), base.predict(pairs))  # it did train

    repository = tmp_path / "model_repository"
    export_cross_encoder(str(output), repository)
    documents = [d for _, d in pairs] + ["a quick brown fox", ""]
    expected = model.predict([("paris", d) for d in documents], activation_fn=torch.nn.Identity())
    with EmbeddedTritonServer(repository, free_port_settings()) as server, TritonRerankFunction(server.grpc_url) as rf:
        served = rf.score("paris", documents)
    np.testing.assert_allclose(served, expected, atol=1e-4)


@pytest.mark.parametrize("first_stage", ["auto", "dense", "bm25", "hybrid"])
def test_training_searches_the_collection_as_the_pipeline_does(
    first_stage, beir_folder, searched_collection, triton_server, tiny_model, tmp_path
):
    """Negatives are mined from, and dev reranks, the candidates the user's pipeline serves, with the
    first-stage scores the pipeline's blend reads."""
    from triton_rerank.pipeline import RerankPipeline
    from triton_rerank.training.first_stage import MilvusFirstStage

    url = triton_server.grpc_url
    settings = config(beir_folder, tiny_model, tmp_path / "out", milvus_uri=searched_collection, triton_url=url)
    queries = ["How do vaccines train the immune system?", "sea level", "Python dictionaries and lists"]
    with (
        MilvusStore(searched_collection) as store,
        TritonEmbedFunction(url) as embed,
        TritonRerankFunction(url) as rerank,
    ):
        stage = dataclasses.replace(settings, first_stage=first_stage).search_stage().resolve(store)
        assert stage.kind == ("hybrid" if first_stage == "auto" else first_stage)
        mined = MilvusFirstStage(store, stage, embed.encode, {}).search(queries, 10)
        pipeline = RerankPipeline(store, embed, rerank, first_stage=first_stage)
        for query, hits in zip(queries, mined, strict=True):
            served = sorted(pipeline.search(query, retrieve_k=10, top_k=10).hits, key=lambda h: h.first_stage_rank)
            assert [d for d, _ in hits] == [h.id for h in served]
            assert [s for _, s in hits] == pytest.approx([h.first_stage_score for h in served], rel=1e-5)


def test_a_model_that_does_not_beat_its_base_is_not_written(beir_folder, tiny_model, tmp_path):
    output = tmp_path / "unchanged"
    with pytest.raises(NotBetterError, match=r"does not beat its base on dev \(nDCG@10 .* against .*\): nothing"):
        train(config(beir_folder, tiny_model, output, learning_rate=1e-12, blend=False))
    assert list(tmp_path.iterdir()) == []  # no output, no staging folder


def test_a_budget_too_small_for_one_step_is_refused_before_training(beir_folder, tiny_model, tmp_path):
    with pytest.raises(RerankInputError, match=r"--max-minutes 1e-05 is too small: .* give at least"):
        train(config(beir_folder, tiny_model, tmp_path / "out", max_minutes=1e-5))
    assert list(tmp_path.iterdir()) == []


def test_an_existing_output_is_refused_before_any_work(beir_folder, tiny_model, tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(RerankInputError, match="exists: name a new folder"):
        train(config(beir_folder, "no-such-model", tmp_path / "out"))


def test_the_command_trains_an_encoder_on_pseudo_queries_in_process(beir_folder, tmp_path, capsys):
    """From a plain encoder (a new head), no labels, the corpus searched in-process."""
    from tiny_models import build_tiny_bert_encoder

    encoder = build_tiny_bert_encoder(tmp_path / "encoder")
    code = main(
        [
            "train",
            "--data",
            str(beir_folder),
            "--model",
            str(encoder),
            "--output",
            str(tmp_path / "out"),
            "--pseudo-queries",
            "titles",
            "--max-minutes",
            "5",
            "--max-steps",
            "10",
            "--evaluations",
            "2",
            "--dev-fraction",
            "0.25",
            "--dev-depth",
            "10",
            "--max-length",
            "48",
            "--force",
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "out" / "train-report.json").read_text())
    assert report["base_kind"] == "encoder" and report["pseudo_queries"] == "titles"
    assert report["first_stage"].startswith("dense (sentence-transformers/all-MiniLM-L6-v2, in-process)")
    assert report["recipe"]["learning_rates"] == {"encoder": 7e-05, "head": 3.5e-04}  # a new head learns 5x faster
    assert "wrote" in capsys.readouterr().out
    code = main(["train", "--data", str(beir_folder), "--model", str(encoder), "--output", str(tmp_path / "out")])
    assert code == 2 and "exists: name a new folder" in capsys.readouterr().err  # the user's input: exit 2


@pytest.mark.slow
def test_an_encoder_trained_on_labels_gets_title_pseudo_queries_beside_them(beir_folder, tmp_path):
    """From a plain encoder, ``auto`` mixes the corpus' titles into the labelled training; from a
    cross-encoder, or with ``none``, it does not."""
    from tiny_models import build_tiny_bert_encoder

    encoder = build_tiny_bert_encoder(tmp_path / "encoder")
    report = train(config(beir_folder, encoder, tmp_path / "out", max_pseudo_queries=20, force=True))
    titles = report["mixed_pseudo_queries"]
    assert report["base_kind"] == "encoder" and report["pseudo_queries"] is None
    assert titles["kind"] == "titles" and titles["queries"] == 20 and titles["positives"] == 20
    assert titles["hard"] > 0  # other documents, mined for each title, to train it against
    assert report["queries"] == {"train": 22, "dev": 10}  # dev stays the labelled queries
    assert "20 title pseudo-queries trained beside them" in (tmp_path / "out" / "README.md").read_text()

    off = train(config(beir_folder, encoder, tmp_path / "off", mix_pseudo_queries="none", force=True))
    assert off["mixed_pseudo_queries"] is None


def test_mixing_titles_needs_a_corpus_with_documents(tmp_path, tiny_model):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"query": "q", "positives": ["a"], "negatives": ["b"]}) + "\n")
    settings = TrainConfig(data=path, model=str(tiny_model), output=tmp_path / "out", mix_pseudo_queries="titles")
    with pytest.raises(RerankInputError, match="reads a BEIR folder's corpus"):
        train(settings)
    assert not (tmp_path / "out").exists()


def test_evaluate_compares_the_base_and_the_trained_model_on_the_same_candidates(
    trained, beir_folder, tiny_model, tmp_path
):
    output, report = trained
    out = tmp_path / "compare.json"
    argv = [
        "evaluate",
        "--data",
        str(beir_folder),
        "--split",
        "train",
        "--reranker-model",
        str(tiny_model),
        "--compare-models",
        str(output),
        "--retrieve-k",
        "10",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    rows = json.loads(out.read_text())["rows"]
    names = list(rows)
    assert names[0].startswith("first stage: dense") and names[1:3] == [
        f"reranked: {tiny_model}",
        f"reranked: {output}",
    ]
    blend = report["blend"]
    if blend:  # the blend `train` chose is applied to its model, and only to it
        assert names[3] == f"reranked: {output}, blended with the first stage (w={blend['weight']})"
    assert len(names) == 3 + bool(blend)
    assert rows[names[0]]["recall@100"] == rows[names[1]]["recall@100"]  # the same candidates, reordered
