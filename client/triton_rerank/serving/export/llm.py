"""LLM rerankers, the Qwen3-Reranker way: a causal LM reads the (query, document) pair rendered into a
prompt and is asked whether the document meets the query; the score is logit("yes") - logit("no")
at the last token, whose sigmoid is the model card's softmax over the two answers.

What the server needs lives in the repository, not in code: the prompt template and default
instruction in the tokenizer step's config (``RepositorySettings.prompt_template``, ``instruction``),
the prompt's fixed prefix and suffix as the saved tokenizer's post-processor (so truncation leaves
room for them, as the card's reference does), and right padding in ``tokenizer.json``. The graph
(``graphs.YesNoLogit``) outputs the one number per row; the vocabulary is never computed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tokenizers import processors
from transformers import AutoModelForCausalLM, AutoTokenizer

from triton_rerank.backends.tokenizer_model import Prompt
from triton_rerank.serving import layout
from triton_rerank.serving.export.checked import (
    SAMPLE_PAIRS,
    ExportError,
    ExportJob,
    ExportReport,
    servable_tokenizer,
    write_checked,
)
from triton_rerank.serving.export.graphs import YesNoLogit
from triton_rerank.serving.export.precision import settings_for_precision
from triton_rerank.serving.export_options import ExportOptions

# The Qwen3-Reranker model card's prompt (Qwen/Qwen3-Reranker-0.6B, README "Transformers Usage").
QWEN3_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
    'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
QWEN3_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
QWEN3_TEMPLATE = "<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}"
QWEN3_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
ANSWERS = ("yes", "no")
# The card's reference reads at most 8,192 tokens a pair, whatever longer context the model has.
MAX_LENGTH = 8192


def export_llm_reranker(
    model: str,
    repository: Path | str = "generated/model_repository",
    *,
    settings: layout.RepositorySettings | None = None,
    **options,
) -> ExportReport:
    """Export a causal LM (hub id or local folder) as an LLM reranker into ``repository``, checked
    against the model card's reference in PyTorch (``card_scores``) on the sample pairs."""
    options = ExportOptions(**options)
    settings = settings or layout.DEFAULT_RERANKER_SETTINGS
    if settings.model_format != "onnx":
        raise ExportError("an LLM reranker is exported as ONNX only: --model-format onnx")
    tokenizer, _ = servable_tokenizer(model, AutoTokenizer.from_pretrained(model))
    yes, no = answer_ids(model, tokenizer)
    if tokenizer("a")["input_ids"] != tokenizer("a", add_special_tokens=False)["input_ids"]:
        raise ExportError(f"{model}: its tokenizer adds special tokens to a text; the prompt's markup would be doubled")
    try:
        prompt = Prompt(settings.prompt_template or QWEN3_TEMPLATE, settings.instruction or QWEN3_INSTRUCTION)
    except ValueError as err:
        raise ExportError(str(err)) from None
    hf_model = AutoModelForCausalLM.from_pretrained(model, attn_implementation="eager").eval()
    max_length = min(tokenizer.model_max_length, hf_model.config.max_position_embeddings, MAX_LENGTH)
    settings = settings.replace(
        kind="llm-reranker",
        dimension=1,
        model_inputs=layout.BERT_INPUTS[:2],
        max_length=max_length,
        prompt_template=prompt.template,
        instruction=prompt.instruction,
    )
    texts = [prompt.render(query, document) for query, document in SAMPLE_PAIRS]
    expected = card_scores(hf_model, AutoTokenizer.from_pretrained(model), texts, max_length, yes, no)
    tokenizer = with_prompt_markup(tokenizer)
    # A row's tokens besides its query and document: the prompt's markup, template and instruction.
    settings = settings.replace(reserved_tokens=len(tokenizer(prompt.render("", ""))["input_ids"]))
    job = ExportJob(
        model=str(model),
        activation="logit(yes) - logit(no) at the last token",
        wrapper=YesNoLogit(hf_model, yes, no),
        tokenizer=tokenizer,
        settings=settings_for_precision(settings, options.precision),
        samples=texts,
        expected=expected.reshape(-1, 1),
        fuse_config=None,  # ONNX Runtime's fusions know encoder architectures only
        trace_device="cpu",
        options=options,
    )
    return write_checked(job, Path(repository))


