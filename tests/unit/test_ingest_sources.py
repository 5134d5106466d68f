"""Reading documents: JSONL, BEIR folders, folders of text files, and clear errors for bad input."""

from __future__ import annotations

import gzip
import json

import pytest

from triton_rerank.errors import RerankInputError
from triton_rerank.ingest import read_documents
from triton_rerank.store import Document, check_documents


def write_jsonl(path, rows, opener=open):
    with opener(path, "wt", encoding="utf-8") as out:
        for row in rows:
            out.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


def test_jsonl_rows_become_documents_with_title_first_and_metadata(tmp_path):
    path = write_jsonl(
        tmp_path / "docs.jsonl",
        [
            {"_id": "a", "title": "Title", "text": "body", "year": 2020},
            {"id": 7, "text": "no title"},
        ],
    )
    assert list(read_documents(path)) == [
        Document("a", "Title body", {"title": "Title", "year": 2020}),
        Document("7", "no title", {}),
    ]


def test_a_beir_folder_reads_its_gzipped_corpus(tmp_path):
    write_jsonl(tmp_path / "corpus.jsonl.gz", [{"_id": "d1", "title": "", "text": "x"}], opener=gzip.open)
    assert [d.id for d in read_documents(tmp_path)] == ["d1"]


def test_a_folder_of_text_files_uses_paths_as_ids(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.txt").write_text("second")
    (tmp_path / "sub" / "a.md").write_text("first")
    (tmp_path / "skip.bin").write_bytes(b"\x00")
    assert [(d.id, d.text) for d in read_documents(tmp_path)] == [("b.txt", "second"), ("sub/a.md", "first")]


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", r"docs.jsonl:2: not JSON"),
        ('["a list"]', "expected a JSON object"),
        ('{"text": "no id"}', "needs an '_id' or 'id'"),
        ('{"_id": "x"}', "needs a 'text' string"),
        ('{"_id": "x", "text": 3}', "needs a 'text' string"),
        ('{"_id": "x", "text": "t", "title": 5}', "'title' must be a string"),
    ],
)
def test_bad_jsonl_lines_are_named_by_file_and_line(tmp_path, line, message):
    path = write_jsonl(tmp_path / "docs.jsonl", [{"_id": "ok", "text": "fine"}, line])
    with pytest.raises(RerankInputError, match=message):
        list(read_documents(path))


def test_missing_sources_and_wrong_files_are_refused(tmp_path):
    with pytest.raises(RerankInputError, match="does not exist"):
        list(read_documents(tmp_path / "nope.jsonl"))
    (tmp_path / "data.csv").write_text("a,b")
    with pytest.raises(RerankInputError, match="expected a .jsonl"):
        list(read_documents(tmp_path / "data.csv"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RerankInputError, match="holds no corpus.jsonl"):
        list(read_documents(empty))


def test_documents_milvus_cannot_hold_are_refused_not_cut(tmp_path):
    with pytest.raises(RerankInputError, match="is 70000 bytes; Milvus stores at most 65535"):
        check_documents([Document("big", "x" * 70_000)])
    with pytest.raises(RerankInputError, match="must be a non-empty str"):
        check_documents([Document("", "empty id")])


def test_a_private_ca_reaches_pymilvus_as_its_server_pem_path(monkeypatch):
    """--milvus-ca-file (commands and the evaluation alike) is one MilvusStore argument."""
    from triton_rerank import store as store_module

    seen = {}

    class Refused(Exception):
        pass

    def client(**kwargs):
        seen.update(kwargs)
        raise Refused("stop here")

    monkeypatch.setattr(store_module, "MilvusClient", client)
    with pytest.raises(store_module.StoreError):
        store_module.MilvusStore("https://milvus.example:19530", ca_file="ca.pem", client_options={"server_name": "m"})
    assert seen["server_pem_path"] == "ca.pem" and seen["server_name"] == "m"
