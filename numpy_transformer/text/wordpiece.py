r"""BERT's WordPiece tokenizer in pure Python.

Text becomes token ids in three steps:

1. **Special tokens** (``[CLS]``, ``[SEP]``, ``[PAD]``, ``[MASK]``, ``[UNK]``) written in the text, exactly as
   spelled, are cut out first and kept whole: ``"a[MASK]b"`` -> ``a``, ``[MASK]``, ``b``.
2. **Basic tokenization** of the rest, as in the original BERT:

   - clean: drop ``\x00``, ``\ufffd`` and control characters (Unicode categories Cc, Cf, Co and Cs, except
     tab, newline and carriage return), and turn every whitespace character into a space. An unassigned
     code point (category Cn, e.g. an emoji newer than Python's Unicode tables) is kept as an ordinary
     character, as the Rust tokenizer keeps it;
   - put spaces around each CJK ideograph, so that each is a word of its own (CJK text has no spaces);
   - split on whitespace; then, per word, strip accents (NFD, then drop the combining marks, category Mn) and
     lower-case, when configured (``strip_accents=None`` follows ``do_lower_case``);
   - split every punctuation character off as a word of its own: Unicode category P*, plus every ASCII
     character that is neither letter, digit nor space (``$``, ``^``, ``` ` ```, ``+``, ``<`` ... are not P*
     in Unicode, but BERT treats them as punctuation).

3. **WordPiece**, per word, greedy longest match first: take the longest prefix that is in the vocabulary,
   then the longest continuation that is in the vocabulary with a ``##`` prefix, and so on. A word with a
   piece that nothing matches, or longer than ``max_input_chars_per_word`` (100), becomes ``[UNK]`` whole:

       "unaffable" -> un ##aff ##able

Model inputs: ``[CLS] A [SEP]`` (token type 0) or ``[CLS] A [SEP] B [SEP]`` (A and its [SEP] type 0, B and
its [SEP] type 1), truncated and padded with ``[PAD]``; ``attention_mask`` is 1 on real tokens, 0 on padding.

This matches Hugging Face's tokenizers (the Rust ``BertTokenizer`` that ``transformers.AutoTokenizer``
loads) token for token. Where the older pure-Python ``transformers`` tokenizer differs, we follow the Rust one:
lower-casing is per character (``"ΟΔΟΣ"`` -> ``"οδοσ"``, where ``str.lower`` would write a final sigma
``"οδος"``), the text is not NFC-normalized first, and an unassigned code point is kept (the Python one drops
it with the control characters, joining its neighbours: ``"so\U0001FAE8cool"`` -> ``soc ##ool``, where the
Rust one and this one give ``[UNK]``).

Character classes come from the Unicode tables of the running Python (``unicodedata``), the Rust tokenizer's
from its own, older ones. Checked over every code point (Python 3.11, Unicode 14, against tokenizers 0.23),
the two differ only on characters whose class changed between those versions: about 500 punctuation marks,
combining marks and format characters assigned or reclassified since, 55 capital letters newer than Python's
tables (which it cannot lower-case), and 256 ideographs of CJK Extension E (U+2B820 to U+2B91F), which the
Rust tokenizer does not treat as CJK.
"""
from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["BertTokenizer", "basic_tokenize", "wordpiece_tokenize"]

_SPECIAL_NAMES = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
_TRUNCATION = ("longest_first", "only_first", "only_second", "do_not_truncate")
_PADDING = ("longest", "max_length", "do_not_pad")


# ----------------------------------------------------------------------------------------- character classes

def _is_whitespace(char: str) -> bool:
    """Space, tab, newline, carriage return, or any Unicode white space (category Zs, line/paragraph separators)."""
    return char in " \t\n\r" or char.isspace() or unicodedata.category(char) == "Zs"


def _is_control(char: str) -> bool:
    r"""Unicode category Cc, Cf, Co or Cs (control, format, private use, surrogate), except tab, newline, return.

    NOT Cn (unassigned): a code point that this Python's Unicode tables do not know (e.g. an emoji newer than
    them, U+1FAE8) is kept as an ordinary character, as the Rust tokenizer keeps it. Dropping it would join
    its neighbours into one word (``"so\U0001FAE8cool"`` -> ``soc ##ool`` instead of ``[UNK]``) and make the
    result depend on the Python version.
    """
    if char in "\t\n\r":
        return False
    return unicodedata.category(char) in ("Cc", "Cf", "Co", "Cs")


