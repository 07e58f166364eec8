"""GPT-2's byte-level BPE against transformers' GPT2Tokenizer, token for token, on the same vocab.json and
merges.txt (learned here from a small corpus: nothing is downloaded), encode and decode."""
import json
import os

import numpy as np
import pytest

from numpy_transformer.text.bpe import GPT2Tokenizer, bytes_to_unicode, pretokenize, train_byte_level_bpe
from reference import require

CORPUS = [
    "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox does not.",
    "Hello world! It's 2024, isn't it? They're here, we've seen them, I'm sure you'll agree, he'd say.",
    "naïve café résumé — “quotes” and ‘single’ ünïcödé Ærøskøbing",
    "日本語のテキスト 中文字符 한국어 텍스트 Ελληνικά кириллица",
    "emoji 😀😀 🎉 👍🏽 🇫🇷 family 👨‍👩‍👧",
    "numbers 123 4567 89.01 1,000,000 ½ ² Ⅻ",
    "tabs\tand\nnewlines\n\n  spaces   here\r\n",
    "def f(x):\n    return x ** 2  # square\n",
] * 4

TEXTS = [
    "Hello world", "Hello  world", " Hello world", "Hello world ", "   leading spaces", "trailing spaces   ",
    "line one\nline two\n\n\nline five\n", "\n", "\n\n\n\n", " \n \n ", "a \n b", "\t\ttabs\tinside\t",
    "\r\nwindows\r\n", "It's they're we've I'm you'll he'd she's", "IT'S THEY'RE", "don't 'quoted' ''",
    "naïve café résumé", "Ærøskøbing ünïcödé", "日本語のテキスト", "한국어", "Ελληνικά кириллица",
    "😀", "😀😀😀 🎉👍🏽", "🇫🇷 👨‍👩‍👧", "a" * 64, "aaaaab" * 9, "!" * 33, " " * 25, "\n" * 17, "😀" * 12,
    "x = y + 3.14; // ok?!", "1,000,000 and 2024-05-01", "½ ² ₃ Ⅻ", "mixed123abc456def",
    "\u00a0no-break\u2003em\u3000ideographic", "\x1c\x1d\x1e\x1f separators", "ß ẞ ǅ ǈ", "\u200bzero\u200dwidth",
    "<|endoftext|>", "first<|endoftext|>second", "a <|endoftext|> b", "", "x", " ", "def f(x):\n    return x",
    "\x00\x01\x7f control bytes", "\ufffd replacement", "\U0001f9d1\u200d\U0001f52c",
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """vocab.json and merges.txt learned from CORPUS, with <|endoftext|>."""
    tokenizer = train_byte_level_bpe(CORPUS, vocab_size=420)
    assert len(tokenizer.merges) > 100
    return tokenizer.save(tmp_path_factory.mktemp("bpe"))


@pytest.fixture(scope="module")
def theirs(files):
    require("tokenizers")
    transformers = require("transformers")
    return transformers.GPT2Tokenizer.from_pretrained(files)


@pytest.fixture(scope="module")
def ours(files):
    return GPT2Tokenizer.from_pretrained(files)


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_encode_and_decode_match_transformers(ours, theirs, text):
    ids = ours.encode(text)
    assert ids == theirs.encode(text)
    assert ours.tokenize(text) == theirs.tokenize(text)
    assert ours.decode(ids) == theirs.decode(ids) == text          # byte level: every text comes back


def test_long_text_and_every_byte_match_transformers(ours, theirs):
    rng = np.random.default_rng(0)
    alphabet = list("abcdefghij ,.!?'\n\t0123456789") + ["é", "日", "😀", "ß", "\u00a0", "<|endoftext|>"]
    text = "".join(rng.choice(alphabet, size=3000))
    assert ours.encode(text) == theirs.encode(text)
    every_byte = bytes(range(256)).decode("latin-1")
    assert ours.encode(every_byte) == theirs.encode(every_byte)
    assert ours.decode(ours.encode(every_byte)) == every_byte


def test_decoding_pieces_of_a_character_replaces_them(ours, theirs):
    ids = ours.encode("😀")                                       # four bytes, cut in the middle below
    for cut in range(1, len(ids)):
        assert ours.decode(ids[:cut]) == theirs.decode(ids[:cut])
    special = ours.encoder["<|endoftext|>"]
    assert ours.decode([special] + ours.encode("hi"), skip_special_tokens=True) == "hi"


def test_batches_pad_left_for_generation(ours, theirs):
    texts = ["a longer first prompt", "short"]
    batch = ours(texts, padding=True, padding_side="left")
    theirs.pad_token = theirs.eos_token
    theirs.padding_side = "left"
    expected = theirs(texts, padding=True, return_tensors="np")
    np.testing.assert_array_equal(batch["input_ids"], expected["input_ids"])
    np.testing.assert_array_equal(batch["attention_mask"], expected["attention_mask"])
    with pytest.raises(ValueError, match="padding"):
        ours(texts)


def test_pretokenize_splits_as_gpt2_and_loses_nothing():
    text = "Hello  world's 42apples!!\n\n  x"
    words = pretokenize(text)
    assert "".join(words) == text
    # the whitespace run "\n\n  " keeps its last space for the word that follows: "\n\n " then " x"
    assert words == ["Hello", " ", " world", "'s", " 42", "apples", "!!", "\n\n ", " x"]


def test_byte_table_is_gpt2s():
    table = bytes_to_unicode()
    assert len(set(table.values())) == 256
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("A")] == "A"


def test_files_and_vocab_are_checked(tmp_path, files):
    with pytest.raises(FileNotFoundError, match="merges.txt"):
        (tmp_path / "vocab.json").write_text("{}")
        GPT2Tokenizer.from_pretrained(tmp_path)
    with open(os.path.join(files, "vocab.json"), encoding="utf-8") as handle:
        vocab = json.load(handle)
    del vocab["Ġ"]
    with pytest.raises(ValueError, match="byte symbols are missing"):
        GPT2Tokenizer(vocab, [])
