"""Long documents, the pure parts: the windows a document is read in (``document_windows``) and
the fold of window scores back into documents (``aggregator_model.fold``), property-tested with
hypothesis on a real WordPiece tokenizer built here."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from triton_rerank.backends.aggregator_model import fold
from triton_rerank.backends.tokenizer_model import document_windows

WORDS = ["paris", "capital", "france", "river", "water", "cell", "protein", "the", "of", "a", ",", "."]


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    """A small WordPiece tokenizer: whole words, and words split into pieces (``##``)."""
    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(WORDS)}}
    for piece in ("pa", "##ris", "ca", "##pi", "##tal", "wa", "##ter"):
        vocab.setdefault(piece, len(vocab))
    for letter in "abcdefghijklmnopqrstuvwxyz":
        vocab.setdefault(letter, len(vocab))
        vocab.setdefault(f"##{letter}", len(vocab))
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tok


texts = st.lists(
    # words, pieces of words, sentence ends ('.') and line and paragraph breaks
    st.one_of(st.sampled_from([*WORDS, "\n", "\n\n"]), st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=12)),
    min_size=1,
    max_size=120,
).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(text=texts, window=st.integers(1, 40), data=st.data())
def test_windows_hold_at_most_window_tokens_cover_the_text_and_move_forward(tokenizer, text, window, data):
    stride = data.draw(st.integers(0, window - 1))
    chunks = data.draw(st.integers(1, 50))
    encoding = tokenizer.encode(text, add_special_tokens=False)
    assume(encoding.ids)  # the server windows only documents over the budget, never an empty one
    spans = document_windows(text, encoding, window, stride, chunks)
    assert 1 <= len(spans) <= chunks
    starts = [start for start, _ in spans]
    assert starts == sorted(set(starts))  # every window starts after the one before
    for start, end in spans:
        assert 0 <= start < end <= len(text)
        assert text[start:end] == text[start:end].strip()  # cut at tokens, never in whitespace
        # re-tokenized, a window holds at most `window` tokens (plus the split of a word longer than a window)
        assert len(tokenizer.encode(text[start:end], add_special_tokens=False).ids) <= window + 2
    if len(spans) < chunks:  # not capped: the windows reach the end of the document
        last_token_end = encoding.offsets[-1][1]
        assert spans[-1][1] == last_token_end
        covered = set()
        for start, end in spans:
            covered.update(i for i, (s, e) in enumerate(encoding.offsets) if start <= s and e <= end)
        assert covered == set(range(len(encoding.ids)))  # no token left out


def test_windows_end_between_words_when_a_word_fits(tokenizer):
    text = "patal caris wapi patal caris wapi"
    encoding = tokenizer.encode(text, add_special_tokens=False)  # pa ##tal ca ##ris wa ##pi ...: 2 tokens a word
    spans = document_windows(text, encoding, 3, 1, 10)
    windows = [text[start:end] for start, end in spans]
    assert windows == ["patal", "caris", "wapi", "patal", "caris", "wapi"]  # never 'patal ca'
    # sharing 2 tokens with a window of 5: the next window starts at the shared word, not inside it
    assert [text[s:e] for s, e in document_windows(text, encoding, 5, 2, 10)][:2] == ["patal caris", "caris wapi"]


def test_a_document_shorter_than_a_window_is_one_window(tokenizer):
    text = "the river"
    encoding = tokenizer.encode(text, add_special_tokens=False)
    assert document_windows(text, encoding, 10, 5, 3) == [(0, 9)]


def test_windows_start_at_paragraphs_then_sentences_then_words(tokenizer):
    """A window starts where a reader would: a paragraph's first word when one lies in the last three
    quarters of the step, else a sentence's, else the word holding the first shared token."""
    first = "the cell of the river . the water of paris"  # 10 tokens, a sentence starts at token 6
    second = "france capital of the protein"
    text = f"{first}\n\n{second}"
    encoding = tokenizer.encode(text, add_special_tokens=False)
    # window 12 sharing 2: the next start may be anywhere in tokens 2..10; the paragraph (10) beats the sentence (6)
    windows = [text[s:e] for s, e in document_windows(text, encoding, 12, 2, 10)]
    assert windows == [f"{first}\n\nfrance capital", second]
    # sharing 4: starts in 2..8, no paragraph there: the sentence start (6), not the word at 8
    windows = [text[s:e] for s, e in document_windows(text, encoding, 12, 4, 10)]
    assert windows == [f"{first}\n\nfrance capital", f"the water of paris\n\n{second}"]


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(1, 6), min_size=1, max_size=20), seed=st.integers(0, 2**31))
def test_fold_is_the_max_or_mean_of_each_documents_rows_with_the_deciding_span(sizes, seed):
    rng = np.random.default_rng(seed)
    owners = np.repeat(np.arange(len(sizes)), sizes)
    scores = rng.normal(size=owners.size).astype(np.float32)
    tokens = rng.integers(1, 50, size=owners.size)
    spans = np.cumsum(rng.integers(0, 30, size=(owners.size, 2)), axis=1)
    best, counted, chosen = fold(scores, owners, tokens, spans, "max")
    mean, _, covered = fold(scores, owners, tokens, spans, "mean")
    for document in range(len(sizes)):
        rows = np.flatnonzero(owners == document)
        assert best[document, 0] == scores[rows].max()
        assert mean[document, 0] == pytest.approx(scores[rows].mean(), abs=1e-6)
        assert counted[document] == tokens[rows].sum()
        assert tuple(chosen[document]) == tuple(spans[rows[np.argmax(scores[rows])]])
        assert tuple(covered[document]) == (spans[rows[0], 0], spans[rows[-1], 1])
    assert best.shape == (len(sizes), 1) and chosen.shape == (len(sizes), 2)


