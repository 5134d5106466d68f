"""`triton-rerank deploy`: a new reranker version goes into a running server while clients rerank,
with no failed request; the scores become the new model's, a rollback brings the old ones back, and
a restarted server serves what was deployed last."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import numpy as np
import pytest
import torch

from tiny_models import build_tiny_bert_cross_encoder
from triton_rerank import TritonRerankFunction
from triton_rerank.cli import main
from triton_rerank.errors import RerankInputError
from triton_rerank.serving.deploy import DeployError, deploy, history, rollback
from triton_rerank.serving.export import export_cross_encoder
from triton_rerank.serving.server import EmbeddedTritonServer, free_port_settings

pytestmark = pytest.mark.integration
DOCUMENTS = ["paris is the capital of france", "a quick brown fox", "berlin is in germany", ""]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from sentence_transformers.cross_encoder import CrossEncoder

    folder = tmp_path_factory.mktemp("deploy-models")
    built = {name: build_tiny_bert_cross_encoder(folder / name, seed=seed) for name, seed in (("a", 0), ("b", 1))}
    pairs = [("paris", d) for d in DOCUMENTS]
    scores = {n: CrossEncoder(str(p)).predict(pairs, activation_fn=torch.nn.Identity()) for n, p in built.items()}
    assert not np.allclose(scores["a"], scores["b"], atol=1e-3)
    return built, scores


class Clients:
    """Threads that rerank without pause, over HTTP and gRPC, and note when each request was sent and
    whose scores it got (``seen``: (sent at, name))."""

    def __init__(self, server, scores, score_cache=None) -> None:
        self.scores, self.seen, self.failures, self.score_cache = scores, [], [], score_cache
        self._stop = threading.Event()
        urls = [server.http_url, server.grpc_url] * 2
        self._threads = [threading.Thread(target=self._run, args=(url,)) for url in urls]

    def _run(self, url: str) -> None:
        with TritonRerankFunction(url, score_cache=self.score_cache) as rerank:
            while not self._stop.is_set():
                sent = time.monotonic()
                try:
                    got = rerank.score("paris", DOCUMENTS)
                except Exception as err:  # noqa: BLE001 - every failure is the finding
                    self.failures.append(repr(err))
                    continue
                match = [n for n, s in self.scores.items() if np.allclose(got, s, atol=1e-4)]
                self.seen.append((sent, match[0] if match else "neither"))

    def sent(self, after: float, before: float = float("inf")) -> Counter:
        """Whose scores the requests sent in ``[after, before)`` got."""
        return Counter(name for at, name in self.seen if after <= at < before)

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join()


@pytest.mark.slow
@pytest.mark.parametrize("cached", [False, True], ids=["no cache", "a score cache shared by the clients"])
def test_deploy_and_rollback_while_clients_rerank(models, tmp_path, cached):
    """With a score cache, every request after the first is a hit until the switch: the deploy and the
    rollback each change the version the cache keys on, so no request after them gets a stale score."""
    from triton_rerank.score_cache import MemoryScoreCache

    paths, scores = models
    repository = tmp_path / "model_repository"
    export_cross_encoder(str(paths["a"]), repository)
    settings = free_port_settings(model_control="explicit")
    cache = MemoryScoreCache() if cached else None
    with EmbeddedTritonServer(repository, settings) as server, Clients(server, scores, cache) as clients:
        began = time.monotonic()
        entry = deploy(str(paths["b"]), repository, server.http_url)
        deployed = time.monotonic()
        time.sleep(0.5)
        rolling_back = time.monotonic()
        back = rollback(repository, server.grpc_url)
        rolled_back = time.monotonic()
        time.sleep(0.5)
    assert clients.failures == []
    assert entry["version"] == 2 and entry["members"] == ["aggregator_v2", "cross_encoder_v2", "tokenizer_v2"]
    assert back["version"] == 1
    # Each request is one version's from start to end: sent before a switch it may finish on the old
    # one, sent after it gets the new one. (Counted by when each was sent: on shared cores a request
    # sent before the rollback finished after a dozen sent after it.)
    assert set(clients.sent(0, began)) == {"a"} and set(clients.sent(deployed, rolling_back)) == {"b"}
    assert set(clients.sent(rolled_back)) == {"a"} and clients.sent(rolled_back)["a"] > 0
    assert "neither" not in {name for _, name in clients.seen}  # never a mix of two versions' members
    if cached:  # hits served most requests, and both versions' pairs were cached apart
        assert cache.counts.hits > cache.counts.misses > 0 and len(cache) == 2 * len(set(DOCUMENTS))


@pytest.mark.slow
def test_a_restarted_server_serves_the_last_deployment_and_old_versions_are_unloaded(models, tmp_path, capsys):
    paths, scores = models
    repository = tmp_path / "model_repository"
    export_cross_encoder(str(paths["a"]), repository)
    with EmbeddedTritonServer(repository, free_port_settings(model_control="explicit")) as server:
        deploy(str(paths["b"]), repository, server.http_url)
        assert (
            main(
                ["deploy", "--model", str(paths["a"]), "--repository", str(repository), "--triton-url", server.grpc_url]
            )
            == 0
        )
        ready = server.ready_models()
    assert "tokenizer" not in ready and {"tokenizer_v2", "tokenizer_v3", "reranker"} <= set(ready)
    assert history(repository)["serving"] == 3
    assert main(["deploy", "--list", "--repository", str(repository)]) == 0
    assert "* v3" in capsys.readouterr().out
    with EmbeddedTritonServer(repository, free_port_settings()) as server, TritonRerankFunction(server.grpc_url) as rf:
        np.testing.assert_allclose(rf.score("paris", DOCUMENTS), scores["a"], atol=1e-4)


def test_a_server_that_does_not_allow_loading_keeps_serving_and_the_repository_is_unchanged(models, tmp_path):
    paths, scores = models
    repository = tmp_path / "model_repository"
    export_cross_encoder(str(paths["a"]), repository)
    before = sorted(p.name for p in repository.iterdir())
    with EmbeddedTritonServer(repository, free_port_settings()) as server:
        with pytest.raises(DeployError, match="does not let models be loaded while it runs"):
            deploy(str(paths["b"]), repository, server.http_url)
        with TritonRerankFunction(server.http_url) as rf:
            np.testing.assert_allclose(rf.score("paris", DOCUMENTS), scores["a"], atol=1e-4)
    assert sorted(p.name for p in repository.iterdir()) == before
    assert json.loads(json.dumps(history(repository)))["serving"] == 1
    with pytest.raises(RerankInputError, match="no version None to roll back to"):
        rollback(repository, "http://127.0.0.1:1")


@pytest.mark.slow
def test_a_version_is_exported_as_the_serving_one_and_a_failed_unload_never_deletes_what_serves(
    models, tmp_path, monkeypatch, caplog
):
    """An int8 repository pinned to the CPU gets an int8 CPU version (it got fp32 'auto'); and when
    unloading the replaced versions fails, the new version stays in the repository and serves (the
    clean-up used to delete the folders of the version it had just switched to)."""
    import tritonclient.http as http
    from tritonclient.utils import InferenceServerException

    from triton_rerank.serving.layout import RepositorySettings

    paths, _ = models
    repository = tmp_path / "model_repository"
    export_cross_encoder(str(paths["a"]), repository, precision="int8", settings=RepositorySettings(device="cpu"))
    with EmbeddedTritonServer(repository, free_port_settings(model_control="explicit")) as server:
        deploy(str(paths["b"]), repository, server.http_url)
        record = json.loads((repository / "cross_encoder_v2" / "1" / "export.json").read_text())
        assert record["precision"] == "int8" and record["settings"]["device"] == "cpu"
        assert "KIND_CPU" in (repository / "cross_encoder_v2" / "config.pbtxt").read_text()

        def refuse(self, name, *args, **kwargs):
            raise InferenceServerException(f"failed to unload '{name}'", "500")

        monkeypatch.setattr(http.InferenceServerClient, "unload_model", refuse)
        entry = deploy(str(paths["a"]), repository, server.http_url)  # v3: v1 is to be unloaded, and fails
        assert entry["version"] == 3 and history(repository)["serving"] == 3
        assert all((repository / name / "config.pbtxt").is_file() for name in entry["members"])
        assert "unloading tokenizer failed" in caplog.text
        with TritonRerankFunction(server.http_url) as rf:
            int8 = rf.score("paris", DOCUMENTS)
    with EmbeddedTritonServer(repository, free_port_settings()) as restarted:  # the disk serves v3 too
        with TritonRerankFunction(restarted.grpc_url) as rf:
            np.testing.assert_array_equal(rf.score("paris", DOCUMENTS), int8)


@pytest.mark.slow
def test_replicas_sharing_one_repository_each_switch_to_the_new_version(models, tmp_path):
    paths, scores = models
    repository = tmp_path / "model_repository"
    export_cross_encoder(str(paths["a"]), repository)
    with (
        EmbeddedTritonServer(repository, free_port_settings(model_control="explicit")) as first,
        EmbeddedTritonServer(repository, free_port_settings(model_control="explicit")) as second,
    ):
        entry = deploy(str(paths["b"]), repository, f"{first.grpc_url},{second.grpc_url}")
        for server in (first, second):
            with TritonRerankFunction(server.grpc_url) as rf:
                np.testing.assert_allclose(rf.score("paris", DOCUMENTS), scores["b"], atol=1e-4)
        back = rollback(repository, [first.http_url, second.http_url])
        for server in (first, second):
            with TritonRerankFunction(server.http_url) as rf:
                np.testing.assert_allclose(rf.score("paris", DOCUMENTS), scores["a"], atol=1e-4)
    assert (entry["version"], back["version"]) == (2, 1)
