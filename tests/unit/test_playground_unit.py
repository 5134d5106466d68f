"""The playground's server side, without a browser: its defaults are the pipeline's, its config
cannot end the page's script early, and --qrels is read as BEIR lays it out or refused, said."""

from __future__ import annotations

import inspect
import json
import re

import pytest

from triton_rerank.api.settings import ApiSettings
from triton_rerank.beir import CollectionError
from triton_rerank.first_stage import FirstStage
from triton_rerank.pipeline import AsyncRerankPipeline
from triton_rerank.playground import load_judgements, page_html


def page_config(text: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="config">(.*?)</script>', text).group(1))


def test_the_pages_defaults_are_the_pipelines():
    config = page_config(page_html(ApiSettings(milvus_uri="docs.db", default_model="ranker")))
    search = inspect.signature(AsyncRerankPipeline.search_batch).parameters
    assert (config["retrieve_k"], config["top_k"]) == (search["retrieve_k"].default, search["top_k"].default)
    assert (config["first_stage"], config["fusion"]) == (FirstStage.kind, FirstStage.fusion)
    assert config["model"] == "ranker" and config["search"] is True


def test_a_collection_name_cannot_break_out_of_the_page():
    text = page_html(ApiSettings(milvus_uri="docs.db", collection="</script><script>alert(1)</script>"))
    assert "<script>alert(1)" not in text
    assert page_config(text)["collection"] == "</script><script>alert(1)</script>"


def test_qrels_are_read_beside_their_queries(beir_folder):
    loaded = load_judgements(str(beir_folder / "qrels" / "train.tsv"))
    assert loaded["judgements"]["How vaccines work"] == {"vaccines-1": 1}
    assert loaded["queries"]["q-vaccines-1"] == "How vaccines work"
    assert load_judgements(None) == {"queries": {}, "judgements": {}}


def test_a_qrels_file_out_of_place_is_refused_with_the_layout_it_needs(tmp_path, beir_folder):
    loose = tmp_path / "judged.tsv"
    loose.write_text("query-id\tcorpus-id\tscore\n")
    with pytest.raises(CollectionError, match="<folder>/qrels/<split>.tsv"):
        load_judgements(str(loose))
    with pytest.raises(CollectionError, match="test.tsv is missing"):
        load_judgements(str(beir_folder / "qrels" / "test.tsv"))
