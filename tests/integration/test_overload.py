"""Overload answers fast with a clear error instead of unbounded latency: Triton's queue policy
(max queue size, queue timeout; a bounded queue by default) refuses what it cannot take, the client
reports ServerOverloadedError without retrying, and the server stays ready."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import tritonclient.http as httpclient

from triton_rerank import RerankError, ServerOverloadedError, TritonRerankFunction
from triton_rerank.serving.export import export_cross_encoder
from triton_rerank.serving.layout import RepositorySettings
from triton_rerank.serving.server import EmbeddedTritonServer, free_port_settings

pytestmark = pytest.mark.integration

DOCUMENTS = ["paris is the capital and largest city of france " * 20] * 128


def flood(url: str, requests: int, threads: int, timeout_s: float) -> list[RerankError | None]:
    """``requests`` calls of DOCUMENTS from ``threads`` clients at once; each call's error, or None."""

    def one(_: int) -> RerankError | None:
        with TritonRerankFunction(url, timeout_s=timeout_s) as rf:
            try:
                rf.score("capital of france", DOCUMENTS)
            except RerankError as err:
                return err
        return None

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(requests)))


def test_a_full_queue_refuses_at_once_with_overloaded_and_the_server_stays_ready(tiny_model, tmp_path):
    repository = tmp_path / "models"
    export_cross_encoder(str(tiny_model), repository, settings=RepositorySettings(device="cpu", max_queue_size=1))
    with EmbeddedTritonServer(repository, free_port_settings()) as server:
        outcomes = flood(server.grpc_url, requests=48, threads=24, timeout_s=60)
        kinds = Counter(type(o).__name__ for o in outcomes)
        assert set(kinds) <= {"NoneType", "ServerOverloadedError"}, kinds
        assert kinds["ServerOverloadedError"] > 0 and kinds["NoneType"] > 0, kinds
        refused = next(o for o in outcomes if isinstance(o, ServerOverloadedError))
        assert "is overloaded" in str(refused) and "maximum queue size" in str(refused).lower()
        with TritonRerankFunction(server.grpc_url) as rf:
            assert rf.is_ready() and len(rf(query="q", documents=["a", "b"])) == 2


def test_without_queue_limits_a_clients_timeout_cancels_its_queued_request(tiny_model, tmp_path):
    """With the queue limits off (--max-queue-size 0), a gRPC client's timeout is what bounds its
    wait, and Triton drops the cancelled request from the queue instead of running the model for nobody."""
    repository = tmp_path / "models"
    export_cross_encoder(str(tiny_model), repository, settings=RepositorySettings(device="cpu", max_queue_size=0))
    sent = 64  # about 8 are answered within the timeout here: the rest must time out and never run
    with EmbeddedTritonServer(repository, free_port_settings()) as server:
        outcomes = flood(server.grpc_url, requests=sent, threads=sent, timeout_s=0.3)
        kinds = Counter(type(o).__name__ for o in outcomes)
        assert set(kinds) <= {"NoneType", "RerankTimeoutError"} and kinds["RerankTimeoutError"] > 0, kinds
        admin = httpclient.InferenceServerClient(server.http_url.removeprefix("http://"))
        try:
            stats = admin.get_inference_statistics("cross_encoder")["model_stats"][0]
        finally:
            admin.close()
        assert stats["inference_count"] < sent * len(DOCUMENTS), (kinds, stats["inference_count"])
        with TritonRerankFunction(server.grpc_url) as rf:
            assert len(rf(query="q", documents=["a", "b"])) == 2
