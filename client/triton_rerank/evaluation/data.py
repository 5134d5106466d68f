"""A BEIR collection read for evaluation, and a run's ranking from its scores."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

from triton_rerank.client import rank
from triton_rerank.ingest import read_documents


def load_beir(folder: Path, split: str, max_queries: int | None):
    """(documents, {query id: text}, {query id: {doc id: grade}}) for the queries judged in ``split``."""
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with (folder / "qrels" / f"{split}.tsv").open() as lines:
        for row in csv.DictReader(lines, delimiter="\t"):
            qrels[row["query-id"]][row["corpus-id"]] = int(row["score"])
    queries = {}
    with (folder / "queries.jsonl").open() as lines:
        for line in lines:
            row = json.loads(line)
            if row["_id"] in qrels:
                queries[row["_id"]] = row["text"]
    ids = sorted(queries)[:max_queries] if max_queries else sorted(queries)
    return list(read_documents(folder)), {q: queries[q] for q in ids}, {q: qrels[q] for q in ids}


def ranked_ids(ids: list[str], scores) -> list[str]:
    """``ids`` best score first, ties in input order: the client's own ``rank``."""
    return [ids[result.index] for result in rank(ids, scores, None)]
