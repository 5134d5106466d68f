"""What the benchmarks send: requests of one query and N documents, from TREC DL 2019 when its
folder is present, else synthetic passages."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WORDS = (
    "protein cell immune response vaccine virus antibody gene expression tumor growth patients trial "
    "dose risk blood pressure heart disease brain neurons memory learning model data analysis method "
    "results study effect increase decrease level significant treatment therapy clinical outcome"
).split()


@dataclass(frozen=True)
class Request:
    query: str
    documents: list[str]

    @property
    def pairs(self) -> int:
        return len(self.documents)


def load_requests(data: Path | None, n: int, count: int, seed: int = 0) -> list[Request]:
    """``count`` requests of one query and ``n`` documents each, a different query in turn.

    With DL19: each query's BM25 top-100 in rank order (more documents than that: those of the
    next queries follow). Without it: synthetic passages of 40-120 words.
    """
    if data is not None and (data / "bm25_top100.trec").exists():
        queries = {row["_id"]: row["text"] for row in map(json.loads, (data / "queries.jsonl").open())}
        passages = {row["_id"]: row["text"] for row in map(json.loads, (data / "corpus.jsonl").open())}
        ranked: dict[str, list[str]] = {}
        for line in (data / "bm25_top100.trec").open():
            qid, _, docid, *_ = line.split()
            ranked.setdefault(qid, []).append(passages[docid])
        order = list(ranked)
        requests = []
        for i in range(count):
            documents: list[str] = []
            for qid in order[i % len(order) :] + order[: i % len(order)]:
                documents += ranked[qid]
                if len(documents) >= n:
                    break
            requests.append(Request(queries[order[i % len(order)]], documents[:n]))
        return requests
    rng = np.random.default_rng(seed)
    return [Request(" ".join(rng.choice(WORDS, size=6)), synthetic_passages(n, rng)) for _ in range(count)]


def synthetic_passages(count: int, rng: np.random.Generator | int = 0) -> list[str]:
    """``count`` passages of 40-120 words from a small scientific vocabulary (speed depends on
    length, not on meaning)."""
    rng = np.random.default_rng(rng)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(40, 121)))) for _ in range(count)]


def tokens_per_pair(tokenizer_json: Path, requests: list[Request], render=None) -> dict:
    """Tokens per (query, document) pair as the served tokenizer counts them (truncated, unpadded);
    ``render(query, document)``: an LLM reranker's prompt, which the tokenizer step reads instead."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    tokenizer.no_padding()
    rows = [render(r.query, d) if render else (r.query, d) for r in requests for d in r.documents]
    lengths = [len(e.ids) for e in tokenizer.encode_batch(rows)]
    return {"mean": float(np.mean(lengths)), "p50": float(np.median(lengths)), "p95": float(np.percentile(lengths, 95))}
