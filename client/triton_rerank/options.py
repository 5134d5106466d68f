"""What one rerank call may ask of the server besides its query and documents, as one frozen,
checked object: how documents longer than the model reads are treated, and an LLM reranker's
instruction. ``RerankOptions()`` is today's path (truncation, as ``CrossEncoder.predict``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import triton_rerank.protocol as protocol
from triton_rerank.errors import RerankInputError

LongDocuments = Literal["first", "max", "mean", "error"]


@dataclass(frozen=True, kw_only=True)
class RerankOptions:
    """A rerank call's choices; each is checked when the object is made.

    Args:
        truncate: False makes the server refuse a pair over the model's max_length instead of cutting it.
        truncation_direction: ``"right"`` or ``"left"``: which end is cut (default: the model's own).
        max_tokens_per_doc: each document cut to that many tokens before anything else.
        long_documents: a document longer than the model reads beside the query is ``"first"``:
            truncated (``CrossEncoder.predict``'s scores); ``"error"``: refused; ``"max"`` / ``"mean"``:
            read in overlapping windows, its score the best / the mean of theirs.
        max_chunks_per_doc: most windows per document (default 32), from its start.
        window: tokens per window (default: as many as fit beside the query).
        stride: tokens that neighbouring windows share (default: half a window).
        instruction: an LLM reranker's task line, in place of the one it was exported with.
    """

    truncate: bool = True
    truncation_direction: Literal["right", "left"] | None = None
    max_tokens_per_doc: int | None = None
    long_documents: LongDocuments = protocol.DEFAULT_LONG_DOCUMENTS
    max_chunks_per_doc: int | None = None
    window: int | None = None
    stride: int | None = None
    instruction: str | None = None

    def __post_init__(self) -> None:
        if self.instruction is not None and not isinstance(self.instruction, str):
            raise RerankInputError(f"instruction must be a str, got {type(self.instruction).__name__}")
        if not isinstance(self.truncate, bool):
            raise RerankInputError(f"truncate must be True or False, got {self.truncate!r}")
        if self.truncation_direction is not None and self.truncation_direction not in protocol.TRUNCATION_DIRECTIONS:
            raise RerankInputError(f"truncation_direction must be 'right' or 'left', got {self.truncation_direction!r}")
        if self.long_documents not in protocol.LONG_DOCUMENT_POLICIES:
            policies = ", ".join(protocol.LONG_DOCUMENT_POLICIES)
            raise RerankInputError(f"long_documents must be one of {policies}, got {self.long_documents!r}")
        for name, smallest in (("max_tokens_per_doc", 1), ("max_chunks_per_doc", 1), ("window", 1), ("stride", 0)):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < smallest:
                kind = "a positive int" if smallest else "an int >= 0"
                raise RerankInputError(f"{name} must be {kind} or None, got {value!r}")
            if name != "max_tokens_per_doc" and not self.windowed:
                raise RerankInputError(f"{name} applies to long_documents 'max' or 'mean', not {self.long_documents!r}")
        if self.window is not None and self.stride is not None and self.stride >= self.window:
            raise RerankInputError(
                f"stride ({self.stride}, the tokens neighbouring windows share) must be smaller than window"
            )

    @classmethod
    def of(cls, options: RerankOptions | None = None, **keywords: object) -> RerankOptions:
        """``options``, or one made of ``keywords`` (a misspelt one is refused by name), not both."""
        if options is not None and not isinstance(options, RerankOptions):
            raise RerankInputError(f"options must be a RerankOptions, got {type(options).__name__}")
        if not keywords:
            return options or DEFAULT_OPTIONS
        if options is not None:
            raise RerankInputError(f"give options= or the keywords {sorted(keywords)}, not both")
        unknown = sorted(set(keywords) - set(OPTION_NAMES))
        if unknown:
            raise RerankInputError(f"unknown rerank option(s) {unknown}; the options are {', '.join(OPTION_NAMES)}")
        return cls(**keywords)

    @property
    def windowed(self) -> bool:
        """Long documents are read in windows, and each document's deciding span is known."""
        return self.long_documents in protocol.WINDOWED_POLICIES

    @property
    def chunks_per_doc(self) -> int:
        """Most windows (rows) one long document may become."""
        return self.max_chunks_per_doc or protocol.DEFAULT_MAX_CHUNKS_PER_DOC

    def parameters(self) -> dict | None:
        """The tokenizer step's request parameters (None: the defaults, today's path)."""
        parameters: dict = {}
        if self.instruction is not None:
            parameters[protocol.INSTRUCTION] = self.instruction
        if not self.truncate:
            parameters[protocol.TRUNCATE] = False
        if self.truncation_direction is not None:
            parameters[protocol.TRUNCATION_DIRECTION] = self.truncation_direction
        if self.long_documents != protocol.DEFAULT_LONG_DOCUMENTS:
            parameters[protocol.LONG_DOCUMENTS] = self.long_documents
        for name in (protocol.MAX_TOKENS_PER_DOC, protocol.WINDOW, protocol.STRIDE):
            if getattr(self, name) is not None:
                parameters[name] = getattr(self, name)
        if self.windowed:
            parameters[protocol.MAX_CHUNKS_PER_DOC] = self.chunks_per_doc
        return parameters or None

    def row_costs(self, query: str) -> Callable[[dict[str, int], list[bytes]], list[int]] | None:
        """For windowed calls, the rows each document may become on the server, from its limits: one
        for a document that surely fits beside the query and the row's reserved tokens (a token is at
        least a byte), else its window cap. None otherwise: a document is one row."""
        if not self.windowed:
            return None
        chunks = self.chunks_per_doc
        instruction = self.instruction or ""  # another than the export's: counted whole, on top

        def costs(limits: dict[str, int], encoded: list[bytes]) -> list[int]:
            rows = limits.get(protocol.MAX_ROWS_PER_REQUEST)
            if rows and chunks > rows:
                raise RerankInputError(
                    f"max_chunks_per_doc ({chunks}) is more than this server takes in one request ({rows} rows)"
                )
            max_length = limits.get(protocol.MAX_LENGTH)
            reserved = limits.get(protocol.RESERVED_TOKENS, protocol.PAIR_SPECIAL_TOKENS) + len(instruction.encode())
            room = max_length - len(query.encode("utf-8")) - reserved if max_length else -1
            return [1 if len(document) <= room else chunks for document in encoded]

        return costs


OPTION_NAMES = tuple(field.name for field in dataclasses.fields(RerankOptions))
DEFAULT_OPTIONS = RerankOptions()
