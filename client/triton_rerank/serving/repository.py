"""The Triton model repository: its layout and every ``config.pbtxt``, built from one place.

The repository holds two ensembles::

    reranker        ensemble: QUERY [1], DOCUMENTS [-1] (strings) -> SCORES [-1, 1], TOKENS [-1], SPANS [-1, 2]
    ├── tokenizer       Python backend: (query, document) pairs -> rows: input_ids, attention_mask,
    │                   token_type_ids, and per row num_tokens, row_document, row_span (a long
    │                   document is one row, truncated, or several windows: the long_documents parameter)
    ├── cross_encoder   ONNX Runtime (or PyTorch) backend, dynamic batching: ids -> logits [rows, 1]
    └── aggregator      Python backend: rows -> one score, token count and span per document, in input order

    embedder        ensemble: TEXTS [-1] (strings) -> EMBEDDINGS [-1, D]
    ├── embed_tokenizer Python backend: texts -> the same id tensors
    └── bi_encoder      ONNX Runtime backend, dynamic batching: ids -> embeddings [batch, D]
                        (mean pooling and L2 normalisation are inside the ONNX graph)

What the repository holds, and the settings, are ``layout``'s. Configs are built here as Triton's
own protobuf messages (``model_config_pb2.ModelConfig``), so a field Triton does not know cannot be
written. The export writes them; the embedded server derives its Python-backend stand-in for the
ONNX / TorchScript models from the same configs (``python_runner_config``), so there is no second,
hand-kept copy.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

import triton_rerank.protocol as protocol
from triton_rerank.serving.layout import (
    _NATIVE,
    DEFAULT_EMBEDDER_SETTINGS,
    DEFAULT_RERANKER_SETTINGS,
    DOCUMENT_OUTPUTS,
    PROTOCOL_CODE,
    PROTOCOL_COPY,
    ROW_TENSORS,
    RUNNER_FILE_PARAMETER,
    RUNNER_FORMAT_PARAMETER,
    Family,
    RepositorySettings,
    python_models,
)


def _tensor(name: str, data_type: int, dims: list[int]) -> dict:
    return {"name": name, "data_type": data_type, "dims": dims}


def _parameters(config: mc.ModelConfig, **values: object) -> None:
    for key, value in values.items():
        config.parameters[key].string_value = str(value)


def model_tensor_names(settings: RepositorySettings) -> tuple[list[str], str]:
    """The model's input names and output name, as its backend requires them."""
    if settings.model_format == "torchscript":  # the pytorch backend's INPUT__i / OUTPUT__i names
        return [f"INPUT__{i}" for i in range(len(settings.model_inputs))], "OUTPUT__0"
    return list(settings.model_inputs), settings.family.model_output


def _string_inputs(family: Family) -> list[dict]:
    return [_tensor(name, mc.TYPE_STRING, [dim]) for name, dim in family.inputs]


def tokenizer_config(settings: RepositorySettings) -> mc.ModelConfig:
    family = settings.family
    config = mc.ModelConfig(
        name=family.tokenizer,
        backend="python",
        max_batch_size=0,
        input=_string_inputs(family),
        output=[_tensor(name, mc.TYPE_INT64, [-1, -1]) for name in settings.model_inputs],
        instance_group=[{"kind": mc.ModelInstanceGroup.KIND_CPU, "count": settings.tokenizer_instances}],
    )
    if family.aggregator:
        config.output.extend(mc.ModelOutput(**_tensor(*tensor)) for tensor in ROW_TENSORS)
    if policy := queue_policy(settings):  # a queue policy lives in dynamic_batching; max_batch_size 0: no batching
        config.dynamic_batching.default_queue_policy.CopyFrom(policy)
    # The request limits, enforced here with a clear message: rows per request (the model's
    # max_batch_size) and bytes per string.
    _parameters(
        config,
        max_length=settings.max_length,
        truncation="longest_first",
        **{protocol.MAX_ROWS_PER_REQUEST: settings.max_rows_per_request},
        max_document_bytes=settings.max_document_bytes,
    )
    if settings.prompt_template:
        _parameters(config, prompt_template=settings.prompt_template, instruction=settings.instruction)
    return config


def queue_policy(settings: RepositorySettings) -> mc.ModelQueuePolicy | None:
    """With limits set, overload answers at once with an error ("exceeds maximum queue size")
    instead of waiting without bound. On the tokenizer too: it is the ensemble's front door, where
    requests queue first. None without limits: any policy turns off Triton's batch prefetching."""
    if not (settings.queue_timeout_s or settings.max_queue_size):
        return None
    return mc.ModelQueuePolicy(
        timeout_action=mc.ModelQueuePolicy.REJECT,
        default_timeout_microseconds=int(settings.queue_timeout_s * 1e6),
        max_queue_size=settings.max_queue_size,
    )


