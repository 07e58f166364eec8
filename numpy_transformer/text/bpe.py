r"""GPT-2's byte-level BPE tokenizer: text to ids and back, from ``vocab.json`` and ``merges.txt``.

Byte-pair encoding (Sennrich et al., 2016) starts from single symbols and applies learned merges: the file
``merges.txt`` lists pairs ``a b`` in the order they were learned, and a word is encoded by merging, again
and again, the adjacent pair that was learned EARLIEST, until no adjacent pair is in the list. Frequent
words end as one token, rare ones as several pieces, and nothing is ever unknown. GPT-2 makes that last
point exact by working on BYTES (Radford et al., 2019):

1. **special tokens** (``<|endoftext|>``) written in the text are cut out first and kept whole;
2. **pre-tokenization**: the text is split into words by one regular expression,

   ``'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+``

   (contractions; letters, digits or other symbols, each with at most one space in front; and runs of
   whitespace, where ``\s+(?!\S)`` leaves the last space of a run to the word that follows). Merges never
   cross these boundaries;
3. **bytes as characters**: each word's UTF-8 bytes are written as 256 printable characters (the printable
   ASCII and Latin-1 bytes stand for themselves, the others are shifted up past U+0100, so a space is
   ``Ġ`` and a newline ``Ċ``); every byte is in the vocabulary, so any string, emoji included, encodes;
4. **merges** as above; ``vocab.json`` gives each final piece its id.

Decoding joins the pieces, maps the characters back to bytes, and decodes the bytes as UTF-8 (a cut in the
middle of a character shows as U+FFFD, ``errors="replace"``).

Python's ``re`` has no ``\p{L}`` / ``\p{N}``: the two classes are built once from ``unicodedata`` (every code
point whose general category starts with L, or with N), and ``\s`` is Unicode's White_Space set, as in
the regular-expression engine of ``transformers``' tokenizers.

:func:`train_byte_level_bpe` learns merges from texts (the most frequent adjacent pair, again and again),
enough to build a small tokenizer for a demo or a test.
"""
from __future__ import annotations

import json
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np

__all__ = ["GPT2Tokenizer", "bytes_to_unicode", "pretokenize", "train_byte_level_bpe"]

#: Unicode's White_Space characters (what ``\s`` means in the pattern)
_WHITESPACE = ("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
               "\u200a\u2028\u2029\u202f\u205f\u3000")


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict:
    """Byte value (0..255) -> a printable character standing for it (GPT-2's table).

    The 188 bytes that are printable characters already (``!``..``~``, ``¡``..``¬``, ``®``..``ÿ``) map to
    themselves; the other 68 (control bytes, space, ...) map to U+0100 and up, in byte order.
    """
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    table, shifted = {}, 0
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + shifted)
            shifted += 1
    return table


#: letters and digits live in Unicode's planes 0-3; planes 4-13 are unassigned and 14-16 hold none
_LAST_LETTER_PLANE_END = 0x40000


def _class_ranges() -> tuple:
    r"""Regex class bodies for ``\p{L}`` and ``\p{N}``: every code point whose category starts with L / N."""
    classes = {"L": [], "N": []}
    start = {"L": None, "N": None}
    for code in range(_LAST_LETTER_PLANE_END + 1):
        major = unicodedata.category(chr(code))[0] if code < _LAST_LETTER_PLANE_END else ""
        for kind in ("L", "N"):
            if major == kind and start[kind] is None:
                start[kind] = code
            elif major != kind and start[kind] is not None:
                first, last = re.escape(chr(start[kind])), re.escape(chr(code - 1))
                classes[kind].append(first if start[kind] == code - 1 else f"{first}-{last}")
                start[kind] = None
    return "".join(classes["L"]), "".join(classes["N"])


@lru_cache(maxsize=1)
def _pattern() -> re.Pattern:
    r"""GPT-2's pre-tokenization pattern, with ``\p{L}``, ``\p{N}`` and ``\s`` spelled out as classes."""
    letters, numbers = _class_ranges()
    space = re.escape(_WHITESPACE)
    return re.compile(
        rf"'s|'t|'re|'ve|'m|'ll|'d| ?[{letters}]+| ?[{numbers}]+| ?[^{space}{letters}{numbers}]+"
        rf"|[{space}]+(?![^{space}])|[{space}]+"
    )


