"""Cross-encoder reranking served by Triton Inference Server, in front of Milvus.

The client part (this package's top level) needs only tritonclient and numpy; exporting
(``triton_rerank.export``) and the embedded server (``triton_rerank.server``) need the extras.
"""

from triton_rerank.client import AsyncTritonRerankFunction, RerankResult, TritonRerankFunction
from triton_rerank.embed import AsyncTritonEmbedFunction, TritonEmbedFunction
from triton_rerank.errors import (
    ModelNotReadyError,
    RerankAuthError,
    RerankError,
    RerankInputError,
    RerankTimeoutError,
    ServerOverloadedError,
    ServerResponseError,
    ServerUnavailableError,
)

__all__ = [
    "AsyncTritonEmbedFunction",
    "AsyncTritonRerankFunction",
    "ModelNotReadyError",
    "RerankAuthError",
    "RerankError",
    "RerankInputError",
    "RerankResult",
    "RerankTimeoutError",
    "ServerOverloadedError",
    "ServerResponseError",
    "ServerUnavailableError",
    "TritonEmbedFunction",
    "TritonRerankFunction",
]
__version__ = "0.1.0"
