"""Triton Python-backend tokenizer: strings -> the id tensors of a cross-encoder or a bi-encoder.

Its config's inputs say which: ``QUERY`` + ``DOCUMENTS`` (pairs, as sentence-transformers'
``CrossEncoder`` tokenizes them) or ``TEXTS`` (as ``SentenceTransformer`` does). Both use the
model's fast tokenizer (``tokenizer.json`` in this model's version folder, saved by the export),
truncation longest-first at the config's ``max_length``, and padding to the request's longest row.

Each request may change that with the request parameters of ``protocol`` (an ensemble forwards
them): ``truncate`` and ``truncation_direction``; for pairs, ``max_tokens_per_doc`` and
``long_documents``: ``first`` truncates a document longer than the model's budget, ``error``
refuses it, ``max`` and ``mean`` read it in windows (``document_windows``), one row each, which the
ensemble's aggregator folds back into one score per document.

An LLM reranker (Qwen3-Reranker style) has a ``prompt_template`` config parameter: each pair is
rendered into it (``Prompt``; a request may change its ``instruction``) and read as one text.
Besides the model's inputs, it outputs ``protocol.ROW_OUTPUTS`` per row (rows of a document are
consecutive, documents in input order). The export copies this file to ``<tokenizer>/1/model.py``,
and ``protocol`` beside it.
"""

import json
import re

import numpy as np
from tokenizers import Tokenizer

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # imported outside Triton by the export, which tokenizes with encode() below
    pb_utils = None
try:  # inside Triton: the wire contract, which the export copies beside this file
    import rerank_protocol as protocol
except ImportError:  # imported from the package
    import triton_rerank.protocol as protocol

# Model input name -> tokenizers.Encoding attribute.
ENCODING_FIELDS = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}


def encode(tokenizer, rows, names):
    """The id tensors ``names`` for ``rows`` (pairs or texts), int64 [rows, longest]: what this model
    serves, and what the export checks its graphs with."""
    return _arrays(tokenizer.encode_batch(list(rows)), names)


def _arrays(encodings, names):
    return [np.array([getattr(e, ENCODING_FIELDS[name]) for e in encodings], dtype=np.int64) for name in names]