def test_one_row_per_document_folds_to_itself():
    scores = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    folded, tokens, spans = fold(scores, [0, 1, 2], [3, 4, 5], [[0, 1], [0, 2], [0, 3]], "max")
    np.testing.assert_array_equal(folded[:, 0], scores)
    np.testing.assert_array_equal(tokens, [3, 4, 5])


@pytest.mark.parametrize("owners", [[0, 2, 2], [1, 1], [0, 1, 0]])
def test_fold_refuses_rows_out_of_order(owners):
    with pytest.raises(ValueError, match="consecutive"):
        fold(np.zeros(len(owners)), owners, np.ones(len(owners)), np.zeros((len(owners), 2)))


def test_long_texts_hold_the_judged_document_among_unjudged_ones_within_the_lengths():
    from benchmarks.long_corpus import make_long_texts

    texts = {f"d{i}": " ".join(f"w{i}" for _ in range(10 + i % 7)) for i in range(200)}
    judged = {"d3", "d50", "d77"}

    def count(text: str) -> int:
        return len(text.split())

    made = make_long_texts(texts, judged, count, seed=1, min_tokens=100, max_tokens=300)
    assert set(made) == judged
    for doc_id, text in made.items():
        parts = text.split("\n\n")
        assert parts.count(texts[doc_id]) == 1  # the judged text, whole, once
        assert all(part in texts.values() for part in parts)
        assert not any(part == texts[other] for part in parts for other in judged - {doc_id})  # no other judged one
        assert 100 <= count(text) <= 300
    assert made == make_long_texts(texts, judged, count, seed=1, min_tokens=100, max_tokens=300)  # deterministic
    positions = [made[d].split("\n\n").index(texts[d]) for d in sorted(judged)]
    assert len(set(positions)) > 1  # not always at the same place


def test_a_query_longer_than_the_model_leaves_the_document_half_of_it(tokenizer):
    """Its windows are half of max_length each (the pair truncation then cuts both), in order, and
    cover the document: not windows of a negative size."""
    from triton_rerank.backends.tokenizer_model import windowed_rows

    tokenizer.no_truncation()
    tokenizer.no_padding()
    document = " ".join(["paris capital france river water"] * 12)  # 60 tokens
    rows, owners, spans = windowed_rows(tokenizer, 48, [("protein " * 100, document)], 32)
    assert owners == [0] * len(rows) and 3 <= len(rows) < 32
    assert [start for start, _ in spans] == sorted({start for start, _ in spans})
    assert spans[-1][1] == len(document)
    for (_, text), (start, end) in zip(rows, spans, strict=True):
        assert text == document[start:end] and len(tokenizer.encode(text, add_special_tokens=False).ids) <= 24


@pytest.mark.parametrize("document", ["", "   ", "\n\n"])
def test_an_empty_or_blank_document_behind_a_query_longer_than_the_model_is_one_row(tokenizer, document):
    """Such a document has no tokens to cut into windows: it is read as it is, in one row (it raised
    IndexError in the tokenizer step, which the API answered with a 500)."""
    from triton_rerank.backends.tokenizer_model import windowed_rows

    tokenizer.no_truncation()
    tokenizer.no_padding()
    pairs = [("protein " * 100, document), ("protein " * 100, "paris capital")]
    rows, owners, spans = windowed_rows(tokenizer, 48, pairs, 32)
    assert owners[0] == 0 and owners.count(0) == 1 and rows[0] == (pairs[0][0], document)
    assert spans[0] == (0, len(document)) and set(owners) == {0, 1}
    assert document_windows(document, tokenizer.encode(document, add_special_tokens=False), 8, 4, 32) == [
        (0, len(document))
    ]
