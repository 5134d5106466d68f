"""Check the KIND_GPU path on a machine with an NVIDIA GPU: export, serve, compare, time.

    python scripts/gpu_check.py --model path/to/cross-encoder [--random-weights] [--out gpu_check.json]

1. Exports the model with ``--device gpu`` (a KIND_GPU instance group) as TorchScript at fp32 and
   fp16 (traced in half precision on the GPU) and as ONNX at fp16 (which needs onnxruntime-gpu for
   its CUDA execution provider; without it the server must refuse to load the model rather than run
   it on the CPU).
2. Serves each with the embedded Triton server and compares the served scores with
   sentence-transformers' CrossEncoder on the same GPU (fp32 within 1e-4; fp16's difference is
   recorded next to the export's own fp16-vs-fp32 report).
3. Times one query x N documents (40-120 words each): the in-process CrossEncoder on the GPU
   (batch 32, as pymilvus' CrossEncoderRerankFunction; also in half precision, for reference)
   against the served path, with 1, 4 and 16 clients.

``--random-weights`` replaces the weights by a random initialisation of the same architecture
(speed does not depend on weight values), so a folder with only config.json and tokenizer files works.
Not part of the test suite: CI has no GPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.workload import synthetic_passages


def random_weights_copy(folder: Path, target: Path) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(folder)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(target)
    AutoTokenizer.from_pretrained(folder).save_pretrained(target)
    return target


def time_calls(call, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def in_process_speeds(model: Path, documents: list[str], rounds: int, device: str) -> dict:
    """pairs/s of sentence-transformers' CrossEncoder in-process, at fp32 (the baseline) and fp16."""
    import torch
    from sentence_transformers import CrossEncoder

    query = "immune response of patients to the vaccine trial"
    pairs = [(query, d) for d in documents]
    speeds = {}
    for precision in ("fp32", "fp16") if device == "gpu" else ("fp32",):
        reference = CrossEncoder(str(model), device="cuda" if device == "gpu" else "cpu")
        if precision == "fp16":
            reference.model.half()
        predict = functools.partial(reference.predict, pairs, batch_size=32, show_progress_bar=False)
        predict()  # warm-up
        speeds[f"{precision}_pairs_per_s"] = len(pairs) / statistics.median(time_calls(predict, rounds))
        del reference, predict
        if device == "gpu":
            torch.cuda.empty_cache()
    return speeds


def check_format(
    model: Path,
    model_format: str,
    work: Path,
    documents: list[str],
    rounds: int,
    device: str,
    server_env: dict[str, str],
    serving: dict | None = None,
) -> dict:
    from triton_rerank import RerankError
    from triton_rerank.serving.export import ExportError, export_cross_encoder
    from triton_rerank.serving.layout import RepositorySettings
    from triton_rerank.serving.server import EmbeddedTritonServer, ServerStartError, free_port_settings

    repository = work / f"repo-{model_format}"
    variant, batching, _ = model_format.partition("+batching")  # "onnx-fp16+batching": with the dynamic batcher
    base_format, _, precision = variant.partition("-")  # "onnx-fp16": ONNX at fp16
    try:
        report = export_cross_encoder(
            str(model),
            repository,
            model_format=base_format,
            precision=precision or "fp32",
            settings=RepositorySettings(device=device, dynamic_batching=bool(batching), **(serving or {})),
        )
    except ExportError as err:
        return {"format": model_format, "export_error": str(err)}
    result: dict = {"format": model_format, "export_max_abs_diff": report.max_abs_diff}
    if report.reduced_precision is not None:
        result["reduced_precision"] = dataclasses.asdict(report.reduced_precision)
    query = "immune response of patients to the vaccine trial"
    try:
        server = EmbeddedTritonServer(repository, free_port_settings(env=server_env)).start()
    except ServerStartError as err:
        result["served"] = False
        result["server_error"] = str(err).splitlines()[-1][:300] if str(err) else "?"
        result["server_error_lines"] = [line[:400] for line in str(err).splitlines() if line.startswith("E")][:4]
        return result
    try:
        compare_served(result, server.grpc_url, model, device, query, documents, rounds)
    except RerankError as err:
        result["client_error"] = str(err)
    finally:
        server.stop()
    return result