def model_config(settings: RepositorySettings) -> mc.ModelConfig:
    """The ONNX / TorchScript model: batched rows of ids in, ``dimension`` floats per row out."""
    backend, filename = _NATIVE[settings.model_format]
    inputs, output = model_tensor_names(settings)
    config = mc.ModelConfig(
        name=settings.family.model,
        backend=backend,
        default_model_filename=filename,
        max_batch_size=settings.max_rows_per_request,
        input=[_tensor(name, mc.TYPE_INT64, [-1]) for name in inputs],
        output=[_tensor(output, mc.TYPE_FP32, [settings.dimension])],
    )
    policy = queue_policy(settings)
    if settings.dynamic_batching or policy:
        config.dynamic_batching.SetInParent()  # present even with every field at its default
        # A batcher there only for the queue policy never waits for a batch to fill.
        config.dynamic_batching.max_queue_delay_microseconds = settings.max_queue_delay_us * settings.dynamic_batching
    if policy:
        config.dynamic_batching.default_queue_policy.CopyFrom(policy)
    if settings.device != "auto":
        kind = mc.ModelInstanceGroup.KIND_GPU if settings.device == "gpu" else mc.ModelInstanceGroup.KIND_CPU
        config.instance_group.add(kind=kind, count=settings.instances)
    if settings.gpu_accelerator.startswith("tensorrt"):  # the onnxruntime backend's TensorRT provider
        config.optimization.execution_accelerators.gpu_execution_accelerator.add(
            name="tensorrt",
            parameters={
                "precision_mode": "FP16" if settings.gpu_accelerator == "tensorrt-fp16" else "FP32",
                "max_workspace_size_bytes": str(1 << 30),
            },
        )
    if settings.model_format == "onnx" and settings.intra_op_threads:
        _parameters(config, intra_op_thread_count=settings.intra_op_threads)
    if settings.model_format == "openvino":  # the openvino backend's own parameters
        _parameters(config, PERFORMANCE_HINT="LATENCY")
        if settings.bf16:  # without it, OpenVINO's default for the CPU (bf16 where it has the instructions)
            _parameters(config, HINT_BF16="YES")
        if settings.intra_op_threads:
            _parameters(config, INFERENCE_NUM_THREADS=settings.intra_op_threads)
    if settings.runner_slice_rows is not None:
        _parameters(config, runner_slice_rows=settings.runner_slice_rows)
    if settings.runner_parallelism is not None:
        _parameters(config, runner_parallelism=settings.runner_parallelism)
    return config


def ensemble_config(settings: RepositorySettings) -> mc.ModelConfig:
    family = settings.family
    inputs, output = model_tensor_names(settings)
    config = mc.ModelConfig(
        name=family.ensemble,
        platform="ensemble",
        max_batch_size=0,
        input=_string_inputs(family),
        output=[_tensor(family.output, mc.TYPE_FP32, [-1, settings.dimension])],
    )
    if family.aggregator:
        config.output.extend(mc.ModelOutput(**_tensor(*tensor)) for tensor in DOCUMENT_OUTPUTS)
    if settings.response_cache:
        config.response_cache.enable = True
    # What clients plan their requests by: the most rows (documents, texts) one request may hold,
    # and the tokens the model reads per row (a reranker's long documents become several rows).
    _parameters(
        config,
        **{protocol.MAX_ROWS_PER_REQUEST: settings.max_rows_per_request, protocol.MAX_LENGTH: settings.max_length},
    )
    if settings.reserved_tokens:
        _parameters(config, **{protocol.RESERVED_TOKENS: settings.reserved_tokens})
    steps = config.ensemble_scheduling.step
    steps.add(
        model_name=family.tokenizer,
        model_version=-1,
        input_map={name: name for name, _ in family.inputs},
        output_map={name: name for name in settings.model_inputs}
        | ({name: name for name, _, _ in ROW_TENSORS} if family.aggregator else {}),
    )
    steps.add(
        model_name=family.model,
        model_version=-1,
        input_map=dict(zip(inputs, settings.model_inputs, strict=True)),
        output_map={output: "row_scores" if family.aggregator else family.output},
    )
    if family.aggregator:
        steps.add(
            model_name=family.aggregator,
            model_version=-1,
            input_map={"ROW_SCORES": "row_scores"} | {name.upper(): name for name, _, _ in ROW_TENSORS},
            output_map={family.output: family.output} | {name: name for name, _, _ in DOCUMENT_OUTPUTS},
        )
    return config


