"""``ingest`` killed (SIGKILL) mid-collection, then run again: the collection holds each document of
the source exactly once, none missing, none twice (issue 39)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from triton_rerank.store import MilvusStore

pytestmark = pytest.mark.integration
DOCUMENTS = 3000


def ingest_command(source, database, triton_url) -> list[str]:
    return [sys.executable, "-m", "triton_rerank.cli", "ingest", str(source), "--milvus-uri", str(database),
            "--triton-url", triton_url, "--batch-size", "16", "--index", "FLAT"]  # fmt: skip


def test_ingest_killed_midway_then_run_again_holds_each_document_once(tmp_path, triton_server):
    source = tmp_path / "corpus.jsonl"
    source.write_text(
        "".join(
            json.dumps({"_id": f"doc-{i}", "text": f"document number {i} about topic {i % 37}"}) + "\n"
            for i in range(DOCUMENTS)
        )  # fmt: skip
    )
    database = tmp_path / "docs.db"
    command = ingest_command(source, database, triton_server.grpc_url)
    first = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    time.sleep(8)  # well into the collection: the tiny embedder writes a few hundred documents a second
    assert first.poll() is None, "ingest finished before it could be killed: make the corpus larger"
    first.kill()
    first.wait(timeout=10)
    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    with MilvusStore(str(database), create=False) as store:
        ids = store.ids()
    assert len(ids) == DOCUMENTS and set(ids) == {f"doc-{i}" for i in range(DOCUMENTS)}
    print(f"\ningest killed after 8 s, run again: {again.stdout.strip().splitlines()[-1]}")
