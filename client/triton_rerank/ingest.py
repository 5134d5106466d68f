"""Read documents from files and write them, embedded through Triton, into Milvus.

Sources: a JSONL file (``.jsonl`` or ``.jsonl.gz``; fields ``_id``/``id``, ``text``, optional
``title``, anything else kept as metadata), a BEIR folder (its ``corpus.jsonl[.gz]``), or a folder
of ``.txt`` / ``.md`` files (id = the path inside the folder). A title is put before the text, as
BEIR and sentence-transformers do for retrieval, and kept in the metadata too.

``ingest`` is idempotent and resumable: each batch first asks Milvus which of its ids are already
there and embeds only the rest, and rows are upserted by id. A rerun after an interrupted run ends
with every document present exactly once. An id read twice in one source (``1`` and ``"1"`` are one
id: Milvus' ids are strings) is refused, naming both places, before its batch is written: which copy
to keep is the user's to say (``duplicates="first"`` keeps the first and counts the others), never
an accident of the batch size. A run that wrote anything ends with a flush, which makes
Milvus Lite search its index instead of rebuilding one per query (``MilvusStore.flush``).
"""

from __future__ import annotations

import gzip
import itertools
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from triton_rerank.base import check_batch_size
from triton_rerank.documents import Document, check_documents
from triton_rerank.errors import RerankInputError

if TYPE_CHECKING:  # the milvus extra is needed to write, not to read a source
    from triton_rerank.store import MilvusStore

TEXT_SUFFIXES = (".txt", ".md")


@dataclass
class IngestReport:
    """What a run did with each document it read: read = skipped + written + duplicates."""

    read: int = 0  # documents read from the source
    skipped: int = 0  # already in the collection (an earlier run wrote them)
    written: int = 0  # embedded and upserted by this run
    duplicates: int = 0  # an id read before in this source, left out (duplicates="first")
    batches: int = 0


def read_documents(source: Path | str) -> Iterator[Document]:
    """Documents from a JSONL file, a BEIR folder or a folder of text files, in source order."""
    source = Path(source)
    if not source.exists():
        raise RerankInputError(f"{source} does not exist")
    if source.is_dir():
        for name in ("corpus.jsonl", "corpus.jsonl.gz"):
            if (source / name).exists():
                yield from _read_jsonl(source / name)
                return
        yield from _read_text_files(source)
    elif source.name.endswith((".jsonl", ".jsonl.gz")):
        yield from _read_jsonl(source)
    else:
        raise RerankInputError(f"{source}: expected a .jsonl / .jsonl.gz file or a folder")


def _read_jsonl(path: Path) -> Iterator[Document]:
    for number, row in jsonl_rows(path):
        yield _document_from_row(row, f"{path}:{number}")


def jsonl_rows(path: Path, error: type[Exception] = RerankInputError) -> Iterator[tuple[int, object]]:
    """(line number, parsed value) for each non-blank line of a ``.jsonl`` or ``.jsonl.gz`` file; a
    line that is not UTF-8 or not JSON raises ``error`` naming it."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as lines:
        for number, raw in enumerate(lines, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise error(f"{path}:{number}: not UTF-8 text ({err})") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise error(f"{path}:{number}: not JSON: {err}") from err
            yield number, row


def _document_from_row(row: object, where: str) -> Document:
    if not isinstance(row, dict):
        raise RerankInputError(f"{where}: expected a JSON object, got {type(row).__name__}")
    doc_id = row.get("_id", row.get("id"))
    if doc_id is None or isinstance(doc_id, (dict, list)):
        raise RerankInputError(f"{where}: needs an '_id' or 'id' string")
    text = row.get("text")
    if not isinstance(text, str):
        raise RerankInputError(f"{where}: needs a 'text' string")
    title = row.get("title") or ""
    if not isinstance(title, str):
        raise RerankInputError(f"{where}: 'title' must be a string")
    metadata = {k: v for k, v in row.items() if k not in ("_id", "id", "text")}
    return Document(id=str(doc_id), text=f"{title} {text}" if title else text, metadata=metadata, source=where)


def _read_text_files(folder: Path) -> Iterator[Document]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
    if not files:
        raise RerankInputError(f"{folder} holds no corpus.jsonl[.gz] and no {'/'.join(TEXT_SUFFIXES)} files")
    for path in files:
        name = path.relative_to(folder).as_posix()
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise RerankInputError(f"{path} is not UTF-8 text: {err}") from err
        yield Document(id=name, text=text, metadata={"path": name}, source=name)


def ingest(
    documents: Iterable[Document],
    store: MilvusStore,
    embed: Callable[[list[str]], object],
    *,
    batch_size: int = 256,
    refresh: bool = False,
    duplicates: Literal["error", "first"] = "error",
    on_batch: Callable[[IngestReport], None] | None = None,
) -> IngestReport:
    """Embed and upsert ``documents`` in batches; see the module docstring.

    Args:
        embed: Texts -> vectors, e.g. a ``TritonEmbedFunction``.
        refresh: Re-embed and overwrite documents already present (after their text changed).
        duplicates: An id read twice: ``error`` refuses it (naming both places), ``first`` keeps
            the first copy and counts the others in ``IngestReport.duplicates``.
        on_batch: Called with the running report after each batch (progress bars).
    """
    check_batch_size(batch_size)
    if duplicates not in ("error", "first"):
        raise RerankInputError(f"duplicates must be 'error' or 'first', got {duplicates!r}")
    report = IngestReport()
    seen: dict[str, str] = {}  # id -> where it was first read
    iterator = iter(documents)
    while batch := list(itertools.islice(iterator, batch_size)):
        report.read += len(batch)
        batch = _first_copies(batch, seen, duplicates, report)
        check_documents(batch)
        present = set() if refresh else store.existing_ids([d.id for d in batch])
        todo = [d for d in batch if d.id not in present]
        report.skipped += len(batch) - len(todo)
        if todo:
            vectors = embed([d.text for d in todo])
            report.written += store.upsert(todo, vectors)
        report.batches += 1
        if on_batch is not None:
            on_batch(report)
    if report.written:
        store.flush()
    return report


def _first_copies(batch: list[Document], seen: dict[str, str], duplicates: str, report: IngestReport) -> list[Document]:
    """The documents of ``batch`` whose ids were not read before; a repeated id is refused (or, with
    ``first``, counted and left out)."""
    kept = []
    for document in batch:
        if document.id not in seen:
            seen[document.id] = document.source or f"document {len(seen) + report.duplicates + 1}"
            kept.append(document)
        elif duplicates == "first":
            report.duplicates += 1
        else:
            raise RerankInputError(
                f"{document.source or 'a document'}: id {document.id!r} was read before, at {seen[document.id]} "
                '(ids are strings in Milvus, so 1 and "1" are one id); give each document its own id, or keep '
                "the first copy of each (ingest --keep-first-duplicate)"
            )
    return kept
