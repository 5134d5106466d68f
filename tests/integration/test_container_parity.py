"""The configs the compose export job writes for the official Triton container (native onnxruntime
backend) are sound, and the embedded server (the Python-backend runner standing in for that
backend) exposes exactly what the container would: the same models, tensors, dims and batching.

Triton derives a model's metadata from its config: inputs and outputs with their data types, and
shapes with a leading -1 when the model batches. So the container's metadata is computed here from
the native configs and compared with what the embedded server reports for the same repository."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import tritonclient.http as httpclient
from google.protobuf import json_format

from triton_rerank.serving import layout
from triton_rerank.serving import repository as repo
from triton_rerank.serving.export import export_bi_encoder, export_cross_encoder
from triton_rerank.serving.server import EmbeddedTritonServer, free_port_settings

pytestmark = pytest.mark.integration

ONNX_TYPES = {onnx.TensorProto.INT64: "TYPE_INT64", onnx.TensorProto.FLOAT: "TYPE_FP32"}


def export_for_container(tiny_model: Path, embedder_model: str, repository: Path, **settings) -> Path:
    """What the compose export job writes (scripts/export_model.py with these settings)."""
    export_cross_encoder(str(tiny_model), repository, settings=layout.RepositorySettings(**settings))
    export_bi_encoder(embedder_model, repository, settings=layout.RepositorySettings(**settings))
    return repository


@pytest.fixture(scope="module")
def cpu_repository(tiny_model, embedder_model, tmp_path_factory) -> Path:
    return export_for_container(tiny_model, embedder_model, tmp_path_factory.mktemp("cpu") / "models", device="cpu")


@pytest.fixture(scope="module")
def gpu_repository(tiny_model, embedder_model, tmp_path_factory) -> Path:
    return export_for_container(
        tiny_model, embedder_model, tmp_path_factory.mktemp("gpu") / "models", device="gpu", gpu_accelerator="tensorrt"
    )


def configs(repository: Path) -> dict[str, repo.mc.ModelConfig]:
    """Every config.pbtxt, parsed with Triton's schema (an unknown field raises)."""
    return {path.parent.name: repo.load_config(path) for path in sorted(repository.glob("*/config.pbtxt"))}


def container_metadata(config: repo.mc.ModelConfig) -> dict:
    """The metadata Triton reports for ``config``: what a client of the container sees."""

    def tensors(items) -> list[dict]:
        datatype = {"TYPE_STRING": "BYTES"}
        out = []
        for tensor in items:
            name = repo.mc.DataType.Name(tensor.data_type)
            shape = ([-1] if config.max_batch_size > 0 else []) + list(tensor.dims)
            out.append(
                {"name": tensor.name, "datatype": datatype.get(name, name.removeprefix("TYPE_")), "shape": shape}
            )
        return out

    return {"name": config.name, "inputs": tensors(config.input), "outputs": tensors(config.output)}


def batching(config: dict) -> dict:
    """The batching a config declares: rows per execution, the batcher, the instances."""
    batcher = config.get("dynamic_batching")  # Triton adds its defaults to what is served
    return {
        "max_batch_size": int(config.get("max_batch_size", 0)),
        "queue_delay_us": None if batcher is None else int(batcher.get("max_queue_delay_microseconds", 0)),
        "instances": [(g.get("kind"), int(g.get("count", 1))) for g in config.get("instance_group", [])],
    }


