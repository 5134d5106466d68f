"""Evaluate retrieval + reranking through the real stack, next to the in-process reference
(``triton-rerank evaluate`` is its command line; ``run_evaluation(EvaluationConfig(...))`` its API).

Served: the corpus is embedded by Triton's embedder into Milvus (HNSW by default), each query is
embedded by Triton, Milvus returns the top --retrieve-k, and Triton's reranker reorders them.
Reference (in-process): exact cosine search over sentence-transformers embeddings, and
CrossEncoder.predict on the candidates, both for the exact candidates and for the very candidates
Milvus returned (so the reranking itself is compared on the same lists). Prints a Markdown table of
nDCG@10, MRR@10 and Recall@100 and writes the figures as JSON.

Long documents: ``--rerank-data`` names a BEIR folder with the same ids whose texts the reranker
reads instead (``triton-rerank long-corpus`` writes one), and ``--long-documents first,max,mean``
reranks the same first-stage candidates once per policy, with the rows the cross-encoder scored and
the seconds each took.

A cascade: ``--cascade-model M --cascade-k K`` exports a second reranker beside the first (named
``cascade``); it reads the first one's best K of each list, and, for comparison, the whole lists
alone. Both rows, and what each stage cost (pairs and seconds), go into the report. An LLM reranker
takes ``--reranker-kind llm-reranker`` (or ``--cascade-kind``); its in-process reference is its
model card's code.

Peers: ``--peers st-onnx-int8,st-openvino-int8`` has sentence-transformers' own ONNX and OpenVINO
backends (the benchmark's in-process peers, ``make peers``) rerank the very candidates the served
reranker read, so that each peer's accuracy tier is measured on the collection, as the served
precisions' are. NNCF's int8 peer calibrates on the export's built-in sample pairs.

Score noise: with the reference, the served scores' differences to it are put back in random order
300 times (``metrics.noise_band``), which says how far nDCG@10 moves by chance at that error size:
a reduced precision's change inside that band is near-ties changing places, not a ranking loss.
"""

from triton_rerank.evaluation.config import CASCADE_NAME, EvaluationConfig
from triton_rerank.evaluation.runner import run_evaluation

__all__ = ["CASCADE_NAME", "EvaluationConfig", "run_evaluation"]
