"""LLM rerankers (Qwen3-Reranker style) exported and served beside a cross-encoder: scores equal the
model card's transformers reference (the prompt, the last token's logits, the yes/no softmax) over
HTTP and gRPC; the instruction per request; long documents; refusals at export; a cascade."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer

from tiny_models import build_tiny_qwen3_reranker
from triton_rerank import RerankInputError, TritonRerankFunction
from triton_rerank.backends.tokenizer_model import Prompt, windowed_rows
from triton_rerank.serving import repository as repo
from triton_rerank.serving.export import ExportError, export_model
from triton_rerank.serving.export.llm import QWEN3_INSTRUCTION, QWEN3_TEMPLATE
from triton_rerank.serving.layout import RepositorySettings

# The model card pads with max_length but without padding="max_length"; transformers says so each time.
pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:`max_length` is ignored when `padding`")]
TOLERANCE = 1e-4
MAX_LENGTH = 160
QUERY = "what is the capital of france"
DOCUMENTS = [
    "paris is the capital of france",
    "berlin is the capital of germany",
    "",
    "café 東京 🚀 émigré",
    " ".join(["the river water of the city"] * 40),  # past max_length: truncated at its end
    "yes no {document} {query}",  # slots in a document stay text
]


def model_card_probabilities(folder, pairs, instruction=None) -> np.ndarray:
    """Qwen3-Reranker's README, "Transformers Usage", as written there (max_length 160 here)."""
    tokenizer = AutoTokenizer.from_pretrained(folder, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    token_false_id = tokenizer.convert_tokens_to_ids("no")
    token_true_id = tokenizer.convert_tokens_to_ids("yes")
    prefix = (
        "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
        'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
    )
    suffix = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    prefix_tokens = tokenizer.encode(prefix, add_special_tokens=False)
    suffix_tokens = tokenizer.encode(suffix, add_special_tokens=False)
    task = instruction or "Given a web search query, retrieve relevant passages that answer the query"
    texts = [f"<Instruct>: {task}\n<Query>: {query}\n<Document>: {doc}" for query, doc in pairs]
    inputs = tokenizer(
        texts,
        padding=False,
        truncation="longest_first",
        return_attention_mask=False,
        max_length=MAX_LENGTH - len(prefix_tokens) - len(suffix_tokens),
    )
    for i, ele in enumerate(inputs["input_ids"]):
        inputs["input_ids"][i] = prefix_tokens + ele + suffix_tokens
    inputs = tokenizer.pad(inputs, padding=True, return_tensors="pt", max_length=MAX_LENGTH)
    with torch.no_grad():
        batch_scores = model(**inputs).logits[:, -1, :]
    true_vector = batch_scores[:, token_true_id]
    false_vector = batch_scores[:, token_false_id]
    batch_scores = torch.stack([false_vector, true_vector], dim=1)
    batch_scores = torch.nn.functional.log_softmax(batch_scores, dim=1)
    return batch_scores[:, 1].exp().double().numpy()


@pytest.fixture(scope="module")
def qwen3(tiny_qwen3):
    return tiny_qwen3  # max_length MAX_LENGTH, the builder's default


@pytest.fixture(scope="module")
def server(zoo):
    """The zoo's server: the tiny cross-encoder as ``reranker``, the LLM reranker beside it as ``qwen3``."""
    return zoo.server


@pytest.mark.parametrize("scheme", ["http", "grpc"])
def test_scores_equal_the_model_cards_reference(server, qwen3, scheme):
    url = server.http_url if scheme == "http" else server.grpc_url
    want = model_card_probabilities(qwen3, [(QUERY, d) for d in DOCUMENTS])
    with TritonRerankFunction(url, model_name="qwen3", activation="sigmoid") as rf:
        np.testing.assert_allclose(rf.score(QUERY, DOCUMENTS), want, atol=TOLERANCE, rtol=0)
        results = rf(QUERY, DOCUMENTS, top_k=3)
    assert [r.index for r in results] == list(np.argsort(-want, kind="stable")[:3])
    with TritonRerankFunction(url, model_name="qwen3") as raw:  # the raw score: logit(yes) - logit(no)
        np.testing.assert_allclose(raw.score(QUERY, DOCUMENTS), np.log(want / (1 - want)), atol=1e-3, rtol=0)


def test_the_instruction_is_the_exports_unless_a_request_changes_it(server, qwen3):
    instruction = "Given a scientific claim, retrieve abstracts that support or refute it"
    want = model_card_probabilities(qwen3, [(QUERY, d) for d in DOCUMENTS], instruction)
    with TritonRerankFunction(server.grpc_url, model_name="qwen3", activation="sigmoid") as rf:
        np.testing.assert_allclose(rf.score(QUERY, DOCUMENTS, instruction=instruction), want, atol=TOLERANCE, rtol=0)
        assert not np.allclose(rf.score(QUERY, DOCUMENTS), want, atol=TOLERANCE)  # the default differs
    with TritonRerankFunction(server.grpc_url) as cross_encoder:
        with pytest.raises(RerankInputError, match="instruction applies to LLM rerankers"):
            cross_encoder.score(QUERY, DOCUMENTS, instruction=instruction)


def test_long_documents_are_read_in_windows_each_scored_as_the_model_card_would(server, qwen3):
    """Windows sized to what the prompt leaves of max_length; each window's score is the card's
    for (query, that window), the document's the best of them."""
    documents = [" ".join(["the river water of the city ."] * 20 + ["paris is the capital of france ."] * 3), "paris"]
    plain = Tokenizer.from_file(str(server.repository / "qwen3_tokenizer" / "1" / "tokenizer.json"))
    plain.no_truncation()
    plain.no_padding()
    prompt = Prompt(QWEN3_TEMPLATE, QWEN3_INSTRUCTION)
    rows, owners, spans = windowed_rows(plain, MAX_LENGTH, [(QUERY, d) for d in documents], 32, render=prompt.render)
    assert owners.count(0) > 2 and owners.count(1) == 1
    card = model_card_probabilities(qwen3, rows)
    best = [max(np.flatnonzero(np.array(owners) == i), key=lambda row: card[row]) for i in range(len(documents))]
    with TritonRerankFunction(server.grpc_url, model_name="qwen3", activation="sigmoid") as rf:
        found = rf.score_details(QUERY, documents, long_documents="max", spans=True)
    np.testing.assert_allclose(found.scores, card[best], atol=TOLERANCE, rtol=0)
    assert [tuple(span) for span in found.spans] == [spans[row] for row in best]


def test_both_models_are_served_side_by_side(server, reference):
    cross_encoder, _ = reference
    with TritonRerankFunction(server.grpc_url) as rf:
        want = cross_encoder.predict([(QUERY, d) for d in DOCUMENTS], activation_fn=torch.nn.Identity())
        np.testing.assert_allclose(rf.score(QUERY, DOCUMENTS), want, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize(
    "build, settings, message",
    [
        ({"answers": ("yep", "nope")}, {}, '"yes" is not a single token of its vocabulary'),
        ({}, {"prompt_template": "<Query>: {query}\n<Document>: {document} Answer:"}, "end with {document}"),
        ({}, {"prompt_template": "<Document>: {document}"}, "must hold {query}"),
    ],
)
def test_the_export_refuses_what_cannot_be_an_llm_reranker(tmp_path, build, settings, message):
    folder = build_tiny_qwen3_reranker(tmp_path / "model", max_length=MAX_LENGTH, **build)
    with pytest.raises(ExportError, match=message):
        export_model(
            str(folder), tmp_path / "repo", "llm-reranker", settings=RepositorySettings(kind="llm-reranker", **settings)
        )
    assert not (tmp_path / "repo" / "cross_encoder").exists()  # nothing was written


def test_the_client_counts_the_prompt_when_it_plans_windowed_requests(server):
    """A document that fits beside the query alone but not beside the prompt too is two windows: the
    client reads the prompt's size (reserved_tokens) from the ensemble and keeps each request
    within the server's 128 rows."""
    config = repo.load_config(server.repository / "qwen3" / "config.pbtxt")
    plain = Tokenizer.from_file(str(server.repository / "qwen3_tokenizer" / "1" / "tokenizer.json"))
    reserved = len(plain.encode(Prompt(QWEN3_TEMPLATE, QWEN3_INSTRUCTION).render("", "")).ids)
    assert int(config.parameters["reserved_tokens"].string_value) == reserved > 50
    document = "😀" * 25  # 100 bytes and as many tokens: within max_length beside the query, not beside the prompt
    with TritonRerankFunction(server.grpc_url, model_name="qwen3", batch_size=128) as rf:
        together = rf.score_details(QUERY, [document] * 70, long_documents="max", tokens=True)
        alone = rf.score(QUERY, [document], long_documents="max")
    assert together.tokens[0] > MAX_LENGTH  # read in two windows
    np.testing.assert_allclose(together.scores, np.full(70, alone[0]), atol=1e-5, rtol=0)


def test_the_export_command_takes_the_kind_and_the_instruction(qwen3, tmp_path, capsys):
    from triton_rerank.cli import main

    repository = tmp_path / "repo"
    args = ["export", "--kind", "llm-reranker", "--model", str(qwen3), "--repository", str(repository)]
    assert main([*args, "--instruction", "Find abstracts that support the claim"]) == 0
    assert "check: max |score - PyTorch|" in capsys.readouterr().out
    config = repo.load_config(repository / "tokenizer" / "config.pbtxt")
    assert config.parameters["instruction"].string_value == "Find abstracts that support the claim"
    assert config.parameters["prompt_template"].string_value == QWEN3_TEMPLATE
    assert main([*args, "--prompt-template", "{query} {document} ?"]) == 1
    assert "must hold {query} and end with {document}" in capsys.readouterr().err


def test_the_rerank_api_serves_the_llm_reranker_by_name_with_its_instruction(server, qwen3):
    import httpx

    from benchmarks.api_process import ApiProcess

    instruction = "Given a scientific claim, retrieve abstracts that support or refute it"
    want = model_card_probabilities(qwen3, [(QUERY, d) for d in DOCUMENTS], instruction)
    with ApiProcess(server.grpc_url) as api:
        body = {"model": "qwen3", "query": QUERY, "documents": DOCUMENTS, "instruction": instruction}
        answer = httpx.post(f"{api.url}/v2/rerank", json=body, timeout=60).json()
        refused = httpx.post(f"{api.url}/v2/rerank", json={**body, "model": "reranker"}, timeout=60)
    found = sorted(answer["results"], key=lambda r: r["index"])
    np.testing.assert_allclose([r["relevance_score"] for r in found], want, atol=TOLERANCE, rtol=0)
    assert refused.status_code in (400, 422) and "instruction applies to LLM rerankers" in refused.json()["message"]


def test_an_int8_export_is_measured_against_fp32_like_a_cross_encoders(qwen3, tmp_path):
    report = export_model(str(qwen3), tmp_path / "repo", "llm-reranker", precision="int8")
    reduced = report.reduced_precision
    assert report.max_abs_diff <= TOLERANCE  # the fp32 graph against the card, before quantization
    assert reduced.precision == "int8" and reduced.pairs_checked > 50 and 0 < reduced.max_abs_diff < 1
    assert reduced.rank_correlation >= 0.9  # what the export asks of a reduced precision, or it refuses
