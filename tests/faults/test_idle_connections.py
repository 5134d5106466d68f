"""Connections left idle past the servers' keepalive limits, then used: they work, and no server
answers the clients' pings with GOAWAY "too_many_pings" (issue 39).

Each runs in a process of its own, so that gRPC's own log (stderr) can be read for the GOAWAY."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.integration

# pymilvus pings every 10 s; a gRPC server with its defaults strikes a ping without data sooner than
# 5 minutes apart and sends GOAWAY past the second strike: at the fourth ping, 40 s in; 75 s is past it.
IDLE_S = 75


def run_idle(script: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=timeout_s
    )


def test_a_milvus_lite_store_left_idle_still_searches_and_lite_sends_no_goaway(tmp_path):
    result = run_idle(f"""
        import time
        import numpy as np
        from triton_rerank.documents import Document
        from triton_rerank.store import MilvusStore

        store = MilvusStore({str(tmp_path / "idle.db")!r}, collection="idle", dimension=4, index="FLAT")
        vectors = np.eye(4, dtype=np.float32)
        store.upsert([Document(id=f"d{{i}}", text=f"document {{i}}") for i in range(4)], vectors)
        store.flush()
        time.sleep({IDLE_S})
        hits = store.search(vectors[:1], limit=2)[0]
        print("found", hits[0].id)
        store.close()
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "found d0" in result.stdout
    assert "too_many_pings" not in result.stderr, result.stderr[-3000:]
