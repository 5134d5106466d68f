"""A small built-in corpus with queries about it: the quick start searches it, and the export
checks a reduced-precision model's ranking on it."""

from __future__ import annotations

import json
from pathlib import Path

SAMPLE_CORPUS = Path(__file__).parent / "data" / "sample_corpus.jsonl"
SAMPLE_QUERIES = [
    "How do vaccines train the immune system?",
    "Why doesn't multithreading speed up my Python code?",
    "What makes the sea level go up?",
]


def sample_texts() -> list[str]:
    """The sample corpus' texts, in file order."""
    with SAMPLE_CORPUS.open(encoding="utf-8") as lines:
        return [json.loads(line)["text"] for line in lines if line.strip()]