def aggregator_config(settings: RepositorySettings) -> mc.ModelConfig:
    """The reranker's last step: rows in (in the order ``aggregator_model.fold`` takes them), one
    row per document out."""
    family = settings.family
    rows = [("ROW_SCORES", mc.TYPE_FP32, [-1, 1])] + [(name.upper(), dtype, dims) for name, dtype, dims in ROW_TENSORS]
    return mc.ModelConfig(
        name=family.aggregator,
        backend="python",
        max_batch_size=0,
        input=[_tensor(*tensor) for tensor in rows],
        output=[_tensor(family.output, mc.TYPE_FP32, [-1, 1])] + [_tensor(*tensor) for tensor in DOCUMENT_OUTPUTS],
        instance_group=[{"kind": mc.ModelInstanceGroup.KIND_CPU, "count": settings.tokenizer_instances}],
    )


def build_configs(settings: RepositorySettings) -> dict[str, mc.ModelConfig]:
    """Every config of the settings' family, by model name."""
    family = settings.family
    configs = {
        family.tokenizer: tokenizer_config(settings),
        family.model: model_config(settings),
        family.ensemble: ensemble_config(settings),
    }
    if family.aggregator:
        configs[family.aggregator] = aggregator_config(settings)
    return configs


def to_pbtxt(config: mc.ModelConfig) -> str:
    return text_format.MessageToString(config)


def load_config(path: Path) -> mc.ModelConfig:
    """Parse a ``config.pbtxt`` with Triton's schema; unknown fields raise ``ParseError``."""
    return text_format.Parse(Path(path).read_text(), mc.ModelConfig())


def write_configs(repository: Path, settings: RepositorySettings) -> None:
    """Write the family's ``config.pbtxt`` files, its Python models' code and version folders."""
    repository = Path(repository)
    family = settings.family
    for name, config in build_configs(settings).items():
        (repository / name / "1").mkdir(parents=True, exist_ok=True)
        (repository / name / "config.pbtxt").write_text(to_pbtxt(config))
    for name, source in python_models(family).items():
        for code, origin in (
            (repository / name / "1" / "model.py", source),
            (repository / name / "1" / PROTOCOL_COPY, PROTOCOL_CODE),
        ):
            code.unlink(missing_ok=True)  # the committed repository links it to its source
            shutil.copyfile(origin, code)
    (repository / family.ensemble / "1" / ".gitkeep").touch()


def native_backend_format(config: mc.ModelConfig) -> str | None:
    """``onnx`` / ``torchscript`` / ``openvino`` for a model served by those native backends, else None."""
    for model_format, (backend, _) in _NATIVE.items():
        if config.backend == backend:
            return model_format
    return None


def python_runner_config(config: mc.ModelConfig) -> mc.ModelConfig:
    """The same model served by the Python-backend runner, for a Triton build without the
    native backend: only the backend changes; names, dims, batching and instances stay."""
    model_format = native_backend_format(config)
    if model_format is None:
        raise ValueError(f"model {config.name!r} uses backend {config.backend!r}, not onnxruntime, pytorch or openvino")
    runner = mc.ModelConfig()
    runner.CopyFrom(config)
    runner.backend = "python"
    runner.ClearField("platform")
    # The Python backend loads its code from default_model_filename; the runner finds the weights.
    runner.default_model_filename = "model.py"
    _parameters(runner, **{RUNNER_FORMAT_PARAMETER: model_format, RUNNER_FILE_PARAMETER: config.default_model_filename})
    return runner


def write_default_repository(repository: Path) -> None:
    """The configs of both families for the default models: the committed ``model_repository/``
    (weights are added by an export). Its tokenizer code is a link to the one source, the backend
    file, where an export writes a copy."""
    for settings in (DEFAULT_RERANKER_SETTINGS, DEFAULT_EMBEDDER_SETTINGS):
        write_configs(repository, settings)
        for name, source in python_models(settings.family).items():
            for code, origin in (("model.py", source), (PROTOCOL_COPY, PROTOCOL_CODE)):
                code = Path(repository) / name / "1" / code
                code.unlink()
                code.symlink_to(os.path.relpath(origin.resolve(), code.parent.resolve()))


if __name__ == "__main__":  # python -m triton_rerank.serving.repository model_repository
    import sys

    write_default_repository(Path(sys.argv[1] if len(sys.argv) > 1 else "model_repository"))
