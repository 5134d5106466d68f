"""The Python-backend runner never lets a KIND_GPU model run on the CPU without a word.

No GPU here: ONNX Runtime is replaced by a stand-in that lists or starts whichever providers a
test says, which is exactly what differs between a working and a broken onnxruntime-gpu install.
"""

from __future__ import annotations

import importlib
import sys
import types

import pytest


class FakeSession:
    started: list[str] = []

    def __init__(self, path, options, providers):
        self.requested = [p[0] if isinstance(p, tuple) else p for p in providers]

    def get_providers(self):
        return [p for p in self.requested if p in FakeSession.started]

    def get_inputs(self):
        return [types.SimpleNamespace(name=n) for n in ("input_ids", "attention_mask")]

    def run(self, _outputs, feeds):
        return [sorted(feeds)]


@pytest.fixture
def runner(monkeypatch):
    def fake_ort(listed, started):
        FakeSession.started = started
        ort = types.SimpleNamespace(
            __version__="0.0-test",
            get_available_providers=lambda: listed,
            SessionOptions=lambda: types.SimpleNamespace(intra_op_num_threads=0),
            InferenceSession=FakeSession,
        )
        monkeypatch.setitem(sys.modules, "onnxruntime", ort)

    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", types.ModuleType("triton_python_backend_utils"))
    module = importlib.import_module("triton_rerank.backends.runner_model")
    return module, fake_ort


def test_a_gpu_instance_is_refused_when_onnxruntime_has_no_cuda_provider(runner):
    module, fake_ort = runner
    fake_ort(listed=["CPUExecutionProvider"], started=["CPUExecutionProvider"])
    with pytest.raises(RuntimeError, match="has no CUDAExecutionProvider"):
        module._onnx_runner("model.onnx", on_gpu=True, device_id=0, intra_op_threads=0)


def test_a_gpu_instance_is_refused_when_the_cuda_provider_is_listed_but_fails_to_start(runner):
    """onnxruntime-gpu without its CUDA libraries lists the provider, then runs on the CPU."""
    module, fake_ort = runner
    fake_ort(listed=["CUDAExecutionProvider", "CPUExecutionProvider"], started=["CPUExecutionProvider"])
    with pytest.raises(RuntimeError, match="could not start its CUDAExecutionProvider.*LD_LIBRARY_PATH"):
        module._onnx_runner("model.onnx", on_gpu=True, device_id=0, intra_op_threads=0)


def test_a_gpu_instance_runs_when_the_cuda_provider_starts_and_a_cpu_one_needs_none(runner):
    module, fake_ort = runner
    fake_ort(listed=["CUDAExecutionProvider", "CPUExecutionProvider"], started=["CUDAExecutionProvider"])
    run = module._onnx_runner("model.onnx", on_gpu=True, device_id=0, intra_op_threads=0)
    assert run(["ids", "mask"]) == ["attention_mask", "input_ids"]
    fake_ort(listed=["CPUExecutionProvider"], started=["CPUExecutionProvider"])
    cpu_run = module._onnx_runner("model.onnx", on_gpu=False, device_id=0, intra_op_threads=2)
    assert cpu_run(["ids", "mask"]) == ["attention_mask", "input_ids"]