def pretokenize(text: str) -> list:
    """Split ``text`` into GPT-2's words (step 2 of the module docstring); joining them gives ``text`` back."""
    return _pattern().findall(text)


def _merge_word(symbols: list, ranks: dict) -> list:
    """Apply the merges to one word: repeatedly merge every occurrence of the earliest-learned adjacent pair."""
    while len(symbols) > 1:
        pairs = set(zip(symbols, symbols[1:], strict=False))      # adjacent pairs
        best = min(pairs, key=lambda pair: ranks.get(pair, float("inf")))
        if best not in ranks:
            break
        merged, i = [], 0
        while i < len(symbols):
            if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                merged.append(symbols[i] + symbols[i + 1])    # left to right, occurrences do not overlap
                i += 2
            else:
                merged.append(symbols[i])
                i += 1
        symbols = merged
    return symbols


class GPT2Tokenizer:
    """GPT-2's byte-level BPE tokenizer (``transformers``' ``GPT2Tokenizer``), token for token.

    >>> tok = GPT2Tokenizer.from_pretrained(folder)           # vocab.json and merges.txt
    >>> tok.encode("Hello world")                              # [15496, 995] with GPT-2's files
    >>> tok.decode(tok.encode(text)) == text                   # any text comes back

    Inputs:
        vocab: dict piece -> id, or the path of ``vocab.json``
        merges: list of (a, b) pairs in learned order, or the path of ``merges.txt``
        special_tokens: tokens kept whole when they appear in the text (default ``<|endoftext|>``)
        eos_token, pad_token: the end-of-text token, and the padding token (default: the end-of-text token,
            as GPT-2 has none of its own)
        add_prefix_space: put a space before the text, so that its first word is encoded as any other
    """

    def __init__(self, vocab, merges, special_tokens: Sequence[str] = ("<|endoftext|>",),
                 eos_token: str = "<|endoftext|>", pad_token: str | None = None, add_prefix_space: bool = False):
        if isinstance(vocab, (str, os.PathLike)):
            with open(vocab, encoding="utf-8") as handle:
                vocab = json.load(handle)
        if isinstance(merges, (str, os.PathLike)):
            merges = self.load_merges(merges)
        if not isinstance(vocab, dict) or not vocab:
            raise TypeError(f"vocab: got {type(vocab).__name__}; expected a non-empty dict piece -> id or a path")
        self.encoder = {str(piece): int(index) for piece, index in vocab.items()}
        self.decoder = {index: piece for piece, index in self.encoder.items()}
        self.merges = [tuple(pair) for pair in merges]
        for number, pair in enumerate(self.merges):
            if len(pair) != 2:
                raise ValueError(f"merges: entry {number} is {pair!r}; expected a pair 'a b'")
        self.ranks = {pair: rank for rank, pair in enumerate(self.merges)}
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {char: byte for byte, char in self.byte_encoder.items()}
        missing = [char for char in self.byte_encoder.values() if char not in self.encoder]
        if missing:
            raise ValueError(f"vocab: {len(missing)} of the 256 byte symbols are missing (e.g. {missing[0]!r}); "
                             "expected a byte-level vocabulary")
        self.special_tokens = [t for t in special_tokens if t in self.encoder]
        self.eos_token = eos_token if eos_token in self.encoder else None
        self.pad_token = pad_token if pad_token is not None else self.eos_token
        self.add_prefix_space = bool(add_prefix_space)
        self._special = (re.compile("(" + "|".join(re.escape(t) for t in sorted(self.special_tokens, key=len,
                                                                                    reverse=True)) + ")")
                         if self.special_tokens else None)
        self._cache: dict = {}

    # ----- loading and saving

    @staticmethod
    def load_merges(path) -> list:
        """``merges.txt``: an optional ``#version`` line, then one pair ``a b`` per line, in learned order."""
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().split("\n")
        if lines and lines[0].startswith("#version"):
            lines = lines[1:]
        return [tuple(line.split(" ")) for line in lines if line]

    @classmethod
    def from_pretrained(cls, folder, **overrides) -> GPT2Tokenizer:
        """From a local folder with ``vocab.json`` and ``merges.txt`` (and, when present, the special tokens and
        ``add_prefix_space`` of ``tokenizer_config.json``)."""
        folder = os.fspath(folder)
        paths = {name: os.path.join(folder, name) for name in ("vocab.json", "merges.txt")}
        for path in paths.values():
            if not os.path.isfile(path):
                raise FileNotFoundError(f"folder: {path} does not exist; expected a GPT-2 tokenizer folder with "
                                        "vocab.json and merges.txt")
        settings = {}
        config_path = os.path.join(folder, "tokenizer_config.json")
        if os.path.isfile(config_path):
            with open(config_path, encoding="utf-8") as handle:
                config = json.load(handle)
            added = [entry.get("content") for entry in (config.get("added_tokens_decoder") or {}).values()
                     if isinstance(entry, dict) and entry.get("special")]
            if added:
                settings["special_tokens"] = added
            for key in ("eos_token", "pad_token"):
                value = config.get(key)
                if isinstance(value, dict):
                    value = value.get("content")
                if value is not None:
                    settings[key] = value
            if "add_prefix_space" in config:
                settings["add_prefix_space"] = bool(config["add_prefix_space"])
        settings.update(overrides)
        return cls(paths["vocab.json"], paths["merges.txt"], **settings)

    def save(self, folder) -> str:
        """Write ``vocab.json`` and ``merges.txt`` (the files :meth:`from_pretrained` reads) into ``folder``."""
        folder = os.fspath(folder)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as handle:
            json.dump(self.encoder, handle, ensure_ascii=False)
        with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as handle:
            handle.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in self.merges))
        return folder

    # ----- text -> ids

    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    def __len__(self) -> int:
        return len(self.encoder)

    eos_token_id = property(lambda self: None if self.eos_token is None else self.encoder[self.eos_token])
    pad_token_id = property(lambda self: None if self.pad_token is None else self.encoder[self.pad_token])

    def _bpe(self, word: str) -> list:
        """The pieces of one pre-token, through the byte characters and the merges (cached per word)."""
        pieces = self._cache.get(word)
        if pieces is None:
            symbols = [self.byte_encoder[byte] for byte in word.encode("utf-8")]
            pieces = _merge_word(symbols, self.ranks)
            if len(self._cache) < 100_000:
                self._cache[word] = pieces
        return pieces

    def tokenize(self, text: str) -> list:
        """Text -> pieces (strings of byte characters, e.g. ``["Hello", "Ġworld"]``)."""
        if not isinstance(text, str):
            raise TypeError(f"text: got {type(text).__name__}; expected a str")
        if self.add_prefix_space and text and not text.startswith(" "):
            text = " " + text
        chunks = self._special.split(text) if self._special is not None else [text]
        pieces = []
        for chunk in chunks:
            if chunk in self.special_tokens:
                pieces.append(chunk)
                continue
            for word in pretokenize(chunk):
                pieces.extend(self._bpe(word))
        return pieces

    def encode(self, text: str) -> list:
        """Text -> ids."""
        return [self.encoder[piece] for piece in self.tokenize(text)]

    def convert_tokens_to_ids(self, tokens):
        if isinstance(tokens, str):
            return self.encoder[tokens]
        return [self.encoder[t] for t in tokens]

    def convert_ids_to_tokens(self, ids):
        if isinstance(ids, (int, np.integer)):
            return self.decoder[int(ids)]
        return [self.decoder[int(i)] for i in ids]

    def __call__(self, texts, padding: bool = False, padding_side: str = "right", return_tensors: str | None = "np"):
        """Texts -> ``{"input_ids", "attention_mask"}``, (B, T) int64 arrays with ``return_tensors="np"``.

        ``padding=True`` pads to the longest text with ``pad_token`` on ``padding_side`` (``"left"`` for
        prompts to generate from, so that every row's next token goes in the same column).
        """
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side: got {padding_side!r}; expected 'left' or 'right'")
        single = isinstance(texts, str)
        encoded = [self.encode(text) for text in ([texts] if single else list(texts))]
        lengths = {len(ids) for ids in encoded}
        if return_tensors == "np" and len(lengths) > 1 and not padding:
            raise ValueError(f"padding: got False for texts of {len(lengths)} different lengths; expected "
                             "padding=True to stack them into one array")
        target = max(lengths, default=0)
        batch = {"input_ids": [], "attention_mask": []}
        for ids in encoded:
            pad = target - len(ids) if padding else 0
            if pad and self.pad_token_id is None:
                raise ValueError("padding: this tokenizer has no pad token; expected pad_token to be set")
            filler = [self.pad_token_id] * pad
            if padding_side == "left":
                batch["input_ids"].append(filler + ids)
                batch["attention_mask"].append([0] * pad + [1] * len(ids))
            else:
                batch["input_ids"].append(ids + filler)
                batch["attention_mask"].append([1] * len(ids) + [0] * pad)
        if return_tensors == "np":
            return {key: np.array(value, dtype=np.int64).reshape(len(value), -1) for key, value in batch.items()}
        return {key: value[0] for key, value in batch.items()} if single else batch

    # ----- ids -> text

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Ids -> text: the pieces joined, their characters turned back into bytes, decoded as UTF-8."""
        ids = np.asarray(ids.get() if hasattr(ids, "get") else ids).reshape(-1).tolist()
        pieces = [self.decoder[int(i)] for i in ids]
        out, data = [], bytearray()
        for piece in pieces:
            if piece in self.special_tokens:
                out.append(data.decode("utf-8", errors="replace"))
                data = bytearray()
                if not skip_special_tokens:
                    out.append(piece)
                continue
            data.extend(self.byte_decoder[char] for char in piece)
        out.append(data.decode("utf-8", errors="replace"))
        return "".join(out)

    def batch_decode(self, sequences, skip_special_tokens: bool = False) -> list:
        return [self.decode(ids, skip_special_tokens=skip_special_tokens) for ids in sequences]

    def __repr__(self) -> str:
        return (f"GPT2Tokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
                f"special_tokens={self.special_tokens})")


def train_byte_level_bpe(texts: Iterable[str], vocab_size: int, special_tokens: Sequence[str] = ("<|endoftext|>",),
                         min_frequency: int = 2) -> GPT2Tokenizer:
    """Learn a byte-level BPE tokenizer from ``texts`` (the merges GPT-2's encoding applies, learned here).

    Start from the 256 byte symbols; then, again and again, count every adjacent pair of symbols inside the
    words of the texts (weighted by how often each word occurs), merge the most frequent pair everywhere
    (ties: the smallest pair) and record it, until the vocabulary has ``vocab_size`` entries (special tokens
    included) or no pair occurs ``min_frequency`` times.

    Returns:
        a :class:`GPT2Tokenizer` (save it with :meth:`GPT2Tokenizer.save`)
    """
    table = bytes_to_unicode()
    words = Counter()
    for text in texts:
        for word in pretokenize(text):
            words[tuple(table[byte] for byte in word.encode("utf-8"))] += 1
    vocab = {table[byte]: index for index, byte in enumerate(sorted(table))}
    merges = []
    budget = vocab_size - len(vocab) - len(special_tokens)
    words = {word: count for word, count in words.items()}
    while len(merges) < budget:
        pairs = Counter()
        for word, count in words.items():
            for pair in zip(word, word[1:], strict=False):
                pairs[pair] += count
        if not pairs:
            break
        best, count = min(pairs.items(), key=lambda item: (-item[1], item[0]))
        if count < min_frequency:
            break
        merges.append(best)
        vocab[best[0] + best[1]] = len(vocab)
        ranks = {best: 0}
        words = {tuple(_merge_word(list(word), ranks)): c for word, c in words.items()}
    for token in special_tokens:
        vocab[token] = len(vocab)
    return GPT2Tokenizer(vocab, merges, special_tokens=tuple(special_tokens))
