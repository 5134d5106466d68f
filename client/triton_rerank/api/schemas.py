"""The request bodies of the rerank APIs this service speaks, as each reference defines them, and
how each answers an error.

    POST /v2/rerank   Cohere v2        {model, query, documents: [str], top_n, max_tokens_per_doc}
    POST /v1/rerank   Jina / vLLM      {model, query, documents: [str | {text}], top_n, return_documents}
    POST /rerank      TEI              {query, texts, raw_scores, return_text, truncate, truncation_direction}
                      or vLLM's shape  (a body with ``documents`` instead of ``texts``; Milvus' vllm provider)

Types are strict (``"3"`` is not an int, ``1`` is not a bool) and unknown fields are ignored, as the
references do. Fields a reference defines that this service cannot honour are accepted and ignored
only where ignoring them cannot change a score (see docs/api.md).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class Body(BaseModel):
    """What every request body shares: strict types, unknown fields ignored, and two fields of ours
    that the references lack (ignored by their servers): how a document longer than the model
    reads is scored (``triton-rerank api --long-documents`` when left out), and an LLM reranker's
    instruction (the export's when left out)."""

    model_config = ConfigDict(strict=True, extra="ignore")
    long_documents: Literal["first", "max", "mean", "error"] | None = None
    instruction: str | None = None


class CohereRerank(Body):
    """Cohere's ``POST /v2/rerank``."""

    model: str
    query: str
    documents: list[str]
    top_n: int | None = Field(default=None, ge=1)
    max_tokens_per_doc: int | None = Field(default=None, ge=1)  # Cohere's default: 4096
    priority: int | None = None  # accepted, ignored: one queue serves every request


class JinaDocument(Body):
    text: str


class JinaRerank(Body):
    """Jina's and vLLM's ``POST /v1/rerank`` (vLLM also takes it at ``/rerank``)."""

    model: str | None = None
    query: str
    documents: list[str | JinaDocument]
    top_n: int | None = Field(default=None, ge=0)  # None or 0 (vLLM): every document
    return_documents: bool = True
    truncate_prompt_tokens: int | None = Field(default=None, ge=-1)  # vLLM; -1: the model's limit

    def texts(self) -> list[str]:
        return [d if isinstance(d, str) else d.text for d in self.documents]


class TeiRerank(Body):
    """Hugging Face text-embeddings-inference's ``POST /rerank``."""

    query: str
    texts: list[str]
    truncate: bool | None = None  # None: the server's --auto-truncate
    truncation_direction: Literal["right", "left", "Right", "Left"] = "right"
    raw_scores: bool = False
    return_text: bool = False


def describe(error: ValidationError) -> str:
    """pydantic's errors as one line that names each offending field: ``documents.2: Input should be
    a valid string``."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "body"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


# What went wrong, independent of the API: each dialect gives it its status code and body.
Problem = Literal[
    "malformed",
    "invalid",
    "empty",
    "unauthorized",
    "not_found",
    "too_large",
    "too_slow",
    "overloaded",
    "unavailable",
    "timeout",
    "backend",
]
STATUS = {
    "malformed": 400,
    "invalid": 400,
    "empty": 400,
    "unauthorized": 401,
    "not_found": 404,
    "too_large": 413,
    "too_slow": 408,
    "overloaded": 429,
    "backend": 500,
    "unavailable": 503,
    "timeout": 504,
}

# Seconds a caller should wait before trying again (the Retry-After header): a full service frees a
# slot within a request's time; a Triton restarting loads its models within seconds.
RETRY_AFTER_S = {"overloaded": 1, "unavailable": 5}


class ApiError(Exception):
    """A request this service answers with an error: what went wrong (``problem``) and a message
    for the caller (never holding a secret)."""

    def __init__(self, problem: Problem, message: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message


@dataclass(frozen=True)
class Dialect:
    """How one API answers errors: its status for a problem, and its error body."""

    name: str

    def status(self, problem: Problem) -> int:
        if problem == "invalid" and self.name in ("jina", "tei"):
            return 422  # FastAPI (Jina) and axum (TEI) answer a body of the wrong shape with 422
        if problem == "backend" and self.name == "tei":
            return 424  # TEI's ErrorType::Backend
        return STATUS[problem]

    def body(self, problem: Problem, message: str) -> dict:
        if self.name == "cohere":  # {"id", "message"}; messages read "invalid request: ..."
            prefix = "invalid request: " if problem in ("malformed", "invalid", "empty") else ""
            return {"id": str(uuid.uuid4()), "message": prefix + message}
        if self.name == "tei":  # {"error", "error_type"}, error_type one of TEI's ErrorType variants
            return {"error": message, "error_type": _TEI_ERROR_TYPES[problem]}
        return {"detail": message}  # Jina (FastAPI's shape); also our own GET routes


_TEI_ERROR_TYPES = {
    "malformed": "Validation",
    "invalid": "Validation",
    "empty": "Empty",
    "unauthorized": "Validation",
    "not_found": "Validation",
    "too_large": "Validation",
    "too_slow": "Validation",
    "overloaded": "Overloaded",
    "unavailable": "Unhealthy",
    "timeout": "Backend",
    "backend": "Backend",
}

COHERE, JINA, TEI = Dialect("cohere"), Dialect("jina"), Dialect("tei")
