"""Documents and their embeddings in Milvus: Milvus Lite by default (a local ``.db`` file), any
Milvus server by URI (``http://host:19530``, with a token), through the same code.

One collection per corpus: ``id`` (VARCHAR primary key), ``text``, ``vector`` (FLOAT_VECTOR,
COSINE) and ``metadata`` (JSON). Rows are upserted by id, so writing a document twice keeps one.
Needs ``pymilvus`` (and ``milvus-lite`` for local files): the ``milvus`` extra.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

try:
    from pymilvus import DataType, MilvusClient, MilvusException
except ImportError as err:  # pragma: no cover - depends on the install
    raise ImportError(f"Milvus needs the 'milvus' extra: pip install 'triton-rerank[milvus]' ({err})") from err

from triton_rerank.errors import RerankError, RerankInputError

log = logging.getLogger(__name__)

MAX_ID_LENGTH = 512
MAX_TEXT_BYTES = 65_535  # Milvus' VARCHAR limit
INDEX_PARAMS = {
    "HNSW": {"M": 16, "efConstruction": 200},
    "FLAT": {},
    "IVF_FLAT": {"nlist": 128},
}
SEARCH_PARAMS = {"HNSW": {"ef": 256}, "FLAT": {}, "IVF_FLAT": {"nprobe": 32}}


class StoreError(RerankError):
    """Milvus is unreachable or refused an operation; the message says which and why."""


def _without_credentials(uri: str) -> str:
    """``https://user:secret@host:19530`` -> ``https://***@host:19530``: URIs may carry a password."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Match:
    """A first-stage hit: the document and its cosine similarity to the query."""

    id: str
    text: str
    score: float
    metadata: dict[str, Any]


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


