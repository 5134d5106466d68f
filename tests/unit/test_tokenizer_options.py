"""The tokenizer step's per-request truncation parameters (what the rerank API and the client send
as Triton request parameters), read and checked before anything is tokenized."""

from __future__ import annotations

import json

import pytest

from triton_rerank.backends.tokenizer_model import read_options


def _read_options(parameters: dict, pairs: bool = True) -> dict:
    """The step reads a request's parameters as JSON: so do the tests."""
    return read_options(json.loads(json.dumps(parameters)), pairs, max_length=512)


def test_no_parameters_mean_the_models_defaults():
    assert _read_options({}) == {}


def test_parameters_are_read_as_clients_send_them():
    options = _read_options({"truncate": False, "truncation_direction": "Left", "max_tokens_per_doc": 64})
    assert options == {"truncate": False, "direction": "left", "max_tokens_per_doc": 64}
    # over HTTP a client may send strings
    assert _read_options({"truncate": "true", "max_tokens_per_doc": "8"}) == {
        "truncate": True,
        "max_tokens_per_doc": 8,
    }
    assert _read_options({"sequence_id": 3, "other": "x"}) == {}  # others are not ours


@pytest.mark.parametrize(
    ("parameters", "pairs", "message"),
    [
        ({"truncate": "maybe"}, True, "truncate must be true or false"),
        ({"truncate": 1}, True, "truncate must be true or false"),
        ({"truncation_direction": "middle"}, True, "truncation_direction must be 'right' or 'left'"),
        ({"max_tokens_per_doc": 0}, True, "max_tokens_per_doc must be a positive integer"),
        ({"max_tokens_per_doc": -3}, True, "max_tokens_per_doc must be a positive integer"),
        ({"max_tokens_per_doc": 16}, False, "apply to (query, document) pairs only"),
        ({"long_documents": "sum"}, True, "long_documents must be one of first, max, mean, error"),
        ({"max_chunks_per_doc": 0}, True, "max_chunks_per_doc must be a positive integer"),
        ({"max_chunks_per_doc": -2}, True, "max_chunks_per_doc must be a positive integer"),
        ({"window": 600}, True, "window=600 is larger than this model's max_length (512)"),
        ({"window": 100, "stride": 100}, True, "stride=100 (the tokens neighbouring windows share) must be smaller"),
        ({"stride": -1}, True, "stride must be an integer >= 0"),
    ],
)
def test_bad_parameters_are_refused_naming_them(parameters, pairs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _read_options(parameters, pairs)
