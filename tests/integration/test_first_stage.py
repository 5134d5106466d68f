"""The first stages against a real Milvus Lite: dense, BM25 and hybrid (relative score fusion of the
legs' lists; RRF and weighted fusion in Milvus), each hit's leg ranks, the dense-only collection's
message, bad settings refused before any search, Milvus' BM25 against an exact one, and the async
pipeline's parity with the blocking one. Two-dimensional vectors make the dense order known by
hand; no Triton is needed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from triton_rerank import RerankInputError
from triton_rerank.client import Scores
from triton_rerank.first_stage import FirstStage, retrieve
from triton_rerank.pipeline import AsyncRerankPipeline, RerankPipeline
from triton_rerank.store import Document, MilvusStore, StoreError

pytestmark = pytest.mark.integration

# Dense order for the query vector [1, 0] is d0, d4, d1, d3, d2; BM25 for "dogs running" is d2
# (both words), then the one-word matches d0 and d3.
TEXTS = {
    "d0": "dogs run fast",
    "d1": "cats sleep all day",
    "d2": "the dogs are running in the park",
    "d3": "quantum physics of dogs",
    "d4": "nothing here",
}
VECTORS = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.5, 0.5], [0.99, 0.01]], np.float32)
QUERY, QUERY_VECTOR = "dogs running", np.array([[1, 0]], np.float32)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with MilvusStore(str(tmp_path_factory.mktemp("milvus") / "docs.db"), dimension=2, index="FLAT") as store:
        store.upsert([Document(i, t) for i, t in TEXTS.items()], VECTORS)
        yield store


def search(store, stage: FirstStage, limit: int = 5):
    return retrieve(store, stage.resolve(store), [QUERY], QUERY_VECTOR, limit=limit)[0]


def test_dense_and_bm25_each_rank_by_their_own_leg(store):
    dense = search(store, FirstStage("dense"))
    assert [m.id for m in dense] == ["d0", "d4", "d1", "d3", "d2"]
    assert [m.legs["dense"].rank for m in dense] == [1, 2, 3, 4, 5] and all(len(m.legs) == 1 for m in dense)
    bm25 = search(store, FirstStage("bm25"))
    assert bm25[0].id == "d2" and {m.id for m in bm25} == {"d0", "d2", "d3"}  # only documents with a query word
    assert all(m.score > 0 for m in bm25)  # positive, best first, whatever sign Milvus Lite returns
    assert [m.score for m in bm25] == sorted((m.score for m in bm25), reverse=True)


def test_hybrid_relative_is_the_weighted_sum_of_each_legs_min_max_scaled_scores(store):
    fused = search(store, FirstStage("hybrid"))
    assert FirstStage("hybrid").name == "hybrid (relative 0.75/0.25)"
    assert {m.id for m in fused} == set(TEXTS)  # the union of both legs
    legs = {leg: search(store, FirstStage(leg)) for leg in ("dense", "bm25")}
    scaled = {  # by hand: each leg's best 1, its worst 0
        leg: {m.id: (m.score - hits[-1].score) / (hits[0].score - hits[-1].score) for m in hits}
        for leg, hits in legs.items()
    }
    for match in fused:
        expected = 0.75 * scaled["dense"].get(match.id, 0) + 0.25 * scaled["bm25"].get(match.id, 0)
        assert match.score == pytest.approx(expected, abs=1e-6)
        assert {leg: hit.rank for leg, hit in match.legs.items()} == {
            leg: [m.id for m in hits].index(match.id) + 1 for leg, hits in legs.items() if match.id in scaled[leg]
        }
    assert [m.score for m in fused] == sorted((m.score for m in fused), reverse=True)
    assert fused[0].id == "d0"  # first in dense, second in BM25
    # d2: first in BM25 but last in dense, so dense's 0.75 keeps it below dense's d4 (no query word at all)
    assert [m.id for m in fused].index("d4") < [m.id for m in fused].index("d2")


def test_relative_fusion_follows_the_weights_and_the_limit(store):
    dense_only = search(store, FirstStage("hybrid", weights=(1, 0)))
    assert [m.id for m in dense_only][2:] == ["d1", "d3", "d2"] and {m.id for m in dense_only[:2]} == {"d0", "d4"}
    bm25_only = search(store, FirstStage("hybrid", weights=[0, 1]))
    bm25 = [m.id for m in search(store, FirstStage("bm25"))]
    assert [m.id for m in bm25_only if m.id in bm25] == bm25 and bm25_only[0].score == 1  # BM25's best scales to 1
    assert bm25_only[-1].score == 0  # as BM25's worst does to 0, tied with what only dense found
    top = search(store, FirstStage("hybrid", leg_k=5), limit=2)  # the same legs, the fused list cut at 2
    assert [m.id for m in top] == [m.id for m in search(store, FirstStage("hybrid"))][:2]


def test_hybrid_rrf_is_the_reciprocal_rank_fusion_of_the_legs(store):
    fused = search(store, FirstStage("hybrid", fusion="rrf", rrf_k=60))
    assert {m.id for m in fused} == set(TEXTS)  # the union of both legs
    for match in fused:  # Milvus' fused score from the legs' ranks each hit carries
        expected = sum(1 / (60 + leg.rank) for leg in match.legs.values())
        assert match.score == pytest.approx(expected, rel=1e-5)
    assert [m.score for m in fused] == sorted((m.score for m in fused), reverse=True)
    assert fused[0].id == "d0"  # first in dense, second in BM25: ahead of d2 (first in BM25, last in dense)
    assert set(next(m for m in fused if m.id == "d4").legs) == {"dense"}  # no query word: dense only


def test_weighted_fusion_follows_the_weights(store):
    dense_only = search(store, FirstStage("hybrid", fusion="weighted", weights=(1, 0)))
    assert {m.id for m in dense_only[:2]} == {"d0", "d4"} and dense_only[2].id == "d1"  # d0/d4 tie on cosine
    bm25_only = search(store, FirstStage("hybrid", fusion="weighted", weights=[0, 1]))
    assert [m.id for m in bm25_only][:3] == [m.id for m in search(store, FirstStage("bm25"))]


@pytest.mark.parametrize("fusion", ["relative", "rrf"])
def test_hybrid_legs_search_leg_k_deep(store, fusion):
    """Each leg's top 1: dense's d0, BM25's d2. Relative fusion weights dense's 0.75 above BM25's
    0.25; RRF gives both first places 1 / 61, a tie (in whichever order Milvus returns it)."""
    fused = search(store, FirstStage("hybrid", fusion=fusion, leg_k=1), limit=5)
    assert all(leg.rank == 1 for m in fused for leg in m.legs.values())
    if fusion == "relative":
        assert [(m.id, round(m.score, 6)) for m in fused] == [("d0", 0.75), ("d2", 0.25)]
    else:
        assert {m.id for m in fused} == {"d0", "d2"} and [m.score for m in fused] == pytest.approx([1 / 61] * 2)


def test_auto_is_hybrid_where_the_collection_has_bm25_and_dense_where_not(store, tmp_path):
    assert FirstStage().resolve(store).kind == "hybrid"
    with MilvusStore(str(tmp_path / "old.db"), dimension=2, bm25=False) as old:
        assert not old.has_bm25 and FirstStage().resolve(old).kind == "dense"
    with MilvusStore(str(tmp_path / "old.db"), dimension=2) as reopened:  # the schema decides, not the argument
        assert not reopened.has_bm25
        for kind in ("bm25", "hybrid"):
            with pytest.raises(RerankInputError, match=r"no BM25 field.*ingest into a new collection"):
                FirstStage(kind).resolve(reopened)
        with pytest.raises(RerankInputError, match="no BM25 field"):
            RerankPipeline(reopened, Embedder(), ByLength(), first_stage="bm25")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"kind": "sparse"}, "first_stage must be one of"),
        ({"kind": "hybrid", "fusion": "max"}, "fusion must be one of"),
        ({"kind": "hybrid", "fusion": "weighted", "weights": (0.5, 0.3, 0.2)}, "one weight per leg"),
        ({"kind": "hybrid", "fusion": "weighted", "weights": (0, 0)}, "all 0"),
        ({"kind": "hybrid", "fusion": "weighted", "weights": (1.5, 0)}, r"dense weight must be a number in \[0, 1\]"),
        ({"kind": "hybrid", "fusion": "rrf", "weights": (0.5, 0.5)}, "weights apply to fusion 'relative' or 'weigh"),
        ({"kind": "hybrid", "weights": (0.5,)}, "one weight per leg"),
        ({"kind": "dense", "fusion": "weighted"}, "has one leg"),
        ({"kind": "hybrid", "rrf_k": 0}, "rrf_k must be"),
        ({"kind": "hybrid", "leg_k": 0}, "leg_k must be"),
    ],
)
def test_bad_first_stage_settings_are_refused_before_any_search(settings, message):
    with pytest.raises(RerankInputError, match=message):
        FirstStage(**settings)


@pytest.mark.parametrize("query", ["", "   "])
def test_an_empty_query_is_refused_for_bm25_before_any_search(store, query):
    Embedder.calls = 0
    pipeline = RerankPipeline(store, Embedder(), ByLength(), first_stage="hybrid")
    with pytest.raises(RerankInputError, match="query 0 is empty: BM25 needs words"):
        pipeline.search(query, retrieve_k=5, top_k=2)
    assert Embedder.calls == 0  # refused before the query was embedded


@pytest.mark.parametrize(
    ("analyzer", "message"),
    [
        ("klingon", "unknown analyzer 'klingon'"),
        ({"tokenizer": "standard", "filter": ["lowercase", "snowball"]}, "unknown analyzer filter 'snowball'"),
        ({"filter": ["lowercase"]}, "names no 'tokenizer'"),
        ('{"tokenizer": ', "not a JSON object"),
    ],
)
def test_an_unknown_analyzer_is_refused_before_a_collection_is_made(tmp_path, analyzer, message):
    with pytest.raises(RerankInputError, match=message):
        MilvusStore(str(tmp_path / "x.db"), dimension=2, analyzer=analyzer)
    assert not (tmp_path / "x.db").exists()


def test_milvus_tokenizer_errors_are_named(tmp_path):
    with pytest.raises(StoreError, match="unknown tokenizer type"):
        MilvusStore(str(tmp_path / "x.db"), dimension=2, analyzer={"tokenizer": "whitespace-ish"})


def test_english_stop_words_are_not_matched(store):
    assert retrieve(store, FirstStage("bm25"), ["the of in"], None, limit=5) == [[]]


def test_milvus_bm25_equals_the_exact_bm25_reference(store):
    """Milvus Lite's BM25 (k1 1.2, b 0.75 as the store sets them) scores as bm25s does with the same
    analysis, unstemmed as Lite runs it; bm25s' lucene scores leave out BM25's constant (k1 + 1)."""
    bm25s = pytest.importorskip("bm25s")
    from triton_rerank.analyzers import ENGLISH_STOP_WORDS

    def terms(texts):
        return bm25s.tokenize(
            texts, token_pattern=r"(?u)\b\w+\b", stopwords=ENGLISH_STOP_WORDS, return_ids=False, show_progress=False
        )

    exact = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
    exact.index(terms(list(TEXTS.values())), show_progress=False)
    expected = dict(zip(TEXTS, exact.get_scores(terms([QUERY])[0]), strict=True))
    for match in search(store, FirstStage("bm25")):
        assert match.score == pytest.approx(2.2 * expected[match.id], rel=1e-4)
    assert sum(score > 0 for score in expected.values()) == 3


class Embedder:
    calls = 0

    def encode(self, texts):
        Embedder.calls += 1
        return np.repeat(QUERY_VECTOR, len(texts), axis=0)


class ByLength:
    def score_details(self, query, documents, **options):
        return Scores(np.array([len(d) for d in documents], np.float32))


class AsyncEmbedder(Embedder):
    async def encode(self, texts):
        return super().encode(texts)


class AsyncByLength(ByLength):
    async def score_details(self, query, documents, **options):
        return super().score_details(query, documents, **options)


@pytest.mark.parametrize("first_stage", ["dense", "bm25", "hybrid"])
async def test_the_async_pipeline_equals_the_blocking_one(store, first_stage):
    blocking = RerankPipeline(store, Embedder(), ByLength(), first_stage=first_stage)
    asynchronous = AsyncRerankPipeline(store, AsyncEmbedder(), AsyncByLength(), first_stage=first_stage)
    expected = blocking.search(QUERY, retrieve_k=5, top_k=3)
    got = await asynchronous.search(QUERY, retrieve_k=5, top_k=3)
    assert got.hits == expected.hits and got.candidates == expected.candidates
    for hit in got.hits:  # each hit carries the legs of its candidate, and its place in the first stage
        candidate = got.candidates[hit.first_stage_rank - 1]
        assert (hit.id, hit.legs, hit.first_stage_score) == (candidate.id, candidate.legs, candidate.score)
    lengths = [len(TEXTS[hit.id]) for hit in got.hits]
    assert lengths == sorted(lengths, reverse=True)  # reranked by the reranker, not by the first stage
    if first_stage == "bm25":
        assert all(set(hit.legs) == {"bm25"} for hit in got.hits)
    assert math.isclose(got.hits[0].rerank_score, lengths[0])