@pytest.mark.parametrize("device", ["cpu", "gpu"])
def test_container_configs_parse_and_match_the_exported_onnx_graphs(device, cpu_repository, gpu_repository):
    repository = cpu_repository if device == "cpu" else gpu_repository
    parsed = configs(repository)
    assert set(parsed) == set(layout.RERANK.names + layout.EMBED.names)
    for name in (layout.CROSS_ENCODER, layout.EMBED.model):
        config = parsed[name]
        assert config.backend == "onnxruntime" and config.default_model_filename == layout.ONNX_FILE
        kind = repo.mc.ModelInstanceGroup.KIND_GPU if device == "gpu" else repo.mc.ModelInstanceGroup.KIND_CPU
        assert [g.kind for g in config.instance_group] == [kind]
        graph = onnx.load(str(repository / name / "1" / layout.ONNX_FILE)).graph
        for declared, actual in ((config.input, graph.input), (config.output, graph.output)):
            assert [t.name for t in declared] == [t.name for t in actual], name
            for tensor, value in zip(declared, actual, strict=True):
                assert repo.mc.DataType.Name(tensor.data_type) == ONNX_TYPES[value.type.tensor_type.elem_type]
                dims = value.type.tensor_type.shape.dim
                assert len(dims) == 1 + len(tensor.dims), f"{name}.{tensor.name}: batch dim + config dims"
                fixed = [d.dim_value for d in dims[1:] if d.HasField("dim_value")]
                assert fixed == [d for d in tensor.dims if d > 0], f"{name}.{tensor.name}"
    if device == "gpu":
        (accelerator,) = parsed[layout.CROSS_ENCODER].optimization.execution_accelerators.gpu_execution_accelerator
        assert accelerator.name == "tensorrt"


def test_the_embedded_server_exposes_what_the_container_would(cpu_repository):
    native = configs(cpu_repository)
    with EmbeddedTritonServer(cpu_repository, free_port_settings()) as server:
        client = httpclient.InferenceServerClient(server.http_url.removeprefix("http://"))
        try:
            assert sorted(server.ready_models()) == sorted(native)
            for name, config in native.items():
                assert client.get_model_metadata(name)["inputs"] == container_metadata(config)["inputs"], name
                assert client.get_model_metadata(name)["outputs"] == container_metadata(config)["outputs"], name
                served = client.get_model_config(name)
                declared = json_format.MessageToDict(config, preserving_proto_field_name=True)
                assert batching(served) == batching(declared), name
        finally:
            client.close()


def test_the_runner_stands_in_for_a_gpu_model_with_the_same_instances_and_accelerator(gpu_repository):
    for name in (layout.CROSS_ENCODER, layout.EMBED.model):
        native = repo.load_config(gpu_repository / name / "config.pbtxt")
        runner = repo.python_runner_config(native)
        assert container_metadata(runner) == container_metadata(native)
        for field in ("max_batch_size", "dynamic_batching", "instance_group", "optimization"):
            assert getattr(runner, field) == getattr(native, field), field


# The onnxruntime release inside nvcr.io/nvidia/tritonserver:24.10-py3 (its onnxruntime backend).
CONTAINER_ONNXRUNTIME = "onnxruntime==1.19.2"

_SCORE_WITH_CONTAINER_ORT = """
import sys, numpy as np, onnxruntime as ort
assert ort.__version__ == sys.argv[1], ort.__version__
data = np.load(sys.argv[2])
session = ort.InferenceSession(sys.argv[3], providers=["CPUExecutionProvider"])
feeds = {i.name: data[i.name] for i in session.get_inputs()}
np.save(sys.argv[4], session.run(None, feeds)[0])
"""


@pytest.fixture(scope="session")
def container_onnxruntime() -> Path:
    """The container's onnxruntime, installed beside (not into) this environment by ``make test``;
    nothing is installed at test time."""
    target = Path(__file__).resolve().parents[2] / ".container-onnxruntime"
    if not (target / "onnxruntime").is_dir():
        pytest.skip(
            f"the container's onnxruntime is not installed beside the project: run `make test`, or "
            f"pip install --no-deps --target {target} {CONTAINER_ONNXRUNTIME}"
        )
    return target


@pytest.mark.parametrize("precision", ["fp32", "int8", "fp16"])
def test_the_containers_onnxruntime_loads_each_export_and_scores_the_same(
    precision, tiny_model, container_onnxruntime, tmp_path
):
    """The export fuses the graph with this environment's (newer) onnxruntime; the container's
    older one must load every variant and give the same scores."""
    import subprocess
    import sys

    import numpy as np
    import onnxruntime as ort

    repository = tmp_path / "models"
    export_cross_encoder(
        str(tiny_model), repository, precision=precision, settings=layout.RepositorySettings(device="cpu")
    )
    model = repository / layout.CROSS_ENCODER / "1" / layout.ONNX_FILE
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    mask = (np.arange(24)[None, :] < rng.integers(4, 25, size=(6, 1))).astype(np.int64)
    feeds = {"input_ids": rng.integers(5, 100, size=(6, 24)) * mask, "attention_mask": mask}
    feeds["token_type_ids"] = np.zeros_like(mask)
    feeds = {i.name: feeds[i.name] for i in session.get_inputs()}
    np.savez(tmp_path / "feeds.npz", **feeds)
    version = CONTAINER_ONNXRUNTIME.partition("==")[2]
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _SCORE_WITH_CONTAINER_ORT,
            version,
            str(tmp_path / "feeds.npz"),
            str(model),
            str(tmp_path / "out.npy"),
        ],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(container_onnxruntime), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # fp16 resolves about 1e-3 at these magnitudes, and the two releases sum in different orders.
    tolerance = 5e-3 if precision == "fp16" else 1e-4
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), session.run(None, feeds)[0], atol=tolerance)


