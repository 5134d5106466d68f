"""Triton Python-backend model ``tokenizer``: (QUERY, DOCUMENTS) -> the cross-encoder's id tensors.

Tokenizes each (query, document) pair exactly as sentence-transformers' ``CrossEncoder`` does: the
model's fast tokenizer (``tokenizer.json``, saved by the export with the model's padding settings),
truncation longest-first at the ``max_length`` parameter of this model's config, padding to the
longest pair of the request. It needs only the ``tokenizers`` library, reads its files from this
model's version folder, and downloads nothing.

This file is copied to ``<repository>/tokenizer/1/model.py`` by the export.
"""

import json

import numpy as np
import triton_python_backend_utils as pb_utils
from tokenizers import Tokenizer

# Model input name -> tokenizers.Encoding attribute.
_ENCODING_FIELDS = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        parameters = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        self.output_names = [output["name"] for output in config["output"]]
        unknown = set(self.output_names) - set(_ENCODING_FIELDS)
        if unknown:
            raise pb_utils.TritonModelException(f"tokenizer cannot produce {sorted(unknown)}")
        path = f"{args['model_repository']}/{args['model_version']}/tokenizer.json"
        self.tokenizer = Tokenizer.from_file(path)
        if not self.tokenizer.padding:
            raise pb_utils.TritonModelException(f"{path} sets no padding; re-export the model")
        direction = (self.tokenizer.truncation or {}).get("direction", "right")
        self.tokenizer.enable_truncation(
            int(parameters["max_length"]), strategy=parameters.get("truncation", "longest_first"), direction=direction
        )

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                query, documents = self._read(request)
                responses.append(pb_utils.InferenceResponse(output_tensors=self._tokenize(query, documents)))
            except ValueError as err:  # this request is bad; the others in the batch go on
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(err))))
        return responses

    def _read(self, request):
        query = pb_utils.get_input_tensor_by_name(request, "QUERY").as_numpy().reshape(-1)
        documents = pb_utils.get_input_tensor_by_name(request, "DOCUMENTS").as_numpy().reshape(-1)
        if query.size != 1:
            raise ValueError(f"QUERY must hold exactly one string, got {query.size}")
        if documents.size == 0:
            raise ValueError("DOCUMENTS must hold at least one document")
        return _decode(query[0], "QUERY"), [_decode(doc, f"DOCUMENTS[{i}]") for i, doc in enumerate(documents)]

    def _tokenize(self, query, documents):
        encodings = self.tokenizer.encode_batch([(query, document) for document in documents])
        return [
            pb_utils.Tensor(name, np.array([getattr(e, _ENCODING_FIELDS[name]) for e in encodings], dtype=np.int64))
            for name in self.output_names
        ]


def _decode(value, what):
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{what} is not valid UTF-8: {err}") from None
