"""What `triton-rerank train` reads and mines, before any model: bad input is refused with a message
that names what is wrong, and the negatives keep the guard's promise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from triton_rerank.errors import RerankInputError
from triton_rerank.training.config import TrainConfig
from triton_rerank.training.data import TrainingData, TrainingDataError, load_beir, load_jsonl, pseudo_queries
from triton_rerank.training.mining import negative_pools, sample_groups


def beir(folder: Path, qrels: str, queries=None, corpus=None) -> Path:
    (folder / "qrels").mkdir(parents=True)
    corpus = corpus or [
        {"_id": f"d{n}", "title": f"Title {n}.", "text": f"text of document {n}. More."} for n in range(6)
    ]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(row) + "\n" for row in corpus))
    queries = queries or [{"_id": "q1", "text": "first query"}, {"_id": "q2", "text": "second query"}]
    (folder / "queries.jsonl").write_text("".join(json.dumps(row) + "\n" for row in queries))
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels)
    return folder


def test_beir_reads_grades_and_judged_negatives(tmp_path):
    data = load_beir(beir(tmp_path, "q1\td0\t2\nq1\td1\t0\nq2\td2\t1\n"), "train")
    assert data.judgments == {"q1": {"d0": 2, "d1": 0}, "q2": {"d2": 1}}
    assert data.queries == {"q1": "first query", "q2": "second query"}
    assert data.corpus["d0"] == "Title 0. text of document 0. More."
    assert data.max_grade == 2


@pytest.mark.parametrize(
    ("qrels", "message"),
    [
        ("q9\td0\t1\n", "names 1 queries not in"),
        ("q1\td9\t1\n", "names 1 documents not in the corpus: 'd9'"),
        ("q1\td0\tyes\n", "score 'yes' is not an integer"),
        ("q1\td0\t0\n", "have no positive judgment: 'q1'"),
        ("", "no judged query"),
    ],
)
def test_beir_refuses_what_it_cannot_train_on(tmp_path, qrels, message):
    with pytest.raises(TrainingDataError, match=message):
        load_beir(beir(tmp_path, qrels), "train")


def test_unknown_documents_are_dropped_only_when_asked(tmp_path):
    data = load_beir(beir(tmp_path, "q1\td0\t1\nq1\td9\t1\n"), "train", skip_unknown_documents=True)
    assert data.judgments == {"q1": {"d0": 1}}


def test_a_beir_folder_without_its_qrels_split_names_the_file(tmp_path):
    with pytest.raises(TrainingDataError, match=r"qrels/dev.tsv is missing"):
        load_beir(beir(tmp_path, "q1\td0\t1\n"), "dev")


def test_jsonl_takes_both_formats_and_merges_a_repeated_query(tmp_path):
    path = tmp_path / "train.jsonl"
    rows = [
        {"query": "a", "positives": ["p1"], "negatives": ["n1", "n2"]},
        {"query": "a", "relevant_passages": ["p2"], "hard_negatives": []},  # Cohere's field names
        {"query": "b", "positives": ["p3", "n1"]},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    data = load_jsonl(path)
    assert len(data.queries) == 2 and len(data.corpus) == 5
    (a,) = [q for q, text in data.queries.items() if text == "a"]
    grades = {data.corpus[d]: g for d, g in data.judgments[a].items()}
    assert grades == {"p1": 1, "p2": 1, "n1": 0, "n2": 0}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("{not json\n", r":1: not JSON"),
        ("[1, 2]\n", r":1: expected a JSON object"),
        ('{"positives": ["p"]}\n', r":1: needs a non-empty 'query'"),
        ('{"query": "q"}\n', r":1: needs 'positives'"),
        ('{"query": "q", "positives": []}\n', "a query needs at least one positive"),
        ('{"query": "q", "positives": ["p", 3]}\n', "must be a list of non-empty strings"),
    ],
)
def test_jsonl_refuses_malformed_rows_by_line(tmp_path, content, message):
    path = tmp_path / "train.jsonl"
    path.write_text(content)
    with pytest.raises(TrainingDataError, match=message):
        load_jsonl(path)


def test_pseudo_queries_are_titles_for_their_own_untitled_text(tmp_path):
    folder = beir(tmp_path, "q1\td0\t1\n")
    data = pseudo_queries(folder, limit=3, seed=0)
    assert len(data.queries) == 3
    for query, judged in data.judgments.items():
        assert judged == {query: 1}
        assert data.queries[query] == f"Title {query[1:]}."
        assert data.corpus[query] == f"text of document {query[1:]}. More."  # the title is not in the text


def test_pseudo_queries_fall_back_to_the_first_sentence(tmp_path):
    corpus = [{"_id": "a", "text": "One sentence only"}, {"_id": "b", "text": "First part. Second part."}]
    data = pseudo_queries(beir(tmp_path, "", corpus=corpus), limit=10, seed=0)
    assert data.queries == {"b": "First part."} and data.corpus == {"a": "One sentence only", "b": "Second part."}


def test_pseudo_queries_beside_labels_get_their_own_query_ids(tmp_path):
    data = pseudo_queries(beir(tmp_path, "d0\td0\t1\n"), limit=2, seed=0, query_prefix="title:")
    assert all(q.startswith("title:") for q in data.queries)  # a judged query named "d0" stays apart
    assert all(judged == {q.removeprefix("title:"): 1} for q, judged in data.judgments.items())


def test_titles_go_beside_the_labels_from_an_encoder_or_when_asked(tmp_path, capsys):
    from triton_rerank.training.runner import mixed_pseudo_queries

    folder = beir(tmp_path / "titled", "q1\td0\t1\n")
    settings = {"data": folder, "model": "m", "output": tmp_path / "out"}
    assert len(mixed_pseudo_queries(TrainConfig(**settings), "encoder").queries) == 6
    assert mixed_pseudo_queries(TrainConfig(**settings), "cross-encoder") is None
    assert mixed_pseudo_queries(TrainConfig(**settings, mix_pseudo_queries="titles"), "cross-encoder") is not None
    assert mixed_pseudo_queries(TrainConfig(**settings, mix_pseudo_queries="none"), "encoder") is None

    untitled = beir(tmp_path / "untitled", "q1\ta\t1\n", corpus=[{"_id": "a", "text": "One sentence only"}])
    settings["data"] = untitled
    assert mixed_pseudo_queries(TrainConfig(**settings), "encoder") is None  # auto: said, and trained on labels
    assert "no title pseudo-queries beside the labels" in capsys.readouterr().out
    with pytest.raises(TrainingDataError, match="no document has a title"):
        mixed_pseudo_queries(TrainConfig(**settings, mix_pseudo_queries="titles"), "encoder")


def test_the_dev_split_is_seeded_and_disjoint():
    data = TrainingData({"d": "x"}, {f"q{n}": "t" for n in range(20)}, {f"q{n}": {"d": 1} for n in range(20)})
    train, dev = data.split(0.2, seed=3, limit=100)
    again, dev_again = data.split(0.2, seed=3, limit=100)
    assert len(dev.queries) == 6 and not set(train.queries) & set(dev.queries)  # a third of 20: no fewer
    assert dev.queries == dev_again.queries and train.queries == again.queries


def test_the_dev_split_has_a_ceiling_and_the_queries_over_it_train():
    data = TrainingData({"d": "x"}, {f"q{n}": "t" for n in range(2000)}, {f"q{n}": {"d": 1} for n in range(2000)})
    train, dev = data.split(0.1, seed=0, limit=100)  # a tenth would be 200 dev queries
    assert len(dev.queries) == 100 and len(train.queries) == 1900
    assert set(train.queries) | set(dev.queries) == set(data.queries)  # every query used, none twice


def test_a_named_dev_split_is_held_out_and_sampled_to_the_ceiling(tmp_path, capsys):
    from triton_rerank.training.runner import read_data

    queries = [{"_id": f"q{n}", "text": f"query {n}"} for n in range(6)]
    folder = beir(tmp_path / "beir", "q0\td0\t1\nq1\td1\t1\n", queries=queries)
    (folder / "qrels" / "dev.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{n}\td{n}\t1\n" for n in (2, 3, 4, 5))
    )
    settings = {"data": folder, "model": "m", "output": tmp_path / "out", "dev_split": "dev"}
    train, dev = read_data(TrainConfig(**settings, max_dev_queries=3))
    assert set(train.queries) == {"q0", "q1"} and len(dev.queries) == 3 and set(dev.queries) < {"q2", "q3", "q4", "q5"}
    assert "dev: 3 of --dev-split's 4 queries (--max-dev-queries)" in capsys.readouterr().out
    assert set(read_data(TrainConfig(**settings))[1].queries) == {"q2", "q3", "q4", "q5"}

    (folder / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    with pytest.raises(TrainingDataError, match="share 1 queries \\(q1\\): dev must be held out"):
        read_data(TrainConfig(**settings))


class FakeFirstStage:
    name = "fake"

    def __init__(self, scores):
        self._scores = scores

    def scores(self, query, ids):
        return {d: self._scores[d] for d in ids}


def test_the_margin_keeps_near_positive_hits_out_and_judged_negatives_in():
    corpus = {d: f"text {d}" for d in ("pos", "close", "far", "judged0", "same-text")}
    corpus["same-text"] = corpus["pos"]  # the positive's text under another id: never a negative
    data = TrainingData(corpus, {"q": "query"}, {"q": {"pos": 1, "judged0": 0}})
    scores = {"pos": 0.80, "close": 0.78, "far": 0.50, "judged0": 0.9, "same-text": 0.8}
    hits = {"q": [("judged0", 0.9), ("pos", 0.8), ("same-text", 0.8), ("close", 0.78), ("far", 0.5)]}
    pools, report = negative_pools(data, hits, FakeFirstStage(scores), depth=5, margin=0.05)
    assert pools == {("q", "pos"): ["judged0", "far"]}  # 0.78 > 0.95 * 0.80: kept out
    assert (report.over_margin, report.hard, report.judged_negative) == (1, 1, 1)
    pools_without, _ = negative_pools(data, hits, FakeFirstStage(scores), depth=5, margin=0.0)
    assert pools_without[("q", "pos")] == ["judged0", "close", "far"]


def test_hits_the_data_cannot_read_are_neither_candidates_nor_negatives():
    data = TrainingData({"pos": "text", "far": "other"}, {"q": "query"}, {"q": {"pos": 1}})
    hits = {"q": [("pos", 0.8), ("all-title", 0.6), ("far", 0.5)]}  # "all-title": not in this corpus
    pools, report = negative_pools(data, hits, FakeFirstStage({"pos": 0.8, "far": 0.5}), depth=3, margin=0.05)
    assert pools == {("q", "pos"): ["far"]} and (report.candidates, report.hard) == (2, 1)


def test_the_guard_compares_the_embedders_scores_not_the_first_stages():
    """A hybrid or BM25 hit's score is fused or BM25, and a positive the search missed has none: the
    guard judges every candidate by the embedder's cosine."""
    data = TrainingData({d: f"text {d}" for d in ("pos", "near", "far")}, {"q": "query"}, {"q": {"pos": 1}})
    hits = {"q": [("near", 0.9), ("far", 0.8)]}  # fused scores; the positive was not found
    cosines = {"pos": 0.70, "near": 0.69, "far": 0.30}
    pools, report = negative_pools(data, hits, FakeFirstStage(cosines), depth=2, margin=0.05)
    assert pools == {("q", "pos"): ["far"]} and report.over_margin == 1


