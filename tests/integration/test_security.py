"""With an API key set, the server answers only health without it, inference included; the
client sends the key; the key never shows in logs, errors or reprs."""

from __future__ import annotations

import logging
import secrets
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from triton_rerank import RerankAuthError, TritonEmbedFunction, TritonRerankFunction
from triton_rerank.endpoints import API_KEY_HEADER, TRITON_API_KEY_ENV
from triton_rerank.serving.server import EmbeddedTritonServer, ServerSettings, free_port_settings

pytestmark = pytest.mark.integration

KEY = secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def locked_server(tiny_repository):
    with EmbeddedTritonServer(tiny_repository, free_port_settings(api_key=KEY)) as server:
        yield server


def raw_infer(module, client, **kwargs):
    tensors = []
    for name, value in (("QUERY", [b"q"]), ("DOCUMENTS", [b"a document"])):
        tensor = module.InferInput(name, [1], "BYTES")
        tensor.set_data_from_numpy(np.array(value, dtype=np.object_))
        tensors.append(tensor)
    return client.infer("reranker", tensors, **kwargs)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_without_the_key_only_health_answers(locked_server, protocol):
    if protocol == "http":
        client = httpclient.InferenceServerClient(locked_server.http_url.removeprefix("http://"))
        calls = [
            lambda: raw_infer(httpclient, client),
            lambda: client.get_model_metadata("reranker"),
            lambda: client.get_model_config("reranker"),
            lambda: client.get_inference_statistics("reranker"),
            lambda: client.get_model_repository_index(),
        ]
        key_header = {API_KEY_HEADER: KEY}
    else:
        client = grpcclient.InferenceServerClient(locked_server.grpc_url.removeprefix("grpc://"))
        calls = [
            lambda: raw_infer(grpcclient, client),
            lambda: client.get_model_metadata("reranker"),
            lambda: client.get_model_config("reranker"),
            lambda: client.get_inference_statistics("reranker"),
            lambda: client.get_model_repository_index(),
        ]
        key_header = {f"triton-grpc-protocol-{API_KEY_HEADER}": KEY}
    try:
        assert client.is_server_live() and client.is_server_ready()  # probes stay open
        for call in calls:
            with pytest.raises(InferenceServerException, match="restricted"):
                call()
        module = httpclient if protocol == "http" else grpcclient
        wrong_key = dict.fromkeys(key_header, "not-the-key-at-all")
        with pytest.raises(InferenceServerException, match="restricted"):
            raw_infer(module, client, headers=wrong_key)
        result = raw_infer(module, client, headers=key_header)
        assert result.as_numpy("SCORES").shape == (1, 1)
    finally:
        client.close()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_the_client_sends_the_key_and_says_so_when_it_is_missing(locked_server, protocol, monkeypatch):
    url = locked_server.http_url if protocol == "http" else locked_server.grpc_url
    monkeypatch.delenv(TRITON_API_KEY_ENV, raising=False)
    with TritonRerankFunction(url, timeout_s=10) as rf:
        started = time.perf_counter()
        with pytest.raises(RerankAuthError, match=f"needs an API key \\(header '{API_KEY_HEADER}'\\)") as caught:
            rf(query="q", documents=["a", "b"])
        assert time.perf_counter() - started < 2  # refused at once, never retried
    assert KEY not in str(caught.value)
    with TritonRerankFunction(url, api_key="a-wrong-key-of-enough-length") as rf:
        with pytest.raises(RerankAuthError):
            rf(query="q", documents=["a"])
    with TritonRerankFunction(url, api_key=KEY) as rf:
        assert [r.index for r in rf(query="q", documents=["a", "b", "c"], top_k=3)] != []
        assert rf.is_ready()
    monkeypatch.setenv(TRITON_API_KEY_ENV, KEY)  # the environment is the default source
    with TritonRerankFunction(url) as rf, TritonEmbedFunction(url) as embed:
        assert len(rf(query="q", documents=["a", "b"])) == 2
        assert embed(["a text"]).shape == (1, 384)


def test_the_key_never_shows_in_logs_errors_or_reprs(tiny_repository, caplog):
    caplog.set_level(logging.DEBUG)
    settings = free_port_settings(api_key=KEY)
    assert KEY not in repr(settings)
    with EmbeddedTritonServer(tiny_repository, settings) as server:
        assert "reranker" in server.ready_models()  # the repository index is restricted: it sends the key
        log_text = server.log_path.read_text(errors="replace")
        request = urllib.request.Request(f"{server.http_url}/v2/models/reranker/config")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 403
    assert KEY not in log_text
    assert KEY not in caplog.text and "***" in caplog.text
    for bad in ("short", "has spaces in it, sixteen+", "comma,colon:equals=key_long_enough"):
        with pytest.raises(ValueError, match="api_key must be") as caught:
            ServerSettings(api_key=bad)
        assert bad not in str(caught.value)


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a TCP socket listening on ``port`` (IPv4 and IPv6, from /proc)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_the_embedded_server_listens_on_loopback_only_and_model_control_is_off(locked_server):
    loopback = {"0100007F", "0000000000000000FFFF00000100007F"}  # 127.0.0.1, and as IPv4-mapped IPv6 (gRPC)
    for port in (
        locked_server.settings.http_port,
        locked_server.settings.grpc_port,
        locked_server.settings.metrics_port,
    ):
        addresses = listening_addresses(port)
        assert addresses and addresses <= loopback, (port, addresses)
    client = httpclient.InferenceServerClient(locked_server.http_url.removeprefix("http://"))
    try:
        with pytest.raises(InferenceServerException, match="(?i)not allowed"):
            client.unload_model("reranker", headers={API_KEY_HEADER: KEY})
        assert client.is_model_ready("reranker", headers={API_KEY_HEADER: KEY})
    finally:
        client.close()
