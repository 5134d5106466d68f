"""Documents and their embeddings in Milvus: Milvus Lite by default (a local ``.db`` file), any
Milvus server by URI (``http://host:19530``, with a token), through the same code.

One collection per corpus: ``id`` (VARCHAR primary key), ``text``, ``vector`` (FLOAT_VECTOR,
COSINE), ``metadata`` (JSON) and, unless ``bm25=False``, ``sparse``: Milvus' BM25 function of the
analyzed ``text`` (``triton_rerank.analyzers``) with a sparse inverted index, so the same collection
answers dense, BM25 and hybrid searches (``triton_rerank.first_stage``). Rows are upserted by id, so
writing a document twice keeps one. Needs ``pymilvus`` (and ``milvus-lite`` for local files): the
``milvus`` extra.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np

try:
    from pymilvus import AnnSearchRequest, DataType, Function, FunctionType, MilvusClient, MilvusException
except ImportError as err:  # pragma: no cover - depends on the install
    raise ImportError(f"Milvus needs the 'milvus' extra: pip install 'triton-rerank[milvus]' ({err})") from err

from triton_rerank.analyzers import DEFAULT_ANALYZER, analyzer_params
from triton_rerank.documents import (  # noqa: F401 (Document, LegHit, Match: what the store returns, named here too)
    MAX_ID_LENGTH,
    MAX_LIMIT,
    MAX_TEXT_BYTES,
    Document,
    LegHit,
    Match,
    check_documents,
    check_limit,
    check_text_queries,
)
from triton_rerank.errors import RerankError, RerankInputError

log = logging.getLogger(__name__)

INDEX_PARAMS = {
    "HNSW": {"M": 16, "efConstruction": 200},
    "FLAT": {},
    "IVF_FLAT": {"nlist": 128},
}
SEARCH_PARAMS = {"HNSW": {"ef": 256}, "FLAT": {}, "IVF_FLAT": {"nprobe": 32}}
SPARSE_FIELD = "sparse"  # BM25 term weights, computed by Milvus from ``text``
# pymilvus pings its channel every 10 s, calls or none; Milvus Lite's gRPC server takes a ping every 5
# minutes at most without data, so an idle store earned GOAWAY "too_many_pings" and its next call failed
# (issue 39). Lite is a local socket, with no proxy to keep alive: no pings. Servers allow pymilvus' pings.
LITE_CHANNEL = {"grpc_options": {"grpc.keepalive_time_ms": 2**31 - 1, "grpc.keepalive_permit_without_calls": False}}
# BM25's saturation and length normalisation, set rather than left to defaults that differ: Milvus
# servers default to k1 = 1.2, Milvus Lite 3.2.2 to 1.5. 1.2 / 0.75 are Lucene's and Elasticsearch's.
BM25_PARAMS = {"bm25_k1": 1.2, "bm25_b": 0.75}


class StoreError(RerankError):
    """Milvus is unreachable or refused an operation; the message says which and why."""


class MissingCollectionError(StoreError, RerankInputError):
    """The collection (or the Milvus Lite file) asked for does not exist: a misspelt name, most often."""


def _is_lite_file(uri: str) -> bool:
    """A Milvus Lite database (``documents.db``, a folder), not a server URI: pymilvus' own test."""
    return uri.endswith(".db")