def compare_served(result: dict, url: str, model: Path, device: str, query: str, documents: list[str], rounds: int):
    """Served scores against sentence-transformers on the same device, then both timed."""
    import torch
    import tritonclient.grpc as grpcclient
    from sentence_transformers import CrossEncoder

    from triton_rerank import TritonRerankFunction

    reference = CrossEncoder(str(model), device="cuda" if device == "gpu" else "cpu")
    expected = reference.predict([(query, d) for d in documents], activation_fn=torch.nn.Identity(), batch_size=32)
    admin = grpcclient.InferenceServerClient(url.removeprefix("grpc://"))
    result["instance_group"] = admin.get_model_config("cross_encoder", as_json=True)["config"].get("instance_group")
    admin.close()
    with TritonRerankFunction(url) as rf:
        served = rf.score(query, documents)
        result["served"] = True
        result["max_abs_diff_vs_in_process"] = float(np.max(np.abs(served - expected)))
        top10 = [r.index for r in rf(query=query, documents=documents, top_k=10)]
        result["top10_identical"] = top10 == list(np.argsort(-expected, kind="stable")[:10])
    in_process = time_calls(
        lambda: reference.predict([(query, d) for d in documents], batch_size=32, show_progress_bar=False), rounds
    )
    result.update(
        documents=len(documents),
        in_process_p50_s=statistics.median(in_process),
        in_process_pairs_per_s=len(documents) / statistics.median(in_process),
    )
    time_served(result, url, query, documents, rounds)


def time_served(result: dict, url: str, query: str, documents: list[str], rounds: int) -> None:
    """pairs/s and p50 of the served path with 1, 4 and 16 clients, each sending ``rounds`` requests."""
    from benchmarks.harness import percentiles_ms, run_clients, served_scorer
    from benchmarks.workload import Request

    for clients in (1, 4, 16):
        run = run_clients(served_scorer(url), [Request(query, documents)] * (clients * rounds), clients)
        result[f"served_{clients}_clients_pairs_per_s"] = run.pairs / run.wall_s
        result[f"served_{clients}_clients_p50_s"] = (percentiles_ms(run.latencies)["p50_ms"] or 0) / 1000
        result[f"served_{clients}_clients_errors"] = len(run.errors)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="cross-encoder folder")
    parser.add_argument("--random-weights", action="store_true", help="random weights of the same architecture")
    parser.add_argument("--documents", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--formats",
        nargs="+",
        default=["torchscript", "torchscript-fp16", "onnx-fp16"],
        help="torchscript, torchscript-fp16, onnx, onnx-fp16 (ONNX on a GPU needs onnxruntime-gpu's CUDA provider); "
        "a +batching suffix turns on Triton's dynamic batcher",
    )
    parser.add_argument("--instances", type=int, default=1, help="model instances per GPU (a lever: default 1)")
    parser.add_argument(
        "--tokenizer-instances", type=int, default=1, help="tokenizer and aggregator instances (a lever: default 1)"
    )
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--device", choices=["gpu", "cpu"], default="gpu", help="cpu: a dry run of this script")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the server and its Python models (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    import onnxruntime
    import torch

    facts = {
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "device": args.device,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "onnxruntime_providers": onnxruntime.get_available_providers(),
        "numpy": np.__version__,
    }
    print(json.dumps(facts), flush=True)
    if args.device == "gpu" and not torch.cuda.is_available():
        print("no CUDA device: nothing to check", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = random_weights_copy(args.model, work / "model") if args.random_weights else args.model
        documents = synthetic_passages(args.documents)
        facts["in_process"] = in_process_speeds(model, documents, args.rounds, args.device)
        print(json.dumps(facts["in_process"]), flush=True)
        server_env = dict(item.split("=", 1) for item in args.server_env)
        serving = {"instances": args.instances, "tokenizer_instances": args.tokenizer_instances}
        facts["serving"] = serving
        results = [
            check_format(model, fmt, work, documents, args.rounds, args.device, server_env, serving)
            for fmt in args.formats
        ]
    for result in results:
        print(json.dumps(result), flush=True)
    args.out.write_text(json.dumps({"facts": facts, "results": results}, indent=2) + "\n")
    return 0
