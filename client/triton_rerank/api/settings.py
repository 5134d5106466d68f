"""What the rerank API is started with; a plain dataclass, so that ``triton-rerank --help`` needs
none of the service's packages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import triton_rerank.protocol as protocol
from triton_rerank.endpoints import DEFAULT_URL
from triton_rerank.errors import RerankInputError

RERANK_API_KEY_ENV = "RERANK_API_KEY"  # the key this service asks callers for (Authorization: Bearer ...)
COHERE_MAX_DOCUMENTS = 1000  # Cohere's documented limit per request


def _setting(default, help_text: str, *, cli: bool = True):
    return field(default=default, metadata={"help": help_text, "cli": cli})


@dataclass(frozen=True, kw_only=True)
class ApiSettings:
    """What the service is started with (``triton-rerank api --help`` shows each field's help)."""

    # --triton-url is the flag every command shares (with $TRITON_RERANK_URL), not declared again here.
    triton_url: str = _setting(DEFAULT_URL, "Triton server(s), grpc://... or http://...", cli=False)
    host: str = _setting("127.0.0.1", "address to bind (loopback only by default)")
    port: int = _setting(8080, "port to listen on")
    default_model: str = _setting(protocol.RERANKER, "the Triton ensemble a request that names no model gets")
    aliases: dict[str, str] = field(
        default_factory=dict,
        metadata={"help": "other names for served models (--model-alias NAME=MODEL)", "cli": False},
    )
    max_documents: int = _setting(COHERE_MAX_DOCUMENTS, "most documents per request (more are refused)")
    max_body_bytes: int = _setting(10 * 2**20, "largest request body, in bytes (larger: 413)")
    body_timeout_s: float = _setting(
        30.0, "a request body not read whole within this many seconds is refused (408): a slow client holds no slot"
    )
    max_concurrent_requests: int = _setting(512, "requests handled at once; more are answered 429 at once")
    max_concurrent_rows: int = _setting(
        8192,
        "rows (pairs, or windows of long documents) on Triton at once, over every request; a request that does "
        "not fit is answered 429 at once, never queued",
    )
    auto_truncate: bool = _setting(True, "TEI requests without 'truncate' are truncated (else refused when too long)")
    long_documents: Literal["first", "max", "mean", "error"] = _setting(
        protocol.DEFAULT_LONG_DOCUMENTS,
        "a document longer than the model reads: first = truncated (CrossEncoder.predict's scores), max / mean = "
        "read in overlapping windows and scored by the best / the mean, error = refused; a request's "
        "long_documents field overrides it, among --allowed-long-documents",
    )
    allowed_long_documents: str = _setting(
        ",".join(protocol.LONG_DOCUMENT_POLICIES),
        "the long_documents policies a request may ask for, separated by commas (others: 400); the service's "
        "own --long-documents is always allowed",
    )
    max_chunks_per_doc: int = _setting(protocol.DEFAULT_MAX_CHUNKS_PER_DOC, "most windows per document with max / mean")
    max_rows_per_request: int = _setting(
        4096,
        "most rows a request may become on Triton: a document is one row, or up to --max-chunks-per-doc windows "
        "when it may be longer than the model reads with max / mean (over it: 400)",
    )
    score_cache: str | None = _setting(
        None,
        "memory, or a redis:// URL shared by replicas: score each (query, document) pair of a model version and "
        "options once, and answer it again from the cache (default: off)",
    )
    score_cache_mb: int = _setting(256, "with --score-cache memory: its size, in MiB (least recent pairs out first)")
    milvus_uri: str | None = _setting(
        None, "a Milvus Lite file or a server URI whose --collection POST /v1/search searches (default: route off)"
    )
    collection: str = _setting("documents", "with --milvus-uri: the collection /v1/search searches by default")
    qrels: str | None = _setting(
        None, "a BEIR qrels file (<folder>/qrels/<split>.tsv) whose judgements the /playground page marks hits with"
    )
    log_format: Literal["text", "json"] = _setting(
        "text", "text, or json: one JSON object per line (time, level, request_id, trace_id, route, status, ms, ...)"
    )
    timeout_s: float = _setting(60.0, "Triton request timeout")
    batch_size: int | None = _setting(None, "documents per Triton request (default: the client's, capped by Triton)")
    milvus_token: str | None = field(
        default=None, repr=False, metadata={"help": "the Milvus server's token (from $MILVUS_TOKEN only)", "cli": False}
    )
    # Never in a repr: settings get logged.
    api_key: str | None = field(
        default=None,
        repr=False,
        metadata={"help": f"the key callers must send (from ${RERANK_API_KEY_ENV} only)", "cli": False},
    )

    def __post_init__(self) -> None:
        unknown = set(self.allowed_policies()) - set(protocol.LONG_DOCUMENT_POLICIES)
        if unknown:
            policies = ", ".join(protocol.LONG_DOCUMENT_POLICIES)
            raise RerankInputError(f"--allowed-long-documents: unknown policies {sorted(unknown)}; they are {policies}")
        for name in (
            "max_documents",
            "max_body_bytes",
            "max_concurrent_requests",
            "max_concurrent_rows",
            "max_chunks_per_doc",
            "score_cache_mb",
        ):
            if getattr(self, name) < 1:
                raise RerankInputError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not self.body_timeout_s > 0:
            raise RerankInputError(f"--body-timeout-s must be more than 0, got {self.body_timeout_s}")
        if self.max_concurrent_rows < max(self.max_rows_per_request, self.max_documents):
            raise RerankInputError(
                f"--max-concurrent-rows ({self.max_concurrent_rows}) must be at least --max-rows-per-request "
                f"({self.max_rows_per_request}) and --max-documents ({self.max_documents}): the largest request "
                "would never be admitted"
            )
        if self.max_rows_per_request < self.max_chunks_per_doc:
            raise RerankInputError(
                f"--max-rows-per-request ({self.max_rows_per_request}) must be at least --max-chunks-per-doc "
                f"({self.max_chunks_per_doc}): one long document would never fit"
            )

    def allowed_policies(self) -> tuple[str, ...]:
        """The long-document policies a request may choose: the allowed ones and the service's own."""
        listed = [p.strip() for p in self.allowed_long_documents.split(",") if p.strip()]
        return tuple(dict.fromkeys([*listed, self.long_documents]))
