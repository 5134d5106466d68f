"""A long-document variant of a BEIR collection, where truncation matters: each judged document is
placed at a random position among other, unjudged documents of the collection until it is 1,000 to
3,000 tokens long (by the reranker's own tokenizer). Queries and judgements stay as they are, and
every other document keeps its text, so a reranker that reads only a document's start loses the
judged passage while one that reads every window can find it. Deterministic for a seed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from triton_rerank.ingest import read_documents


def make_long_texts(
    texts: dict[str, str],
    judged: set[str],
    count_tokens,
    *,
    seed: int = 0,
    min_tokens: int = 1000,
    max_tokens: int = 3000,
) -> dict[str, str]:
    """The new text of each judged document: at most ``max_tokens`` tokens (``count_tokens``, the
    parts counted apart) and, unless no unjudged document fits, at least a length drawn between
    ``min_tokens`` and ``max_tokens``, made of unjudged documents with the judged one among them at a
    random position. Other documents are not returned (they keep their text)."""
    rng = np.random.default_rng(seed)
    fillers = sorted(set(texts) - judged)
    if not fillers:
        raise ValueError("no unjudged documents to build long documents from")
    lengths: dict[str, int] = {}
    out = {}
    for doc_id in sorted(judged & set(texts)):
        target = int(rng.integers(min_tokens, max_tokens + 1))
        parts, total, misses = [], count_tokens(texts[doc_id]), 0
        while total < target and misses < 50:
            filler = fillers[int(rng.integers(len(fillers)))]
            if filler not in lengths:
                lengths[filler] = count_tokens(texts[filler])
            if total + lengths[filler] > max_tokens:  # too long to fit: another one
                misses += 1
                continue
            parts.append(texts[filler])
            total += lengths[filler]
        parts.insert(int(rng.integers(len(parts) + 1)), texts[doc_id])
        out[doc_id] = "\n\n".join(parts)
    return out


def write_long_beir(source: Path, target: Path, tokenizer_json: Path, split: str = "test", seed: int = 0) -> dict:
    """``source`` (a BEIR folder) copied to ``target`` with the documents judged in ``split`` made
    long (``make_long_texts``, counted by ``tokenizer_json``); returns a summary."""
    import csv

    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    tokenizer.no_truncation()
    tokenizer.no_padding()

    def count_tokens(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    documents = list(read_documents(source))
    with (source / "qrels" / f"{split}.tsv").open() as lines:
        qrels = list(csv.DictReader(lines, delimiter="\t"))
    judged = {row["corpus-id"] for row in qrels if int(row["score"]) > 0}
    long_texts = make_long_texts({d.id: d.text for d in documents}, judged, count_tokens, seed=seed)
    (target / "qrels").mkdir(parents=True, exist_ok=True)
    with (target / "corpus.jsonl").open("w") as out:
        for d in documents:
            out.write(json.dumps({"_id": d.id, "title": "", "text": long_texts.get(d.id, d.text)}) + "\n")
    (target / "queries.jsonl").write_bytes((source / "queries.jsonl").read_bytes())
    (target / "qrels" / f"{split}.tsv").write_bytes((source / "qrels" / f"{split}.tsv").read_bytes())
    tokens = [count_tokens(text) for text in long_texts.values()]
    return {
        "documents": len(documents),
        "made_long": len(long_texts),
        "tokens_min": min(tokens),
        "tokens_median": int(np.median(tokens)),
        "tokens_max": max(tokens),
        "seed": seed,
    }