def document_windows(text, encoding, window, stride, max_chunks):
    """Character spans ``[(start, end)]`` of the windows a long document is read in, at most
    ``max_chunks`` of them from the start. Each holds at most ``window`` tokens of ``encoding`` (the
    document alone, no special tokens) and ends at the end of a word (unless one word is longer than
    a window: it is cut). The next one shares at least ``stride`` tokens with it and starts where a
    reader would (``_start_rank``): at the latest paragraph start in the last three quarters of the
    step (the ``window - stride`` tokens after this window's start), else the latest sentence or
    line start there, else the word that holds the shared part's first token. So a passage of its
    own paragraph is read from its start, as it would be alone. Every token up to the end of the
    last window is in one window at least. A text of no tokens (empty, or blank) is one window."""
    words, offsets, count = encoding.word_ids, encoding.offsets, len(encoding.ids)
    if count == 0:
        return [(0, len(text))]
    spans, start = [], 0
    while True:
        end = min(start + window, count)
        if end < count:  # end between two words, unless the window would hold no whole word
            cut = end
            while cut > start and _inside_word(words, cut):
                cut -= 1
            end = cut if cut > start else end
        spans.append((offsets[start][0], offsets[end - 1][1]))
        if end >= count or len(spans) == max_chunks:
            return spans
        latest = max(end - stride, start + 1)  # sharing `stride` tokens at least
        earliest = min(start + max(1, (latest - start) // 4), latest)
        best, start = -1, latest
        for i in range(latest, earliest - 1, -1):  # the latest start of the highest rank
            rank = _start_rank(text, words, offsets, i)
            if rank > best:
                best, start = rank, i
        if best < 0:  # inside one word from `earliest` on: its next word's first token (at the latest: end)
            while start < end and _inside_word(words, start):
                start += 1


PARAGRAPH, LINE_OR_SENTENCE, WORD = 2, 1, 0
SENTENCE_ENDS = (".", "!", "?")
CLOSERS = "\"')]\u201d\u2019\u00bb"


def _start_rank(text, words, offsets, i):
    """How good a window start token ``i`` is: a paragraph's first token (after a blank line), a
    line's or a sentence's, a word's, or -1 inside a word."""
    if _inside_word(words, i):
        return -1
    gap = text[offsets[i - 1][1] : offsets[i][0]]
    if gap.count("\n") >= 2:
        return PARAGRAPH
    before = text[max(0, offsets[i - 1][1] - 8) : offsets[i - 1][1]].rstrip(CLOSERS)
    if "\n" in gap or (gap and before.endswith(SENTENCE_ENDS)):
        return LINE_OR_SENTENCE
    return WORD


def _inside_word(words, i):
    """Whether token ``i`` continues the word of token ``i - 1``."""
    return words[i] is not None and words[i] == words[i - 1]


class Prompt:
    """How an LLM reranker reads a (query, document) pair: one text, ``template`` with its
    ``{instruction}``, ``{query}`` and ``{document}`` filled in, in one pass (a query holding the
    characters '{document}' stays as it is). The template ends with ``{document}``, so truncation
    cuts the document's end, as the model card's reference does."""

    SLOTS = re.compile(r"\{(instruction|query|document)\}")

    def __init__(self, template, instruction):
        if not template.endswith("{document}") or "{query}" not in template:
            raise ValueError(f"prompt_template must hold {{query}} and end with {{document}}, got {template!r}")
        self.template, self.instruction = template, instruction

    def render(self, query, document, instruction=None):
        instruction = self.instruction if instruction is None else instruction
        values = {"instruction": instruction, "query": query, "document": document}
        return self.SLOTS.sub(lambda slot: values[slot.group(1)], self.template)


def windowed_rows(plain, max_length, pairs, max_chunks, window=None, stride=None, render=None):
    """Each (query, document) pair whose document is over the budget (max_length less the query and
    the special tokens, or less the rendered prompt: ``render``) split into windows: (rows, the
    document each row belongs to, the characters of the document each row holds). ``plain``
    tokenizes without truncation or padding; ``window`` and ``stride`` default to the budget and
    half of it."""
    query = pairs[0][0]
    around = plain.encode(render(query, "")) if render else plain.encode(query, "")  # [CLS] query [SEP] [SEP]
    budget = max_length - len(around.ids)
    # A window fills the budget by default. A query that leaves little room (or none) still lets a window
    # hold half the model: pair truncation then cuts both, as in-process.
    default = budget if budget > 0 else max_length // 2
    size = min(window or default, max(budget, max_length // 2))
    overlap = min(size // 2 if stride is None else stride, size - 1)
    long = [i for i, (_, document) in enumerate(pairs) if len(document.encode("utf-8")) > budget]  # tokens <= bytes
    found = plain.encode_batch([pairs[i][1] for i in long], add_special_tokens=False)
    encodings = dict(zip(long, found, strict=True))
    rows, owners, spans = [], [], []
    for i, (_, document) in enumerate(pairs):
        encoding = encodings.get(i)
        windows = [(0, len(document))]
        if encoding is not None and len(encoding.ids) > max(budget, 0):  # no tokens: one row, whatever the budget
            windows = document_windows(document, encoding, size, overlap, max_chunks)
        rows += [(query, document[start:end]) for start, end in windows]
        owners += [i] * len(windows)
        spans += windows
    return rows, owners, spans


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        parameters = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        self.output_names = [output["name"] for output in config["output"]]
        self.pairs = any(tensor["name"] == protocol.QUERY for tensor in config["input"])
        unknown = set(self.output_names) - set(ENCODING_FIELDS) - set(protocol.ROW_OUTPUTS)
        if unknown:
            raise pb_utils.TritonModelException(f"tokenizer cannot produce {sorted(unknown)}")
        path = f"{args['model_repository']}/{args['model_version']}/tokenizer.json"
        self.tokenizer = Tokenizer.from_file(path)
        if not self.tokenizer.padding:
            raise pb_utils.TritonModelException(f"{path} sets no padding; re-export the model")
        self.max_length = int(parameters[protocol.MAX_LENGTH])
        strategy = parameters.get("truncation", "longest_first")
        self.direction = (self.tokenizer.truncation or {}).get("direction", "right").lower()  # the model's own
        # One tokenizer per truncation direction, and one that neither truncates nor pads: it
        # measures rows (truncate=false, long documents) and cuts documents (max_tokens_per_doc).
        self.truncating = {}
        for direction in protocol.TRUNCATION_DIRECTIONS:
            self.truncating[direction] = Tokenizer.from_str(self.tokenizer.to_str())
            self.truncating[direction].enable_truncation(self.max_length, strategy=strategy, direction=direction)
        self.plain = Tokenizer.from_str(self.tokenizer.to_str())
        self.plain.no_truncation()
        self.plain.no_padding()
        template = parameters.get("prompt_template")
        self.prompt = Prompt(template, parameters.get("instruction", "")) if template else None
        self.max_rows_per_request = int(parameters.get(protocol.MAX_ROWS_PER_REQUEST, 0)) or None
        self.max_bytes = int(parameters.get("max_document_bytes", 0)) or None

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                options = read_options(json.loads(request.parameters() or "{}"), self.pairs, self.max_length)
                rows = self._read_pairs(request) if self.pairs else self._read_strings(request, protocol.TEXTS)
                responses.append(pb_utils.InferenceResponse(output_tensors=self._tokenize(rows, **options)))
            except ValueError as err:  # this request is bad (an input error: 400 / INVALID_ARGUMENT); others go on
                error = pb_utils.TritonError(str(err), pb_utils.TritonError.INVALID_ARG)
                responses.append(pb_utils.InferenceResponse(error=error))
        return responses

    def _read_pairs(self, request):
        query = pb_utils.get_input_tensor_by_name(request, protocol.QUERY).as_numpy().reshape(-1)
        if query.size != 1:
            raise ValueError(f"QUERY must hold exactly one string, got {query.size}")
        query = _decode(query[0], protocol.QUERY, self.max_bytes)
        return [(query, document) for document in self._read_strings(request, protocol.DOCUMENTS)]

    def _read_strings(self, request, name):
        values = pb_utils.get_input_tensor_by_name(request, name).as_numpy().reshape(-1)
        if values.size == 0:
            raise ValueError(f"{name} must hold at least one string")
        limit = self.max_rows_per_request
        if limit and values.size > limit:
            raise ValueError(
                f"{name} holds {values.size} strings; this server takes at most {limit} per request "
                "(split the request; the triton_rerank client does so itself)"
            )
        return [_decode(value, f"{name}[{i}]", self.max_bytes) for i, value in enumerate(values)]

    def _tokenize(
        self,
        rows,
        truncate=True,
        direction=None,
        max_tokens_per_doc=None,
        long_documents="first",
        max_chunks_per_doc=protocol.DEFAULT_MAX_CHUNKS_PER_DOC,
        window=None,
        stride=None,
        instruction=None,
    ):
        render = self._render(instruction)
        windowed = long_documents in ("max", "mean")
        if max_tokens_per_doc is not None and (windowed or max_tokens_per_doc < self.max_length):
            rows = self._cut_documents(rows, max_tokens_per_doc)
        if not truncate or long_documents == "error":
            self._refuse_long(rows, render)
        spans = [(0, len(row[1]) if self.pairs else len(row)) for row in rows]
        owners = list(range(len(rows)))
        if windowed:
            rows, owners, spans = self._windows(rows, max_chunks_per_doc, window, stride, render)
        texts = _as_read(rows, render)
        encodings = self.truncating[direction or self.direction].encode_batch(texts)
        names = [name for name in self.output_names if name in ENCODING_FIELDS]
        arrays = dict(zip(names, _arrays(encodings, names), strict=True))
        counts = arrays["attention_mask"].sum(axis=1)
        if protocol.TOKEN_COUNT in self.output_names:
            arrays[protocol.TOKEN_COUNT] = counts
        if protocol.ROW_DOCUMENT in self.output_names:
            arrays[protocol.ROW_DOCUMENT] = np.array(owners, dtype=np.int64)
        if protocol.ROW_SPAN in self.output_names:
            where = [
                (0, 1) if not render else (len(text) - len(row[1]), 0) for row, text in zip(rows, texts, strict=True)
            ]
            arrays[protocol.ROW_SPAN] = np.array(
                [
                    _kept(e, span, *at) if n >= self.max_length else span
                    for e, span, n, at in zip(encodings, spans, counts, where, strict=True)
                ],
                dtype=np.int64,
            ).reshape(-1, 2)
        return [pb_utils.Tensor(name, arrays[name]) for name in self.output_names]

    def _render(self, instruction):
        """How a pair becomes the text the model reads: None for a cross-encoder (the pair itself)."""
        if self.prompt is None:
            if instruction is not None:
                raise ValueError(
                    f"parameter {protocol.INSTRUCTION} applies to LLM rerankers; this model reads plain pairs"
                )
            return None
        return lambda query, document: self.prompt.render(query, document, instruction)

    def _windows(self, pairs, max_chunks, window, stride, render):
        rows, owners, spans = windowed_rows(self.plain, self.max_length, pairs, max_chunks, window, stride, render)
        limit = self.max_rows_per_request
        if limit and len(rows) > limit:
            raise ValueError(
                f"these {len(pairs)} documents make {len(rows)} windows; this server takes at most {limit} rows per "
                f"request (send fewer documents per request, or lower {protocol.MAX_CHUNKS_PER_DOC}; the "
                "triton_rerank client does so itself)"
            )
        return rows, owners, spans

    def _cut_documents(self, pairs, max_tokens):
        """Each pair's document cut after its first ``max_tokens`` tokens (at that token's last character)."""
        encodings = self.plain.encode_batch([document for _, document in pairs], add_special_tokens=False)
        return [
            (query, document[: encoding.offsets[max_tokens - 1][1]] if len(encoding.ids) > max_tokens else document)
            for (query, document), encoding in zip(pairs, encodings, strict=True)
        ]

    def _refuse_long(self, rows, render):
        for row, encoding in zip(rows, self.plain.encode_batch(_as_read(rows, render)), strict=True):
            if len(encoding.ids) > self.max_length:
                text = row[1] if isinstance(row, tuple) else row
                what = "a (query, document) pair" if isinstance(row, tuple) else "a text"
                raise ValueError(
                    f"{what} has {len(encoding.ids)} tokens, more than this model's {self.max_length} "
                    f"(max_length), and truncation is off; the document begins {text[:40]!r}"
                )


def _as_read(rows, render):
    """What the tokenizer reads of each row: the row itself, or the pair rendered into the prompt."""
    return [render(*row) for row in rows] if render else list(rows)


def _kept(encoding, span, begins=0, sequence=1):
    """The characters of ``span`` that a full row's encoding (max_length tokens: perhaps truncated)
    kept of the document, from its first kept token to its last: the document is ``sequence`` of the
    row from character ``begins`` on (a pair's second sequence, or a prompt's end). (Not
    ``encoding.overflowing``: for a long document that builds thousands of encodings to test.)"""
    start, _ = span
    kept = [
        (max(first - begins, 0), last - begins)
        for (first, last), seq in zip(encoding.offsets, encoding.sequence_ids, strict=True)
        if seq == sequence and last > begins
    ]
    return (start + kept[0][0], start + kept[-1][1]) if kept else (start, start)


SMALLEST = (
    (protocol.MAX_TOKENS_PER_DOC, 1),
    (protocol.MAX_CHUNKS_PER_DOC, 1),
    (protocol.WINDOW, 1),
    (protocol.STRIDE, 0),
)


def read_options(parameters, pairs, max_length):
    """A request's parameters, checked: the keyword arguments of ``_tokenize``."""
    options = {}
    if protocol.TRUNCATE in parameters:
        options["truncate"] = _boolean(parameters[protocol.TRUNCATE], protocol.TRUNCATE)
    if protocol.TRUNCATION_DIRECTION in parameters:
        value = parameters[protocol.TRUNCATION_DIRECTION]
        if not isinstance(value, str) or value.lower() not in protocol.TRUNCATION_DIRECTIONS:
            raise ValueError(f"parameter {protocol.TRUNCATION_DIRECTION} must be 'right' or 'left', got {value!r}")
        options["direction"] = value.lower()
    if not pairs and any(name in parameters for name in protocol.PAIR_PARAMETERS):
        raise ValueError(f"parameters {', '.join(protocol.PAIR_PARAMETERS)} apply to (query, document) pairs only")
    if protocol.LONG_DOCUMENTS in parameters:
        value = parameters[protocol.LONG_DOCUMENTS]
        if value not in protocol.LONG_DOCUMENT_POLICIES:
            raise ValueError(
                f"parameter {protocol.LONG_DOCUMENTS} must be one of "
                f"{', '.join(protocol.LONG_DOCUMENT_POLICIES)}, got {value!r}"
            )
        options["long_documents"] = value
    if protocol.INSTRUCTION in parameters:
        instruction = parameters[protocol.INSTRUCTION]
        if not isinstance(instruction, str):
            raise ValueError(f"parameter {protocol.INSTRUCTION} must be a string, got {instruction!r}")
        options[protocol.INSTRUCTION] = instruction
    for name, smallest in SMALLEST:
        if name in parameters:
            options[name] = _integer(parameters[name], name, smallest)
    if options.get(protocol.WINDOW, 0) > max_length:
        raise ValueError(
            f"parameter {protocol.WINDOW}={options[protocol.WINDOW]} is larger than this model's max_length "
            f"({max_length})"
        )
    if protocol.STRIDE in options and options[protocol.STRIDE] >= options.get(protocol.WINDOW, max_length):
        raise ValueError(
            f"parameter {protocol.STRIDE}={options[protocol.STRIDE]} (the tokens neighbouring windows share) must "
            f"be smaller than the window ({options.get(protocol.WINDOW, max_length)} tokens)"
        )
    return options


def _boolean(value, name):
    if isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    if not isinstance(value, bool):
        raise ValueError(f"parameter {name} must be true or false, got {value!r}")
    return value


def _integer(value, name, smallest):
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < smallest:
        kind = "a positive integer" if smallest == 1 else "an integer >= 0"
        raise ValueError(f"parameter {name} must be {kind}, got {value!r}")
    return value


def _decode(value, what, max_bytes=None):
    value = bytes(value)
    if max_bytes and len(value) > max_bytes:
        begins = value[:40].decode("utf-8", errors="replace")  # to find it: a client may reorder the strings
        raise ValueError(
            f"{what} is {len(value):,} bytes; this server takes at most {max_bytes:,} bytes per string "
            f"(it begins {begins!r})"
        )
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{what} is not valid UTF-8: {err}") from None