def _without_credentials(uri: str) -> str:
    """``https://user:secret@host:19530`` -> ``https://***@host:19530``: URIs may carry a password."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


class MilvusStore:
    """One Milvus collection of documents.

    Args:
        uri: A local file (``documents.db``: Milvus Lite) or a server URI (``http://host:19530``).
        collection: Collection name.
        create: Whether an absent collection may be made (``ingest`` makes one; ``search`` and the
            API must not: a misspelt name would make an empty collection, and a misspelt Milvus Lite
            path an empty file). False: an absent collection (or file) is a ``MissingCollectionError``
            naming the collections there.
        dimension: Embedding size of a collection made here: by default the size of the first
            vectors written (the embedder's). An existing collection's own size is read from it;
            a ``dimension`` given that differs is refused.
        index: ``HNSW`` (default), ``FLAT`` (exact; fine for small sets) or ``IVF_FLAT``.
        bm25: Give a new collection BM25 full-text search beside the vectors (an existing one keeps
            its schema; ``has_bm25`` says which it is).
        analyzer: How a new collection's text is cut into BM25 terms: ``english`` (default),
            ``standard``, or Milvus' ``analyzer_params`` (see ``triton_rerank.analyzers``).
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
        create: bool = True,
        dimension: int | None = None,
        index: str = "HNSW",
        token: str | None = None,
        consistency: str = "Strong",
        client_options: dict | None = None,
        ca_file: str | None = None,
        bm25: bool = True,
        analyzer: str | dict = DEFAULT_ANALYZER,
    ) -> None:
        if index not in INDEX_PARAMS:
            raise RerankInputError(f"index must be one of {sorted(INDEX_PARAMS)}, got {index!r}")
        self.analyzer = analyzer_params(analyzer) if bm25 else None  # checked before anything is made
        self.has_bm25 = bm25  # an existing collection's own schema decides (``_ensure_collection``)
        self.uri = uri
        self._shown_uri = _without_credentials(uri)  # for messages and logs
        self.collection = collection
        self.dimension = dimension
        self.index = index
        self.consistency = consistency
        self.exists = False  # the collection, once it exists (made now, or at the first write)
        client_options = {
            **(LITE_CHANNEL if _is_lite_file(uri) else {}),
            **({"server_pem_path": ca_file} if ca_file else {}),
            **(client_options or {}),
        }
        if not create and _is_lite_file(uri) and not Path(uri).exists():
            raise MissingCollectionError(f"no Milvus Lite file {uri}: ingest documents into it first")
        try:
            self._client = MilvusClient(uri=uri, token=token or "", **client_options)
        except Exception as err:
            message = str(err).replace(token, "***") if token else str(err)
            raise StoreError(f"cannot open Milvus at {self._shown_uri}: {message}") from err
        self._ensure_collection(create)

    def _call(self, what: str, function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except MilvusException as err:
            raise StoreError(f"Milvus at {self._shown_uri} refused to {what} ({self.collection}): {err}") from err

    def _ensure_collection(self, create: bool) -> None:
        client = self._client
        if not self._call("list collections", client.has_collection, self.collection):
            if not create:
                names = self._call("list collections", client.list_collections)
                raise MissingCollectionError(
                    f"Milvus at {self._shown_uri} has no collection {self.collection!r}; it has: "
                    f"{', '.join(sorted(names)) or 'none'} (ingest documents into it first)"
                )
            if self.dimension is not None:
                self._create()
            return  # else made at the first write, as large as its vectors
        described = self._call("describe the collection", client.describe_collection, self.collection)
        dims = [int(f["params"]["dim"]) for f in described["fields"] if f["name"] == "vector"]
        if dims and self.dimension is not None and dims[0] != self.dimension:
            raise StoreError(
                f"collection {self.collection!r} holds {dims[0]}-d vectors, not {self.dimension}-d: "
                "use another collection for another embedding model"
            )
        self.dimension, self.exists = (dims[0] if dims else self.dimension), True
        self.has_bm25 = any(f["name"] == SPARSE_FIELD for f in described["fields"])  # its schema, not the argument
        self._call("load the collection", client.load_collection, self.collection)

    def _create(self) -> None:
        if not isinstance(self.dimension, int) or isinstance(self.dimension, bool) or self.dimension < 1:
            raise RerankInputError(f"dimension must be a positive int, got {self.dimension!r}")
        schema, index_params = self._schema()
        try:
            self._call(
                "create the collection",
                self._client.create_collection,
                self.collection,
                schema=schema,
                index_params=index_params,
                consistency_level=self.consistency,
            )
        except StoreError as err:
            if not self.has_bm25:
                raise
            raise StoreError(
                f"{err}. BM25 needs Milvus 2.5+ (or Milvus Lite); for an older server make a dense-only "
                "collection (bm25=False, `ingest --no-bm25`)"
            ) from err
        log.info(
            "created collection %s (%d-d, %s, COSINE%s) at %s",
            self.collection,
            self.dimension,
            self.index,
            ", BM25" if self.has_bm25 else "",
            self._shown_uri,
        )
        self.exists = True

    def _schema(self):
        """A new collection's schema and indexes: the dense vector, and BM25 of the text unless bm25=False."""
        schema = self._client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=MAX_ID_LENGTH)
        text = {"enable_analyzer": True, "analyzer_params": self.analyzer} if self.has_bm25 else {}
        schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT_BYTES, **text)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dimension)
        schema.add_field("metadata", DataType.JSON)
        index_params = self._client.prepare_index_params()
        index_params.add_index(
            field_name="vector", index_type=self.index, metric_type="COSINE", params=INDEX_PARAMS[self.index]
        )
        if self.has_bm25:
            schema.add_field(SPARSE_FIELD, DataType.SPARSE_FLOAT_VECTOR)
            schema.add_function(
                Function(
                    name="text_bm25",
                    function_type=FunctionType.BM25,
                    input_field_names=["text"],
                    output_field_names=[SPARSE_FIELD],
                )
            )
            # Nested under "params": pymilvus sends it as one JSON value, which Milvus servers read and
            # which is the only form Milvus Lite 3.2.2 reads (flat keys are ignored there: k1 stays 1.5).
            index_params.add_index(
                field_name=SPARSE_FIELD,
                index_type="SPARSE_INVERTED_INDEX",
                metric_type="BM25",
                params={"params": BM25_PARAMS},
            )
        return schema, index_params

    def upsert(self, documents: Sequence[Document], vectors: np.ndarray) -> int:
        """Write documents with their vectors; an id written before is replaced, not duplicated. The
        first write makes an absent collection, as large as these vectors."""
        if len(documents) != len(vectors):
            raise RerankInputError(f"{len(documents)} documents but {len(vectors)} vectors")
        check_documents(documents)
        vectors = np.asarray(vectors, dtype=np.float32)
        if not self.exists and self.dimension is None and vectors.ndim == 2:
            self.dimension = vectors.shape[1]
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension or not np.isfinite(vectors).all():
            raise RerankInputError(f"vectors must be finite, of shape [n, {self.dimension}]; got {vectors.shape}")
        if not self.exists:
            self._create()
        rows = [
            {"id": d.id, "text": d.text, "vector": v.tolist(), "metadata": d.metadata}
            for d, v in zip(documents, vectors, strict=True)
        ]
        result = self._call("upsert", self._client.upsert, self.collection, rows)
        return int(result.get("upsert_count", len(rows))) if isinstance(result, dict) else len(rows)

    def flush(self) -> None:
        """Seal what was written into segments. After a bulk write, once: Milvus Lite keeps unsealed rows in
        a memtable whose indexes it rebuilds at every search (measured on SciFact's 5,183 documents: 840 ms a
        dense query, 4.6 s a hybrid one, against 51 ms and 133 ms once flushed); servers seal on their own."""
        self._call("flush", self._client.flush, self.collection)

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """Those of ``ids`` already in the collection."""
        if not ids or not self.exists:
            return set()
        rows = self._call("query ids", self._client.get, self.collection, ids=list(ids), output_fields=["id"])
        return {row["id"] for row in rows}

    def count(self) -> int:
        if not self.exists:
            return 0
        rows = self._call("count rows", self._client.query, self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def check_filter(self, filter: str) -> None:
        """Have Milvus read ``filter`` on one row: a filter it refuses is a ``StoreError`` before any search."""
        self._call(
            f"filter by {filter!r}", self._client.query, self.collection, filter=filter, limit=1, output_fields=["id"]
        )

    def ids(self) -> list[str]:
        """Every id in the collection (for checks and small collections)."""
        found: list[str] = []
        if not self.exists:
            return found
        iterator = self._call(
            "iterate ids", self._client.query_iterator, self.collection, batch_size=1000, output_fields=["id"]
        )
        while batch := iterator.next():
            found.extend(row["id"] for row in batch)
        iterator.close()
        return found

    def search(self, vectors: np.ndarray, *, limit: int = 100, filter: str | None = None) -> list[list[Match]]:
        """The ``limit`` nearest documents of each query vector, most similar first."""
        return self._search("search", self.dense_request(vectors, limit=limit, filter=filter))

    def search_text(self, queries: Sequence[str], *, limit: int = 100, filter: str | None = None) -> list[list[Match]]:
        """The ``limit`` best BM25 matches of each query's text, best first."""
        # BM25 scores are >= 0; Milvus Lite 3.2.2 returns them negated (still best first): abs reads both.
        return self._search("search text", self.text_request(queries, limit=limit, filter=filter), score=abs)

    def _search(self, what: str, request, score=float) -> list[list[Match]]:
        """One leg's search, as ``dense_request`` or ``text_request`` (which require the collection) describes it."""
        filter = request.filter
        results = self._call(
            f"{what} (filter {filter!r})" if filter else what,
            self._client.search,
            self.collection,
            data=request.data,
            limit=request.limit,
            filter=filter or "",
            anns_field=request.anns_field,
            output_fields=["text", "metadata"],
            search_params=request.param,
            consistency_level=self.consistency,
        )
        return _matches(results, score)

    def search_hybrid(self, requests: list, ranker, *, limit: int = 100) -> list[list[Match]]:
        """Milvus' fusion (``ranker``: ``RRFRanker`` or ``WeightedRanker``) of the ``requests`` (from
        ``dense_request`` and ``text_request``), best fused score first."""
        check_limit(limit)
        results = self._call(
            "hybrid search",
            self._client.hybrid_search,
            self.collection,
            requests,
            ranker,
            limit=limit,
            output_fields=["text", "metadata"],
            consistency_level=self.consistency,
        )
        return _matches(results)

    def dense_request(self, vectors: np.ndarray, *, limit: int, filter: str | None = None):
        self.require_collection()
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension or not np.isfinite(vectors).all():
            raise RerankInputError(f"query vectors must be finite, of shape [n, {self.dimension}]; got {vectors.shape}")
        check_limit(limit)
        param = {"metric_type": "COSINE", "params": SEARCH_PARAMS[self.index]}
        return AnnSearchRequest(data=vectors.tolist(), anns_field="vector", param=param, limit=limit, filter=filter)

    def require_collection(self) -> None:
        """Refuse a search of a collection that nothing was written to yet."""
        if not self.exists:
            raise MissingCollectionError(
                f"collection {self.collection!r} at {self._shown_uri} holds no documents yet: ingest into it first"
            )

    def require_bm25(self) -> None:
        """Refuse, saying how to get one, where the collection has no BM25 field."""
        if not self.has_bm25:
            raise RerankInputError(
                f"collection {self.collection!r} has no BM25 field: it was written before ingest wrote one, or with "
                "bm25=False. Search it with first_stage='dense', or ingest into a new collection (`triton-rerank "
                "ingest SOURCE --collection NEW`, or drop this one and ingest again) for bm25 and hybrid"
            )

    def text_request(self, queries: Sequence[str], *, limit: int, filter: str | None = None):
        self.require_collection()
        self.require_bm25()
        check_text_queries(queries)
        check_limit(limit)
        return AnnSearchRequest(
            data=list(queries), anns_field=SPARSE_FIELD, param={"metric_type": "BM25"}, limit=limit, filter=filter
        )

    def drop(self) -> None:
        self._call("drop the collection", self._client.drop_collection, self.collection)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> MilvusStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _matches(results, score=float) -> list[list[Match]]:
    return [
        [
            Match(
                id=hit["id"],
                text=hit["entity"]["text"],
                score=float(score(hit["distance"])),
                metadata=hit["entity"]["metadata"] or {},
            )
            for hit in hits
        ]
        for hits in results
    ]
