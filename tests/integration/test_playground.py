"""The playground page in a real headless Chromium (Debian's ``chromium``, driven by Playwright),
against a real Triton and Milvus Lite collection: it loads without console errors, a typed query
shows both lists with the pipeline's own ranking, a judgement moves nDCG@10, and an API error
(Triton stopped) is shown on the page.

Without ``/usr/bin/chromium`` these tests skip, unless ``TRITON_RERANK_REQUIRE_BROWSER=1`` (set by
``.ci/run``, which installs it) makes that a failure. ``TRITON_RERANK_SCREENSHOTS=DIR`` saves the
page at a desktop's and a phone's width there (docs/images/ holds the ones the docs show)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from benchmarks.api_process import ApiProcess
from triton_rerank import TritonEmbedFunction, TritonRerankFunction
from triton_rerank.ingest import ingest, read_documents
from triton_rerank.pipeline import RerankPipeline
from triton_rerank.store import MilvusStore

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("playground")]  # one Triton, stopped last

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The flags Chromium needs on a closed network as root (../shared/docs/ENVIRONMENT.md).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
QUERY = "How vaccines work"  # a judged query of beir_folder (each document's title judges it)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        if os.environ.get("TRITON_RERANK_REQUIRE_BROWSER") == "1":
            pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)")
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_repository, beir_folder):
    """Triton of its own (the last test stops it), the sample corpus in Milvus Lite, the pipeline's
    answer to QUERY with its defaults, and the API with /v1/search and --qrels."""
    from milvus_lite.server_manager import server_manager_instance

    from triton_rerank.serving.server import EmbeddedTritonServer, free_port_settings

    path = str(tmp_path_factory.mktemp("playground") / "docs.db")
    with EmbeddedTritonServer(tiny_repository, free_port_settings()) as triton:
        with (
            TritonEmbedFunction(triton.grpc_url) as embed,
            TritonRerankFunction(triton.grpc_url) as rerank,
            MilvusStore(path, collection="sample", index="FLAT") as store,
        ):
            ingest(read_documents(beir_folder), store, embed, batch_size=16)
            expected = RerankPipeline(store, embed, rerank).search(QUERY)
        server_manager_instance.release_server(path)  # Milvus Lite is one process's: the API opens it next
        qrels = str(beir_folder / "qrels" / "train.tsv")
        arguments = ("--milvus-uri", path, "--collection", "sample", "--qrels", qrels)
        with ApiProcess(triton.grpc_url, *arguments) as api:
            yield triton, api, expected


@pytest.fixture
def page(browser, served):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("console", lambda message: message.type == "error" and problems.append(message.text))
    opened.on("pageerror", lambda error: problems.append(str(error)))
    opened.goto(f"{served[1].url}/playground")
    opened.wait_for_selector("body[data-ready=true]")
    opened.problems = problems
    yield opened
    context.close()


def ids_in(page, name: str) -> list[str]:
    return page.eval_on_selector_all(f'[data-list="{name}"] [data-doc-id]', "rows => rows.map(r => r.dataset.docId)")


def search(page, query: str) -> None:
    box = page.locator("input[type=search]").first  # the page's first search box is the query
    box.fill(query)
    box.press("Enter")
    page.wait_for_selector('[data-list="reranked"] [data-doc-id]')


def shown_ndcg(page, name: str) -> float:
    text = page.text_content(f'[data-ndcg="{name}"]')
    assert text.startswith("nDCG@10 "), text
    return float(text.removeprefix("nDCG@10 "))


def screenshot(page, name: str) -> None:
    if folder := os.environ.get("TRITON_RERANK_SCREENSHOTS"):
        page.screenshot(path=str(Path(folder) / name), full_page=False)


def test_the_page_loads_with_the_pipelines_defaults_and_no_console_error(page):
    assert page.eval_on_selector("input[type=search]", "box => box.id") == "query"
    values = {name: page.input_value(f"[name={name}]") for name in ("retrieve_k", "top_k", "first_stage", "fusion")}
    assert values == {"retrieve_k": "100", "top_k": "10", "first_stage": "auto", "fusion": "relative"}
    assert page.input_value("[name=model]") == "reranker"
    assert page.problems == []


def test_a_typed_query_shows_both_lists_ranked_as_the_pipeline_ranks(page, served):
    expected = served[2]
    search(page, QUERY)
    assert ids_in(page, "reranked") == [hit.id for hit in expected.hits]
    assert ids_in(page, "first-stage") == [candidate.id for candidate in expected.candidates]
    timings = page.text_content("#timings")
    assert all(f"{stage} " in timings for stage in ("embed", "retrieve", "rerank")), timings
    moved = page.locator('[data-list="reranked"] .move').all_text_contents()
    assert len(moved) == len(expected.hits) and all(moved), moved  # each hit says how far it moved
    assert page.locator("#moves line").count() == len(expected.hits)  # and a line from where it was
    assert page.problems == []
    screenshot(page, "playground.png")


def test_a_judgement_clicked_on_the_page_changes_the_ndcg_shown(page, served):
    search(page, QUERY)
    before = shown_ndcg(page, "first-stage")  # --qrels judges QUERY's own document, BM25's and dense's first
    assert before > 0
    first_stage, reranked = ids_in(page, "first-stage"), ids_in(page, "reranked")
    unseen = next(doc for doc in first_stage[10:] if doc not in reranked)  # in neither list's top 10
    mark = page.locator(f'[data-list="first-stage"] [data-doc-id="{unseen}"] .mark')
    mark.click()  # 0: judged not relevant
    mark.click()  # 1: relevant, and shown in neither top 10, so the ideal ranking gains what neither list has
    assert page.get_attribute(f'[data-list="first-stage"] [data-doc-id="{unseen}"] .mark', "data-grade") == "1"
    assert 0 < shown_ndcg(page, "first-stage") < before
    assert page.problems == []


def test_at_a_phones_width_the_lists_stack_and_still_work(browser, served):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    phone = context.new_page()
    phone.goto(f"{served[1].url}/playground")
    phone.wait_for_selector("body[data-ready=true]")
    search(phone, QUERY)
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide at a phone's 390"
    first, reranked = (phone.locator(f'[data-list="{name}"]').bounding_box() for name in ("first-stage", "reranked"))
    assert reranked["y"] > first["y"] + first["height"] - 1  # one column: the reranked list below
    screenshot(phone, "playground-phone.png")
    context.close()


def test_an_api_error_is_shown_on_the_page(page, served):
    triton = served[0]
    triton.stop()  # the last test of the module: Triton is gone, the API stays up
    search_box = page.locator("input[type=search]").first
    search_box.fill(QUERY)
    search_box.press("Enter")
    error = page.locator("#error")
    error.wait_for(state="visible", timeout=60_000)
    said = error.text_content()
    assert "/v1/search answered 503" in said and "unavailable" in said, said
    assert ids_in(page, "reranked") == []
