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


def test_a_jsonl_line_that_is_not_utf8_is_named_by_file_and_line(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_bytes(b'{"_id": "a", "text": "fine"}\n{"_id": "b", "text": "caf\xe9"}\n')
    with pytest.raises(RerankInputError, match=r"docs.jsonl:2: not UTF-8 text"):
        list(read_documents(path))


def _vectors(texts: list[str]):
    """Three numbers per text, from its length: a stand-in embedder for what ingest does with ids."""
    import numpy as np

    return np.array([[len(t), 1.0, 2.0] for t in texts], dtype=np.float32)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 256])
def test_an_id_read_twice_is_refused_or_keeps_its_first_copy_whatever_the_batch_size(tmp_path, batch_size):
    """1 and "1" are one id in Milvus. Refused by default, naming both lines, before the batch that
    holds the second copy is written; with duplicates="first" the first copy is kept at every batch
    size, and the report adds up: read = skipped + written + duplicates."""
    from triton_rerank.ingest import ingest
    from triton_rerank.store import MilvusStore

    rows = [{"id": 1, "text": "first copy"}, {"_id": "x", "text": "x"}, {"id": "1", "text": "second copy, longer"}]
    source = write_jsonl(tmp_path / "docs.jsonl", [*rows, {"_id": "y", "text": "y"}])
    with MilvusStore(str(tmp_path / "error.db"), index="FLAT", bm25=False) as store:
        with pytest.raises(RerankInputError, match=r"docs.jsonl:3: id '1' was read before, at .*docs.jsonl:1"):
            ingest(read_documents(source), store, _vectors, batch_size=batch_size)
        assert store.count() == (2 if batch_size < 3 else 0)  # the batches before the second copy's, no more
    with MilvusStore(str(tmp_path / "first.db"), index="FLAT", bm25=False) as store:
        report = ingest(read_documents(source), store, _vectors, batch_size=batch_size, duplicates="first")
        assert (report.read, report.written, report.skipped, report.duplicates) == (4, 3, 0, 1)
        assert store.dimension == 3  # the embedder's size, from its vectors
        (hit,) = store.search(_vectors(["first copy"]), limit=1)[0][:1]
        assert (hit.id, hit.text) == ("1", "first copy")
        again = ingest(read_documents(source), store, _vectors, batch_size=batch_size, duplicates="first")
        assert (again.read, again.written, again.skipped, again.duplicates) == (4, 0, 3, 1)