def _is_punctuation(char: str) -> bool:
    """Unicode category P*, or any ASCII character that is not a letter, digit or space."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(char: str) -> bool:
    """A CJK Unified Ideograph (the Chinese character blocks; not Hangul, Hiragana or Katakana)."""
    cp = ord(char)
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def _strip_accents(word: str) -> str:
    """Decompose (NFD: "é" -> "e" + U+0301) and drop the combining marks (category Mn)."""
    return "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")


# ----------------------------------------------------------------------------------------- argument checks

_TEXTS_EXPECTED = "a str, or a non-empty list of str or of (str, str) pairs"


def _check_text_list(name: str, value, expected: str = _TEXTS_EXPECTED) -> list:
    """``value`` as a list of items: one str, or a list / tuple / 1-D array of them; else a named error."""
    if isinstance(value, (bytes, bytearray)):
        raise TypeError(f"{name}: got {type(value).__name__}; expected {expected} (decode bytes first, e.g. "
                        "data.decode('utf-8'))")
    if isinstance(value, str):
        return [value]
    if isinstance(value, np.ndarray) and value.ndim == 1:
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{name}: got {type(value).__name__}; expected {expected}")
    if not value:
        raise ValueError(f"{name}: got an empty {type(value).__name__}; expected at least one text")
    return list(value)


def _check_ids(name: str, ids) -> list[int]:
    """Token ids as a list of ints: an int, a sequence of ints or an integer array of any shape (flattened)."""
    if hasattr(ids, "get"):                                       # a CuPy array: read it back once
        ids = ids.get()
    if isinstance(ids, (int, np.integer)) and not isinstance(ids, (bool, np.bool_)):
        return [int(ids)]
    if ids is None or isinstance(ids, (str, bytes, bytearray, float, np.floating)):
        raise TypeError(f"{name}: got {type(ids).__name__}; expected an int id or a sequence of int ids")
    try:
        array = np.asarray(ids)
    except ValueError:                                            # ragged nesting
        raise TypeError(f"{name}: got a ragged {type(ids).__name__}; expected int ids") from None
    if array.size and array.dtype.kind not in "iu":
        raise TypeError(f"{name}: got {type(ids).__name__} of dtype {array.dtype}; expected int ids")
    return array.reshape(-1).astype(np.int64).tolist()


# ----------------------------------------------------------------------------------------- the two stages

def basic_tokenize(text: str, do_lower_case: bool = True, strip_accents: bool | None = None,
                   tokenize_chinese_chars: bool = True, never_split: Iterable[str] = ()) -> list[str]:
    """Clean ``text`` and split it into words and punctuation marks (BERT's BasicTokenizer).

    Returns the list of words, lower-cased and accent-stripped when configured; words in ``never_split`` are
    kept exactly as written.
    """
    never_split = set(never_split)
    strip = do_lower_case if strip_accents is None else strip_accents
    cleaned = []
    for char in text:
        if char in "\x00\ufffd" or _is_control(char):
            continue
        if tokenize_chinese_chars and _is_cjk(char):
            cleaned.append(f" {char} ")
        else:
            cleaned.append(" " if _is_whitespace(char) else char)
    words = []
    for word in "".join(cleaned).split():
        if word in never_split:
            words.append(word)
            continue
        if strip:
            word = _strip_accents(word)
        if do_lower_case:
            word = "".join(c.lower() for c in word)  # per character, as the Rust tokenizer does
        piece = []
        for char in word:
            if _is_punctuation(char):
                if piece:
                    words.append("".join(piece))
                    piece = []
                words.append(char)
            else:
                piece.append(char)
        if piece:
            words.append("".join(piece))
    return [w for w in words if w.strip()]


def wordpiece_tokenize(word: str, vocab: dict[str, int], unk_token: str = "[UNK]",
                       max_input_chars_per_word: int = 100, prefix: str = "##") -> list[str]:
    """Split one word into vocabulary pieces, greedy longest match first; ``[unk_token]`` if it cannot."""
    if len(word) > max_input_chars_per_word:
        return [unk_token]
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            candidate = word[start:end] if start == 0 else prefix + word[start:end]
            if candidate in vocab:
                break
            end -= 1
        if end == start:  # no prefix of the rest is in the vocabulary
            return [unk_token]
        pieces.append(candidate)
        start = end
    return pieces


# ----------------------------------------------------------------------------------------- the tokenizer

class BertTokenizer:
    """BERT's uncased/cased WordPiece tokenizer, with the model-input packing of ``transformers``.

    >>> tok = BertTokenizer.from_pretrained(folder)       # reads vocab.txt and tokenizer_config.json
    >>> batch = tok(["A sentence.", "Another, longer one."], padding=True)
    >>> batch["input_ids"].shape, batch["attention_mask"].dtype                      # (B, T), int64
    """

    def __init__(self, vocab: dict[str, int] | str, do_lower_case: bool = True, strip_accents: bool | None = None,
                 tokenize_chinese_chars: bool = True, never_split: Iterable[str] | None = None,
                 unk_token: str = "[UNK]", sep_token: str = "[SEP]", pad_token: str = "[PAD]",
                 cls_token: str = "[CLS]", mask_token: str = "[MASK]", model_max_length: int = 512,
                 max_input_chars_per_word: int = 100, clean_up_tokenization_spaces: bool = True):
        if isinstance(vocab, (str, os.PathLike)):
            vocab = self.load_vocab(vocab)
        if not isinstance(vocab, dict) or not vocab:
            raise TypeError(f"vocab: got {type(vocab).__name__}; expected a non-empty dict token -> id or a "
                            "vocab.txt path")
        self.vocab = dict(vocab)
        self.ids_to_tokens = {i: t for t, i in self.vocab.items()}
        self.do_lower_case = bool(do_lower_case)
        self.strip_accents = strip_accents
        self.tokenize_chinese_chars = bool(tokenize_chinese_chars)
        self.unk_token, self.sep_token, self.pad_token = unk_token, sep_token, pad_token
        self.cls_token, self.mask_token = cls_token, mask_token
        for name in _SPECIAL_NAMES:
            token = getattr(self, name)
            if token not in self.vocab:
                raise ValueError(f"{name}: got {token!r}, which is not in the vocabulary")
        self.all_special_tokens = [getattr(self, name) for name in _SPECIAL_NAMES]
        self.never_split = set(never_split or ()) | set(self.all_special_tokens)
        if not isinstance(model_max_length, int) or model_max_length < 2:
            raise ValueError(f"model_max_length: got {model_max_length!r}; expected an integer >= 2")
        self.model_max_length = model_max_length
        self.max_input_chars_per_word = max_input_chars_per_word
        self.clean_up_tokenization_spaces = clean_up_tokenization_spaces
        # special tokens written in the text are cut out before anything else; longest first
        alternation = "|".join(re.escape(t) for t in sorted(self.all_special_tokens, key=len, reverse=True))
        self._special_pattern = re.compile(f"({alternation})")

    # ----- loading

    @staticmethod
    def load_vocab(path) -> dict[str, int]:
        """vocab.txt: one token per line; the line number (from 0) is the id."""
        with open(path, encoding="utf-8") as f:
            return {line.rstrip("\n"): index for index, line in enumerate(f)}

    @classmethod
    def from_pretrained(cls, folder, **overrides) -> BertTokenizer:
        """Load ``vocab.txt`` and, when present, the settings of ``tokenizer_config.json`` from a local folder."""
        folder = os.fspath(folder)
        vocab_path = os.path.join(folder, "vocab.txt")
        if not os.path.isfile(vocab_path):
            raise FileNotFoundError(f"folder: {folder!r} has no vocab.txt; expected a BERT tokenizer folder")
        settings: dict[str, Any] = {}
        config_path = os.path.join(folder, "tokenizer_config.json")
        if os.path.isfile(config_path):
            with open(config_path, encoding="utf-8") as f:
                config = json.load(f)
            keys = ("do_lower_case", "strip_accents", "tokenize_chinese_chars", "never_split", "model_max_length",
                    "clean_up_tokenization_spaces") + _SPECIAL_NAMES
            settings = {k: config[k] for k in keys if config.get(k) is not None}
            for name in _SPECIAL_NAMES:  # a special token may be stored as {"content": "[UNK]", ...}
                if isinstance(settings.get(name), dict):
                    settings[name] = settings[name]["content"]
        settings.update(overrides)
        return cls(cls.load_vocab(vocab_path), **settings)

    # ----- ids and tokens

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __len__(self) -> int:
        return len(self.vocab)

    unk_token_id = property(lambda self: self.vocab[self.unk_token])
    sep_token_id = property(lambda self: self.vocab[self.sep_token])
    pad_token_id = property(lambda self: self.vocab[self.pad_token])
    cls_token_id = property(lambda self: self.vocab[self.cls_token])
    mask_token_id = property(lambda self: self.vocab[self.mask_token])

    @property
    def all_special_ids(self) -> list[int]:
        return [self.vocab[t] for t in self.all_special_tokens]

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> int | list[int]:
        """Token(s) -> id(s); a token outside the vocabulary gives the ``[UNK]`` id."""
        unk = self.unk_token_id
        if isinstance(tokens, str):
            return self.vocab.get(tokens, unk)
        if isinstance(tokens, np.ndarray) and tokens.ndim == 1:
            tokens = tokens.tolist()
        if not isinstance(tokens, (list, tuple)):
            raise TypeError(f"tokens: got {type(tokens).__name__}; expected a str token or a list of str tokens")
        for index, token in enumerate(tokens):
            if not isinstance(token, str):
                raise TypeError(f"tokens[{index}]: got {type(token).__name__}; expected a str token")
        return [self.vocab.get(t, unk) for t in tokens]

    def convert_ids_to_tokens(self, ids: int | Sequence[int]) -> str | list[str]:
        """Id(s) -> token(s); an id outside the vocabulary raises ValueError."""
        if isinstance(ids, (int, np.integer)) and not isinstance(ids, (bool, np.bool_)):
            return self._token_of(int(ids))
        return [self._token_of(i) for i in _check_ids("ids", ids)]

    def _token_of(self, index: int) -> str:
        try:
            return self.ids_to_tokens[index]
        except KeyError:
            raise ValueError(f"ids: got {index}; expected an id in [0, {self.vocab_size})") from None

    # ----- text -> tokens

    def tokenize(self, text: str) -> list[str]:
        """Text -> WordPiece tokens (no [CLS]/[SEP])."""
        if not isinstance(text, str):
            raise TypeError(f"text: got {type(text).__name__}; expected a str")
        tokens = []
        for i, part in enumerate(self._special_pattern.split(text)):
            if i % 2:  # a special token written in the text
                tokens.append(part)
                continue
            for word in basic_tokenize(part, self.do_lower_case, self.strip_accents, self.tokenize_chinese_chars,
                                       self.never_split):
                if word in self.never_split:
                    tokens.append(word)
                else:
                    tokens.extend(wordpiece_tokenize(word, self.vocab, self.unk_token, self.max_input_chars_per_word))
        return tokens

    # ----- model inputs

    def _truncate(self, first: list[int], second: list[int] | None, max_length: int, strategy: str):
        """Cut the sequences so that, with [CLS] and [SEP]s, they fit ``max_length`` tokens."""
        special = 2 if second is None else 3
        if max_length < special:
            raise ValueError(f"max_length: got {max_length}; expected at least {special} "
                             f"to hold the special tokens of a {'single text' if second is None else 'pair'}")
        budget = max_length - special
        if second is None:
            if strategy == "only_second":
                raise ValueError("truncation: got 'only_second' for a single text; expected a pair of texts")
            return first[:budget], None
        excess = len(first) + len(second) - budget
        if excess <= 0:
            return first, second
        if strategy == "longest_first":
            # cut the longer text down to the shorter one's length; if that is not enough, share the budget:
            # the shorter text gets budget // 2 tokens, the longer one the rest (on equal lengths the second
            # text counts as the longer). This is Hugging Face tokenizers' rule; the older pure-Python loop
            # (one token at a time off the longer text, off the second on a tie) can give the odd token to
            # the other text.
            shorter, longer = sorted((len(first), len(second)))
            keep_longer = max(shorter, budget - shorter)
            keep_shorter = shorter
            if keep_shorter + keep_longer > budget:
                keep_shorter, keep_longer = budget // 2, budget - budget // 2
            if len(first) > len(second):
                return first[:keep_longer], second[:keep_shorter]
            return first[:keep_shorter], second[:keep_longer]
        if strategy == "only_first":
            if excess > len(first):
                raise ValueError(f"max_length: got {max_length}; 'only_first' cannot fit the second text alone")
            return first[:len(first) - excess], second
        if excess > len(second):
            raise ValueError(f"max_length: got {max_length}; 'only_second' cannot fit the first text alone")
        return first, second[:len(second) - excess]

    @staticmethod
    def _parse_truncation(truncation) -> str:
        if truncation is True:
            return "longest_first"
        if truncation is False or truncation is None:
            return "do_not_truncate"
        if truncation not in _TRUNCATION:
            raise ValueError(f"truncation: got {truncation!r}; expected True, False or one of {_TRUNCATION}")
        return truncation

    @staticmethod
    def _parse_padding(padding) -> str:
        if padding is True:
            return "longest"
        if padding is False or padding is None:
            return "do_not_pad"
        if padding not in _PADDING:
            raise ValueError(f"padding: got {padding!r}; expected True, False or one of {_PADDING}")
        return padding

    def _encode_one(self, text: str, text_pair: str | None, max_length: int | None, truncation: str):
        first = self.convert_tokens_to_ids(self.tokenize(text))
        second = None if text_pair is None else self.convert_tokens_to_ids(self.tokenize(text_pair))
        if truncation != "do_not_truncate":
            first, second = self._truncate(first, second, max_length or self.model_max_length, truncation)
        ids = [self.cls_token_id] + first + [self.sep_token_id]
        types = [0] * len(ids)
        if second is not None:
            ids += second + [self.sep_token_id]
            types += [1] * (len(second) + 1)
        return ids, types

    def encode(self, text: str, text_pair: str | None = None, max_length: int | None = None,
               truncation: bool | str = False, padding: bool | str = False) -> list[int]:
        """One text (or pair) -> ``[CLS] A [SEP] (B [SEP])`` ids, truncated and padded as asked."""
        for name, value in (("text", text), ("text_pair", text_pair)):
            if not (isinstance(value, str) or (name == "text_pair" and value is None)):
                raise TypeError(f"{name}: got {type(value).__name__}; expected a str"
                                + (" or None" if name == "text_pair" else ""))
        batch = self([text], None if text_pair is None else [text_pair], padding=padding, truncation=truncation,
                     max_length=max_length, return_tensors=None)
        return batch["input_ids"][0]

    def __call__(self, texts, text_pair=None, padding: bool | str = False, truncation: bool | str = False,
                 max_length: int | None = None, return_tensors: str | None = "np") -> dict:
        """Tokenize a text, a list of texts, or a list of (text, text_pair) pairs into model inputs.

        Inputs:
            texts: str, or a non-empty list of str or of (str, str) pairs (anything else, bytes, None or an
                empty list included, is refused with an error that names it)
            text_pair: the second text(s) of each pair, instead of pairs in ``texts`` (str or list of str)
            padding: True / "longest" (to the longest in the batch), "max_length", or False
            truncation: True / "longest_first" (for pairs, cut the longer one first), "only_first",
                "only_second", or False
            max_length: the length to truncate and pad to (default: ``model_max_length``)
            return_tensors: "np" for int64 arrays of shape (B, T) (B=1 for one text); None for Python lists

        Returns:
            dict with ``input_ids``, ``token_type_ids``, ``attention_mask``, each (B, T) int64 with "np".
        """
        truncation, padding = self._parse_truncation(truncation), self._parse_padding(padding)
        if return_tensors not in ("np", None):
            raise ValueError(f"return_tensors: got {return_tensors!r}; expected 'np' or None")
        if max_length is not None and (not isinstance(max_length, int) or isinstance(max_length, bool)
                                       or max_length < 1):
            raise ValueError(f"max_length: got {max_length!r}; expected a positive integer or None")
        single = isinstance(texts, str)
        firsts = _check_text_list("texts", texts)
        if text_pair is not None:
            seconds = _check_text_list("text_pair", text_pair, "a str or a non-empty list of str")
            if len(seconds) != len(firsts):
                raise ValueError(f"text_pair: got {len(seconds)} second texts for {len(firsts)} texts; "
                                 "expected one str per text")
            for name, texts_ in (("texts", firsts), ("text_pair", seconds)):
                for index, item in enumerate(texts_):
                    if not isinstance(item, str):
                        raise TypeError(f"{name}[{index}]: got {type(item).__name__}; expected a str (a pair's "
                                        "texts come one in texts, one in text_pair)")
            pairs = list(zip(firsts, seconds, strict=True))
        else:
            pairs = []
            for index, item in enumerate(firsts):
                if isinstance(item, str):
                    pairs.append((item, None))
                elif isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(t, str) for t in item):
                    pairs.append((item[0], item[1]))
                else:
                    raise TypeError(f"texts[{index}]: got {item!r:.40} ({type(item).__name__}); expected a str "
                                    "or a (str, str) pair")
        encoded = [self._encode_one(a, b, max_length, truncation) for a, b in pairs]
        lengths = [len(ids) for ids, _ in encoded]
        if padding == "max_length":
            target = max_length or self.model_max_length
        elif padding == "longest":
            target = max(lengths, default=0)
        else:
            target = None
        if return_tensors == "np" and target is None and len(set(lengths)) > 1:
            raise ValueError(f"padding: got False for texts of different lengths {sorted(set(lengths))}; "
                             "expected padding=True (or 'max_length') to stack them into one array")
        batch: dict[str, list] = {"input_ids": [], "token_type_ids": [], "attention_mask": []}
        for ids, types in encoded:
            pad = max(0, (target or 0) - len(ids))
            batch["input_ids"].append(ids + [self.pad_token_id] * pad)
            batch["token_type_ids"].append(types + [0] * pad)
            batch["attention_mask"].append([1] * len(ids) + [0] * pad)
        if return_tensors == "np":
            return {k: np.array(v, dtype=np.int64).reshape(len(v), -1) for k, v in batch.items()}
        return {k: v[0] for k, v in batch.items()} if single else batch

    # ----- ids -> text

    def decode(self, ids, skip_special_tokens: bool = True, clean_up_tokenization_spaces: bool | None = None) -> str:
        """Ids -> text: tokens joined by spaces, with each ``##`` continuation glued to the piece before it."""
        tokens = self.convert_ids_to_tokens(_check_ids("ids", ids))
        if skip_special_tokens:
            special = set(self.all_special_tokens)
            tokens = [t for t in tokens if t not in special]
        text = " ".join(tokens).replace(" ##", "").strip()
        clean = clean_up_tokenization_spaces
        if clean is None:
            clean = self.clean_up_tokenization_spaces
        if clean:
            for spaced, tight in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                                  (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
                text = text.replace(spaced, tight)
        return text

    def batch_decode(self, sequences, skip_special_tokens: bool = True) -> list[str]:
        if hasattr(sequences, "get"):                             # a CuPy array: read it back once
            sequences = sequences.get()
        if isinstance(sequences, np.ndarray) and sequences.ndim != 2:
            raise ValueError(f"sequences: got shape {sequences.shape}; expected (B, T) ids")
        if not isinstance(sequences, (list, tuple, np.ndarray)):
            raise TypeError(f"sequences: got {type(sequences).__name__}; expected a (B, T) array or a list of "
                            "id lists")
        return [self.decode(ids, skip_special_tokens=skip_special_tokens) for ids in sequences]

    def __repr__(self) -> str:
        return (f"BertTokenizer(vocab_size={self.vocab_size}, do_lower_case={self.do_lower_case}, "
                f"strip_accents={self.strip_accents}, model_max_length={self.model_max_length})")
