"""A cascade folder (what ``triton-rerank distill`` writes) and its export: two rerankers and the
Python-backend model that chains them, served under one reranker name.

A cascade folder holds ``cascade.json``, a cheap ``first`` cross-encoder (a distilled student) and
the ``last`` one (the base model, copied whole). Exported as ``NAME`` (default ``reranker``)::

    NAME         Python backend (backends/cascade_model.py): QUERY, DOCUMENTS -> SCORES, TOKENS, SPANS
    NAME_first   reranker ensemble of the first model (its tokenizer, model, aggregator)
    NAME_last    reranker ensemble of the last model, as it is served alone

``reference`` scores a cascade in process the same way, for the export's check and the evaluation.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tritonclient.grpc import model_config_pb2 as mc

import triton_rerank.protocol as protocol
from triton_rerank.backends import cascade_model
from triton_rerank.serving import layout
from triton_rerank.serving import repository as repo
from triton_rerank.serving.export.checked import ExportError, ExportReport, _existing_parent, _install

CASCADE_FILE = "cascade.json"
CASCADE_CODE = layout.BACKENDS / "cascade_model.py"
# Documents one request to the cascade may hold: it ranks a request's documents among themselves,
# so a client sends it a whole call (up to this many) at once; it splits them for its stages itself.
CASCADE_MAX_ROWS = 1024
CASCADE_INSTANCES = 2  # a request waits on its stages; a second instance lets the next one start


@dataclass(frozen=True)
class CascadeSpec:
    """What ``cascade.json`` says: the two models' folders (relative to it), how many documents go on
    to the last, and how the first is served (precision, format, calibration)."""

    first: str
    last: str
    k: int
    first_precision: str = "fp32"
    first_format: str = "onnx"  # or openvino (int8 by NNCF, or bf16)
    first_calibration: str = ""  # NNCF int8's pairs, a file in the first model's folder ("": built-in)

    def __post_init__(self) -> None:
        if not isinstance(self.k, int) or self.k < 1:
            raise ExportError(f"{CASCADE_FILE}: k must be a positive int, got {self.k!r}")


def is_cascade(model: str | Path) -> bool:
    return (Path(model) / CASCADE_FILE).is_file()


def read_cascade(folder: str | Path) -> CascadeSpec:
    path = Path(folder) / CASCADE_FILE
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
        fields = ("first", "last", "k", "first_precision", "first_format", "first_calibration")
        spec = CascadeSpec(**{key: values[key] for key in fields if key in values})
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ExportError(f"{path} is not a cascade this version reads: {err}") from err
    for member in (spec.first, spec.last):
        if not (Path(folder) / member / "config.json").is_file():
            raise ExportError(f"{path} names the model folder {member!r}, which {folder} lacks")
    return spec


def write_cascade(folder: Path, spec: CascadeSpec, extra: dict) -> None:
    (Path(folder) / CASCADE_FILE).write_text(json.dumps(asdict(spec) | extra, indent=2) + "\n", encoding="utf-8")


def member_names(settings: layout.RepositorySettings) -> tuple[str, str, str]:
    """(the cascade's name, its first stage's, its last stage's)."""
    name = settings.family.ensemble
    return name, f"{name}_first", f"{name}_last"


def install_chain(folder: Path, repository: Path, spec: CascadeSpec, settings, last: ExportReport) -> ExportReport:
    """With both stages exported into ``repository``: the model that chains them, under the cascade's name."""
    name, first_name, last_name = member_names(settings)
    report = ExportReport(**{**asdict(last), "model": str(folder), "settings": asdict(settings)})
    with tempfile.TemporaryDirectory(prefix=".export-", dir=_existing_parent(repository)) as staging:
        version = Path(staging) / name / "1"
        version.mkdir(parents=True)
        config = cascade_config(name, (first_name, last_name), spec.k, settings, last)
        (version.parent / "config.pbtxt").write_text(repo.to_pbtxt(config))
        shutil.copyfile(CASCADE_CODE, version / "model.py")
        shutil.copyfile(layout.PROTOCOL_CODE, version / layout.PROTOCOL_COPY)
        manifest = asdict(report) | {"cascade": asdict(spec), "members": [first_name, last_name]}
        (version / "export.json").write_text(json.dumps(manifest, indent=2) + "\n")
        _install(Path(staging), repository, (name,))
    return report


def cascade_config(name: str, members: tuple[str, str], k: int, settings, last: ExportReport) -> mc.ModelConfig:
    """The chaining model's config: the reranker's tensors, and what clients plan requests by."""
    family = layout.RERANK
    tensors = [(family.output, mc.TYPE_FP32, [-1, 1]), *layout.DOCUMENT_OUTPUTS]
    config = mc.ModelConfig(
        name=name,
        backend="python",
        max_batch_size=0,
        input=[repo._tensor(input_name, mc.TYPE_STRING, [dim]) for input_name, dim in family.inputs],
        output=[repo._tensor(*tensor) for tensor in tensors],
        instance_group=[{"kind": mc.ModelInstanceGroup.KIND_CPU, "count": CASCADE_INSTANCES}],
    )
    reserved = last.settings.get("reserved_tokens") or protocol.PAIR_SPECIAL_TOKENS
    repo._parameters(
        config,
        cascade_first=members[0],
        cascade_last=members[1],
        cascade_member_rows=settings.max_rows_per_request,
        **{
            protocol.CASCADE_K: k,
            protocol.MAX_ROWS_PER_REQUEST: CASCADE_MAX_ROWS,
            protocol.MAX_LENGTH: last.max_length,
            protocol.RESERVED_TOKENS: reserved,
        },
    )
    return config


def chain_exported(repository: Path | str, source: str, precision: str, settings) -> bool:
    """Whether ``repository`` holds the chain of the cascade ``source`` (its last stage at ``precision``)
    with this package's code; its stages are checked as any export is (``models.ensure_exported``)."""
    name = member_names(settings)[0]
    manifest = Path(repository) / name / "1" / "export.json"
    if not manifest.exists() or not (manifest.parent / "model.py").exists():
        return False
    report = json.loads(manifest.read_text())
    return (
        report.get("model") == str(source)
        and report.get("cascade") == asdict(read_cascade(source))
        and report.get("precision") == precision
        and (manifest.parent / "model.py").read_bytes() == CASCADE_CODE.read_bytes()
    )


def reference(spec: CascadeSpec, first_predict, last_predict):
    """``predict(query_pairs) -> scores`` of the cascade in process, for the pairs of one query (a
    call, as the server sees one request): the first model scores all, the last its best ``k``, and
    ``cascade_model.combine`` puts them together."""

    def predict(pairs):
        first = np.asarray(first_predict(pairs), dtype=np.float32).reshape(-1)
        chosen = cascade_model.chosen_rows(first, spec.k)
        last = np.asarray(last_predict([pairs[i] for i in chosen]), dtype=np.float32).reshape(-1)
        return cascade_model.combine(first, chosen, last)

    return predict
