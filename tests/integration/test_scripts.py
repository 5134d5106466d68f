"""The command-line entry points, run as users run them: serve, export, quick start."""

from __future__ import annotations

import contextlib
import html
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from in_process import cli, ran
from tiny_models import build_tiny_qwen3_reranker
from triton_rerank import TritonRerankFunction
from triton_rerank.serving.server import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def script(name: str, *args: str) -> list[str]:
    return [sys.executable, str(ROOT / "scripts" / name), *args]


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (the server and its backend stubs)."""
    children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout.split()
    found = [int(c) for c in children]
    return found + [g for c in found for g in descendants(c)]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_prints_one_ready_line_serves_and_stops_cleanly(tiny_repository, signum):
    http, grpc, metrics = free_port(), free_port(), free_port()
    process = subprocess.Popen(
        script(
            "serve.py",
            "--repository",
            str(tiny_repository),
            "--http-port",
            str(http),
            "--grpc-port",
            str(grpc),
            "--metrics-port",
            str(metrics),
            "--response-cache-mb",  # the server must find the cache library pytriton ships
            "8",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        models = "aggregator, bi_encoder, cross_encoder, embed_tokenizer, embedder, reranker, tokenizer"
        assert line.startswith(f"Triton ready: models {models} |"), line  # (stderr stays open while it runs)
        assert f"127.0.0.1:{http}" in line and f"127.0.0.1:{grpc}" in line
        children = descendants(process.pid)
        assert children  # tritonserver and its stubs
        with TritonRerankFunction(f"grpc://127.0.0.1:{grpc}") as rf:
            assert len(rf(query="paris", documents=["paris", "berlin", "water"], top_k=2)) == 2
        process.send_signal(signum)
        assert process.wait(timeout=60) == 0
        assert "Triton stopped" in process.stdout.read()
        time.sleep(0.5)
        assert [pid for pid in children if os.path.exists(f"/proc/{pid}") and not _zombie(pid)] == []
    finally:
        if process.poll() is None:  # failed: the server runs in a session of its own, so kill it too
            for pid in descendants(process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            process.kill()


def _slow_repository(folder: Path) -> Path:
    """One Python model whose load takes two minutes."""
    (folder / "slow" / "1").mkdir(parents=True)
    (folder / "slow" / "config.pbtxt").write_text(
        'name: "slow"\nbackend: "python"\nmax_batch_size: 0\n'
        'input [{ name: "IN" data_type: TYPE_FP32 dims: [1] }]\n'
        'output [{ name: "OUT" data_type: TYPE_FP32 dims: [1] }]\n'
        "instance_group [{ kind: KIND_CPU count: 1 }]\n"
    )
    (folder / "slow" / "1" / "model.py").write_text(
        "import time\n\nclass TritonPythonModel:\n    def initialize(self, args):\n        time.sleep(120)\n\n"
        "    def execute(self, requests):\n        return []\n"
    )
    return folder


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_serve_stops_at_once_when_told_to_while_its_models_load(tmp_path, signum):
    """Ctrl-C or SIGTERM during a two-minute load ends the command (and its server) within
    seconds: they were ignored until every model was loaded."""
    process = subprocess.Popen(
        from_a_terminal(script("serve.py", "--repository", str(_slow_repository(tmp_path / "models")),
                               "--http-port", str(free_port()), "--grpc-port", str(free_port()),
                               "--metrics-port", str(free_port()))),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not any(_named(pid, "tritonserver") for pid in descendants(process.pid)):
            assert time.monotonic() < deadline and process.poll() is None, process.stderr.read()
            time.sleep(0.2)
        time.sleep(3)  # the slow model is loading now
        children = descendants(process.pid)
        started = time.monotonic()
        process.send_signal(signum)
        code = process.wait(timeout=30)
        assert time.monotonic() - started < 15 and code == 128 + signum
        time.sleep(0.5)
        assert [pid for pid in children if os.path.exists(f"/proc/{pid}") and not _zombie(pid)] == []
    finally:
        if process.poll() is None:  # failed: the server runs in a session of its own, so kill it too
            for pid in descendants(process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            process.kill()


def from_a_terminal(command: list[str]) -> list[str]:
    """``command`` with Ctrl-C's default action, as a shell in a terminal starts it. Run in the
    background by a shell without job control (``make test &``, a CI step), the tests inherit SIGINT
    ignored, and Python then keeps it ignored (as ``nohup`` means): seen failing this test."""
    restore = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
    )
    return [sys.executable, "-c", restore, *command]


def _named(pid: int, name: str) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == name
    except OSError:
        return False


def test_a_command_stopped_by_sigterm_stops_the_server_it_started(tiny_repository):
    """kill, timeout or a container stop: the embedded Triton goes with the command, not orphaned."""
    args = ["--repository", str(tiny_repository), "--clients", "1", "--duration-s", "120", "--runs", "1"]
    process = subprocess.Popen(script("load_test.py", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(children := descendants(process.pid)) < 3 and time.monotonic() < deadline:  # server + stubs
            time.sleep(0.5)
        assert len(children) >= 3, "the load test did not start its server"
        time.sleep(2)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 128 + signal.SIGTERM
        time.sleep(0.5)
        assert [pid for pid in children if os.path.exists(f"/proc/{pid}") and not _zombie(pid)] == []
    finally:
        if process.poll() is None:  # failed: the server runs in a session of its own, so kill it too
            for pid in descendants(process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            process.kill()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True


def test_serve_fails_with_the_reason_when_the_repository_is_missing(tmp_path, capsys):
    result = ran(capsys, "serve.py", "--repository", str(tmp_path / "nothing"))
    assert result.returncode == 1
    assert "does not exist; export models into it first" in result.stderr


def test_serve_names_the_model_that_failed_to_load(tiny_repository, tmp_path, capsys):
    broken = tmp_path / "broken"
    subprocess.run(["cp", "-r", str(tiny_repository), str(broken)], check=True)
    (broken / "cross_encoder" / "1" / "model.onnx").write_bytes(b"not an onnx file")
    result = ran(
        capsys,
        "serve.py",
        "--repository",
        str(broken),
        "--http-port",
        str(free_port()),
        "--grpc-port",
        str(free_port()),
        "--metrics-port",
        str(free_port()),
    )
    assert result.returncode == 1
    assert "failed to load 'cross_encoder'" in result.stderr


def test_export_script_reports_the_check(tiny_model, tmp_path, capsys):
    repository = str(tmp_path / "repo")
    result = ran(capsys, "export_model.py", "--model", str(tiny_model), "--repository", repository, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "max |score - PyTorch| =" in result.stdout
    assert "KIND_CPU" in (tmp_path / "repo" / "cross_encoder" / "config.pbtxt").read_text()


def test_export_script_makes_a_cached_int8_model_and_prints_its_cost(tiny_model, tmp_path, capsys):
    repository = tmp_path / "repo"
    result = ran(
        capsys,
        "export_model.py",
        *("--model", str(tiny_model), "--repository", str(repository), "--precision", "int8", "--response-cache"),
    )
    assert result.returncode == 0, result.stderr
    assert "int8: max |score - fp32| =" in result.stdout and "rank correlation 0." in result.stdout
    assert "response_cache" in (repository / "reranker" / "config.pbtxt").read_text()
    assert json.loads((repository / "cross_encoder" / "1" / "export.json").read_text())["precision"] == "int8"


def test_export_script_fails_cleanly_for_a_missing_model(tmp_path, capsys):
    missing, repository = str(tmp_path / "missing"), str(tmp_path / "repo")
    result = ran(capsys, "export_model.py", "--model", missing, "--repository", repository)
    assert result.returncode == 1
    assert "export failed:" in result.stderr and "missing" in result.stderr


@pytest.mark.slow
def test_quick_start_in_a_fresh_clone_writes_no_tracked_file(tiny_model, embedder_model, tmp_path):
    """The README's main command, run as a new user runs it (in a clone, default repository), exports
    into the ignored generated/ folder: git status stays clean, so the tests can follow it."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    result = subprocess.run(
        [sys.executable, "scripts/reranking.py", "--reranker-model", str(tiny_model), "--embedder-model",
         embedder_model, "--top-k", "3"],
        cwd=clone,
        env={**os.environ, "PYTHONPATH": str(clone / "client")},
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "ingested 32 new of 32 documents" in result.stdout
    assert result.stdout.count("first stage (Milvus, hybrid (relative 0.75/0.25))") == 3  # BM25 and dense, fused
    assert "dense #" in result.stdout and "bm25 #" in result.stdout
    assert result.stdout.count("(was #") == 9  # three queries, top 3 each
    curl = next(line for line in result.stdout.splitlines() if line.strip().startswith("$ curl"))
    assert "/v2/rerank" in curl and '"model": "reranker"' in curl
    answer = json.loads(result.stdout.splitlines()[result.stdout.splitlines().index(curl) + 1])
    assert len(answer["results"]) == 2 and 0 < answer["results"][0]["relevance_score"] < 1
    assert (clone / "generated" / "model_repository" / "cross_encoder" / "1" / "model.onnx").exists()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True)
    assert status.stdout == ""


