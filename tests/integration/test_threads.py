"""A blocking client may be shared by many threads: every call runs on one event-loop thread
(``triton_rerank.loop``), where tritonclient's asyncio clients are used as they must be."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from triton_rerank import TritonEmbedFunction, TritonRerankFunction

QUERIES = ["what is the capital of france", "cold river water", "protein folding in the cell", "tokyo café"]
DOCUMENTS = [
    "paris is the capital of france",
    "berlin is the capital of germany",
    "the river water is cold",
    "protein in the cell " * 30,
    "café naïve 東京 🚀 émigré",
]


@pytest.mark.integration
def test_one_blocking_client_serves_many_threads_at_once(url, reference):
    cross_encoder, _ = reference
    calls = QUERIES * 6  # 24 calls from 8 threads, each split into several requests (batch_size 2)
    with TritonRerankFunction(url, batch_size=2) as rf, ThreadPoolExecutor(8) as pool:
        served = list(pool.map(lambda query: rf.score(query, DOCUMENTS), calls))
    for query, scores in zip(calls, served, strict=True):
        expected = cross_encoder.predict([(query, d) for d in DOCUMENTS], activation_fn=torch.nn.Identity())
        np.testing.assert_allclose(scores, expected, atol=1e-4, rtol=0)  # each thread got its own query's scores


@pytest.mark.integration
def test_the_embedder_too(triton_server):
    texts = [f"text number {i} " * (i % 7 + 1) for i in range(40)]
    with TritonEmbedFunction(triton_server.grpc_url, batch_size=8) as embed:
        alone = embed(texts)
        with ThreadPoolExecutor(6) as pool:
            together = list(pool.map(lambda i: embed(texts[i : i + 10]), range(0, 40, 10)))
    np.testing.assert_allclose(np.concatenate(together), alone, atol=1e-6)


@pytest.mark.integration
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_a_client_never_closed_closes_its_connections_quietly(triton_server, protocol):
    """Collected, or still open at exit: its connections are closed on the loop, so aiohttp has no
    unclosed session to complain about."""
    import subprocess
    import sys

    url = triton_server.http_url if protocol == "http" else triton_server.grpc_url
    code = (
        "import gc; from triton_rerank import TritonRerankFunction as F; "
        f"a = F({url!r}); a.score('q', ['d']); del a; gc.collect(); "
        f"b = F({url!r}); print(b.score('q', ['d']).shape)"  # b: open at exit
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "(1,)"
    assert "Unclosed" not in done.stderr and "Traceback" not in done.stderr, done.stderr
