"""From a PyTorch model to a file Triton serves: the ONNX graph (fused by ONNX Runtime's
transformer optimizer) or a TorchScript trace, and a scorer that runs either one in-process."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from triton_rerank.serving import layout

log = logging.getLogger(__name__)

ONNX_OPSET = 17
# ONNX Runtime's transformer fusions (Attention, SkipLayerNorm, ...) know these architectures.
FUSABLE = {"bert"}
# A graph whose weights pass this keeps them in one file beside it (protobuf cannot hold 2 GB).
PROTOBUF_LIMIT = 2**31 - 1


class LogitsOnly(torch.nn.Module):
    """Positional ids in, logits out: the signature both exporters need."""

    def __init__(self, model: torch.nn.Module, input_names: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.input_names = input_names

    def forward(self, *ids: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.input_names, ids, strict=True))).logits


class YesNoLogit(torch.nn.Module):
    """A causal LM's logit("yes") - logit("no") at each row's last real token: the hidden state
    there times the difference of the two rows of the output layer, so the vocabulary is never
    computed. The last real token is found from the attention mask: left or right padding."""

    def __init__(self, model: torch.nn.Module, yes: int, no: int) -> None:
        super().__init__()
        self.body = model.get_decoder()
        head = model.get_output_embeddings()
        self.register_buffer("direction", (head.weight[yes] - head.weight[no]).detach().clone())
        offset = head.bias[yes] - head.bias[no] if getattr(head, "bias", None) is not None else torch.zeros(())
        self.register_buffer("offset", offset.detach().clone())

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.body(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        last = (attention_mask * positions).argmax(dim=1)
        picked = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        # a product and a sum, not a MatMul: int8 quantization leaves it exact (and cannot take a vector weight)
        return (picked * self.direction).sum(dim=-1, keepdim=True) + self.offset


class PooledEmbeddings(torch.nn.Module):
    """Positional ids in, sentence embeddings out: the encoder, then sentence-transformers'
    pooling (mean over the attention mask, or CLS) and L2 normalisation, in one graph."""

    def __init__(self, model: torch.nn.Module, input_names: tuple[str, ...], pooling: str) -> None:
        super().__init__()
        self.model = model
        self.input_names = input_names
        self.pooling = pooling

    def forward(self, *ids: torch.Tensor) -> torch.Tensor:
        inputs = dict(zip(self.input_names, ids, strict=True))
        tokens = self.model(**inputs).last_hidden_state
        if self.pooling == "cls":
            pooled = tokens[:, 0]
        else:
            mask = inputs["attention_mask"].unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1)


def export_onnx(wrapper, example, path: Path, settings: layout.RepositorySettings, fuse_config) -> None:
    """The legacy exporter's graph (named inputs, dynamic batch and sequence axes), then ONNX
    Runtime's fusions for the architectures it knows (``fuse_config`` None: no fusions)."""
    output = settings.family.model_output
    dynamic = {name: {0: "batch", 1: "sequence"} for name in settings.model_inputs}
    with warnings.catch_warnings():  # tracer chatter; the export check proves the graph instead
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            tuple(torch.from_numpy(a) for a in example),
            str(path),
            input_names=list(settings.model_inputs),
            output_names=[output],
            dynamic_axes={**dynamic, output: {0: "batch"}},
            opset_version=ONNX_OPSET,
            dynamo=False,  # the legacy exporter's graph is the one ONNX Runtime fuses fully
        )
    files = graph_files(path)
    if len(files) > 1:  # over 2 GB, the exporter wrote a file per tensor: one file is what users move
        import onnx

        save_graph(onnx.load(str(path)), path, replacing=files)
    if fuse_config is None:
        return
    if fuse_config.model_type not in FUSABLE:
        log.info("no ONNX Runtime fusions for model_type %r; keeping the plain graph", fuse_config.model_type)
        return
    from onnxruntime.transformers.optimizer import optimize_model

    fused = optimize_model(
        str(path), model_type="bert", num_heads=fuse_config.num_attention_heads, hidden_size=fuse_config.hidden_size
    )
    keep_used_domains(fused.model)
    fused.save_model_to_file(str(path))


def graph_files(path: Path) -> list[Path]:
    """The ONNX graph at ``path`` and the files of external data its tensors name."""
    import onnx
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    model = onnx.load(str(path), load_external_data=False)
    names = {
        entry.value
        for tensor in _get_all_tensors(model)
        if uses_external_data(tensor)
        for entry in tensor.external_data
        if entry.key == "location"
    }
    return [path, *(path.parent / name for name in sorted(names))]


def save_graph(model, path: Path, replacing: list[Path] = ()) -> None:
    """Write ``model`` (its weights in memory) at ``path`` instead of the graph files ``replacing``:
    one file while it fits protobuf's 2 GB, else its weights in ``model.onnx.data`` beside it, from
    where ONNX Runtime and OpenVINO read them."""
    import onnx

    for old in replacing:
        old.unlink(missing_ok=True)
    large = sum(tensor.ByteSize() for tensor in model.graph.initializer) > PROTOBUF_LIMIT
    onnx.save_model(
        model, str(path), save_as_external_data=large, all_tensors_to_one_file=True, location=f"{path.name}.data"
    )


def remove_graph(path: Path) -> None:
    """Remove the ONNX graph at ``path`` and its external data."""
    for file in graph_files(path):
        file.unlink(missing_ok=True)


def keep_used_domains(model) -> None:
    """ONNX Runtime's tools stamp every opset domain they know; keep those the graph uses, so an
    older runtime (onnxruntime 1.19 in the 24.10 Triton container) meets no domain it lacks."""
    used = {""} | {node.domain for node in model.graph.node}
    kept = [opset for opset in model.opset_import if opset.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(kept)


def export_torchscript(wrapper, example, path: Path, device: str) -> None:
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(wrapper, tuple(torch.from_numpy(a).to(device) for a in example), strict=False)
    traced.save(str(path))


def load_scorer(path: Path, device: str = "cpu"):
    """A function: tokenized inputs -> outputs (float64, one row per input row), for ``model.onnx``,
    ``model.xml`` (OpenVINO at the CPU's default precision: bf16 where an export may be bf16) or
    ``model.pt`` (TorchScript, on the ``device`` it was traced for)."""
    if path.suffix == ".xml":
        from triton_rerank.backends.runner_model import openvino_runner

        run = openvino_runner(str(path))
    elif path.suffix == ".onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [node.name for node in session.get_inputs()]

        def run(inputs: list[np.ndarray]) -> np.ndarray:
            return session.run(None, dict(zip(names, inputs, strict=True)))[0]

    else:
        module = torch.jit.load(str(path), map_location=device).eval()

        def run(inputs: list[np.ndarray]) -> np.ndarray:
            with torch.inference_mode():
                return module(*[torch.from_numpy(a).to(device) for a in inputs]).float().cpu().numpy()

    return lambda inputs: run(inputs).reshape(len(inputs[0]), -1).astype(np.float64)