# The OpenVINO release of the 24.10 era, for its openvino backend (the 24.10 container itself was
# not run here: no Docker engine on these machines).
CONTAINER_OPENVINO = "openvino==2024.4.0"

_SCORE_WITH_CONTAINER_OPENVINO = """
import sys, numpy as np, openvino as ov
assert ov.__version__.startswith(sys.argv[1]), ov.__version__
data = np.load(sys.argv[2])
model = ov.Core().read_model(sys.argv[3])
compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16"} if sys.argv[5] else {})
print(",".join(i.get_any_name() for i in model.inputs), ",".join(o.get_any_name() for o in model.outputs))
np.save(sys.argv[4], compiled([data[i.get_any_name()] for i in model.inputs])[0])
"""


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_the_containers_openvino_loads_each_openvino_export_and_scores_the_same(precision, tiny_model, tmp_path):
    """bf16 and NNCF int8 exports are OpenVINO IR written by this environment's (newer) OpenVINO;
    the container's older one must read them, find the tensors their config names, and score as
    the runner does here."""
    import subprocess
    import sys

    import numpy as np

    from triton_rerank.backends.runner_model import openvino_runner
    from triton_rerank.serving.export.precision import bf16_support

    if bf16_support():
        pytest.skip(bf16_support())
    target = Path(__file__).resolve().parents[2] / ".container-openvino"
    if not (target / "openvino").is_dir():
        pytest.skip(f"run `make test`, or pip install --no-deps --target {target} {CONTAINER_OPENVINO}")
    repository = tmp_path / "models"
    settings = layout.RepositorySettings(device="cpu", model_format="openvino")
    report = export_cross_encoder(
        str(tiny_model), repository, precision=precision, settings=settings, min_rank_correlation=0.5
    )
    config = repo.load_config(repository / layout.CROSS_ENCODER / "config.pbtxt")
    assert (config.backend, config.default_model_filename) == ("openvino", layout.OPENVINO_FILE)
    model = repository / layout.CROSS_ENCODER / "1" / layout.OPENVINO_FILE
    rng = np.random.default_rng(0)
    mask = (np.arange(24)[None, :] < rng.integers(4, 25, size=(6, 1))).astype(np.int64)
    feeds = {"input_ids": rng.integers(5, 100, size=(6, 24)) * mask, "attention_mask": mask}
    feeds["token_type_ids"] = np.zeros_like(mask)
    np.savez(tmp_path / "feeds.npz", **feeds)
    version = CONTAINER_OPENVINO.partition("==")[2]
    result = subprocess.run(
        [sys.executable, "-c", _SCORE_WITH_CONTAINER_OPENVINO, version, str(tmp_path / "feeds.npz"), str(model)]
        + [str(tmp_path / "out.npy"), "bf16" if precision == "bf16" else ""],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    inputs, outputs = result.stdout.split()
    assert inputs.split(",") == [tensor.name for tensor in config.input]
    assert outputs.split(",") == [tensor.name for tensor in config.output]
    here = openvino_runner(str(model), bf16=precision == "bf16")([feeds[tensor.name] for tensor in config.input])
    # bf16 rounds the same way in both releases; their int8 kernels differ, so two int8 runs may part by
    # as much as int8 parts from fp32, and no more.
    tolerance = 2e-2 if precision == "bf16" else 2 * report.reduced_precision.max_abs_diff
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), here, atol=tolerance)
