"""What the store holds and returns: documents, first-stage hits and each leg's view of them, and
the checks that refuse what Milvus would refuse, naming the document. Needs nothing of Milvus, so
readers of collections (``ingest``, ``beir``) use it without the ``milvus`` extra."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from triton_rerank.errors import RerankInputError

MAX_ID_LENGTH = 512
MAX_TEXT_BYTES = 65_535  # Milvus' VARCHAR limit
MAX_LIMIT = 16384  # Milvus' topk limit


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = field(default="", compare=False, repr=False)  # where it was read ("corpus.jsonl:7"), for messages


@dataclass(frozen=True)
class LegHit:
    """Where one leg of a first stage (``dense`` or ``bm25``) put a document: 1-based rank, score."""

    rank: int
    score: float


@dataclass(frozen=True)
class Match:
    """A first-stage hit: the document and its first-stage score (cosine for dense, BM25 for bm25,
    the fused score for hybrid), with each leg's rank and score where that leg found it."""

    id: str
    text: str
    score: float
    metadata: dict[str, Any]
    legs: dict[str, LegHit] = field(default_factory=dict)


def check_documents(documents: Sequence[Document]) -> None:
    """Refuse what Milvus would refuse, naming the document: nothing is cut short silently."""
    for document in documents:
        if not isinstance(document.id, str) or not document.id or len(document.id.encode()) > MAX_ID_LENGTH:
            raise RerankInputError(
                f"document id {document.id!r} must be a non-empty str of at most {MAX_ID_LENGTH} bytes"
            )
        if not isinstance(document.text, str):
            raise RerankInputError(f"document {document.id!r}: text must be a str, got {type(document.text).__name__}")
        size = len(document.text.encode("utf-8", errors="surrogatepass"))
        if size > MAX_TEXT_BYTES:
            raise RerankInputError(f"document {document.id!r} is {size} bytes; Milvus stores at most {MAX_TEXT_BYTES}")


def check_text_queries(queries: Sequence[str]) -> None:
    for i, query in enumerate(queries):
        if not isinstance(query, str) or not query.strip():
            raise RerankInputError(f"query {i} is empty: BM25 needs words to match ({query!r})")


def check_limit(limit: object) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise RerankInputError(f"limit must be an int in 1..{MAX_LIMIT}, got {limit!r}")
