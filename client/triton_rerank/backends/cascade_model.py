"""Triton Python-backend cascade (BLS): a cheap reranker ranks every document of a request, and only
its best ``cascade_k`` go on to the full one. Served under the reranker's own name, with its tensors
(QUERY, DOCUMENTS -> SCORES, TOKENS, SPANS), so that every client calls it unchanged.

Both stages are whole reranker ensembles of the same repository (``cascade_first``, ``cascade_last``):
tokenizer, model and aggregator each, so long documents, truncation and the other request
parameters (forwarded to both) mean what they mean for any reranker. The documents that reach the
last stage get its very scores, equal to that model served alone; the others keep the first stage's
order and scores, lowered by one constant when needed so that each ranks below every document the
last stage read (``combine``).

The export (``serving/export/cascade.py``) copies this file to ``<repository>/<name>/1/model.py``.
"""

import json

import numpy as np

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # imported outside Triton by the distillation and the tests, which call combine()
    pb_utils = None
try:  # inside Triton: the wire contract, which the export copies beside this file
    import rerank_protocol as protocol
except ImportError:  # imported from the package
    import triton_rerank.protocol as protocol

# How far below the last stage's lowest score a document it did not read is put, at least.
GAP = 1.0


def chosen_rows(first_scores, k):
    """The indices of the ``k`` best documents by the first stage's scores (ties: input order)."""
    return np.argsort(-np.asarray(first_scores, dtype=np.float32).reshape(-1), kind="stable")[:k]


def combine(first_scores, chosen, last_scores):
    """One score per document: ``last_scores`` for the rows ``chosen`` (in that order), and for every
    other row its first-stage score, all of them shifted by one constant so that the best of them is
    ``GAP`` below the lowest of ``last_scores`` (not shifted where they already are below)."""
    out = np.asarray(first_scores, dtype=np.float32).reshape(-1).copy()
    last = np.asarray(last_scores, dtype=np.float32).reshape(-1)
    rest = np.ones(out.size, dtype=bool)
    rest[chosen] = False
    if rest.any() and last.size:
        shift = max(0.0, float(out[rest].max()) - float(last.min()) + GAP)
        out[rest] -= np.float32(shift)
    out[chosen] = last
    return out


def row_costs(query_bytes, document_bytes, parameters, max_length, reserved):
    """The rows each document (of ``document_bytes`` UTF-8 bytes) may become in a stage's tokenizer:
    one unless it is read in windows and may not fit beside the query (a token is at least a byte),
    then the window cap."""
    if parameters.get(protocol.LONG_DOCUMENTS) not in protocol.WINDOWED_POLICIES:
        return [1] * len(document_bytes)
    chunks = int(parameters.get(protocol.MAX_CHUNKS_PER_DOC, protocol.DEFAULT_MAX_CHUNKS_PER_DOC))
    room = max_length - query_bytes - reserved
    return [1 if size <= room else chunks for size in document_bytes]


def groups(costs, limit):
    """Consecutive index ranges whose costs sum to at most ``limit`` rows (one document at least)."""
    ranges, start, spent = [], 0, 0
    for i, cost in enumerate(costs):
        if i > start and spent + cost > limit:
            ranges.append((start, i))
            start, spent = i, 0
        spent += cost
    return ranges + ([(start, len(costs))] if costs else [])


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        parameters = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        self.first = parameters["cascade_first"]
        self.last = parameters["cascade_last"]
        self.k = int(parameters[protocol.CASCADE_K])
        self.member_rows = int(parameters["cascade_member_rows"])
        self.max_length = int(parameters[protocol.MAX_LENGTH])
        self.reserved = int(parameters.get(protocol.RESERVED_TOKENS, protocol.PAIR_SPECIAL_TOKENS))

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                responses.append(pb_utils.InferenceResponse(output_tensors=self._rerank(request)))
            except pb_utils.TritonModelException as err:  # a stage refused or failed: its reason, as it gave it
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(err))))
            except ValueError as err:
                error = pb_utils.TritonError(f"cascade: {err}", pb_utils.TritonError.INVALID_ARG)
                responses.append(pb_utils.InferenceResponse(error=error))
        return responses

    def _rerank(self, request):
        query = pb_utils.get_input_tensor_by_name(request, protocol.QUERY).as_numpy().reshape(-1)
        documents = pb_utils.get_input_tensor_by_name(request, protocol.DOCUMENTS).as_numpy().reshape(-1)
        if query.size != 1 or documents.size == 0:
            raise ValueError(
                f"QUERY must hold one string and DOCUMENTS at least one; got {query.size} and {documents.size}"
            )
        parameters = json.loads(request.parameters() or "{}")
        first = self._score(self.first, query, documents, parameters)
        chosen = chosen_rows(first[0], self.k)
        last = self._score(self.last, query, documents[chosen], parameters)
        scores = combine(first[0], chosen, last[0])
        tokens = first[1].copy()
        tokens[chosen] += last[1]  # what both models read
        spans = first[2].copy()
        spans[chosen] = last[2]
        return [
            pb_utils.Tensor(protocol.SCORES, scores.reshape(-1, 1)),
            pb_utils.Tensor(protocol.TOKENS, tokens),
            pb_utils.Tensor(protocol.SPANS, spans),
        ]

    def _score(self, model, query, documents, parameters):
        """(scores, tokens, spans) of ``documents`` by the reranker ensemble ``model``, in requests
        that fit its rows per request."""
        costs = row_costs(len(query[0]), [len(d) for d in documents], parameters, self.max_length, self.reserved)
        parts = []
        for start, end in groups(costs, self.member_rows):
            inputs = [
                pb_utils.Tensor(protocol.QUERY, query.astype(np.object_)),
                pb_utils.Tensor(protocol.DOCUMENTS, documents[start:end].astype(np.object_)),
            ]
            response = pb_utils.InferenceRequest(
                model_name=model,
                inputs=inputs,
                requested_output_names=[protocol.SCORES, protocol.TOKENS, protocol.SPANS],
                parameters=parameters,
            ).exec()
            if response.has_error():
                raise pb_utils.TritonModelException(response.error().message())
            parts.append(
                [pb_utils.get_output_tensor_by_name(response, name).as_numpy() for name in protocol.RERANKER_OUTPUTS]
            )
        scores, tokens, spans = (np.concatenate([part[i] for part in parts]) for i in range(3))
        return scores.reshape(-1), tokens.reshape(-1), spans.reshape(-1, 2)
