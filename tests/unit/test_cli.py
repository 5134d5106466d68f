"""The command line: one entry point whose export flags are the settings' fields, declared once."""

from __future__ import annotations

import dataclasses

import pytest

from triton_rerank.cli import COMMANDS, build_parser
from triton_rerank.flags import from_flags
from triton_rerank.serving.export_options import ExportOptions
from triton_rerank.serving.layout import RepositorySettings


def test_every_subcommand_is_on_the_one_entry_point():
    parser = build_parser()
    for command in COMMANDS:
        assert parser.parse_args([command, *_required(command)]).run


def _required(command: str) -> list[str]:
    return {
        "ingest": ["corpus.jsonl"],
        "search": ["a query"],
        "evaluate": ["--data", "beir"],
        "gpu-check": ["--model", "m"],
        "train": ["--data", "beir", "--model", "m", "--output", "out"],
        "deploy": ["--model", "m"],
    }.get(command, [])


@pytest.mark.parametrize("cls", [RepositorySettings, ExportOptions])
def test_export_has_a_flag_for_every_user_facing_field_and_its_defaults_are_the_fields(cls):
    args = build_parser().parse_args(["export"])
    assert from_flags(cls, args) == cls()
    for field in dataclasses.fields(cls):
        assert hasattr(args, field.name) == field.metadata.get("cli", True), field.name


def test_export_flags_reach_the_settings():
    args = build_parser().parse_args(
        ["export", "--kind", "bi-encoder", "--max-rows-per-request", "16", "--runner-parallelism", "slices",
         "--dynamic-batching", "--queue-timeout-s", "2.5", "--no-optimize", "--precision", "int8"]
    )  # fmt: skip
    settings, options = from_flags(RepositorySettings, args), from_flags(ExportOptions, args)
    assert (settings.kind, settings.max_rows_per_request, settings.runner_parallelism) == ("bi-encoder", 16, "slices")
    assert settings.dynamic_batching and settings.queue_timeout_s == 2.5
    assert (options.optimize, options.precision) == (False, "int8")


def test_export_refuses_a_value_the_settings_refuse(capsys):
    from triton_rerank.cli import main

    assert main(["export", "--device", "cpu", "--gpu-accelerator", "tensorrt"]) == 2
    assert "for ONNX models on a GPU" in capsys.readouterr().err


def test_evaluate_first_stage_flags_reach_the_config_and_bad_ones_are_refused_before_anything_runs(tmp_path):
    from triton_rerank.evaluation.config import EvaluationConfig

    def config(*flags):
        return from_flags(EvaluationConfig, build_parser().parse_args(["evaluate", "--data", str(tmp_path), *flags]))

    chosen = config("--first-stage", "dense,bm25,hybrid", "--fusion", "weighted", "--weights", "0.7,0.3")
    assert [stage.name for stage in chosen.first_stages()] == ["dense", "bm25", "hybrid (weighted 0.7/0.3)"]
    assert config().first_stage == ["dense"]  # as before: the dense first stage alone
    default = config("--first-stage", "hybrid", "--weights", "0.6,0.4")
    assert [stage.name for stage in default.first_stages()] == ["hybrid (relative 0.6/0.4)"]
    with pytest.raises(SystemExit):  # argparse: an unknown first stage
        config("--first-stage", "dense,sparse")
    all_three = config("--first-stage", "dense,hybrid", "--fusion", "relative,rrf,weighted", "--rrf-k", "20")
    assert [stage.name for stage in all_three.first_stages()] == [
        "dense", "hybrid (relative 0.75/0.25)", "hybrid (rrf k=20)", "hybrid (weighted 0.5/0.5)"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="--first-stage names each once"):
        config("--first-stage", "bm25,bm25")
    with pytest.raises(ValueError, match="one weight per leg"):
        config("--first-stage", "hybrid", "--fusion", "weighted", "--weights", "1,0,0")
    with pytest.raises(ValueError, match="leave out --cascade-model"):
        config("--first-stage", "dense,hybrid", "--cascade-model", "m")


def test_search_and_ingest_take_the_first_stage_and_the_analyzer():
    search = build_parser().parse_args(["search", "q", "--first-stage", "bm25"])
    assert search.first_stage == "bm25" and build_parser().parse_args(["search", "q"]).first_stage == "auto"
    ingest = build_parser().parse_args(["ingest", "c.jsonl", "--analyzer", "standard", "--no-bm25"])
    assert (ingest.analyzer, ingest.bm25) == ("standard", False)
