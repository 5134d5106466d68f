"""A drop-in for pymilvus' ``CrossEncoderRerankFunction`` that reranks on a Triton server.

    rf = TritonRerankFunction("grpc://127.0.0.1:8001")      # or http://127.0.0.1:8000
    rf(query="...", documents=["...", "..."], top_k=3)       # -> [RerankResult(text, score, index)]

Same call, same result type, same order (score descending, ties in input order) and, by default,
the same score meaning as ``cross-encoder/ms-marco-*`` models give in-process: the raw logit.
``activation="sigmoid"`` maps scores into (0, 1). Each call may also say what the server does with
documents longer than the model reads (``request_options``: truncate them, the default; refuse
them; or score every window of them and keep the best or the mean) and ask which part of each
document decided its score (``return_spans``). The options every client takes (replicas, timeouts,
batch size, API key) are those of ``base._Client``; ``AsyncTritonRerankFunction`` is the asyncio twin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal, NamedTuple

import numpy as np

from triton_rerank.base import AsyncClient, BlockingClient, check_strings, utf8
from triton_rerank.endpoints import DEFAULT_URL
from triton_rerank.errors import RerankInputError
from triton_rerank.transport import MAX_LENGTH_PARAMETER, MAX_ROWS_PARAMETER, RESERVED_TOKENS_PARAMETER

Activation = Literal["identity", "sigmoid"]
LongDocuments = Literal["first", "max", "mean", "error"]
LONG_DOCUMENTS = ("first", "max", "mean", "error")
# Windows scored per long document unless a call says otherwise (the tokenizer step's default too).
DEFAULT_MAX_CHUNKS_PER_DOC = 32
# A pair's special tokens: at most 4 ([CLS] q [SEP] d [SEP] for BERT, <s> q </s></s> d </s> for RoBERTa).
PAIR_SPECIAL_TOKENS = 4


@dataclass(frozen=True)
class RerankResult:
    """One reranked document: its text, its score, its position in the input list and, when asked
    for (``return_spans``), the characters ``text[span[0]:span[1]]`` that decided its score."""

    text: str
    score: float
    index: int
    span: tuple[int, int] | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        if self.span is None:  # the drop-in's dict: text, score, index
            del out["span"]
        return out


class Scores(NamedTuple):
    """What ``score_details`` returns, one entry per document in input order: the scores, and, when
    asked for, the tokens the model read and the span ``[start, end)`` of the text that decided."""

    scores: np.ndarray
    tokens: np.ndarray | None = None
    spans: np.ndarray | None = None


def check_request(query: object, documents: object, top_k: object) -> list[bytes]:
    """Validate a rerank call; returns the documents UTF-8 encoded, in order."""
    utf8(query, "query")
    encoded = check_strings(documents, "documents")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise RerankInputError(f"top_k must be a positive int or None (all documents), got {top_k!r}")
    return encoded


def rank(
    documents: Sequence[str], scores: np.ndarray, top_k: int | None, spans: np.ndarray | None = None
) -> list[RerankResult]:
    """Results sorted by score, descending; equal scores keep input order (as pymilvus does)."""
    order = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)
    return [
        RerankResult(
            text=documents[i],
            score=float(scores[i]),
            index=i,
            span=None if spans is None else (int(spans[i][0]), int(spans[i][1])),
        )
        for i in order[:top_k]
    ]


def activate(logits: np.ndarray, activation: Activation) -> np.ndarray:
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    return logits


def check_activation(activation: object) -> Activation:
    if activation not in ("identity", "sigmoid"):
        raise RerankInputError(f"activation must be 'identity' (raw logits) or 'sigmoid', got {activation!r}")
    return activation


def request_options(
    truncate: object = True,
    truncation_direction: object = None,
    max_tokens_per_doc: object = None,
    long_documents: object = "first",
    max_chunks_per_doc: object = None,
    window: object = None,
    stride: object = None,
    instruction: object = None,
) -> dict | None:
    """A call's choices as the tokenizer step's request parameters (None: the defaults, today's path).

    Args:
        truncate: False makes the server refuse a pair over the model's max_length instead of cutting it.
        truncation_direction: ``"right"`` or ``"left"``: which end is cut.
        max_tokens_per_doc: each document cut to that many tokens before anything else.
        long_documents: a document longer than the model reads beside the query is ``"first"``:
            truncated (``CrossEncoder.predict``'s scores); ``"error"``: refused; ``"max"`` / ``"mean"``:
            read in overlapping windows, its score the best / the mean of theirs.
        max_chunks_per_doc: most windows per document (default 32), from its start.
        window: tokens per window (default: as many as fit beside the query).
        stride: tokens that neighbouring windows share (default: half a window).
        instruction: an LLM reranker's task line, in place of the one it was exported with.
    """
    parameters: dict = {}
    if instruction is not None:
        if not isinstance(instruction, str):
            raise RerankInputError(f"instruction must be a str, got {type(instruction).__name__}")
        parameters["instruction"] = instruction
    if not isinstance(truncate, bool):
        raise RerankInputError(f"truncate must be True or False, got {truncate!r}")
    if not truncate:
        parameters["truncate"] = False
    if truncation_direction is not None:
        if truncation_direction not in ("right", "left"):
            raise RerankInputError(f"truncation_direction must be 'right' or 'left', got {truncation_direction!r}")
        parameters["truncation_direction"] = truncation_direction
    if long_documents not in LONG_DOCUMENTS:
        raise RerankInputError(f"long_documents must be one of {', '.join(LONG_DOCUMENTS)}, got {long_documents!r}")
    if long_documents != "first":
        parameters["long_documents"] = long_documents
    windowed = long_documents in ("max", "mean")
    for name, value, smallest in (
        ("max_tokens_per_doc", max_tokens_per_doc, 1),
        ("max_chunks_per_doc", max_chunks_per_doc, 1),
        ("window", window, 1),
        ("stride", stride, 0),
    ):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < smallest:
            kind = "a positive int" if smallest else "an int >= 0"
            raise RerankInputError(f"{name} must be {kind} or None, got {value!r}")
        if name != "max_tokens_per_doc" and not windowed:
            raise RerankInputError(f"{name} applies to long_documents 'max' or 'mean', not {long_documents!r}")
        parameters[name] = value
    if windowed:
        parameters.setdefault("max_chunks_per_doc", DEFAULT_MAX_CHUNKS_PER_DOC)
    if window is not None and stride is not None and stride >= window:
        raise RerankInputError(f"stride ({stride}, the tokens neighbouring windows share) must be smaller than window")
    return parameters or None


def row_costs(query: str, parameters: dict | None):
    """For windowed calls, the rows each document may become on the server, from its limits: one
    for a document that surely fits beside the query and the row's reserved tokens (a token is at
    least a byte), else its window cap. None otherwise: a document is one row."""
    if not parameters or parameters.get("long_documents") not in ("max", "mean"):
        return None
    chunks = parameters["max_chunks_per_doc"]
    instruction = parameters.get("instruction", "")  # another than the export's: counted whole, on top

    def costs(limits: dict[str, int], encoded: list[bytes]) -> list[int]:
        rows = limits.get(MAX_ROWS_PARAMETER)
        if rows and chunks > rows:
            raise RerankInputError(
                f"max_chunks_per_doc ({chunks}) is more than this server takes in one request ({rows} rows)"
            )
        max_length = limits.get(MAX_LENGTH_PARAMETER)
        reserved = limits.get(RESERVED_TOKENS_PARAMETER, PAIR_SPECIAL_TOKENS) + len(instruction.encode("utf-8"))
        room = max_length - len(query.encode("utf-8")) - reserved if max_length else -1
        return [1 if len(document) <= room else chunks for document in encoded]

    return costs


class _Reranker:
    """What both rerank clients share: turning a call into requests, and their answer into results."""

    DEFAULT_MODEL_NAME = "reranker"

    def __init__(self, url: str | Sequence[str] = DEFAULT_URL, *, activation: Activation = "identity", **options):
        self.activation = check_activation(activation)
        super().__init__(url, **options)

    def _request(self, query, documents, top_k, options, tokens: bool, spans: bool) -> tuple[list[bytes], dict]:
        """The documents encoded, and the keyword arguments of ``_send`` for them."""
        encoded = check_request(query, documents, top_k)
        parameters = request_options(**options)
        costs = row_costs(query, parameters)
        outputs = ("SCORES",) + (("TOKENS",) if tokens else ()) + (("SPANS",) if spans else ())
        query_bytes = [query.encode("utf-8")]
        return encoded, {
            "make_batch": lambda group: ({"QUERY": query_bytes, "DOCUMENTS": group}, len(group)),
            "output": outputs if len(outputs) > 1 else "SCORES",
            "flat": len(outputs) == 1,
            "parameters": parameters,
            "costs": (lambda limits: costs(limits, encoded)) if costs else None,
        }

    def _scores(self, values: np.ndarray, tokens: bool, spans: bool) -> Scores:
        """The answer (one column per output, side by side) as ``Scores``."""
        if len(values) == 0:  # no documents, no request
            return Scores(np.empty(0, np.float32), np.empty(0, np.int64) if tokens else None,
                          np.empty((0, 2), np.int64) if spans else None)  # fmt: skip
        if values.ndim == 1:
            return Scores(activate(values, self.activation))
        return Scores(
            activate(values[:, 0], self.activation),
            values[:, 1].astype(np.int64) if tokens else None,
            values[:, -2:].astype(np.int64) if spans else None,
        )


class TritonRerankFunction(_Reranker, BlockingClient):
    """Rerank documents for a query on a Triton server; see the module docstring.

    Args:
        activation: ``identity`` returns raw logits (as ms-marco cross-encoders do in-process);
            ``sigmoid`` maps them into (0, 1).
        options: Those of every client (``base._Client``): ``model_name`` (default ``reranker``),
            ``batch_size``, ``timeout_s``, ``headers``, ``max_in_flight``, ``retry_s``, ``api_key``.
    """

    def __call__(
        self, query: str, documents: list[str], top_k: int | None = 5, *, return_spans: bool = False, **options
    ) -> list[RerankResult]:
        """Rerank ``documents`` for ``query``; the ``top_k`` best (all for ``None``), best first.
        ``options``: the keywords of ``request_options``."""
        found = self._details(query, documents, top_k, options, spans=return_spans)
        return rank(documents, found.scores, top_k, found.spans)

    def score(self, query: str, documents: list[str], **options) -> np.ndarray:
        """One score per document, in input order (float32 logits, or float64 after sigmoid)."""
        return self._details(query, documents, None, options).scores

    def score_details(
        self, query: str, documents: list[str], *, tokens: bool = False, spans: bool = False, **options
    ) -> Scores:
        """``score``, and with ``tokens`` the tokens the model read per document (usage reports),
        with ``spans`` the characters of each document that decided its score."""
        return self._details(query, documents, None, options, tokens=tokens, spans=spans)

    def _details(self, query, documents, top_k, options, *, tokens=False, spans=False) -> Scores:
        encoded, request = self._request(query, documents, top_k, options, tokens, spans)
        return self._scores(self._send(encoded, **request), tokens, spans)


class AsyncTritonRerankFunction(_Reranker, AsyncClient):
    """The asyncio twin of ``TritonRerankFunction``: same arguments, ``await rf(...)``."""

    async def __call__(
        self, query: str, documents: list[str], top_k: int | None = 5, *, return_spans: bool = False, **options
    ) -> list[RerankResult]:
        found = await self._details(query, documents, top_k, options, spans=return_spans)
        return rank(documents, found.scores, top_k, found.spans)

    async def score(self, query: str, documents: list[str], **options) -> np.ndarray:
        return (await self._details(query, documents, None, options)).scores

    async def score_details(
        self, query: str, documents: list[str], *, tokens: bool = False, spans: bool = False, **options
    ) -> Scores:
        return await self._details(query, documents, None, options, tokens=tokens, spans=spans)

    async def _details(self, query, documents, top_k, options, *, tokens=False, spans=False) -> Scores:
        encoded, request = self._request(query, documents, top_k, options, tokens, spans)
        return self._scores(await self._send(encoded, **request), tokens, spans)
