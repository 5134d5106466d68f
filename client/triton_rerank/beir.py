"""BEIR collections, read and checked in one place for everything that reads them (``evaluate``,
``train``, the benchmarks): ``corpus.jsonl[.gz]``, ``queries.jsonl`` and ``qrels/<split>.tsv``
(tab-separated ``query-id``, ``corpus-id``, ``score``). Every reader names the file, line, query or
document that is wrong, as ``CollectionError``: a collection with a hole in it would evaluate or
train quietly on less than the user gave.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from triton_rerank.documents import Document
from triton_rerank.errors import RerankInputError
from triton_rerank.ingest import jsonl_rows, read_documents

QRELS_HEADER = ("query-id", "corpus-id", "score")
# What to do with a judgment of a document the corpus lacks (a corpus that is a pool of a larger one):
# refuse it, leave it out, or keep it (an evaluation's ideal ranking still counts it).
UnknownDocuments = Literal["error", "skip", "keep"]


class CollectionError(RerankInputError):
    """A collection is missing a file, is malformed, or names what is not there."""


@dataclass(frozen=True)
class Collection:
    """A corpus, the queries judged in one split, and their judgments (query -> {document: grade})."""

    documents: list[Document]
    queries: dict[str, str]
    judgments: dict[str, dict[str, int]]


def load_beir(
    folder: Path, split: str, *, max_queries: int | None = None, unknown_documents: UnknownDocuments = "keep"
) -> Collection:
    """The corpus and the queries judged in ``split`` (the first ``max_queries`` by id, if given)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CollectionError(f"{folder} is not a folder: a BEIR collection holds corpus.jsonl, queries.jsonl, qrels/")
    documents = list(read_documents(folder))
    queries, judgments = read_judged(folder, split, {d.id for d in documents}, unknown_documents=unknown_documents)
    ids = sorted(judgments)[:max_queries] if max_queries else sorted(judgments)
    return Collection(documents, {q: queries[q] for q in ids}, {q: judgments[q] for q in ids})


def read_judged(
    folder: Path, split: str, corpus_ids, *, unknown_documents: UnknownDocuments = "error"
) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """The queries judged in ``folder/qrels/<split>.tsv`` and their judgments, over a corpus whose
    ids are ``corpus_ids``."""
    qrels_path, queries_path = folder / "qrels" / f"{split}.tsv", folder / "queries.jsonl"
    for path in (queries_path, qrels_path):
        if not path.is_file():
            splits = sorted(p.stem for p in (folder / "qrels").glob("*.tsv")) if (folder / "qrels").is_dir() else []
            have = f" (its splits: {', '.join(splits)})" if splits and path == qrels_path else ""
            raise CollectionError(
                f"{path} is missing{have}: a BEIR folder holds corpus.jsonl, queries.jsonl, qrels/<split>.tsv"
            )
    queries = read_queries(queries_path)
    judgments: dict[str, dict[str, int]] = {}
    unknown_queries, unknown = [], []
    for query, document, grade in _qrels_rows(qrels_path):
        if query not in queries:
            unknown_queries.append(query)
        elif document not in corpus_ids and unknown_documents != "keep":
            unknown.append(document)
        else:
            judgments.setdefault(query, {})[document] = grade
    if unknown_queries:
        raise CollectionError(
            f"{qrels_path} names {len(unknown_queries)} queries not in {queries_path}: {some(unknown_queries)}"
        )
    if unknown and unknown_documents == "error":
        raise CollectionError(
            f"{qrels_path} names {len(unknown)} documents not in the corpus: {some(unknown)} "
            "(a corpus that is a pool of a larger one: pass --skip-unknown-documents to train without them)"
        )
    if not judgments:
        raise CollectionError(f"{qrels_path}: no judged query (of {queries_path})")
    return {q: queries[q] for q in judgments}, judgments


def read_queries(path: Path) -> dict[str, str]:
    """``{"_id", "text"}`` per line: query id -> text."""
    queries = {}
    for number, row in jsonl_rows(path, CollectionError):
        row = row if isinstance(row, dict) else {}
        if not isinstance(row.get("_id"), str | int) or not isinstance(row.get("text"), str):
            raise CollectionError(f"{path}:{number}: needs '_id' and 'text'")
        queries[str(row["_id"])] = row["text"]
    return queries


def _qrels_rows(path: Path) -> Iterator[tuple[str, str, int]]:
    """(query id, document id, grade) for each judgment, checked."""
    try:
        with path.open(encoding="utf-8", newline="") as lines:
            reader = csv.DictReader(lines, delimiter="\t")
            if not set(QRELS_HEADER) <= set(reader.fieldnames or ()):
                raise CollectionError(f"{path}: needs the header {', '.join(QRELS_HEADER)} (tab-separated)")
            for number, row in enumerate(reader, 2):
                if None in row.values():
                    raise CollectionError(f"{path}:{number}: expected {len(reader.fieldnames)} tab-separated fields")
                try:
                    grade = int(row["score"])
                except ValueError:
                    raise CollectionError(f"{path}:{number}: score {row['score']!r} is not an integer") from None
                if grade < 0:
                    raise CollectionError(f"{path}:{number}: score {grade} is negative")
                yield row["query-id"], row["corpus-id"], grade
    except UnicodeDecodeError as err:
        raise CollectionError(f"{path} is not UTF-8 text: {err}") from None


def some(names: list[str], shown: int = 5) -> str:
    """A few of ``names`` for a message, and how many more there are."""
    names = list(dict.fromkeys(names))
    return ", ".join(map(repr, names[:shown])) + (f" and {len(names) - shown} more" if len(names) > shown else "")