def test_cli_search_prints_json_hits(triton_server, sample_corpus, tmp_path, capsys):
    database = str(tmp_path / "cli.db")
    common = ["--milvus-uri", database, "--triton-url", triton_server.http_url]
    ingest = cli(capsys, "ingest", str(sample_corpus), *common)
    assert ingest.returncode == 0, ingest.stderr
    search = cli(capsys, "search", "sea level", "--top-k", "2", "--json", *common)
    assert search.returncode == 0, search.stderr
    hits = [json.loads(line) for line in search.stdout.splitlines()]
    assert len(hits) == 2 and {"id", "rerank_score", "first_stage_rank", "metadata"} <= set(hits[0])
    assert set(hits[0]["legs"]) <= {"dense", "bm25"} and all(leg["rank"] >= 1 for leg in hits[0]["legs"].values())
    bm25 = cli(capsys, "search", "sea level", "--first-stage", "bm25", "--json", *common)
    assert bm25.returncode == 0, bm25.stderr
    assert all(set(json.loads(line)["legs"]) == {"bm25"} for line in bm25.stdout.splitlines())
    dense_only = ["--collection", "old", *common]
    assert cli(capsys, "ingest", str(sample_corpus), "--no-bm25", *dense_only).returncode == 0
    refused = cli(capsys, "search", "sea level", "--first-stage", "hybrid", *dense_only)
    assert refused.returncode == 2 and "has no BM25 field" in refused.stderr and "Traceback" not in refused.stderr
    bad = cli(capsys, "search", "x", "--filter", "topic ==", *common)
    assert bad.returncode == 1 and bad.stderr.startswith("error: Milvus") and "Traceback" not in bad.stderr


