"""Tiny cross-encoders built on the spot (random weights, a small WordPiece vocab): no hub needed.

Random weights are enough to prove plumbing and exact parity; the served scores must equal the
in-process ones whatever the weights are.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

WORDS = (
    "the a of to and in is was for on that with as by it at from be this are an which or paris france "
    "berlin germany capital city largest what how do does vaccines work quick brown fox jumps over lazy "
    "dog document query empty whitespace short long unicode emoji river water science protein cell"
).split()

# Small, so that the test pairs really are truncated.
TINY_MAX_LENGTH = 48


def tiny_bert_config(vocab_size: int, **extra) -> BertConfig:
    """The tiny models' BERT shape: 2 layers, hidden 32."""
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        **extra,
    )


def _tiny_wordpiece_tokenizer(folder: Path, max_length: int):
    """A small WordPiece vocabulary and its fast tokenizer, saved in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    pieces = list(string.ascii_lowercase + string.digits + string.punctuation + "éèçàüößñ")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *pieces, *(f"##{p}" for p in pieces)]
    (folder / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": max_length})
    )
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.save_pretrained(folder)  # writes tokenizer.json (the fast tokenizer)
    return tokenizer


def build_tiny_bert_encoder(folder: Path, *, seed: int = 0, max_length: int = TINY_MAX_LENGTH) -> Path:
    """The same tiny BERT as a plain encoder (``BertModel``, no head): what ``train`` puts a head on."""
    from transformers import BertModel

    folder = Path(folder)
    tokenizer = _tiny_wordpiece_tokenizer(folder, max_length)
    torch.manual_seed(seed)
    BertModel(tiny_bert_config(len(tokenizer))).save_pretrained(folder)
    return folder


def build_tiny_bert_cross_encoder(folder: Path, *, seed: int = 0, max_length: int = TINY_MAX_LENGTH) -> Path:
    """A 2-layer BERT cross-encoder (1 label, raw-logit activation like ms-marco models)."""
    folder = Path(folder)
    tokenizer = _tiny_wordpiece_tokenizer(folder, max_length)
    torch.manual_seed(seed)
    config = tiny_bert_config(
        len(tokenizer),
        num_labels=1,
        initializer_range=0.3,  # large random weights: scores that differ clearly between pairs
    )
    config.sentence_transformers = {"activation_fn": "torch.nn.modules.linear.Identity"}
    model = BertForSequenceClassification(config)
    model.save_pretrained(folder)
    return folder


def build_tiny_roberta_cross_encoder(folder: Path, *, seed: int = 0, max_length: int = TINY_MAX_LENGTH) -> Path:
    """A 2-layer RoBERTa cross-encoder: byte-level BPE, and no ``token_type_ids`` input."""
    from tokenizers import ByteLevelBPETokenizer, processors
    from transformers import RobertaConfig, RobertaForSequenceClassification, RobertaTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe.train_from_iterator([" ".join(WORDS)] * 5, vocab_size=400, min_frequency=1, special_tokens=specials)
    bpe.post_processor = processors.RobertaProcessing(
        ("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>"))
    )
    tokenizer = RobertaTokenizerFast(tokenizer_object=bpe, model_max_length=max_length)
    tokenizer.save_pretrained(folder)

    return _save_roberta_like(folder, tokenizer, RobertaConfig, RobertaForSequenceClassification, seed, max_length)


def _save_roberta_like(folder, tokenizer, config_class, model_class, seed: int, max_length: int) -> Path:
    """A 2-layer cross-encoder of the RoBERTa shape (RoBERTa, XLM-R) with random weights, saved."""
    torch.manual_seed(seed)
    config = config_class(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_length + 2 + 80,  # RoBERTa positions start after the pad id
        type_vocab_size=1,
        num_labels=1,
        initializer_range=0.3,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config.sentence_transformers = {"activation_fn": "torch.nn.modules.linear.Identity"}
    model_class(config).save_pretrained(folder)
    return folder


def build_tiny_xlmr_cross_encoder(folder: Path, *, seed: int = 0, max_length: int = TINY_MAX_LENGTH) -> Path:
    """A 2-layer XLM-RoBERTa cross-encoder (the bge-reranker-v2-m3 class): a SentencePiece Unigram
    vocabulary with ``▁`` word starts, ``<s> A </s></s> B </s>`` pairs and no ``token_type_ids``."""
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    from benchmarks.families import xlmr_tokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    corpus = [" ".join(WORDS), "Paris est la capitale de la France. Берлин — столица Германии. 東京は日本の首都です。"]
    tokenizer = xlmr_tokenizer(corpus * 5, 300, max_length)
    tokenizer.save_pretrained(folder)

    return _save_roberta_like(
        folder, tokenizer, XLMRobertaConfig, XLMRobertaForSequenceClassification, seed, max_length
    )


def windowed_reference(
    cross_encoder, tokenizer, max_length, query, documents, policy, window=None, stride=None, chunks=None
):
    """What a server must answer under ``long_documents=policy``, computed apart: the windows
    ``windowed_rows`` gives (``tokenizer``: the served one, without truncation or padding), each
    scored alone by ``CrossEncoder.predict`` and folded here; returns (scores, the deciding spans)."""
    import numpy as np

    from triton_rerank.backends.tokenizer_model import windowed_rows
    from triton_rerank.protocol import DEFAULT_MAX_CHUNKS_PER_DOC

    pairs = [(query, document) for document in documents]
    rows, owners, spans = windowed_rows(
        tokenizer, max_length, pairs, chunks or DEFAULT_MAX_CHUNKS_PER_DOC, window, stride
    )
    logits = cross_encoder.predict(rows, activation_fn=torch.nn.Identity(), batch_size=64)
    owners, scores, chosen = np.array(owners), [], []
    for document in range(len(documents)):
        mine = np.flatnonzero(owners == document)
        scores.append(logits[mine].max() if policy == "max" else logits[mine].mean())
        best = mine[int(np.argmax(logits[mine]))]
        chosen.append(spans[best] if policy == "max" else (spans[mine[0]][0], spans[mine[-1]][1]))
    return np.array(scores), chosen


QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]


def build_tiny_qwen3_reranker(folder: Path, *, seed: int = 0, max_length: int = 160, answers=("yes", "no")) -> Path:
    """A 2-layer Qwen3 causal LM with a byte-level BPE vocabulary that holds the chat markup of the
    Qwen3-Reranker prompt and the single tokens ``answers`` ("yes", "no"): an LLM reranker's shape,
    random weights."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    corpus = [" ".join(WORDS), *answers, "Judge whether the Document meets the requirements based on the Query"]
    bpe.train_from_iterator(corpus * 20, vocab_size=600, min_frequency=1, special_tokens=QWEN_SPECIALS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, pad_token="<|endoftext|>", eos_token="<|im_end|>", model_max_length=max_length
    )
    tokenizer.save_pretrained(folder)

    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        intermediate_size=64,
        max_position_embeddings=max_length + 64,
        tie_word_embeddings=True,
        initializer_range=0.3,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    Qwen3ForCausalLM(config).save_pretrained(folder)
    return folder
