"""The model a run starts from: a cross-encoder (one logit per pair) continues as it is; a plain
encoder gets a new one-logit head, trained faster than the encoder under it."""

from __future__ import annotations

from pathlib import Path

from triton_rerank.errors import RerankInputError

# Encoder families transformers gives a sequence-classification head: what a reranker is made of.
ENCODER_TYPES = frozenset(
    "bert roberta xlm-roberta distilbert electra deberta deberta-v2 modernbert mpnet camembert albert "
    "ernie nomic_bert xlm-roberta-xl megatron-bert".split()
)
LEARNING_RATES = {"cross-encoder": 2e-5, "encoder": 7e-5}
HEAD_SPEEDUP = 5.0  # a new head starts from random weights: it learns 5x faster than the encoder
HEAD_PARAMETERS = ("classifier", "pooler")


class ModelKindError(RerankInputError):
    """The model is neither a one-logit cross-encoder nor an encoder a head can be put on."""


def model_kind(model: str) -> str:
    """ "cross-encoder" or "encoder", read from the model's config; anything else is refused."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model)
    except (OSError, ValueError) as err:
        where = "folder" if Path(model).exists() else "hub id (this machine may be offline)"
        raise ModelKindError(f"--model {model}: cannot read a transformers config from this {where}: {err}") from err
    architectures = config.architectures or []
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        if config.num_labels != 1:
            raise ModelKindError(
                f"--model {model} classifies into {config.num_labels} labels; a reranker gives one score per pair "
                "(start from its encoder instead)"
            )
        return "cross-encoder"
    if config.model_type in ENCODER_TYPES:
        return "encoder"
    raise ModelKindError(
        f"--model {model} is a {config.model_type} ({', '.join(architectures) or 'no architecture'}): neither a "
        f"one-logit cross-encoder nor an encoder ({', '.join(sorted(ENCODER_TYPES)[:6])}, ...)"
    )


def load(model: str, kind: str, max_length: int, device: str):
    """A sentence-transformers CrossEncoder scoring raw logits, reading at most ``max_length`` tokens."""
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    cross_encoder = CrossEncoder(
        model, num_labels=1, max_length=max_length, device=device, activation_fn=torch.nn.Identity()
    )
    cross_encoder.tokenizer.model_max_length = max_length  # what CrossEncoder(path) and the export read back
    return cross_encoder


def optimizer(cross_encoder, kind: str, learning_rate: float | None):
    """AdamW; from an encoder, the new head at ``HEAD_SPEEDUP`` times the encoder's rate."""
    import torch

    rate = learning_rate or LEARNING_RATES[kind]
    head_rate = round(rate * HEAD_SPEEDUP, 12) if kind == "encoder" else rate
    head, body = [], []
    for name, parameter in cross_encoder.named_parameters():
        (head if any(part in name for part in HEAD_PARAMETERS) else body).append(parameter)
    groups = [{"params": body, "lr": rate}, {"params": head, "lr": head_rate}]
    return torch.optim.AdamW(groups, weight_decay=0.01), {"encoder": rate, "head": head_rate}