def test_cli_help_lists_the_subcommands(capsys):
    result = cli(capsys, "--help")
    assert result.returncode == 0
    for command in ("serve", "ingest", "search"):
        assert command in result.stdout


def tiny_beir(folder: Path, corpus: Path) -> Path:
    """A BEIR folder of the sample corpus and three easy judged queries."""
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(corpus.read_text())
    queries = {"q1": "How do vaccines work?", "q2": "Why do sea levels rise?", "q3": "python threads"}
    relevant = {"q1": "vaccines-1", "q2": "climate-2", "q3": "python-4"}
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items()))
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in relevant.items())
    )
    return folder


@pytest.mark.slow
def test_evaluate_compares_the_served_stack_with_the_in_process_reference(
    triton_server, tiny_model, embedder_model, sample_corpus, tmp_path, capsys
):
    out = tmp_path / "evaluation.json"
    result = ran(
        capsys,
        "evaluate.py",
        "--data",
        str(tiny_beir(tmp_path / "beir", sample_corpus)),
        "--reranker-model",
        str(tiny_model),
        "--embedder-model",
        embedder_model,
        "--triton-url",
        triton_server.grpc_url,
        "--index",
        "FLAT",
        "--first-stage",
        "dense",
        "--retrieve-k",
        "10",
        "--peers",
        "st-torch",
        "--peers-python",
        sys.executable,
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert "| nDCG@10 | MRR@10 | Recall@100 |" in result.stdout
    report = json.loads(out.read_text())
    rows = report["results"]
    assert len(rows) == 6
    # FLAT search is exact, and the served reranking equals the in-process one on the same candidates.
    assert rows["first stage: Milvus FLAT (served)"] == rows["first stage: exact cosine (in-process)"]
    assert rows["reranked: Triton on Milvus top-10 (served)"] == pytest.approx(
        rows["reranked: CrossEncoder on Milvus top-10 (in-process)"], abs=1e-9
    )
    assert rows["first stage: exact cosine (in-process)"]["mrr@10"] == 1.0  # easy queries: all found first
    # A peer (here sentence-transformers' torch backend, in a worker process) reranks those very candidates.
    assert rows["reranked: ST PyTorch on Milvus top-10 (in-process peer)"] == pytest.approx(
        rows["reranked: CrossEncoder on Milvus top-10 (in-process)"], abs=1e-9
    )
    assert report["peers"] == ["ST PyTorch"] and report["timings"]["peers"]["st-torch"]["pairs"] == 30
    # fp32 served equals the reference to float rounding: no score noise to move a ranking.
    band = report["noise_band"]
    assert band["rms_error"] < 1e-4 and band["observed"] == band["p5"] == band["p95"] == 0.0
    assert "served - in-process scores: RMS" in result.stdout


def test_evaluate_compares_first_stages_each_reranked_beside_an_exact_bm25(
    triton_server, tiny_model, embedder_model, sample_corpus, tmp_path, capsys
):
    out = tmp_path / "evaluation.json"
    result = ran(capsys, "evaluate.py", "--data", str(tiny_beir(tmp_path / "beir", sample_corpus)),
            "--reranker-model", str(tiny_model), "--embedder-model", embedder_model,
            "--triton-url", triton_server.grpc_url, "--index", "FLAT", "--retrieve-k", "10",
            "--first-stage", "dense,bm25,hybrid", "--fusion", "relative,rrf,weighted", "--no-reference",
            "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    rows = report["results"]
    hybrids = ("hybrid (relative 0.75/0.25)", "hybrid (rrf k=60)", "hybrid (weighted 0.5/0.5)")
    assert all(f"first stage: Milvus {stage} (served)" in rows for stage in ("FLAT", "BM25", *hybrids))
    for on in ("", " BM25", *(f" {h}" for h in hybrids)):  # each reranked
        assert 0 <= rows[f"reranked: Triton on Milvus{on} top-10 (served)"]["ndcg@10"] <= 1
    # Milvus Lite's BM25 (it does not stem) is the exact unstemmed BM25, ranking for ranking.
    assert rows["first stage: Milvus BM25 (served)"] == rows["first stage: exact BM25 (bm25s, in-process)"]
    assert "first stage: exact BM25, stemmed (bm25s, in-process)" in rows
    assert report["first_stage"] == ["dense", "bm25", *hybrids]
    # The other first stages' candidates were scored once: only pairs the dense list lacked.
    assert "served (after hybrid (rrf k=60)): reranked 0 new pairs" in result.stdout
    page = out.with_suffix(".html").read_text()  # the report for a person: every row, every first stage
    assert all(html.escape(name) in page for name in rows) and all(html.escape(stage) in page for stage in hybrids)
    assert page.count("<circle") == report["queries"]  # one dot per query, before against after


def test_evaluate_refuses_peers_it_cannot_run(tiny_model, sample_corpus, tmp_path, capsys):
    beir = tiny_beir(tmp_path / "beir", sample_corpus)
    for flags, code, message in (
        (["--peers", "st-onnx,st-tensorrt"], 2, "unknown peers ['st-tensorrt']: choose from st-onnx,"),  # argparse's
        (["--peers", "st-onnx", "--peers-python", str(tmp_path / "none")], 2, "run `make peers` first"),
        (["--peers", "st-onnx", "--reranker-kind", "llm-reranker"], 2, "--peers are sentence-transformers"),
    ):
        refused = ran(capsys, "evaluate.py", "--data", str(beir), "--reranker-model", str(tiny_model), *flags)
        assert refused.returncode == code, refused.stderr
        assert message in refused.stderr and "Traceback" not in refused.stderr


@pytest.mark.slow
def test_evaluate_an_llm_reranker_against_its_model_card_and_a_cascade_behind_it(
    tiny_model, embedder_model, sample_corpus, tmp_path, capsys
):
    qwen = build_tiny_qwen3_reranker(tmp_path / "qwen3")
    out = tmp_path / "evaluation.json"
    result = ran(capsys, "evaluate.py", "--data", str(tiny_beir(tmp_path / "beir", sample_corpus)),
            "--reranker-model", str(qwen), "--reranker-kind", "llm-reranker", "--instruction", "Find the answer",
            "--cascade-model", str(tiny_model), "--cascade-k", "10",
            "--embedder-model", embedder_model, "--repository", str(tmp_path / "repo"),
            "--index", "FLAT", "--first-stage", "dense", "--retrieve-k", "10", "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    rows = report["results"]
    # The served LLM reranker ranks the candidates as the model card's code does, with the instruction given.
    assert rows["reranked: Triton on Milvus top-10 (served)"] == pytest.approx(
        rows["reranked: the model card's code on Milvus top-10 (in-process)"], abs=1e-9
    )
    # Reading all 10, the cascade's second stage is that model alone; each stage's cost is counted.
    cascade = f"reranked: cascade ({tiny_model}) on"
    assert rows[f"{cascade} the reranker's top-10 (served)"] == rows[f"{cascade} them alone (served)"]
    timings = report["timings"]["served"]
    assert timings["rerank_cascade top-10_pairs"] == timings["rerank_cascade model alone_pairs"] == 30
    assert report["cascade"]["k"] == 10 and report["reranker_kind"] == "llm-reranker"

    refused = ran(capsys, "evaluate.py", "--data", str(tmp_path / "beir"), "--cascade-model", str(tiny_model),
               "--cascade-k", "5", "--out", str(out))  # fmt: skip
    assert refused.returncode != 0 and "--cascade-k must be from 10" in refused.stderr


def test_long_corpus_and_evaluate_rerank_the_same_candidates_with_long_texts_per_policy(
    triton_server, tiny_model, embedder_model, sample_corpus, tmp_path, capsys
):
    beir, long = tmp_path / "beir", tmp_path / "beir-long"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text(sample_corpus.read_text())
    (beir / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "How do vaccines work?"}) + "\n")
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tvaccines-1\t1\n")
    made = ran(capsys, "long_scifact.py", "--data", str(beir), "--tokenizer", str(tiny_model / "tokenizer.json"),
               "--out", str(long))  # fmt: skip
    assert made.returncode == 0, made.stderr
    summary = json.loads(made.stdout.splitlines()[0])
    assert summary["made_long"] == 1 and 1000 <= summary["tokens_min"] <= summary["tokens_max"] <= 3000
    out = tmp_path / "evaluation.json"
    result = ran(capsys, "evaluate.py", "--data", str(beir), "--rerank-data", str(long),
               "--long-documents", "first,max,mean",
               "--reranker-model", str(tiny_model), "--embedder-model", embedder_model, "--triton-url",
               triton_server.grpc_url, "--index", "FLAT", "--first-stage", "dense", "--retrieve-k", "10",
               "--no-reference", "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())["results"]
    assert len(rows) == 5  # the first stage, the short texts, and the long ones under each policy
    assert any("long_documents=max" in name for name in rows) and any("long_documents=mean" in name for name in rows)
    assert "of the short documents' nDCG@10" in result.stdout
    # the share of the short documents' gain each policy keeps; none where the short reranking loses
    report = json.loads(out.read_text())
    first_stage = next(v["ndcg@10"] for k, v in rows.items() if k.startswith("first stage"))
    short = next(v["ndcg@10"] for k, v in rows.items() if k.startswith("reranked") and "texts" not in k)
    kept = [report["timings"]["served"][f"gain_kept_{policy}"] for policy in ("first", "max", "mean")]
    assert all(k is None for k in kept) if short <= first_stage else all(isinstance(k, float) for k in kept)
    bad = ran(capsys, "evaluate.py", "--data", str(beir), "--long-documents", "first,sum")  # fmt: skip
    assert bad.returncode == 2 and "unknown policies ['sum']" in bad.stderr


def test_a_port_in_use_stops_the_start_with_the_servers_reason(tiny_repository):
    import socket

    from triton_rerank.serving.server import EmbeddedTritonServer, ServerSettings, ServerStartError

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        settings = ServerSettings(http_port=busy.getsockname()[1], grpc_port=free_port(), metrics_port=free_port())
        with pytest.raises(ServerStartError, match="already in use"):
            EmbeddedTritonServer(tiny_repository, settings).start()


@pytest.fixture(scope="module")
def bench_out(tmp_path_factory) -> Path:
    """One --out for the benchmark runs: each writes reports of its own there, and they share the tiny
    model's exports (the benchmarks reuse an export of the same model and settings)."""
    return tmp_path_factory.mktemp("bench")


@pytest.mark.slow
def test_benchmark_quick_measures_every_variant_side_by_side_and_writes_its_reports(tiny_model, bench_out, capsys):
    out = bench_out
    done = ran(
        capsys,
        "benchmark.py",
        "--quick",
        "--rounds",
        "1",
        "--model",
        str(tiny_model),
        "--data",
        str(bench_out / "no-data"),  # absent: synthetic passages
        "--no-perf-analyzer",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "benchmark.json").read_text())
    cells = {(c["variant"], c["clients"]): c for c in report["cells"]}
    assert set(cells) == {
        ("baseline", 1),
        ("baseline", 4),
        *((variant, clients) for variant in ("served fp32", "served int8") for clients in (1, 4, 16)),
    }
    for cell in cells.values():
        assert cell["n"] == 100 and cell["errors"] == 0 and cell["requests"] >= cell["clients"]
        assert cell["pairs_per_s_median"] > 0 and cell["p50_ms"] <= cell["p99_ms"]
    served = cells[("served int8", 4)]["triton"]
    assert served["cross_encoder"]["rows_per_execution"] >= 1 and served["tokenizer"]["compute_ms_per_request"] > 0
    assert report["accuracy"]["served fp32"]["max_abs_diff"] <= 1e-4  # same scores as pymilvus' reranker
    assert report["accuracy"]["served int8"]["max_abs_diff"] > 0  # quantized: close, not equal
    assert {r["variant"] for r in report["ratios"]} == {"served fp32", "served int8"}
    assert "| served int8 | 100 | 4 |" in (out / "benchmark.md").read_text()
    assert (out / "benchmark.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["--long-documents", "--api", "--tracing", "--queue-policy"])
def test_the_benchmarks_of_long_documents_and_of_the_api_run_and_report(tiny_model, tmp_path, bench_out, mode, capsys):
    out = bench_out
    done = ran(capsys, "benchmark.py", mode, "--quick", "--rounds", "1", "--model", str(tiny_model), "--data",
               str(tmp_path / "no-data"), "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    if mode == "--api":
        report = json.loads((out / "api-benchmark.json").read_text())
        assert {(row["n"], row["clients"]) for row in report["overhead"]} == {
            (n, c) for n in (10, 100) for c in (1, 4, 16)
        }
        assert all(cell["errors"] == 0 for cell in report["cells"])
        assert report["api_vs_direct_scores"]["max_abs_diff"] < 1e-4  # the same scores through the API
    elif mode == "--queue-policy":
        report = json.loads((out / "queue-policy.json").read_text())
        assert set(report["cells"]) == {f"{p} {q}" for p in ("fp32", "int8") for q in ("unbounded", "bounded 128")}
        assert all(cell["errors"] == 0 and cell["pairs_per_s_median"] > 0 for cell in report["cells"].values())
        assert set(report["bounded_over_unbounded"]) == {"fp32", "int8"}
    elif mode == "--tracing":
        report = json.loads((out / "tracing-benchmark.json").read_text())
        assert len(report["overhead"]) == 6 and all(cell["errors"] == 0 for cell in report["cells"])
        # Tracing was really on: the API's spans and Triton's own reached the receiver.
        assert report["services_traced"] == ["triton-inference-server", "triton-rerank-api"]
        assert report["spans_received"] > 0
    else:
        report = json.loads((out / "long-documents-benchmark.json").read_text())
        assert report["rows_per_request"] > 10  # ten long documents a request, read in windows
        assert {(c["variant"], c["clients"]) for c in report["cells"]} == {
            (variant, clients)
            for variant in ("windows (long_documents=max)", "the same rows sent plain")
            for clients in (1, 4)
        }
        assert all(c["errors"] == 0 and c["rows_per_s_median"] > 0 for c in report["cells"])


@pytest.mark.slow
def test_load_test_runs_bounded_reports_latency_and_memory_and_fails_on_errors(tiny_repository, tmp_path, capsys):
    out = tmp_path / "load.json"
    args = ["--repository", str(tiny_repository), "--clients", "4", "--duration-s", "2", "--runs", "2"]
    result = ran(capsys, "load_test.py", *args, "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert len(report["runs"]) == 2
    for run in report["runs"]:
        assert run["errors"] == 0 and run["requests"] > 0
        assert 0 < run["p50_ms"] <= run["p95_ms"] <= run["p99_ms"]
        assert run["server_rss_mb"] > 50  # the server and its stubs were found and measured
    assert "server memory, first run to last" in result.stdout
    # against a server that is not there every request fails: counted, reported, exit status 1
    down = ran(capsys, "load_test.py", "--triton-url", f"grpc://127.0.0.1:{free_port()}", "--clients", "2",
               "--duration-s", "1",
               "--runs", "1")  # fmt: skip
    assert down.returncode == 1
    assert "ServerUnavailableError" in down.stdout


@pytest.mark.slow
def test_load_test_through_the_rerank_api_reads_both_processes_memory(tiny_repository, tmp_path, capsys):
    out = tmp_path / "load.json"
    args = ["--repository", str(tiny_repository), "--clients", "4", "--duration-s", "2", "--runs", "2", "--through-api"]
    result = ran(capsys, "load_test.py", *args, "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert report["through_api"] is True
    for run in report["runs"]:
        assert run["errors"] == 0 and run["requests"] > 0
        assert run["api_rss_mb"] > 20 and run["server_rss_mb"] > 50
    assert "api memory, first run to last" in result.stdout