def answer_ids(model: str, tokenizer) -> tuple[int, int]:
    """The token ids of "yes" and "no", each a single token of the vocabulary, or a clear refusal."""
    ids = []
    for answer in ANSWERS:
        found = tokenizer.convert_tokens_to_ids(answer)
        if (
            found is None
            or found == tokenizer.unk_token_id
            or tokenizer.encode(answer, add_special_tokens=False) != [found]
        ):
            raise ExportError(
                f'{model}: "{answer}" is not a single token of its vocabulary; an LLM reranker is scored by the '
                'logits of the single tokens "yes" and "no"'
            )
        ids.append(found)
    return ids[0], ids[1]


def markup_ids(tokenizer) -> tuple[list[int], list[int]]:
    """The token ids of the prompt's fixed prefix and suffix."""
    return (
        tokenizer.encode(QWEN3_PREFIX, add_special_tokens=False),
        tokenizer.encode(QWEN3_SUFFIX, add_special_tokens=False),
    )


def with_prompt_markup(tokenizer):
    """``tokenizer`` made to wrap every text in the prompt's prefix and suffix tokens (a
    post-processor, which truncation counts), padding on the right: what the server runs."""
    prefix, suffix = markup_ids(tokenizer)
    markup = [
        {"id": "PROMPT_PREFIX", "ids": prefix, "tokens": tokenizer.convert_ids_to_tokens(prefix)},
        {"id": "PROMPT_SUFFIX", "ids": suffix, "tokens": tokenizer.convert_ids_to_tokens(suffix)},
    ]
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="PROMPT_PREFIX $A PROMPT_SUFFIX", special_tokens=markup
    )
    tokenizer.padding_side = "right"  # the graph finds each row's last token from the attention mask
    return tokenizer


@torch.inference_mode()
def card_scores(model, tokenizer, texts: list[str], max_length: int, yes: int, no: int) -> np.ndarray:
    """The model card's reference: each rendered text tokenized and cut to leave room for the
    prefix and suffix, wrapped in them, left-padded, and the last position's logits of "yes" and
    "no" compared (their difference: log softmax's odds)."""
    prefix, suffix = markup_ids(tokenizer)
    inputs = tokenizer(
        texts,
        padding=False,
        truncation="longest_first",
        return_attention_mask=False,
        max_length=max_length - len(prefix) - len(suffix),
    )
    inputs["input_ids"] = [prefix + ids + suffix for ids in inputs["input_ids"]]
    tokenizer.padding_side = "left"
    batch = tokenizer.pad(inputs, padding=True, return_tensors="pt", max_length=max_length)
    logits = model(**batch).logits[:, -1, :]
    return (logits[:, yes] - logits[:, no]).double().numpy()


class CardReranker:
    """An LLM reranker in process, as its model card runs it (``card_scores``): the in-process
    reference that ``evaluate`` and the benchmarks compare the served one with."""

    def __init__(self, model: str, instruction: str | None = None):
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.yes, self.no = answer_ids(model, self.tokenizer)
        self.model = AutoModelForCausalLM.from_pretrained(model).eval()
        self.max_length = min(self.tokenizer.model_max_length, self.model.config.max_position_embeddings, MAX_LENGTH)
        self.prompt = Prompt(QWEN3_TEMPLATE, instruction or QWEN3_INSTRUCTION)

    def predict(self, pairs: list[tuple[str, str]], batch_size: int = 8) -> np.ndarray:
        """logit(yes) - logit(no) of each (query, document) pair, in order."""
        texts = [self.prompt.render(query, document) for query, document in pairs]
        batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
        scores = [card_scores(self.model, self.tokenizer, b, self.max_length, self.yes, self.no) for b in batches]
        return np.concatenate(scores) if scores else np.empty(0)
