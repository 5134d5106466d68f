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


def build_tiny_bert_cross_encoder(folder: Path, *, seed: int = 0, max_length: int = TINY_MAX_LENGTH) -> Path:
    """A 2-layer BERT cross-encoder (1 label, raw-logit activation like ms-marco models)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pieces = list(string.ascii_lowercase + string.digits + string.punctuation + "éèçàüößñ")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *pieces, *(f"##{p}" for p in pieces)]
    (folder / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": max_length})
    )
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.save_pretrained(folder)  # writes tokenizer.json (the fast tokenizer)

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
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

    torch.manual_seed(seed)
    config = RobertaConfig(
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
    RobertaForSequenceClassification(config).save_pretrained(folder)
    return folder
