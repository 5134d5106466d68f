"""The wire contract between the clients, the rerank API, the model repository and the Python
backends: the names of the served models, their tensors, their config and request parameters, and
the long-document policies with their defaults. Declared once, here.

This module imports nothing, so that the backends, which run inside Triton where this package may
not be installed, can use it: the export copies it beside each backend's ``model.py`` as
``rerank_protocol.py`` (``serving.repository.write_configs``), and a test holds the copies equal.
"""

# --- the ensembles and their members, as the repository names them ------------------------------
RERANKER = "reranker"  # ensemble: QUERY, DOCUMENTS -> SCORES, TOKENS, SPANS
TOKENIZER = "tokenizer"
CROSS_ENCODER = "cross_encoder"
AGGREGATOR = "aggregator"
EMBEDDER = "embedder"  # ensemble: TEXTS -> EMBEDDINGS
EMBED_TOKENIZER = "embed_tokenizer"
BI_ENCODER = "bi_encoder"

# --- the tensors clients send and read ------------------------------------------------------------
QUERY = "QUERY"  # [1] string: the query of every pair in the request
DOCUMENTS = "DOCUMENTS"  # [-1] strings
SCORES = "SCORES"  # [-1, 1] float32: one raw score (logit) per document
TOKENS = "TOKENS"  # [-1] int64: the tokens the model read per document (usage reports)
SPANS = "SPANS"  # [-1, 2] int64: the characters [start, end) of each document that decided its score
TEXTS = "TEXTS"  # [-1] strings, for the embedder
EMBEDDINGS = "EMBEDDINGS"  # [-1, D] float32, L2-normalised
RERANKER_INPUTS = (QUERY, DOCUMENTS)
RERANKER_OUTPUTS = (SCORES, TOKENS, SPANS)

# --- what the reranker's tokenizer hands its aggregator, per row ------------------------------------
TOKEN_COUNT = "num_tokens"  # tokens after truncation
ROW_DOCUMENT = "row_document"  # which document the row belongs to
ROW_SPAN = "row_span"  # the characters of that document the row holds
ROW_OUTPUTS = (TOKEN_COUNT, ROW_DOCUMENT, ROW_SPAN)

# --- config parameters clients plan their requests by ---------------------------------------------
MAX_ROWS_PER_REQUEST = "max_rows_per_request"  # most rows (documents, texts, windows) one request may hold
MAX_LENGTH = "max_length"  # tokens the model reads per row
RESERVED_TOKENS = "reserved_tokens"  # a row's tokens besides its query and document (an LLM's prompt)
# The export's digest of the weights, in the ensemble's config: a new export or deploy is a new
# version to the score cache even where nothing else in the config changed.
MODEL_ID = "model_id"
# A cascade (triton-rerank distill) ranks the documents of one request among themselves: its best
# CASCADE_K go on to the full model. Clients send a cascade a call's documents in one request.
CASCADE_K = "cascade_k"
LIMIT_PARAMETERS = (MAX_ROWS_PER_REQUEST, MAX_LENGTH, RESERVED_TOKENS, CASCADE_K)

# --- request parameters the tokenizer step reads (an ensemble forwards them) ---------------------
TRUNCATE = "truncate"  # false: refuse a row over max_length instead of cutting it
TRUNCATION_DIRECTION = "truncation_direction"
MAX_TOKENS_PER_DOC = "max_tokens_per_doc"
LONG_DOCUMENTS = "long_documents"
MAX_CHUNKS_PER_DOC = "max_chunks_per_doc"
WINDOW = "window"
STRIDE = "stride"
INSTRUCTION = "instruction"  # an LLM reranker's task line
PAIR_PARAMETERS = (MAX_TOKENS_PER_DOC, LONG_DOCUMENTS, MAX_CHUNKS_PER_DOC, WINDOW, STRIDE, INSTRUCTION)

TRUNCATION_DIRECTIONS = ("right", "left")
# A document longer than the model reads beside the query: "first" truncates it (CrossEncoder.predict's
# scores, the default), "error" refuses it, "max" / "mean" read it in windows and keep the best / the mean.
LONG_DOCUMENT_POLICIES = ("first", "max", "mean", "error")
WINDOWED_POLICIES = ("max", "mean")
DEFAULT_LONG_DOCUMENTS = "first"
DEFAULT_MAX_CHUNKS_PER_DOC = 32  # windows per long document unless a request says otherwise
# A pair's special tokens: at most 4 ([CLS] q [SEP] d [SEP] for BERT, <s> q </s></s> d </s> for RoBERTa).
PAIR_SPECIAL_TOKENS = 4
