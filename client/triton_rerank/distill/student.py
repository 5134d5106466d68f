"""A student: BASE itself, made cheap to read every candidate with. It reads fewer tokens of each
pair (its own max length) and is served at a lower precision; for OpenVINO's static int8, its scales
are calibrated on the collection's own pairs (``calibration.jsonl`` beside it).

Why not a smaller network trained on BASE's scores: on these CPUs a 2-layer student of MiniLM-L6,
trained by MSE on 8,000 of BASE's SciFact scores for 10 minutes, ranked BASE's candidates no better
than chance (Spearman 0.13 against BASE), and linear heads on BASE's layers 1-3 did no better
(docs/distill.md). Reading less at int8 keeps BASE's own judgment and costs no training.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

CALIBRATION_FILE = "calibration.jsonl"


def make_student(base: str, folder: Path, length: int | None, calibration: list[tuple[str, str]]) -> Path:
    """BASE's files in ``folder``, reading at most ``length`` tokens per pair (None: as BASE does),
    and the calibration pairs (if any) beside them."""
    if Path(base).is_dir():
        shutil.copytree(base, folder, ignore=shutil.ignore_patterns(".git", "*.partial", "*-report.json", "README.md"))
    else:  # a hub id: what was loaded, saved
        from sentence_transformers.cross_encoder import CrossEncoder

        CrossEncoder(base, device="cpu").save_pretrained(str(folder))
    if length is not None:
        path = folder / "tokenizer_config.json"
        config = json.loads(path.read_text())
        config["model_max_length"] = min(length, config.get("model_max_length") or length)
        path.write_text(json.dumps(config, indent=2) + "\n")
    if calibration:
        rows = "".join(json.dumps({"query": q, "document": d}) + "\n" for q, d in calibration)
        (folder / CALIBRATION_FILE).write_text(rows, encoding="utf-8")
    return folder


def label(precision: str, length: int | None) -> str:
    return f"{precision}, {'all' if length is None else length} tokens"
