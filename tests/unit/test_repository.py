"""The model repository's configs: Triton's schema, the ensemble wiring, and no drift."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from triton_rerank.serving import layout
from triton_rerank.serving import repository as repo

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "model_repository"

ALL_SETTINGS = [
    layout.RepositorySettings(),
    layout.DEFAULT_EMBEDDER_SETTINGS,
    layout.DEFAULT_EMBEDDER_SETTINGS.replace(model_inputs=("input_ids", "attention_mask"), device="cpu"),
    layout.RepositorySettings(model_format="torchscript"),
    layout.RepositorySettings(model_inputs=("input_ids", "attention_mask"), device="gpu", instances=2),
    layout.RepositorySettings(device="cpu", intra_op_threads=2, max_rows_per_request=16, dynamic_batching=True),
]


DEFAULTS = [layout.DEFAULT_RERANKER_SETTINGS, layout.DEFAULT_EMBEDDER_SETTINGS]


@pytest.mark.parametrize("settings", DEFAULTS, ids=lambda s: s.kind)
def test_committed_repository_equals_generated_configs_for_the_default_models(settings):
    for name, config in repo.build_configs(settings).items():
        assert (COMMITTED / name / "config.pbtxt").read_text() == repo.to_pbtxt(config), name
    for name, source in layout.python_models(settings.family).items():  # links to the one source, never copies
        code = COMMITTED / name / "1" / "model.py"
        assert code.is_symlink() and code.resolve() == source.resolve(), name
    assert (COMMITTED / settings.family.ensemble / "1" / ".gitkeep").exists()


def test_every_committed_config_parses_with_tritons_schema_and_names_its_folder():
    configs = sorted(COMMITTED.glob("*/config.pbtxt"))
    assert [p.parent.name for p in configs] == sorted(layout.RERANK.names + layout.EMBED.names)
    for path in configs:
        config = text_format.Parse(path.read_text(), mc.ModelConfig())
        assert config.name == path.parent.name


def test_schema_rejects_an_unknown_field():
    with pytest.raises(text_format.ParseError):
        text_format.Parse('name: "x"\nmax_batch_sizes: 4\n', mc.ModelConfig())


def _outputs(config):
    return {t.name: (t.data_type, list(t.dims)) for t in config.output}


def _inputs(config):
    return {t.name: (t.data_type, list(t.dims)) for t in config.input}


@pytest.mark.parametrize(
    "settings", ALL_SETTINGS, ids=lambda s: f"{s.kind}-{s.model_format}-{len(s.model_inputs)}in-{s.device}"
)
def test_ensemble_tensors_line_up_with_each_member(settings):
    configs = repo.build_configs(settings)
    ensemble = configs[settings.family.ensemble]
    produced = dict(_inputs(ensemble))  # ensemble tensor -> (dtype, dims)
    for step in ensemble.ensemble_scheduling.step:
        member = configs[step.model_name]
        member_inputs, member_outputs = _inputs(member), _outputs(member)
        assert set(step.input_map) == set(member_inputs), step.model_name
        for member_name, tensor in step.input_map.items():
            dtype, dims = produced[tensor]
            want_dtype, want_dims = member_inputs[member_name]
            assert dtype == want_dtype, (step.model_name, member_name)
            # A batching member sees the leading dimension as its batch axis.
            seen = dims[1:] if member.max_batch_size > 0 else dims
            assert len(seen) == len(want_dims), (step.model_name, member_name, dims, want_dims)
        assert set(step.output_map) <= set(member_outputs), step.model_name
        for member_name, tensor in step.output_map.items():
            dtype, dims = member_outputs[member_name]
            produced[tensor] = (dtype, ([-1] if member.max_batch_size > 0 else []) + dims)
    for name, (dtype, dims) in _outputs(ensemble).items():
        assert produced[name] == (dtype, dims), name


def test_runner_config_changes_only_the_backend():
    native = repo.build_configs(
        layout.RepositorySettings(device="cpu", instances=2, intra_op_threads=1, dynamic_batching=True)
    )[layout.CROSS_ENCODER]
    runner = repo.python_runner_config(native)
    assert runner.backend == "python" and native.backend == "onnxruntime"
    assert runner.parameters[layout.RUNNER_FILE_PARAMETER].string_value == layout.ONNX_FILE
    for field in ("name", "max_batch_size", "input", "output", "dynamic_batching", "instance_group"):
        assert getattr(runner, field) == getattr(native, field), field


def test_runner_config_refuses_a_python_model():
    tokenizer = repo.build_configs(layout.RepositorySettings())[layout.TOKENIZER]
    with pytest.raises(ValueError, match="not onnxruntime, pytorch or openvino"):
        repo.python_runner_config(tokenizer)


def test_device_choice_sets_the_instance_group():
    auto, cpu, gpu = (
        repo.model_config(layout.RepositorySettings(device=d, instances=3)) for d in ("auto", "cpu", "gpu")
    )
    assert len(auto.instance_group) == 0  # Triton: one instance per GPU if any, else CPU
    assert (cpu.instance_group[0].kind, cpu.instance_group[0].count) == (mc.ModelInstanceGroup.KIND_CPU, 3)
    assert (gpu.instance_group[0].kind, gpu.instance_group[0].count) == (mc.ModelInstanceGroup.KIND_GPU, 3)


def test_tensorrt_accelerator_asks_the_onnxruntime_backend_for_its_tensorrt_provider():
    assert not repo.model_config(layout.RepositorySettings(device="gpu")).HasField("optimization")  # CUDA provider
    config = repo.model_config(layout.RepositorySettings(device="gpu", gpu_accelerator="tensorrt-fp16"))
    (accelerator,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.name == "tensorrt"
    assert accelerator.parameters["precision_mode"] == "FP16"
    assert repo.python_runner_config(config).optimization == config.optimization  # the runner honours it too


def test_response_cache_is_enabled_on_the_ensemble_only_when_asked():
    assert not repo.ensemble_config(layout.RepositorySettings()).HasField("response_cache")
    cached = repo.build_configs(layout.RepositorySettings(response_cache=True))
    assert cached[layout.RERANKER].response_cache.enable
    assert not cached[layout.CROSS_ENCODER].HasField("response_cache")  # one lookup per request, at the top


def test_the_default_queue_is_bounded_on_the_tokenizer_and_the_model_and_zero_turns_it_off():
    """Overload is refused at once, never queued without bound: 128 requests may wait per model,
    with no timer (a client's timeout ends its own wait) and a batcher that never waits to fill."""
    default = repo.build_configs(layout.RepositorySettings())
    for name in (layout.TOKENIZER, layout.CROSS_ENCODER):
        policy = default[name].dynamic_batching.default_queue_policy
        assert (policy.max_queue_size, policy.default_timeout_microseconds) == (128, 0), name
        assert policy.timeout_action == mc.ModelQueuePolicy.REJECT
    assert default[layout.CROSS_ENCODER].dynamic_batching.max_queue_delay_microseconds == 0
    for config in repo.build_configs(layout.RepositorySettings(max_queue_size=0)).values():
        assert not config.HasField("dynamic_batching"), config.name
    limited = repo.build_configs(layout.RepositorySettings(max_queue_size=8, queue_timeout_s=2.5))
    for name in (layout.TOKENIZER, layout.CROSS_ENCODER):
        policy = limited[name].dynamic_batching.default_queue_policy
        assert (policy.max_queue_size, policy.default_timeout_microseconds) == (8, 2_500_000), name
        assert policy.timeout_action == mc.ModelQueuePolicy.REJECT
    assert limited[layout.TOKENIZER].max_batch_size == 0  # the policy's dynamic_batching batches nothing there
    size_only = repo.model_config(layout.RepositorySettings(max_queue_size=8)).dynamic_batching.default_queue_policy
    assert (size_only.max_queue_size, size_only.default_timeout_microseconds) == (8, 0)


def test_the_dynamic_batcher_waits_to_fill_a_batch_only_when_asked():
    """The queue policy needs the batcher's block; it never waits unless dynamic batching is asked for
    (equal-shape merges are rare, and Triton 2.51's batcher thread spins while it waits: measured)."""
    for settings in (layout.DEFAULT_RERANKER_SETTINGS, layout.DEFAULT_EMBEDDER_SETTINGS):
        assert repo.model_config(settings).dynamic_batching.max_queue_delay_microseconds == 0, settings.kind
    unbounded = layout.RepositorySettings(max_queue_size=0)
    assert not repo.model_config(unbounded).HasField("dynamic_batching")
    asked = repo.model_config(unbounded.replace(dynamic_batching=True, max_queue_delay_us=0))
    assert asked.HasField("dynamic_batching") and asked.dynamic_batching.max_queue_delay_microseconds == 0
    limited = repo.model_config(layout.RepositorySettings(dynamic_batching=True, max_queue_delay_us=250))
    assert limited.dynamic_batching.max_queue_delay_microseconds == 250
    limited = repo.model_config(layout.RepositorySettings(queue_timeout_s=1))
    assert limited.dynamic_batching.default_queue_policy.default_timeout_microseconds == 1_000_000


def test_runner_parallelism_is_written_only_when_chosen():
    assert "runner_parallelism" not in repo.model_config(layout.RepositorySettings()).parameters
    config = repo.model_config(layout.RepositorySettings(runner_parallelism="slices"))
    assert config.parameters["runner_parallelism"].string_value == "slices"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"model_format": "tensorrt"}, "model_format"),
        ({"device": "tpu"}, "device"),
        ({"max_length": 0}, "max_length"),
        ({"max_rows_per_request": 0}, "max_rows_per_request"),
        ({"model_inputs": ("input_ids",)}, "model_inputs"),
        ({"model_inputs": ("input_ids", "attention_mask", "pixel_values")}, "model_inputs"),
        ({"kind": "colbert"}, "kind"),
        ({"dimension": 384}, "one score per pair"),
        ({"kind": "bi-encoder", "dimension": 0}, "dimension"),
        ({"gpu_accelerator": "openvino"}, "gpu_accelerator must be one of"),
        ({"gpu_accelerator": "tensorrt", "device": "cpu"}, "for ONNX models on a GPU"),
        ({"gpu_accelerator": "tensorrt", "model_format": "torchscript"}, "for ONNX models on a GPU"),
        ({"max_queue_size": -1}, "max_queue_size"),
        ({"queue_timeout_s": -0.5}, "queue_timeout_s"),
        ({"runner_parallelism": "rows"}, "runner_parallelism"),
        ({"name": "has space"}, "name must be"),
        ({"name": "tokenizer"}, "name must be"),
        ({"name": "embedder"}, "name must be"),
    ],
)
def test_settings_refuse_bad_values(changes, message):
    with pytest.raises(ValueError, match=message):
        layout.RepositorySettings(**changes)


def test_a_named_export_gets_its_own_models_that_line_up():
    settings = layout.RepositorySettings(name="minilm")
    assert settings.family.names == ("minilm_tokenizer", "minilm_model", "minilm", "minilm_aggregator")
    configs = repo.build_configs(settings)
    assert sorted(configs) == ["minilm", "minilm_aggregator", "minilm_model", "minilm_tokenizer"]
    steps = configs["minilm"].ensemble_scheduling.step
    assert [step.model_name for step in steps] == ["minilm_tokenizer", "minilm_model", "minilm_aggregator"]
    assert layout.RepositorySettings(name="reranker").family == layout.RERANK  # the default name is the default


def test_tokenizer_instances_set_the_tokenizer_and_aggregator_instance_groups():
    configs = repo.build_configs(layout.RepositorySettings(tokenizer_instances=3))
    for name in (layout.TOKENIZER, layout.AGGREGATOR):
        (group,) = configs[name].instance_group
        assert (group.kind, group.count) == (mc.ModelInstanceGroup.KIND_CPU, 3), name
    with pytest.raises(ValueError, match="tokenizer_instances must be >= 1, got 0"):
        layout.RepositorySettings(tokenizer_instances=0)
