"""The speed per family: models built at a checkpoint's shape (random weights, any size for the tests)
export like the real ones, and `benchmark --families` measures each family beside its PyTorch reference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoConfig, AutoTokenizer

from benchmarks.families import SHAPES, build_shape, non_embedding_parameters, parse_family
from in_process import ran
from tiny_models import WORDS, build_tiny_qwen3_reranker
from triton_rerank.serving.export import export_model

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SMALL = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}


def test_a_family_is_a_label_a_model_and_a_kind():
    assert parse_family("minilm=cross-encoder/ms-marco-MiniLM-L-6-v2") == (
        "minilm",
        "cross-encoder/ms-marco-MiniLM-L-6-v2",
        "cross-encoder",
    )
    assert parse_family("q=Qwen/Qwen3-Reranker-0.6B@llm-reranker")[2] == "llm-reranker"
    assert parse_family("q=shape:qwen3-reranker-0.6b")[2] == "llm-reranker"  # the shape's kind
    for bad, says in (
        ("no-equals", "LABEL=MODEL"),
        ("=model", "LABEL=MODEL"),
        ("x=shape:gpt-5", "unknown shape 'gpt-5'"),
        ("x=model@bi-encoder", "cross-encoder or llm-reranker"),
    ):
        with pytest.raises(ValueError, match=says):
            parse_family(bad)


def test_shapes_keep_the_checkpoints_architecture_and_export_checked(tmp_path):
    texts = [" ".join(WORDS)] * 20 + ["Paris est la capitale de la France. Берлин — столица Германии."] * 5
    xlmr = build_shape("xlm-roberta-large", tmp_path / "xlmr", texts=texts, **SMALL)
    config = AutoConfig.from_pretrained(xlmr)
    assert config.model_type == "xlm-roberta" and config.num_labels == 1
    assert config.max_position_embeddings == SHAPES["xlm-roberta-large"]["max_position_embeddings"]
    tokenizer = AutoTokenizer.from_pretrained(xlmr)
    assert "token_type_ids" not in tokenizer("a", "b") and tokenizer.model_max_length == 8192
    report = export_model(str(xlmr), tmp_path / "repo", "cross-encoder")
    assert report.max_abs_diff <= 1e-4

    tokenizer_source = build_tiny_qwen3_reranker(tmp_path / "tiny-qwen3")
    small = {**SMALL, "num_key_value_heads": 1, "head_dim": 16}
    qwen = build_shape("qwen3-reranker-0.6b", tmp_path / "qwen3", qwen3_tokenizer=tokenizer_source, **small)
    config = AutoConfig.from_pretrained(qwen)
    assert config.model_type == "qwen3" and config.tie_word_embeddings and config.rope_parameters["rope_theta"] == 1e6
    assert non_embedding_parameters(str(qwen)) > 0
    report = export_model(str(qwen), tmp_path / "repo", "llm-reranker", settings=None)
    assert report.max_abs_diff <= 1e-4

    with pytest.raises(FileNotFoundError, match="make qwen3-tokenizer"):
        build_shape("qwen3-reranker-0.6b", tmp_path / "nope", qwen3_tokenizer=tmp_path / "missing")
    with pytest.raises(ValueError, match="needs texts"):
        build_shape("xlm-roberta-large", tmp_path / "empty")


@pytest.mark.slow
def test_benchmark_families_measures_each_family_beside_its_pytorch_reference(tiny_model, tmp_path, capsys):
    qwen = build_tiny_qwen3_reranker(tmp_path / "qwen3")
    out = tmp_path / "bench"
    done = ran(
        capsys,
        "benchmark.py",
        "--families",
        "--seconds",
        "1",
        "--family",
        f"bert={tiny_model}",
        "--family",
        f"qwen={qwen}@llm-reranker",
        "--data",
        str(tmp_path / "no-data"),
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "families-benchmark.json").read_text())
    rows = {row["family"]: row for row in report["families"]}
    assert set(rows) == {"bert", "qwen"} and rows["qwen"]["kind"] == "llm-reranker"
    assert report["refused"] == {}  # both tiny models keep their ranking at int8 (seeded weights): measured
    for row in rows.values():
        assert row["errors"] == {} and not row["random_weights"]
        assert row["pairs_per_s"]["torch"] > 0 and row["pairs_per_s"]["fp32"] > 0 and row["pairs_per_s"]["int8"] > 0
        assert row["tokens_per_pair"]["mean"] > 0 and row["non_embedding_parameters"] > 0
    table = (out / "families-benchmark.md").read_text()
    assert "| bert |" in table and "| qwen |" in table

    missing = ran(capsys, "benchmark.py", "--families", "--family", "q=shape:qwen3-reranker-0.6b",
                  "--qwen3-tokenizer", str(tmp_path / "missing"), "--out", str(tmp_path / "bench2"))  # fmt: skip
    assert missing.returncode == 2 and "make qwen3-tokenizer" in missing.stderr


@pytest.mark.slow
def test_cpu_scaling_pins_the_server_to_each_core_count_and_reports_the_efficiency(tiny_model, tmp_path, capsys):
    import os

    out = tmp_path / "bench"
    counts = "1,2" if len(os.sched_getaffinity(0)) >= 2 else "1"
    done = ran(capsys, "benchmark.py", "--cpu-scaling", counts, "--seconds", "1", "--model", str(tiny_model),
               "--data", str(tmp_path / "no-data"), "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads((out / "cpu-scaling.json").read_text())["rows"]
    assert [row["cores"] for row in rows] == [int(c) for c in counts.split(",")]
    assert rows[0]["efficiency_per_core"] == 1.0 and all(r["pairs_per_s"] > 0 and r["errors"] == 0 for r in rows)
    assert "| server cores |" in (out / "cpu-scaling.md").read_text()

    too_many = ran(capsys, "benchmark.py", "--cpu-scaling", "4096", "--model", str(tiny_model), "--out", str(out))
    assert too_many.returncode == 2 and "4096 cores asked" in too_many.stderr