class MilvusStore:
    """One Milvus collection of documents.

    Args:
        uri: A local file (``documents.db``: Milvus Lite) or a server URI (``http://host:19530``).
        collection: Collection name.
        dimension: Embedding size; the collection is created with it when absent.
        index: ``HNSW`` (default), ``FLAT`` (exact; fine for small sets) or ``IVF_FLAT``.
        token: Milvus token (``user:password`` or an API key) for a server; never shown in errors.
        consistency: Milvus consistency level; ``Strong`` reads its own writes.
        client_options: Passed on to ``pymilvus.MilvusClient``: TLS with a private CA, say
            ``{"server_pem_path": "ca.pem", "server_name": "milvus.example.com"}`` (an ``https://``
            URI alone turns TLS on with the system's CAs).
        ca_file: The CA certificate (PEM) of a server with TLS by a private CA: ``client_options``'
            ``server_pem_path``, as the command line's ``--milvus-ca-file`` gives it.
    """

    def __init__(
        self,
        uri: str = "documents.db",
        *,
        collection: str = "documents",
        dimension: int = 384,
        index: str = "HNSW",
        token: str | None = None,
        consistency: str = "Strong",
        client_options: dict | None = None,
        ca_file: str | None = None,
    ) -> None:
        if index not in INDEX_PARAMS:
            raise RerankInputError(f"index must be one of {sorted(INDEX_PARAMS)}, got {index!r}")
        self.uri = uri
        self._shown_uri = _without_credentials(uri)  # for messages and logs
        self.collection = collection
        self.dimension = dimension
        self.index = index
        self.consistency = consistency
        client_options = {**({"server_pem_path": ca_file} if ca_file else {}), **(client_options or {})}
        try:
            self._client = MilvusClient(uri=uri, token=token or "", **client_options)
        except Exception as err:
            message = str(err).replace(token, "***") if token else str(err)
            raise StoreError(f"cannot open Milvus at {self._shown_uri}: {message}") from err
        self._ensure_collection()

    def _call(self, what: str, function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except MilvusException as err:
            raise StoreError(f"Milvus at {self._shown_uri} refused to {what} ({self.collection}): {err}") from err

    def _ensure_collection(self) -> None:
        client = self._client
        if self._call("list collections", client.has_collection, self.collection):
            described = self._call("describe the collection", client.describe_collection, self.collection)
            dims = [f["params"].get("dim") for f in described["fields"] if f["name"] == "vector"]
            if dims and int(dims[0]) != self.dimension:
                raise StoreError(
                    f"collection {self.collection!r} holds {dims[0]}-d vectors, not {self.dimension}-d: "
                    "use another collection for another embedding model"
                )
            self._call("load the collection", client.load_collection, self.collection)
            return
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=MAX_ID_LENGTH)
        schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT_BYTES)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dimension)
        schema.add_field("metadata", DataType.JSON)
        index_params = client.prepare_index_params()
        index_params.add_index(
            field_name="vector", index_type=self.index, metric_type="COSINE", params=INDEX_PARAMS[self.index]
        )
        self._call(
            "create the collection",
            client.create_collection,
            self.collection,
            schema=schema,
            index_params=index_params,
            consistency_level=self.consistency,
        )
        log.info(
            "created collection %s (%d-d, %s, COSINE) at %s",
            self.collection,
            self.dimension,
            self.index,
            self._shown_uri,
        )

    def upsert(self, documents: Sequence[Document], vectors: np.ndarray) -> int:
        """Write documents with their vectors; an id written before is replaced, not duplicated."""
        if len(documents) != len(vectors):
            raise RerankInputError(f"{len(documents)} documents but {len(vectors)} vectors")
        check_documents(documents)
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension or not np.isfinite(vectors).all():
            raise RerankInputError(f"vectors must be finite, of shape [n, {self.dimension}]; got {vectors.shape}")
        rows = [
            {"id": d.id, "text": d.text, "vector": v.tolist(), "metadata": d.metadata}
            for d, v in zip(documents, vectors, strict=True)
        ]
        result = self._call("upsert", self._client.upsert, self.collection, rows)
        return int(result.get("upsert_count", len(rows))) if isinstance(result, dict) else len(rows)

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """Those of ``ids`` already in the collection."""
        if not ids:
            return set()
        rows = self._call("query ids", self._client.get, self.collection, ids=list(ids), output_fields=["id"])
        return {row["id"] for row in rows}

    def count(self) -> int:
        rows = self._call("count rows", self._client.query, self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def ids(self) -> list[str]:
        """Every id in the collection (for checks and small collections)."""
        found: list[str] = []
        iterator = self._call(
            "iterate ids", self._client.query_iterator, self.collection, batch_size=1000, output_fields=["id"]
        )
        while batch := iterator.next():
            found.extend(row["id"] for row in batch)
        iterator.close()
        return found

    def search(self, vectors: np.ndarray, *, limit: int = 100, filter: str | None = None) -> list[list[Match]]:
        """The ``limit`` nearest documents of each query vector, most similar first."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension or not np.isfinite(vectors).all():
            raise RerankInputError(f"query vectors must be finite, of shape [n, {self.dimension}]; got {vectors.shape}")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 16384:
            raise RerankInputError(f"limit must be an int in 1..16384, got {limit!r}")
        results = self._call(
            f"search (filter {filter!r})" if filter else "search",
            self._client.search,
            self.collection,
            data=vectors.tolist(),
            limit=limit,
            filter=filter or "",
            anns_field="vector",
            output_fields=["text", "metadata"],
            search_params={"metric_type": "COSINE", "params": SEARCH_PARAMS[self.index]},
            consistency_level=self.consistency,
        )
        return [
            [
                Match(
                    id=hit["id"],
                    text=hit["entity"]["text"],
                    score=float(hit["distance"]),
                    metadata=hit["entity"]["metadata"] or {},
                )
                for hit in hits
            ]
            for hits in results
        ]

    def drop(self) -> None:
        self._call("drop the collection", self._client.drop_collection, self.collection)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> MilvusStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
