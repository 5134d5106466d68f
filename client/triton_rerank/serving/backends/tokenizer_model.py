"""Triton Python-backend tokenizer: strings -> the id tensors of a cross-encoder or a bi-encoder.

Its config's inputs say which: ``QUERY`` + ``DOCUMENTS`` (model ``tokenizer``) tokenizes each
(query, document) pair as sentence-transformers' ``CrossEncoder`` does; ``TEXTS`` (model
``embed_tokenizer``) tokenizes each text as ``SentenceTransformer`` does. Both use the model's fast
tokenizer (``tokenizer.json``, saved by the export with the model's padding settings), truncation
longest-first at the ``max_length`` parameter of the config, and padding to the longest row of the
request. It needs only the ``tokenizers`` library, reads its files from this model's version
folder, and downloads nothing.

Each request may change how it truncates, with Triton request parameters (an ensemble forwards
them to this step): ``truncate`` (default true; false refuses a row over ``max_length`` tokens,
naming its size, instead of cutting it), ``truncation_direction`` (``right`` or ``left``; by
default the model's own, which is right for every model we know) and, for pairs,
``max_tokens_per_doc`` (each document cut to that many tokens before it is paired, as Cohere's
rerank API promises). Other parameters are ignored.

The export copies this file to ``<repository>/<tokenizer>/1/model.py``.
"""

import json

import numpy as np
from tokenizers import Tokenizer

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # imported outside Triton by the export, which tokenizes with encode() below
    pb_utils = None

# Model input name -> tokenizers.Encoding attribute.
ENCODING_FIELDS = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
# An output that is not a model input: each row's tokens after truncation (usage reports).
TOKEN_COUNT = "num_tokens"
# The request parameters this step reads (their meaning: the module docstring).
TRUNCATE, TRUNCATION_DIRECTION, MAX_TOKENS_PER_DOC = "truncate", "truncation_direction", "max_tokens_per_doc"
DIRECTIONS = ("right", "left")


def encode(tokenizer, rows, names):
    """The id tensors ``names`` for ``rows`` (pairs or texts), int64 [rows, longest]: what this model
    serves, and what the export checks its graphs with."""
    encodings = tokenizer.encode_batch(list(rows))
    return [np.array([getattr(e, ENCODING_FIELDS[name]) for e in encodings], dtype=np.int64) for name in names]


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        parameters = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        self.output_names = [output["name"] for output in config["output"]]
        self.pairs = any(tensor["name"] == "QUERY" for tensor in config["input"])
        unknown = set(self.output_names) - set(ENCODING_FIELDS) - {TOKEN_COUNT}
        if unknown:
            raise pb_utils.TritonModelException(f"tokenizer cannot produce {sorted(unknown)}")
        path = f"{args['model_repository']}/{args['model_version']}/tokenizer.json"
        self.tokenizer = Tokenizer.from_file(path)
        if not self.tokenizer.padding:
            raise pb_utils.TritonModelException(f"{path} sets no padding; re-export the model")
        self.max_length = int(parameters["max_length"])
        strategy = parameters.get("truncation", "longest_first")
        self.direction = (self.tokenizer.truncation or {}).get("direction", "right").lower()  # the model's own
        # One tokenizer per truncation direction, and one that neither truncates nor pads: it
        # measures rows (truncate=false) and cuts documents (max_tokens_per_doc).
        self.truncating = {}
        for direction in DIRECTIONS:
            self.truncating[direction] = Tokenizer.from_str(self.tokenizer.to_str())
            self.truncating[direction].enable_truncation(self.max_length, strategy=strategy, direction=direction)
        self.plain = Tokenizer.from_str(self.tokenizer.to_str())
        self.plain.no_truncation()
        self.plain.no_padding()
        self.max_rows_per_request = int(parameters.get("max_rows_per_request", 0)) or None
        self.max_bytes = int(parameters.get("max_document_bytes", 0)) or None

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                options = _read_options(request, self.pairs)
                rows = self._read_pairs(request) if self.pairs else self._read_texts(request)
                responses.append(pb_utils.InferenceResponse(output_tensors=self._tokenize(rows, **options)))
            except ValueError as err:  # this request is bad (an input error: 400 / INVALID_ARGUMENT); others go on
                error = pb_utils.TritonError(str(err), pb_utils.TritonError.INVALID_ARG)
                responses.append(pb_utils.InferenceResponse(error=error))
        return responses

    def _read_pairs(self, request):
        query = pb_utils.get_input_tensor_by_name(request, "QUERY").as_numpy().reshape(-1)
        if query.size != 1:
            raise ValueError(f"QUERY must hold exactly one string, got {query.size}")
        query = _decode(query[0], "QUERY", self.max_bytes)
        return [(query, document) for document in self._read_strings(request, "DOCUMENTS")]

    def _read_texts(self, request):
        return self._read_strings(request, "TEXTS")

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

    def _tokenize(self, rows, truncate=True, direction=None, max_tokens_per_doc=None):
        if max_tokens_per_doc is not None and max_tokens_per_doc < self.max_length:
            rows = self._cut_documents(rows, max_tokens_per_doc)
        if not truncate:
            self._refuse_long(rows)
        names = [name for name in self.output_names if name != TOKEN_COUNT]
        arrays = dict(zip(names, encode(self.truncating[direction or self.direction], rows, names), strict=True))
        if TOKEN_COUNT in self.output_names:
            arrays[TOKEN_COUNT] = arrays["attention_mask"].sum(axis=1)
        return [pb_utils.Tensor(name, arrays[name]) for name in self.output_names]

    def _cut_documents(self, pairs, max_tokens):
        """Each pair's document cut after its first ``max_tokens`` tokens (at that token's last character)."""
        encodings = self.plain.encode_batch([document for _, document in pairs], add_special_tokens=False)
        return [
            (query, document[: encoding.offsets[max_tokens - 1][1]] if len(encoding.ids) > max_tokens else document)
            for (query, document), encoding in zip(pairs, encodings, strict=True)
        ]

    def _refuse_long(self, rows):
        for row, encoding in zip(rows, self.plain.encode_batch(list(rows)), strict=True):
            if len(encoding.ids) > self.max_length:
                text = row[1] if isinstance(row, tuple) else row
                what = "a (query, document) pair" if isinstance(row, tuple) else "a text"
                raise ValueError(
                    f"{what} has {len(encoding.ids)} tokens, more than this model's {self.max_length} "
                    f"(max_length), and truncation is off; the document begins {text[:40]!r}"
                )


def _read_options(request, pairs):
    """This request's truncation parameters, checked: the keyword arguments of ``_tokenize``."""
    parameters = json.loads(request.parameters() or "{}")
    options = {}
    if TRUNCATE in parameters:
        value = parameters[TRUNCATE]
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise ValueError(f"parameter {TRUNCATE} must be true or false, got {value!r}")
        options["truncate"] = value
    if TRUNCATION_DIRECTION in parameters:
        value = parameters[TRUNCATION_DIRECTION]
        if not isinstance(value, str) or value.lower() not in DIRECTIONS:
            raise ValueError(f"parameter {TRUNCATION_DIRECTION} must be 'right' or 'left', got {value!r}")
        options["direction"] = value.lower()
    if MAX_TOKENS_PER_DOC in parameters:
        value = parameters[MAX_TOKENS_PER_DOC]
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"parameter {MAX_TOKENS_PER_DOC} must be a positive integer, got {value!r}")
        if not pairs:
            raise ValueError(f"parameter {MAX_TOKENS_PER_DOC} applies to (query, document) pairs only")
        options["max_tokens_per_doc"] = value
    return options


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
