"""The rerank API described in OpenAPI 3.1 (``GET /openapi.json``) and browsable (``GET /docs``,
Swagger UI), as TEI, vLLM and Infinity serve theirs.

Request bodies are described by the same pydantic models that parse them (``schemas``), so the
description cannot drift from what the service accepts; answers by the models below, which the
tests check real answers against (openapi-core).
"""

from __future__ import annotations

import html
from importlib.metadata import PackageNotFoundError, version

from pydantic import BaseModel, RootModel
from pydantic.json_schema import models_json_schema

from triton_rerank.api.schemas import CohereRerank, JinaRerank, TeiRerank
from triton_rerank.api.search import SearchRequest

# --- the answers -----------------------------------------------------------------------------------


class CohereResult(BaseModel):
    index: int
    relevance_score: float


class CohereMeta(BaseModel):
    api_version: dict[str, str]
    billed_units: dict[str, int]


class CohereAnswer(BaseModel):
    id: str
    results: list[CohereResult]
    meta: CohereMeta


class JinaText(BaseModel):
    text: str


class JinaResult(BaseModel):
    index: int
    relevance_score: float
    document: JinaText | None = None


class JinaUsage(BaseModel):
    total_tokens: int


class JinaAnswer(BaseModel):
    id: str
    model: str
    results: list[JinaResult]
    usage: JinaUsage | None = None


class TeiResult(BaseModel):
    index: int
    score: float
    text: str | None = None


class TeiAnswer(RootModel[list[TeiResult]]):
    pass


class CohereError(BaseModel):
    id: str
    message: str


class JinaError(BaseModel):
    detail: str


class TeiError(BaseModel):
    error: str
    error_type: str


class Readiness(BaseModel):
    status: str
    models: list[str] | None = None
    reason: str | None = None


MODELS = [CohereRerank, JinaRerank, TeiRerank, SearchRequest, CohereAnswer, JinaAnswer, TeiAnswer, CohereError,
          JinaError, TeiError, Readiness]  # fmt: skip
REF = "#/components/schemas/{model}"


def _ref(model: type[BaseModel]) -> dict:
    return {"$ref": REF.format(model=model.__name__)}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _rerank(summary: str, body: dict, answer: dict, error: type[BaseModel], codes: tuple[int, ...]) -> dict:
    return {
        "post": {
            "summary": summary,
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {
                "200": _json(answer, "The documents, best first (top_n of them)"),
                **{str(code): _json(_ref(error), "Refused or failed: the message says why") for code in codes},
            },
            "security": [{}, {"bearer": []}],  # a key only where the service was started with one
        }
    }


def _get(summary: str, responses: dict) -> dict:
    return {"get": {"summary": summary, "responses": responses}}


def _package_version() -> str:
    try:
        return version("triton-rerank")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "0"


def openapi_document() -> dict:
    """The OpenAPI 3.1 description of every route of the rerank API."""
    _, definitions = models_json_schema([(m, "validation") for m in MODELS], ref_template=REF)
    # The status codes each API answers with (schemas.Dialect): Jina's and TEI's 422 for a body of the
    # wrong shape, TEI's 424 for a backend failure.
    cohere = (400, 401, 404, 408, 413, 429, 500, 503, 504)
    jina = (401, 404, 408, 413, 422, 429, 500, 503, 504)
    tei = (400, 401, 404, 408, 413, 422, 424, 429, 503, 504)
    # /rerank: TEI's body and answer, or vLLM's body (``documents``) and its Jina-shaped answer.
    tei_body, tei_answer = (
        {"oneOf": [_ref(TeiRerank), _ref(JinaRerank)]},
        {"oneOf": [_ref(TeiAnswer), _ref(JinaAnswer)]},
    )
    plain = {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "triton-rerank",
            "version": _package_version(),
            "description": "Cohere's, Jina's / vLLM's and TEI's rerank APIs in front of NVIDIA Triton. "
            "relevance_score is the sigmoid of the model's logit; TEI's raw_scores gives the logit.",
        },
        "paths": {
            "/v2/rerank": _rerank("Cohere v2 rerank", _ref(CohereRerank), _ref(CohereAnswer), CohereError, cohere),
            "/v1/rerank": _rerank("Jina / vLLM rerank", _ref(JinaRerank), _ref(JinaAnswer), JinaError, jina),
            "/rerank": _rerank("TEI rerank (or a vLLM-shaped body)", tei_body, tei_answer, TeiError, tei),
            "/v1/search": _rerank(
                "Search the Milvus collection and rerank its candidates: {hits, candidates, timings_ms, request_id} "
                "(started with --milvus-uri; else 404)",
                _ref(SearchRequest),
                {"type": "object"},
                JinaError,
                jina,
            ),
            "/health": _get("Liveness: 200 while the process answers", {"200": {"description": "alive"}}),
            "/ready": _get(
                "Readiness: Triton answers and the default model is ready",
                {"200": _json(_ref(Readiness), "ready"), "503": _json(_ref(Readiness), "not ready, and why")},
            ),
            "/info": _get("The served models, their limits and the service's policies", {"200": plain}),
            "/v1/models": _get("The served model names (OpenAI's list)", {"200": plain}),
            "/metrics": _get(
                "Prometheus metrics",
                {"200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}},
            ),
        },
        "components": {
            "schemas": definitions["$defs"],
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "$RERANK_API_KEY"}},
        },
    }


# Swagger UI from its CDN, as FastAPI serves it: the page needs the browser online, the API does not.
SWAGGER_UI = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5"


def docs_page(openapi_url: str = "/openapi.json") -> str:
    """Swagger UI over ``openapi_url``."""
    url = html.escape(openapi_url, quote=True)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>triton-rerank API</title>
<link rel="stylesheet" href="{SWAGGER_UI}/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="{SWAGGER_UI}/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({{url: "{url}", dom_id: "#swagger-ui"}});</script>
</body></html>"""
