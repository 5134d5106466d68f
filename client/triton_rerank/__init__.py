"""Cross-encoder reranking served by Triton Inference Server, in front of Milvus.

The client (this package's top level: ``client``, ``embed``, ``pipeline``, ``store``, ``ingest``)
needs only tritonclient and numpy (and pymilvus for Milvus); it never imports torch, transformers or
onnxruntime. What the clients, the API and the served models agree on (tensor and parameter names,
policies) is ``protocol``; the rerank HTTP API is ``triton_rerank.api`` (the ``api`` extra). The
serving side (``triton_rerank.serving``: the model repository, the export, the embedded Triton
server and its Python backends) needs the ``serve`` and ``export`` extras. One command line,
``triton-rerank``, drives both (``cli``).
"""

from triton_rerank.client import AsyncTritonRerankFunction, RerankResult, TritonRerankFunction
from triton_rerank.embed import AsyncTritonEmbedFunction, TritonEmbedFunction
from triton_rerank.errors import (
    InvalidScoresError,
    ModelNotReadyError,
    RerankAuthError,
    RerankError,
    RerankInputError,
    RerankTimeoutError,
    ServerOverloadedError,
    ServerResponseError,
    ServerUnavailableError,
)
from triton_rerank.options import RerankOptions

__all__ = [
    "AsyncTritonEmbedFunction",
    "AsyncTritonRerankFunction",
    "InvalidScoresError",
    "ModelNotReadyError",
    "RerankAuthError",
    "RerankError",
    "RerankInputError",
    "RerankOptions",
    "RerankResult",
    "RerankTimeoutError",
    "ServerOverloadedError",
    "ServerResponseError",
    "ServerUnavailableError",
    "TritonEmbedFunction",
    "TritonRerankFunction",
]
__version__ = "0.1.0"
