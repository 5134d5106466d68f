"""evaluate's HTML report, from runs whose per-query nDCG@10 is known: it counts the queries the
reranker helped and hurt, lists the hurt ones worst first, and escapes what it shows."""

from __future__ import annotations

from triton_rerank.evaluation.html_report import per_query, write_html

QRELS = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 1}, "q4": {"z": 0}}  # q4: nothing relevant, left out
QUERIES = {"q1": "first <b>query</b>", "q2": "second", "q3": "third"}
DENSE = {"q1": ["a", "x"], "q2": ["x", "b"], "q3": ["c"]}  # nDCG@10: 1, 0.63, 1
RERANKED = {"q1": ["x", "a"], "q2": ["b", "x"], "q3": ["c"]}  # 0.63, 1, 1
ROWS = {
    "first stage: Milvus FLAT (served)": {"ndcg@10": 0.88, "mrr@10": 0.83, "recall@100": 1.0},
    "reranked: Triton on Milvus top-10 (served)": {"ndcg@10": 0.88, "mrr@10": 0.83, "recall@100": 1.0},
}
REPORT = {"data": "/data/toy", "split": "test", "queries": 3, "documents": 4, "reranker_model": "tiny",
          "reranker_precision": "fp32", "first_stage": ["dense", "bm25"], "retrieve_k": 10,
          "machine": "x86_64", "results": ROWS}  # fmt: skip


def test_per_query_leaves_out_queries_with_nothing_relevant():
    assert set(per_query(DENSE, QRELS)) == {"q1", "q2", "q3"}
    assert per_query(DENSE, QRELS)["q1"] == 1.0


def test_the_report_counts_and_lists_the_queries_the_reranker_hurt(tmp_path):
    page = tmp_path / "report.html"
    bm25 = {"q1": ["a"], "q2": ["b"], "q3": []}
    write_html(page, REPORT, {"dense": DENSE, "bm25": bm25}, {"first": RERANKED, "after bm25": bm25}, QRELS, QUERIES)
    text = page.read_text()
    assert 'helped <b class="helped">1</b> queries, hurt <b class="hurt">1</b>' in text
    assert "1 unchanged" in text.replace("\n", " ")
    hurt = text.split("The queries it hurt most")[1].split("The queries it helped most")[0]
    assert "first &lt;b&gt;query&lt;/b&gt;" in hurt and "second" not in hurt and "-0.3691" in hurt
    assert text.count("<circle") == 3
    assert ">dense<" in text and ">bm25<" in text  # both first stages, alone and reranked
    assert "0.667" in text  # bm25 alone: q1, q2 found first, q3 not: (1 + 1 + 0) / 3
