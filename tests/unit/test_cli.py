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
