"""The command line: one entry point whose export flags are the settings' fields, declared once."""

from __future__ import annotations

import dataclasses

import pytest

from triton_rerank.cli import COMMANDS, build_parser
from triton_rerank.flags import from_flags
from triton_rerank.serving.export_options import ExportOptions
from triton_rerank.serving.layout import RepositorySettings


def test_every_subcommand_is_on_the_one_entry_point():
    """Each name runs its own module's ``run`` (a name wired to another module's, or to none, fails)."""
    import importlib

    parser = build_parser()
    for command, module in COMMANDS.items():
        args = parser.parse_args([command, *_required(command)])
        assert (args.command, args.run) == (command, importlib.import_module(module).run)


def _required(command: str) -> list[str]:
    return {
        "ingest": ["corpus.jsonl"],
        "search": ["a query"],
        "evaluate": ["--data", "beir"],
        "train": ["--data", "beir", "--model", "m", "--output", "out"],
        "distill": ["--data", "beir", "--model", "m", "--output", "out"],
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
    assert config().first_stage == ["auto"] == build_parser().parse_args(["search", "q"]).first_stage.split()
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


TWICE = b'{"id": 1, "text": "a"}\n{"_id": "1", "text": "b"}\n'  # 1 and "1": one id in Milvus


def _beir_without_qrels(folder):
    folder.mkdir()
    (folder / "corpus.jsonl").write_text('{"_id": "d1", "text": "a document"}\n')
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "a query"}\n')
    return folder


def _collection(path):
    from triton_rerank.documents import Document
    from triton_rerank.store import MilvusStore

    with MilvusStore(str(path), index="FLAT", bm25=False) as store:
        store.upsert([Document("d1", "a document")], [[1.0, 0.0, 0.0]])
    return path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (lambda tmp: ["api", "--max-documents", "0"], "--max-documents must be at least 1, got 0"),
        (lambda tmp: ["evaluate", "--data", str(_beir_without_qrels(tmp / "beir"))], "qrels/test.tsv is missing"),
        (
            lambda tmp: ["ingest", str(_write(tmp / "bad.jsonl", b'{"_id": "a", "text": "caf\xe9"}\n')),
                         "--milvus-uri", str(tmp / "docs.db")],
            "bad.jsonl:1: not UTF-8 text",
        ),
        (
            lambda tmp: ["ingest", str(_write(tmp / "twice.jsonl", TWICE)), "--milvus-uri", str(tmp / "docs.db")],
            "twice.jsonl:2: id '1' was read before",
        ),
        (
            lambda tmp: ["search", "q", "--milvus-uri", str(tmp / "new.db"), "--collection", "typo"],
            "no Milvus Lite file",
        ),
        (
            lambda tmp: ["search", "q", "--milvus-uri", str(_collection(tmp / "docs.db")), "--collection", "typo"],
            "has no collection 'typo'; it has: documents",
        ),
        (lambda tmp: ["deploy", "--list", "--repository", str(tmp / "none")], "holds no 'reranker' ensemble"),
    ],
    ids=["api-limit", "evaluate-no-qrels", "ingest-not-utf8", "ingest-duplicate-id", "search-no-file",
         "search-misspelt-collection", "deploy-empty-repository"],
)  # fmt: skip
def test_a_users_input_error_is_one_line_and_exit_status_2(tmp_path, capsys, argv, message):
    from triton_rerank.cli import main

    assert main(argv(tmp_path)) == 2
    err = capsys.readouterr().err  # after any progress bar, the error alone on its line: no traceback
    last = err.rstrip("\n").split("\n")[-1]
    assert last.startswith("error: ") and message in last and "Traceback" not in err, err
    assert not (tmp_path / "new.db").exists()  # a misspelt Milvus Lite path is not made


def _write(path, data: bytes):
    path.write_bytes(data)
    return path
