"""The strongest in-process rerankers a user could run instead of a server: sentence-transformers'
own ONNX and OpenVINO backends, each as its documentation sets it up, each in a process of its own.

They need optimum-onnx / optimum-intel, which pin transformers 4.x while this project's export runs
on transformers 5, so they live in an environment of their own (``make peers`` builds
``.venv-peers`` from the ``peers`` extra). The benchmark starts one worker per peer in that
environment (``python -m benchmarks.peers``) and talks to it over stdin/stdout, one JSON
line each way: ``score`` (for the accuracy columns) and ``measure`` (C client threads sharing the
one model, as ``harness.run_clients`` runs every other variant).

The peers, as a user gets them:

    st-onnx          CrossEncoder(model, backend="onnx"): optimum's ONNX export, ONNX Runtime fp32
    st-onnx-int8     export_dynamic_quantized_onnx_model(model, "avx512_vnni", ...): its int8 file
    st-openvino      CrossEncoder(model, backend="openvino"): OpenVINO at its default precision
                     for the CPU (bf16 on CPUs with AVX512-BF16 or AMX)
    st-openvino-int8 export_static_quantized_openvino_model(...): NNCF post-training int8,
                     calibrated on the pairs the benchmark hands over (no hub dataset offline)
    st-torch         CrossEncoder(model): what pymilvus' function runs (for tests of the worker)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from benchmarks.paths import ROOT

PEER_NAMES = {  # kind -> its name in reports
    "st-onnx": "ST ONNX fp32",
    "st-onnx-int8": "ST ONNX int8",
    "st-openvino": "ST OpenVINO (CPU default)",
    "st-openvino-int8": "ST OpenVINO int8",
    "st-torch": "ST PyTorch",
}
PEERS = tuple(PEER_NAMES)
PREDICT_BATCH_SIZE = 32  # CrossEncoder.predict's default, and pymilvus' function's


def load_peer(kind: str, model: str, work: Path, calibration: list[tuple[str, str]]):
    """The CrossEncoder of ``kind`` for ``model``; exports land in ``work`` (never in ``model``)."""
    from sentence_transformers import CrossEncoder

    if kind == "st-torch":
        return CrossEncoder(model, device="cpu")
    if kind in ("st-onnx", "st-openvino"):
        return CrossEncoder(model, device="cpu", backend=kind.removeprefix("st-"))
    folder = work / kind
    if folder.exists():
        shutil.rmtree(folder)
    if kind == "st-onnx-int8":
        from sentence_transformers import export_dynamic_quantized_onnx_model

        CrossEncoder(model, device="cpu", backend="onnx").save_pretrained(str(folder))
        export_dynamic_quantized_onnx_model(CrossEncoder(str(folder), backend="onnx"), "avx512_vnni", str(folder))
        return CrossEncoder(
            str(folder), device="cpu", backend="onnx", model_kwargs={"file_name": "onnx/model_qint8_avx512_vnni.onnx"}
        )
    if kind == "st-openvino-int8":
        return _openvino_int8(model, folder, calibration)
    raise ValueError(f"unknown peer {kind!r}; one of {', '.join(PEERS)}")


def _openvino_int8(model: str, folder: Path, calibration: list[tuple[str, str]]):
    """NNCF's post-training int8 through optimum-intel, as sentence-transformers'
    ``export_static_quantized_openvino_model`` runs it (300 samples, padded), but calibrated on
    ``calibration`` pairs held in memory: that function would download a GLUE split from the hub."""
    from datasets import Dataset
    from optimum.intel import OVConfig, OVQuantizationConfig, OVQuantizer
    from sentence_transformers import CrossEncoder

    reference = CrossEncoder(model, device="cpu", backend="openvino")
    reference.save_pretrained(str(folder))
    tokenizer, max_length = reference.tokenizer, reference.max_seq_length

    def tokenize(row):
        return tokenizer(row["query"], row["document"], truncation=True, max_length=max_length, padding="max_length")

    pairs = {"query": [q for q, _ in calibration], "document": [d for _, d in calibration]}
    dataset = Dataset.from_dict(pairs).map(tokenize, remove_columns=["query", "document"])
    quantized = folder / "openvino-int8"
    OVQuantizer.from_pretrained(reference.transformers_model).quantize(
        dataset, save_directory=str(quantized), ov_config=OVConfig(quantization_config=OVQuantizationConfig())
    )
    for suffix in (".xml", ".bin"):  # beside the fp32 files, named as sentence-transformers names its own
        target = folder / "openvino" / f"openvino_model_qint8{suffix}"
        shutil.copy(quantized / "openvino" / f"openvino_model{suffix}", target)
    return CrossEncoder(
        str(folder), device="cpu", backend="openvino", model_kwargs={"file_name": "openvino/openvino_model_qint8.xml"}
    )


def serve(kind: str, model: str, work: str) -> None:
    """The worker: loads the peer, then answers one JSON line per command until stdin closes."""
    import numpy as np

    from benchmarks.harness import run_clients
    from benchmarks.workload import Request

    global _replies
    _replies, sys.stdout = sys.stdout, sys.stderr  # whatever the libraries print stays off the reply channel
    calibration = json.loads(sys.stdin.readline())["calibration"]
    peer = load_peer(kind, model, Path(work), [tuple(pair) for pair in calibration])

    def score(query: str, documents: list[str]) -> np.ndarray:
        pairs = [(query, document) for document in documents]
        return np.asarray(peer.predict(pairs, batch_size=PREDICT_BATCH_SIZE, activation_fn=_identity()), np.float64)

    _reply({"ready": kind})
    for line in sys.stdin:
        command = json.loads(line)
        requests = [Request(query, documents) for query, documents in command["requests"]]
        if command["op"] == "score":
            _reply({"scores": [score(r.query, r.documents).tolist() for r in requests]})
        else:
            _reply(asdict(run_clients(lambda: score, requests, command["clients"])))


def _identity():
    import torch

    return torch.nn.Identity()  # raw logits, as the served path and pymilvus' function return


_replies = sys.stdout


def _reply(message: dict) -> None:
    _replies.write(json.dumps(message) + "\n")
    _replies.flush()


class PeerProcess:
    """One peer in a worker process of the peers environment's ``python``."""

    def __init__(self, kind: str, model: Path, work: Path, python: Path | str) -> None:
        self.kind, self.model, self.work, self.python = kind, model, work, python
        self.process: subprocess.Popen | None = None

    def start(self, calibration: list[tuple[str, str]]) -> PeerProcess:
        self.work.mkdir(parents=True, exist_ok=True)
        command = [str(self.python), "-m", "benchmarks.peers", self.kind, str(self.model), str(self.work)]
        self.process = subprocess.Popen(  # from the checkout's root, where `-m benchmarks.peers` is found
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        self._send({"calibration": calibration})
        self._receive()  # {"ready": kind}, once the model is loaded (and exported)
        return self

    def score(self, requests) -> list:
        import numpy as np

        self._send({"op": "score", "requests": [(r.query, r.documents) for r in requests]})
        return [np.asarray(scores) for scores in self._receive()["scores"]]

    def measure(self, requests, clients: int):
        from benchmarks.harness import Run

        self._send({"op": "measure", "requests": [(r.query, r.documents) for r in requests], "clients": clients})
        return Run(**self._receive())

    def stop(self) -> None:
        if self.process is not None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None

    def _send(self, message: dict) -> None:
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def _receive(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait()
            raise RuntimeError(f"peer {self.kind} exited (code {code}) without answering; its stderr is above")
        return json.loads(line)


if __name__ == "__main__":  # python -m benchmarks.peers KIND MODEL WORK
    serve(*sys.argv[1:4])
