"""The first stage training mines from and reranks on dev: the user's own Milvus collection,
searched as their pipeline searches it, or the data's corpus searched in-process with the default
bi-encoder when no collection is named. Both answer the same two questions: the best ``k``
documents of each query with their first-stage scores (what the blend reads), and the embedder's
cosine of given documents, which the mining guard compares (a judged positive's sets the margin
its negatives must keep)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

Hits = list[tuple[str, float]]  # (document id, first-stage score), best first


class FirstStage(Protocol):
    name: str

    def search(self, queries: list[str], k: int) -> list[Hits]: ...

    def scores(self, query: str, document_ids: list[str]) -> dict[str, float]: ...


class InProcessDense:
    """Exact cosine search over ``corpus`` with a sentence-transformers bi-encoder."""

    def __init__(self, corpus: dict[str, str], model: str) -> None:
        from sentence_transformers import SentenceTransformer

        from triton_rerank.model_sources import resolve_model

        self.name = f"dense ({model}, in-process)"
        self._embedder = SentenceTransformer(resolve_model(model), device="cpu")
        self._ids = list(corpus)
        self._row = {doc: n for n, doc in enumerate(self._ids)}
        self._vectors = self._encode([corpus[d] for d in self._ids], progress=True)

    def _encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        return self._embedder.encode(texts, normalize_embeddings=True, batch_size=64, show_progress_bar=progress)

    def search(self, queries: list[str], k: int) -> list[Hits]:
        similarity = self._encode(queries) @ self._vectors.T
        top = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
        return [[(self._ids[i], float(similarity[n, i])) for i in row] for n, row in enumerate(top)]

    def scores(self, query: str, document_ids: list[str]) -> dict[str, float]:
        similarity = self._vectors[[self._row[d] for d in document_ids]] @ self._encode([query])[0]
        return dict(zip(document_ids, map(float, similarity), strict=True))


class MilvusFirstStage:
    """The collection ``ingest`` wrote, searched as the pipeline searches it (``stage``: dense, BM25
    or hybrid, resolved against the collection), queries embedded by the served embedder. Its
    documents' texts join ``corpus`` as they are found, so negatives the data never named can still
    be read."""

    def __init__(self, store, stage, embed: Callable[[list[str]], np.ndarray], corpus: dict[str, str]) -> None:
        self.name = f"{stage.name} (Milvus collection {store.collection!r})"
        self._store, self._stage, self._embed, self._corpus = store, stage, embed, corpus
        self._vectors: dict[str, np.ndarray] = {}  # document id -> unit vector, for scores()

    def search(self, queries: list[str], k: int) -> list[Hits]:
        from triton_rerank.first_stage import retrieve

        found = []
        for start in range(0, len(queries), 64):
            batch = queries[start : start + 64]
            vectors = self._embed(batch) if self._stage.needs_vectors else None
            for matches in retrieve(self._store, self._stage, batch, vectors, limit=k):
                self._corpus.update((m.id, m.text) for m in matches if m.id not in self._corpus)
                found.append([(m.id, m.score) for m in matches])
        return found

    def scores(self, query: str, document_ids: list[str]) -> dict[str, float]:
        """Cosine of the embedder's vectors, whatever the stage: the data's positives need not be in
        the collection under the same ids (a JSONL file has none), and a BM25 or fused score means
        nothing for a document the search did not return."""
        missing = list(dict.fromkeys(d for d in document_ids if d not in self._vectors))
        vectors = _unit(self._embed([query] + [self._corpus[d] for d in missing]))
        self._vectors.update(zip(missing, vectors[1:], strict=True))
        return {d: float(self._vectors[d] @ vectors[0]) for d in document_ids}


def _unit(vectors) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
