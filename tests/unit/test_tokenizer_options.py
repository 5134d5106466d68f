"""The tokenizer step's per-request truncation parameters (what the rerank API and the client send
as Triton request parameters), read and checked before anything is tokenized."""

from __future__ import annotations

import json

import pytest

from triton_rerank.serving.backends.tokenizer_model import _read_options


class Request:
    """What ``_read_options`` reads of a Python-backend request: its parameters, as JSON."""

    def __init__(self, **parameters) -> None:
        self._parameters = json.dumps(parameters)

    def parameters(self) -> str:
        return self._parameters


def test_no_parameters_mean_the_models_defaults():
    assert _read_options(Request(), pairs=True) == {}


def test_parameters_are_read_as_clients_send_them():
    options = _read_options(Request(truncate=False, truncation_direction="Left", max_tokens_per_doc=64), pairs=True)
    assert options == {"truncate": False, "direction": "left", "max_tokens_per_doc": 64}
    # over HTTP a client may send strings
    assert _read_options(Request(truncate="true", max_tokens_per_doc="8"), pairs=True) == {
        "truncate": True,
        "max_tokens_per_doc": 8,
    }
    assert _read_options(Request(sequence_id=3, other="x"), pairs=True) == {}  # others are not ours


@pytest.mark.parametrize(
    ("parameters", "pairs", "message"),
    [
        ({"truncate": "maybe"}, True, "truncate must be true or false"),
        ({"truncate": 1}, True, "truncate must be true or false"),
        ({"truncation_direction": "middle"}, True, "truncation_direction must be 'right' or 'left'"),
        ({"max_tokens_per_doc": 0}, True, "max_tokens_per_doc must be a positive integer"),
        ({"max_tokens_per_doc": -3}, True, "max_tokens_per_doc must be a positive integer"),
        ({"max_tokens_per_doc": 16}, False, "applies to (query, document) pairs only"),
    ],
)
def test_bad_parameters_are_refused_naming_them(parameters, pairs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _read_options(Request(**parameters), pairs=pairs)