def test_groups_have_one_size_and_fresh_negatives_each_epoch():
    corpus = {f"d{n}": f"text {n}" for n in range(50)}
    data = TrainingData(corpus, {"q": "query"}, {"q": {"d0": 1}})
    pools = {("q", "d0"): [f"d{n}" for n in range(1, 30)]}
    groups = sample_groups(data, pools, hard=3, random_=2, epochs=4, seed=0)
    assert len(groups) == 4
    assert all(len(docs) == 6 and labels == [1.0, 0, 0, 0, 0, 0] for _, docs, labels in groups)
    assert all(docs[0] == "text 0" and "text 0" not in docs[1:] for _, docs, _ in groups)
    assert len({tuple(docs) for _, docs, _ in groups}) > 1


def test_a_corpus_of_positives_only_has_nothing_to_train_against():
    data = TrainingData({"d0": "x"}, {"q": "query"}, {"q": {"d0": 1}})
    with pytest.raises(TrainingDataError, match="nothing to train it against"):
        sample_groups(data, {("q", "d0"): []}, hard=1, random_=1, epochs=1, seed=0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_minutes": 0}, "--max-minutes must be > 0"),
        ({"dev_fraction": 1.0}, "--dev-fraction must be in"),
        ({"hard_negatives": 0, "random_negatives": 0}, "at least one negative"),
        ({"dev_depth": 5}, "--dev-depth must be >= 10"),
        ({"milvus_uri": "x.db"}, "name it with --triton-url"),
        ({"relative_margin": 1.5}, "--relative-margin must be in"),
        ({"max_dev_queries": 0}, "--max-dev-queries must be >= 1"),
        ({"first_stage": "hybrid"}, "without one, the data's corpus is searched in-process, dense"),
        ({"fusion": "rrf"}, "without one, the data's corpus is searched in-process, dense"),
        ({"milvus_uri": "x.db", "triton_url": "u", "first_stage": "dense", "fusion": "rrf"}, "has one leg"),
        ({"pseudo_queries": "titles", "mix_pseudo_queries": "titles"}, "trains on titles alone"),
    ],
)
def test_config_refuses_settings_that_cannot_run(tmp_path, changes, message):
    with pytest.raises(RerankInputError, match=message):
        TrainConfig(data=tmp_path, model="m", output=tmp_path / "out", **changes)


def test_a_model_that_is_neither_cross_encoder_nor_encoder_is_refused(tmp_path):
    from transformers import GPT2Config

    from triton_rerank.training.model import ModelKindError, model_kind

    GPT2Config(n_layer=1, n_embd=8, n_head=2, architectures=["GPT2LMHeadModel"]).save_pretrained(tmp_path / "gpt2")
    with pytest.raises(ModelKindError, match=r"is a gpt2 \(GPT2LMHeadModel\): neither"):
        model_kind(str(tmp_path / "gpt2"))
    with pytest.raises(ModelKindError, match="cannot read a transformers config"):
        model_kind(str(tmp_path / "missing"))


def test_a_classifier_with_several_labels_is_refused(tmp_path):
    from transformers import BertConfig

    from triton_rerank.training.model import ModelKindError, model_kind

    config = BertConfig(num_labels=3, architectures=["BertForSequenceClassification"])
    config.save_pretrained(tmp_path / "nli")
    with pytest.raises(ModelKindError, match="classifies into 3 labels"):
        model_kind(str(tmp_path / "nli"))
    BertConfig(architectures=["BertModel"]).save_pretrained(tmp_path / "encoder")
    assert model_kind(str(tmp_path / "encoder")) == "encoder"
