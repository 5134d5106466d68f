"""Triton Python-backend model ``tokenizer``: (QUERY, DOCUMENTS) -> the cross-encoder's id tensors.

Tokenizes each (query, document) pair exactly as sentence-transformers' ``CrossEncoder`` does:
the Hugging Face fast tokenizer saved by the export, ``truncation="longest_first"`` at the
``max_length`` the export measured, padding to the longest pair of the request. Tokenizer files
are read from this model's version folder; nothing is downloaded.

This file is copied to ``<repository>/tokenizer/1/model.py`` by the export.
"""

import json

import numpy as np
import triton_python_backend_utils as pb_utils
from transformers import AutoTokenizer


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        parameters = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        self.max_length = int(parameters["max_length"])
        self.truncation = parameters.get("truncation", "longest_first")
        self.output_names = [output["name"] for output in config["output"]]
        folder = f"{args['model_repository']}/{args['model_version']}"
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        missing = set(self.output_names) - set(self.tokenizer.model_input_names)
        if missing:
            raise pb_utils.TritonModelException(
                f"tokenizer in {folder} does not produce {sorted(missing)} "
                f"(it produces {self.tokenizer.model_input_names}); re-export the model"
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
        encoded = self.tokenizer(
            [query] * len(documents),
            documents,
            padding=True,
            truncation=self.truncation,
            max_length=self.max_length,
            return_tensors="np",
        )
        return [pb_utils.Tensor(name, encoded[name].astype(np.int64)) for name in self.output_names]


def _decode(value, what):
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{what} is not valid UTF-8: {err}") from None
