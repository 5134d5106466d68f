"""Where the Triton servers are and what every request carries: URLs (the scheme picks the
protocol), timeouts, the retry window, and the API key."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from triton_rerank.errors import RerankInputError


@dataclass(frozen=True)
class Endpoint:
    protocol: Literal["http", "grpc"]
    address: str
    ssl: bool


def parse_url(url: str) -> Endpoint:
    """``grpc://host:port`` -> gRPC; ``http://`` or no scheme -> HTTP; ``https``/``grpcs`` -> TLS."""
    if not isinstance(url, str) or not url.strip():
        raise RerankInputError(f"url must be a non-empty string like 'grpc://host:8001', got {url!r}")
    scheme, sep, address = url.strip().partition("://")
    if not sep:
        scheme, address = "http", url.strip()
    schemes = {"http": ("http", False), "https": ("http", True), "grpc": ("grpc", False), "grpcs": ("grpc", True)}
    if scheme.lower() not in schemes or not address.strip("/"):
        raise RerankInputError(f"url {url!r}: expected http://, https://, grpc:// or grpcs:// followed by host:port")
    protocol, ssl = schemes[scheme.lower()]
    return Endpoint(protocol, address.rstrip("/"), ssl)


def parse_urls(url: str | Sequence[str]) -> list[str]:
    """One URL, several separated by commas, or a list of them -> the list; all of one protocol."""
    urls = [u.strip() for u in url.split(",")] if isinstance(url, str) else list(url)
    if not urls:
        raise RerankInputError("url must name at least one Triton server")
    protocols = {parse_url(u).protocol for u in urls}
    if len(protocols) > 1:
        raise RerankInputError(f"the urls {urls} mix HTTP and gRPC; give replicas of one protocol")
    if len(set(urls)) != len(urls):
        raise RerankInputError(f"the urls {urls} name a server twice")
    return urls


def check_timeout(timeout_s: object) -> float:
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not timeout_s > 0:
        raise RerankInputError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
    return float(timeout_s)


# The header Triton's restricted APIs check (--http-restricted-api / --grpc-restricted-protocol);
# gRPC clients send it with Triton's prefix. The key itself comes from the caller or this variable.
API_KEY_HEADER = "x-api-key"
GRPC_API_KEY_HEADER = f"triton-grpc-protocol-{API_KEY_HEADER}"
TRITON_API_KEY_ENV = "TRITON_RERANK_API_KEY"  # the rerank API has its own: api.settings.RERANK_API_KEY_ENV
# Where a Triton server listens by default (gRPC: the protocol the CLI, pipeline and benchmarks use),
# and the variable the command line reads it from.
DEFAULT_URL = "grpc://127.0.0.1:8001"
TRITON_URL_ENV = "TRITON_RERANK_URL"


def check_retry(retry_s: object) -> float:
    if isinstance(retry_s, bool) or not isinstance(retry_s, (int, float)) or not retry_s >= 0:
        raise RerankInputError(f"retry_s must be a number of seconds >= 0, got {retry_s!r}")
    return float(retry_s)
