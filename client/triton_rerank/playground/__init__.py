"""The playground: a page at ``/playground``, served by the rerank API with ``--milvus-uri``, that
shows what the reranker does to a query's results. It calls ``POST /v1/search`` from the browser and
draws the first-stage list and the reranked list side by side, with how far each document moved, each
leg's rank, the span that decided, each stage's time, and, with judgements (``--qrels``, or marks
clicked on the page), nDCG@10 per list.

No build step and no CDN: one HTML page, one script and one stylesheet, shipped in this package. Rows
carry ``data-doc-id`` inside ``data-list="first-stage"`` / ``data-list="reranked"`` (and
``data-list="compare"`` for a second model), so tests and users' scripts can read them.
"""

from __future__ import annotations

import html
import json
from importlib.resources import files
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from triton_rerank.api.search import SearchRequest
from triton_rerank.beir import CollectionError, read_judged

PAGE = "/playground"
ASSETS = {"playground.js": "text/javascript", "playground.css": "text/css"}
# The page and its assets hold no data: they need no key (the page sends the one the user types).
PUBLIC_PATHS = frozenset({PAGE, *(f"{PAGE}/{name}" for name in ASSETS)})
DEFAULTS = ("retrieve_k", "top_k", "first_stage", "fusion")  # the pipeline's, as SearchRequest has them


def load_judgements(path: str | None) -> dict:
    """``{"queries": {id: text}, "judgements": {query text: {document id: grade}}}`` from a BEIR qrels
    file (``<folder>/qrels/<split>.tsv``, its queries in ``<folder>/queries.jsonl``); empty without one."""
    if not path:
        return {"queries": {}, "judgements": {}}
    qrels = Path(path)
    if qrels.suffix != ".tsv" or qrels.parent.name != "qrels":
        raise CollectionError(f"--qrels {path}: expected a BEIR qrels file, <folder>/qrels/<split>.tsv")
    queries, judged = read_judged(qrels.parent.parent, qrels.stem, set(), unknown_documents="keep")
    return {"queries": queries, "judgements": {queries[q]: grades for q, grades in judged.items()}}


def page_html(settings) -> str:
    """The page, with the pipeline's defaults and the service's collection written into it."""
    fields = SearchRequest.model_fields
    config = {name: fields[name].default for name in DEFAULTS} | {
        "model": settings.default_model,
        "collection": settings.collection,
        "search": settings.milvus_uri is not None,
    }
    text = files(__package__).joinpath("static/index.html").read_text(encoding="utf-8")
    # </script> cannot end the JSON early: "<" is written as its escape.
    return text.replace("{{CONFIG}}", json.dumps(config).replace("<", "\\u003c")).replace(
        "{{COLLECTION}}", html.escape(settings.collection)
    )


async def page(request: Request) -> Response:
    return HTMLResponse(page_html(request.app.state.settings), headers={"cache-control": "no-cache"})


async def asset(request: Request) -> Response:
    name = request.url.path.rsplit("/", 1)[-1]
    text = files(__package__).joinpath(f"static/{name}").read_text(encoding="utf-8")
    return Response(text, media_type=ASSETS[name], headers={"cache-control": "no-cache"})


async def judgements(request: Request) -> Response:
    """The judgements the service was started with (``--qrels``); the page adds the ones clicked."""
    return JSONResponse(request.app.state.judgements)


# path -> handler, all GET; the rerank API mounts them (``api.app``).
ROUTES = {PAGE: page, **{f"{PAGE}/{name}": asset for name in ASSETS}, f"{PAGE}/judgements": judgements}
