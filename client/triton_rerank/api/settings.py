"""What the rerank API is started with; a plain dataclass, so that ``triton-rerank --help`` needs
none of the service's packages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from triton_rerank.endpoints import DEFAULT_URL

API_KEY_ENV = "RERANK_API_KEY"  # the key this service asks callers for (Authorization: Bearer ...)
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
    default_model: str = _setting("reranker", "the Triton ensemble a request that names no model gets")
    aliases: dict[str, str] = field(
        default_factory=dict,
        metadata={"help": "other names for served models (--model-alias NAME=MODEL)", "cli": False},
    )
    max_documents: int = _setting(COHERE_MAX_DOCUMENTS, "most documents per request (more are refused)")
    max_body_bytes: int = _setting(10 * 2**20, "largest request body, in bytes (larger: 413)")
    max_concurrent_requests: int = _setting(512, "requests handled at once; more are answered 429 at once")
    auto_truncate: bool = _setting(True, "TEI requests without 'truncate' are truncated (else refused when too long)")
    long_documents: Literal["first", "max", "mean", "error"] = _setting(
        "first",
        "a document longer than the model reads: first = truncated (CrossEncoder.predict's scores), max / mean = "
        "read in overlapping windows and scored by the best / the mean, error = refused; a request's "
        "long_documents field overrides it",
    )
    max_chunks_per_doc: int = _setting(32, "most windows per document with max / mean")
    timeout_s: float = _setting(60.0, "Triton request timeout")
    batch_size: int | None = _setting(None, "documents per Triton request (default: the client's, capped by Triton)")
    api_key: str | None = _setting(None, f"the key callers must send (from ${API_KEY_ENV} only)", cli=False)
