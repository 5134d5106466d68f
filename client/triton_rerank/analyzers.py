"""How Milvus cuts text into BM25 terms: the analyzer of the collection's ``text`` field.

A preset name (``english``, the default; ``standard``) or Milvus' own ``analyzer_params`` as a dict.
The ``english`` preset is written out rather than Milvus' built-in ``{"type": "english"}`` because
Milvus Lite 3.2.2 refuses that type ("unknown tokenizer type") and ignores the ``_english_`` stop-word
set, while this form works the same in Lite and in Milvus 2.5+ servers: the standard tokenizer,
lowercase, Lucene's English stop words, then the Snowball English stemmer (Lucene's EnglishAnalyzer
order: stop words are removed before stemming, so "this" does not survive as "thi").

An analyzer is checked here, before a collection is made: Lite accepts an unknown filter name
silently, and a typo would quietly index the text some other way.
"""

from __future__ import annotations

import json
from typing import Any

from triton_rerank.errors import RerankInputError

# Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET, the list Elasticsearch's and Milvus' `_english_` name.
ENGLISH_STOP_WORDS = (
    "a an and are as at be but by for if in into is it no not of on or such "
    "that the their then there these they this to was will with"
).split()

ANALYZERS: dict[str, dict[str, Any]] = {
    "english": {
        "tokenizer": "standard",
        "filter": [
            "lowercase",
            {"type": "stop", "stop_words": ENGLISH_STOP_WORDS},
            {"type": "stemmer", "language": "english"},
        ],
    },
    "standard": {"tokenizer": "standard", "filter": ["lowercase"]},
}
DEFAULT_ANALYZER = "english"

# Milvus' documented built-in filters (2.5/2.6: https://milvus.io/docs/analyzer-overview.md).
MILVUS_FILTERS = frozenset(
    "lowercase asciifolding alphanumonly cnalphanumonly cncharonly length stop decompounder stemmer "
    "removepunct regex".split()
)


def analyzer_params(analyzer: str | dict) -> dict[str, Any]:
    """Milvus' ``analyzer_params`` for a preset name, a JSON object string, or a dict; a clear error
    for anything else (an unknown preset, a dict without a tokenizer, an unknown filter)."""
    if isinstance(analyzer, str):
        if analyzer.lstrip().startswith("{"):
            try:
                analyzer = json.loads(analyzer)
            except json.JSONDecodeError as err:
                raise RerankInputError(f"analyzer is not a JSON object: {err}") from err
        elif analyzer in ANALYZERS:
            return ANALYZERS[analyzer]
        else:
            raise RerankInputError(
                f"unknown analyzer {analyzer!r}: use one of {sorted(ANALYZERS)} or Milvus' analyzer_params as JSON, "
                'e.g. \'{"tokenizer": "standard", "filter": ["lowercase"]}\''
            )
    if not isinstance(analyzer, dict):
        raise RerankInputError(f"analyzer must be a preset name or a dict, got {type(analyzer).__name__}")
    if "tokenizer" not in analyzer and "type" not in analyzer:
        raise RerankInputError(f"analyzer {analyzer} names no 'tokenizer' (or built-in 'type')")
    filters = analyzer.get("filter", [])
    if not isinstance(filters, list):
        raise RerankInputError(f"analyzer 'filter' must be a list, got {filters!r}")
    for entry in filters:
        name = entry.get("type") if isinstance(entry, dict) else entry
        if name not in MILVUS_FILTERS:
            raise RerankInputError(f"unknown analyzer filter {entry!r}: Milvus has {sorted(MILVUS_FILTERS)}")
    return analyzer
