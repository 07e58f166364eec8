"""Two tiny tokenizers for the demos: one id per character, or one id per word.

Both reserve the first four ids for the special tokens:

    0 <pad>   fills a batch up to its longest sentence (masked out of attention and loss)
    1 <bos>   begin of sentence: the first input of a decoder
    2 <eos>   end of sentence: what a decoder predicts to stop
    3 <unk>   anything not seen when the vocabulary was built

>>> tok = WordTokenizer().build_vocab(["the cat sat", "the dog sat"])
>>> tok.encode("the cat ran", add_eos=True)                    # [4, 6, 3, 2]: 'ran' was never seen
>>> ids, lengths = tok.batch_encode(["the cat", "the dog sat"])    # ids: (B, T) int64 padded with 0
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["CharTokenizer", "WordTokenizer", "SPECIAL_TOKENS"]

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")


def _check_sentences(name: str, sentences) -> list:
    """``sentences`` as a list of str: a list, tuple, 1-D array or other iterable of str; else a named error."""
    if isinstance(sentences, (str, bytes, bytearray)):
        kind = "a single str" if isinstance(sentences, str) else type(sentences).__name__
        raise TypeError(f"{name}: got {kind}; expected a list of str")
    if isinstance(sentences, np.ndarray) and sentences.ndim == 1:
        sentences = sentences.tolist()
    if not isinstance(sentences, Iterable) or isinstance(sentences, np.ndarray):
        raise TypeError(f"{name}: got {type(sentences).__name__}; expected a list of str")
    sentences = list(sentences)
    for index, sentence in enumerate(sentences):
        if not isinstance(sentence, str):
            raise TypeError(f"{name}[{index}]: got {sentence!r:.40} ({type(sentence).__name__}); expected a str")
    return sentences


class _Tokenizer:
    """What both tokenizers share: the vocabulary, special ids, encoding, decoding and batching."""

    pad_token, bos_token, eos_token, unk_token = SPECIAL_TOKENS
    pad_id, bos_id, eos_id, unk_id = range(4)
    _joiner = ""

    def __init__(self, tokens: Iterable[str] | None = None, lowercase: bool = False):
        if not isinstance(lowercase, bool):
            raise TypeError(f"lowercase: got {lowercase!r}; expected True or False")
        self.lowercase = lowercase
        self.itos: list[str] = list(SPECIAL_TOKENS)
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}
        if tokens is not None:
            self._add(_check_sentences("tokens", tokens))

    def _add(self, tokens: list[str]) -> None:
        for token in tokens:
            if token not in self.stoi:
                self.stoi[token] = len(self.itos)
                self.itos.append(token)

    def split(self, sentence: str) -> list[str]:
        raise NotImplementedError

    def _pieces(self, sentence) -> list[str]:
        if not isinstance(sentence, str):
            raise TypeError(f"sentence: got {type(sentence).__name__}; expected a str")
        return self.split(sentence.lower() if self.lowercase else sentence)

    def build_vocab(self, sentences: Iterable[str], min_freq: int = 1, max_size: int | None = None):
        """Add every token of ``sentences`` seen at least ``min_freq`` times, the most frequent first
        (ties alphabetically), keeping at most ``max_size`` ids in all. Returns ``self``."""
        sentences = _check_sentences("sentences", sentences)
        if not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"min_freq: got {min_freq!r}; expected an integer >= 1")
        if max_size is not None and (not isinstance(max_size, int) or max_size < len(SPECIAL_TOKENS)):
            raise ValueError(f"max_size: got {max_size!r}; expected None or an integer >= {len(SPECIAL_TOKENS)}")
        counts = Counter(piece for sentence in sentences for piece in self._pieces(sentence))
        ranked = sorted((t for t, c in counts.items() if c >= min_freq and t not in self.stoi),
                        key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[:max(0, max_size - len(self.itos))]
        self._add(ranked)
        return self

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, sentence: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Sentence -> list of ids (unknown tokens -> ``<unk>``), optionally framed by ``<bos>`` / ``<eos>``."""
        for name, flag in (("add_bos", add_bos), ("add_eos", add_eos)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name}: got {flag!r}; expected True or False")
        ids = [self.stoi.get(piece, self.unk_id) for piece in self._pieces(sentence)]
        return ([self.bos_id] if add_bos else []) + ids + ([self.eos_id] if add_eos else [])

    def decode(self, ids: Sequence[int]) -> str:
        """Ids -> sentence: stops at the first ``<eos>`` and skips ``<pad>`` and ``<bos>``."""
        if ids is None or isinstance(ids, (str, bytes, bytearray)):
            raise TypeError(f"ids: got {type(ids).__name__}; expected a 1-D sequence of integer ids")
        ids = np.asarray(ids.get() if hasattr(ids, "get") else ids)
        if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
            raise ValueError(f"ids: got shape {ids.shape} and dtype {ids.dtype}; expected a 1-D sequence of integer "
                             "ids")
        pieces = []
        for index in ids.tolist():
            if not 0 <= index < len(self.itos):
                raise ValueError(f"ids: got {index}; expected ids in [0, {len(self.itos)})")
            if index == self.eos_id:
                break
            if index not in (self.pad_id, self.bos_id):
                pieces.append(self.itos[index])
        return self._joiner.join(pieces)

    def batch_encode(self, sentences: Sequence[str], max_len: int | None = None, add_bos: bool = False,
                     add_eos: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Encode and pad a batch (a list of str; an empty list gives an empty (0, 0) batch).

        Returns:
            ids: (B, T) int64, padded with ``<pad>`` (0) to the longest sentence, or to ``max_len`` when given
                (longer sentences are cut to ``max_len``, their ``<eos>`` included in the count)
            lengths: (B,) int64, the number of real tokens in each row (``ids == pad_id`` is the padding mask)
        """
        sentences = _check_sentences("sentences", sentences)
        if max_len is not None and (not isinstance(max_len, int) or isinstance(max_len, bool) or max_len < 1):
            raise ValueError(f"max_len: got {max_len!r}; expected None or a positive integer")
        rows = [self.encode(s, add_bos=add_bos, add_eos=add_eos) for s in sentences]
        if max_len is not None:
            rows = [row[:max_len] for row in rows]
        width = max_len if max_len is not None else max((len(r) for r in rows), default=0)
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        for b, row in enumerate(rows):  # building the batch, not compute
            ids[b, :len(row)] = row
        return ids, lengths

    def batch_decode(self, ids) -> list[str]:
        """(B, T) ids -> B sentences."""
        if ids is None or isinstance(ids, (str, bytes, bytearray)):
            raise TypeError(f"ids: got {type(ids).__name__}; expected (B, T) integer ids")
        ids = np.asarray(ids.get() if hasattr(ids, "get") else ids)
        if ids.ndim != 2 and ids.size:
            raise ValueError(f"ids: got shape {ids.shape}; expected (B, T) integer ids")
        return [self.decode(row) for row in ids]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, lowercase={self.lowercase})"


class CharTokenizer(_Tokenizer):
    """One token per character (spaces included); ``decode`` joins them back with nothing in between."""

    _joiner = ""

    def split(self, sentence: str) -> list[str]:
        return list(sentence)


class WordTokenizer(_Tokenizer):
    """One token per word or punctuation mark (``"don't!"`` -> ``don ' t !``); ``decode`` joins with spaces."""

    _joiner = " "
    _pattern = re.compile(r"\w+|[^\w\s]")

    def split(self, sentence: str) -> list[str]:
        return self._pattern.findall(sentence)
