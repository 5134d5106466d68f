"""The Python-backend runner's slices, run one after another or side by side on their own threads,
score every row exactly as the whole batch would, in the batch's order. Real ONNX Runtime, on a
small graph whose score is each row's sum of ids under its mask (so padding must not count)."""

from __future__ import annotations

import importlib
import json
import sys
import types

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """``<repo>/1/model.onnx``: logits[b, 0] = sum_t input_ids[b, t] * attention_mask[b, t]."""
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["input_ids", "attention_mask"], ["kept"]),
            helper.make_node("ReduceSum", ["kept", "axes"], ["summed"], keepdims=1),
            helper.make_node("Cast", ["summed"], ["logits"], to=TensorProto.FLOAT),
        ],
        "masked_sum",
        [helper.make_tensor_value_info(n, TensorProto.INT64, [None, None]) for n in ("input_ids", "attention_mask")],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor("axes", TensorProto.INT64, [1], [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    root = tmp_path_factory.mktemp("runner")
    (root / "1").mkdir()
    onnx.save(model, str(root / "1" / "model.onnx"))
    return root


@pytest.fixture
def runner_module(monkeypatch):
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", types.ModuleType("triton_python_backend_utils"))
    return importlib.import_module("triton_rerank.backends.runner_model")


def load(module, model_dir, **parameters):
    config = {
        "input": [{"name": "input_ids"}, {"name": "attention_mask"}],
        "output": [{"name": "logits"}],
        "parameters": {
            key: {"string_value": str(value)}
            for key, value in {"runner_format": "onnx", "runner_model_file": "model.onnx", **parameters}.items()
        },
    }
    model = module.TritonPythonModel()
    model.initialize(
        {
            "model_config": json.dumps(config),
            "model_repository": str(model_dir),
            "model_version": "1",
            "model_instance_kind": "CPU",
            "model_instance_device_id": "0",
        }
    )
    return model


def padded_batch(lengths, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.zeros((len(lengths), max(lengths)), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.integers(1, 1000, size=length)
        mask[row, :length] = 1
    ids[mask == 0] = 7  # padding ids that would change the sum if a mask were lost
    return [ids, mask]


LENGTHS = [5, 1, 17, 3, 17, 9, 2, 11, 4, 8, 6, 13]


@pytest.mark.parametrize("slice_rows", [1, 3, 8])
@pytest.mark.parametrize("parallelism", ["operators", "slices"])
def test_slices_score_each_row_as_the_whole_batch_and_keep_its_order(runner_module, model_dir, parallelism, slice_rows):
    batch = padded_batch(LENGTHS)
    expected = (batch[0] * batch[1]).sum(axis=1, keepdims=True).astype(np.float32)
    model = load(
        runner_module, model_dir, runner_slice_rows=slice_rows, runner_parallelism=parallelism, intra_op_thread_count=3
    )
    try:
        np.testing.assert_array_equal(model._score(batch), expected)
        assert (model.pool is not None) == (parallelism == "slices")
        if model.pool is not None:  # one thread per intra-op thread asked for; each session has one
            assert model.pool._max_workers == 3
    finally:
        model.finalize()


def test_without_slices_the_threads_stay_onnx_runtimes_own(runner_module, model_dir):
    """runner_slice_rows 0 runs the whole batch in one call: there is nothing to share out."""
    model = load(runner_module, model_dir, runner_slice_rows=0, runner_parallelism="slices")
    assert model.pool is None
    batch = padded_batch(LENGTHS)
    np.testing.assert_array_equal(model._score(batch)[:, 0], (batch[0] * batch[1]).sum(axis=1))


def test_a_failing_slice_fails_the_batch_instead_of_leaving_rows_unscored(runner_module, model_dir):
    model = load(runner_module, model_dir, runner_slice_rows=2, runner_parallelism="slices", intra_op_thread_count=2)
    try:
        ids, mask = padded_batch(LENGTHS)
        with pytest.raises(Exception, match="(?i)int32|type"):
            model._score([ids.astype(np.int32), mask])  # the graph takes int64 ids
    finally:
        model.finalize()
