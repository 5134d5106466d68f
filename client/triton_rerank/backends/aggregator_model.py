"""Triton Python-backend aggregator: the cross-encoder's row scores folded back into one score per
document, the last step of the ``reranker`` ensemble.

A long document reaches the model as several rows (windows, see the tokenizer's
``long_documents``); every other document as one. Rows of a document are consecutive and documents
come in input order, so the fold is one pass: ``max`` (the best window, the default for windows),
``mean``, or, for one row, that row. It also sums the rows' tokens (what the model read) and
gives each document the span of the row that decided its score (for ``mean``: from the first
window's start to the last one's end). The request's ``long_documents`` parameter (forwarded by the
ensemble) says which fold.

The export copies this file to ``<repository>/<aggregator>/1/model.py``.
"""

import json

import numpy as np

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # imported outside Triton by the tests, which call fold() below
    pb_utils = None
try:  # inside Triton: the wire contract, which the export copies beside this file
    import rerank_protocol as protocol
except ImportError:  # imported from the package
    import triton_rerank.protocol as protocol

# The inputs, in the order fold() takes them (names from the repository's config).
INPUTS = ("ROW_SCORES", "ROW_DOCUMENT", "NUM_TOKENS", "ROW_SPAN")


def fold(scores, owners, tokens, spans, policy="max"):
    """(scores [documents, 1], tokens [documents], spans [documents, 2]) from the rows' ``scores``,
    the document each row belongs to (``owners``: 0, 0, 1, 2, 2, 2, ...), their ``tokens`` and
    ``spans``; ``policy`` is ``mean`` or anything else for ``max``."""
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    owners = np.asarray(owners).reshape(-1)
    if scores.size == 0 or owners.size != scores.size:
        raise ValueError(f"{scores.size} row scores for {owners.size} rows")
    starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
    if not np.array_equal(owners[starts], np.arange(starts.size)):
        raise ValueError("rows of a document must be consecutive and documents in order")
    ends = np.r_[starts[1:], owners.size]
    spans = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
    if policy == "mean":
        folded = (np.add.reduceat(scores.astype(np.float64), starts) / (ends - starts)).astype(np.float32)
        chosen = np.stack([spans[starts, 0], spans[ends - 1, 1]], axis=1)
    else:
        folded = np.maximum.reduceat(scores, starts)
        best = np.array([start + int(np.argmax(scores[start:end])) for start, end in zip(starts, ends, strict=True)])
        chosen = spans[best]
    return folded.reshape(-1, 1), np.add.reduceat(np.asarray(tokens, dtype=np.int64).reshape(-1), starts), chosen


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.outputs = [tensor["name"] for tensor in config["output"]]  # scores, tokens, spans

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                rows = [pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in INPUTS]
                policy = json.loads(request.parameters() or "{}").get(protocol.LONG_DOCUMENTS, "max")
                folded = fold(*rows, policy=policy)
                tensors = [pb_utils.Tensor(name, value) for name, value in zip(self.outputs, folded, strict=True)]
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            except ValueError as err:
                error = pb_utils.TritonError(f"aggregator: {err}", pb_utils.TritonError.INTERNAL)
                responses.append(pb_utils.InferenceResponse(error=error))
        return responses
