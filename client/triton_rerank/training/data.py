"""What a training run learns from: judged queries over a corpus, read from a BEIR folder, from a
JSONL file of ``{"query", "positives", "negatives"}`` (the format hosted rerank fine-tuning took),
or made from the corpus itself (documents' titles as pseudo-queries, no labels).

Every reader checks what it reads and names the line, query or document that is wrong: a training
set with a hole in it would train quietly on less than the user gave.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from pathlib import Path

from triton_rerank.beir import CollectionError, read_judged, some
from triton_rerank.ingest import jsonl_rows, read_documents

# Cohere's retired fine-tuning format names the same fields otherwise: both are read.
POSITIVE_KEYS = ("positives", "relevant_passages")
NEGATIVE_KEYS = ("negatives", "hard_negatives")
MIN_DEV_QUERIES = 30
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


# The training data is missing, malformed or names what is not there: one error with the collections'.
TrainingDataError = CollectionError


@dataclass
class TrainingData:
    """Queries judged over a corpus. A grade of 0 is a judged negative; the rest are positives."""

    corpus: dict[str, str]  # document id -> the text the reranker reads
    queries: dict[str, str]  # query id -> text
    judgments: dict[str, dict[str, int]]  # query id -> {document id: grade}

    @property
    def max_grade(self) -> int:
        return max(g for judged in self.judgments.values() for g in judged.values())

    def subset(self, query_ids) -> TrainingData:
        return TrainingData(
            self.corpus, {q: self.queries[q] for q in query_ids}, {q: self.judgments[q] for q in query_ids}
        )

    def split(self, fraction: float, seed: int, limit: int) -> tuple[TrainingData, TrainingData]:
        """(train, dev): a seeded ``fraction`` of the queries held out as dev, and no fewer than
        ``MIN_DEV_QUERIES`` (or a third of a smaller set): a dev split of a handful of queries
        picks checkpoints and blend weights by chance. No more than ``limit`` either: every dev
        evaluation reranks each dev query's candidates, so a large collection's tenth would spend the
        budget on evaluations; the queries over it train."""
        ids = sorted(self.queries)
        if len(ids) < 2:
            raise TrainingDataError(f"{len(ids)} judged query: a dev split needs at least 2 (or name --dev-split)")
        size = min(limit, max(1, round(len(ids) * fraction), min(MIN_DEV_QUERIES, len(ids) // 3)))
        dev = set(random.Random(seed).sample(ids, size))
        return self.subset([q for q in ids if q not in dev]), self.subset(sorted(dev))

    def sample(self, limit: int, seed: int) -> TrainingData:
        """At most ``limit`` of the queries, seeded."""
        ids = sorted(self.queries)
        return self if len(ids) <= limit else self.subset(sorted(random.Random(seed).sample(ids, limit)))


def load_beir(folder: Path, split: str, *, skip_unknown_documents: bool = False) -> TrainingData:
    """The queries judged in ``folder/qrels/<split>.tsv``, with the folder's corpus."""
    corpus = {d.id: d.text for d in read_documents(folder)}
    return judged_beir(folder, split, corpus, skip_unknown_documents=skip_unknown_documents)


def judged_beir(folder: Path, split: str, corpus: dict[str, str], *, skip_unknown_documents: bool) -> TrainingData:
    """``split``'s judged queries over ``corpus`` (``beir.read_judged``), each with a positive."""
    unknown = "skip" if skip_unknown_documents else "error"
    queries, judgments = read_judged(Path(folder), split, corpus, unknown_documents=unknown)
    return _checked(TrainingData(corpus, queries, judgments), str(Path(folder) / "qrels" / f"{split}.tsv"))


def load_jsonl(path: Path) -> TrainingData:
    """``{"query", "positives": [...], "negatives": [...]}`` per line (negatives optional); the
    passages become the corpus, each once. A query on several lines has their passages together."""
    corpus: dict[str, str] = {}
    queries: dict[str, str] = {}
    judgments: dict[str, dict[str, int]] = {}
    for number, row in _jsonl_rows(path):
        where = f"{path}:{number}"
        query = row.get("query")
        if not isinstance(query, str) or not query.strip():
            raise TrainingDataError(f"{where}: needs a non-empty 'query' string")
        positives = _passages(row, POSITIVE_KEYS, where, required=True)
        negatives = _passages(row, NEGATIVE_KEYS, where, required=False)
        query_id = _text_id("q", query)
        queries[query_id] = query
        judged = judgments.setdefault(query_id, {})
        for grade, passages in ((0, negatives), (1, positives)):  # a passage given as both counts as positive
            for passage in passages:
                corpus[_text_id("p", passage)] = passage
                judged[_text_id("p", passage)] = grade
    return _checked(TrainingData(corpus, queries, judgments), str(path))


def pseudo_queries(source: Path, limit: int, seed: int, query_prefix: str = "") -> TrainingData:
    """Each sampled document's title (else its first sentence) as a query for its own text, which is
    read without that title or sentence; every document is read so, as corpus and negatives alike.
    ``query_prefix`` keeps the queries' ids (their documents' ids) apart from judged queries' ids."""
    corpus, queries, judgments = {}, {}, {}
    for document in read_documents(source):
        title = str(document.metadata.get("title") or "").strip()
        text = document.text[len(title) :].strip() if title and document.text.startswith(title) else document.text
        if not title:
            title, text = _first_sentence(text)
        if not text.strip():
            continue
        corpus[document.id] = text
        if title.strip():
            queries[document.id] = title
    if not queries:
        raise TrainingDataError(f"{source}: no document has a title or more than one sentence to make a query of")
    chosen = sorted(random.Random(seed).sample(sorted(queries), min(limit, len(queries))))
    for document_id in chosen:
        judgments[query_prefix + document_id] = {document_id: 1}
    return TrainingData(corpus, {query_prefix + d: queries[d] for d in chosen}, judgments)


def _first_sentence(text: str) -> tuple[str, str]:
    """(first sentence, the rest); ("", text) for a text of one sentence."""
    parts = SENTENCE_END.split(text.strip(), maxsplit=1)
    return (parts[0], parts[1]) if len(parts) == 2 else ("", text)


def _jsonl_rows(path: Path):
    if not path.is_file():
        raise TrainingDataError(f"{path} does not exist")
    rows = 0
    for number, row in jsonl_rows(path, TrainingDataError):
        if not isinstance(row, dict):
            raise TrainingDataError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
        rows += 1
        yield number, row
    if not rows:
        raise TrainingDataError(f"{path} is empty")


def _passages(row: dict, keys: tuple[str, str], where: str, *, required: bool) -> list[str]:
    present = [key for key in keys if key in row]
    if not present:
        if required:
            raise TrainingDataError(f"{where}: needs '{keys[0]}', a non-empty list of passages")
        return []
    passages = row[present[0]]
    if not isinstance(passages, list) or not all(isinstance(p, str) and p.strip() for p in passages):
        raise TrainingDataError(f"{where}: '{present[0]}' must be a list of non-empty strings")
    if required and not passages:
        raise TrainingDataError(f"{where}: '{present[0]}' is empty: a query needs at least one positive")
    return passages


def _text_id(prefix: str, text: str) -> str:
    return prefix + hashlib.sha1(text.encode()).hexdigest()[:16]


def _checked(data: TrainingData, source: str) -> TrainingData:
    if not data.judgments:
        raise TrainingDataError(f"{source}: no judged query")
    without = [q for q, judged in data.judgments.items() if not any(g > 0 for g in judged.values())]
    if without:
        raise TrainingDataError(f"{source}: {len(without)} queries have no positive judgment: {some(without)}")
    return data
