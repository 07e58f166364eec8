"""Sentiment classification data: a small built-in set of movie-review sentences, and an IMDb reader.

``sentiment_sentences.tsv`` holds 480 short movie-review sentences written for this project (they are
original sentences, not taken from any review site), labelled 1 (positive) or 0 (negative), half of each.
They vary the subject (the plot, the acting, the soundtrack ...), the wording and the punctuation, and about half
of them need more than a bag of words to get right:

- contrasts, where the clause after "but" (or the main clause after "although") decides:
  "The plot is predictable, but the cast is superb." -> 1
- negation: "The ending is not dull at all." -> 1

The file is tab-separated with a header line ``label<TAB>text``.

Public API:

- :func:`load_sentiment_sentences` -- ``(texts, labels)`` of the built-in set.
- :func:`train_test_split` -- a seeded, stratified split of any ``(texts, labels)``.
- :func:`read_imdb_folder` -- the Large Movie Review Dataset (Maas et al., 2011) in its unpacked layout
  ``DIR/train/pos/*.txt``, ``DIR/train/neg/*.txt``, ``DIR/test/pos/*.txt``, ``DIR/test/neg/*.txt``.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

__all__ = ["SENTIMENT_PATH", "load_sentiment_sentences", "train_test_split", "read_imdb_folder"]

#: where the built-in sentences live
SENTIMENT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sentiment_sentences.tsv")


def load_sentiment_sentences(path=None) -> tuple[list[str], np.ndarray]:
    """The built-in labelled movie-review sentences.

    Inputs:
        path: another file in the same ``label<TAB>text`` format (default: the built-in one)

    Returns:
        texts: a list of N strings
        labels: (N,) int64 array, 1 = positive, 0 = negative
    """
    path = SENTIMENT_PATH if path is None else os.fspath(path)
    texts, labels = [], []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if number == 1 and line.startswith("label\t"):
                continue
            if not line.strip():
                continue
            label, sep, text = line.partition("\t")
            if not sep or label not in ("0", "1"):
                raise ValueError(f"{path}, line {number}: got {line[:60]!r}; expected '0<TAB>text' or '1<TAB>text'")
            texts.append(text)
            labels.append(int(label))
    return texts, np.asarray(labels, dtype=np.int64)


def train_test_split(texts: Sequence, labels, test_fraction: float = 0.2, seed: int = 0):
    """Split ``(texts, labels)`` at random into a training and a test part, keeping the class balance.

    Each class is shuffled (given ``seed``) and its last ``test_fraction`` goes to the test part, so both
    parts hold the classes in the same proportions.

    Returns:
        (train_texts, train_labels), (test_texts, test_labels): lists of strings and int64 arrays
    """
    labels = np.asarray(labels)
    if len(texts) != labels.shape[0]:
        raise ValueError(f"labels: got {labels.shape[0]} labels; expected {len(texts)} (one per text)")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction: got {test_fraction!r}; expected a number in (0, 1)")
    rng = np.random.default_rng(seed)
    train_index, test_index = [], []
    for value in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == value))
        n_test = int(round(test_fraction * members.size))
        train_index.append(members[: members.size - n_test])
        test_index.append(members[members.size - n_test:])
    train_index = rng.permutation(np.concatenate(train_index))
    test_index = rng.permutation(np.concatenate(test_index))
    pick = lambda index: ([texts[i] for i in index], labels[index])  # noqa: E731
    return pick(train_index), pick(test_index)


def read_imdb_folder(directory, split: str = "train", max_per_class: int | None = None):
    """Read one split of the IMDb Large Movie Review Dataset from its unpacked folder (``aclImdb``).

    Inputs:
        directory: the folder holding ``train/`` and ``test/``
        split: "train" or "test"
        max_per_class: read at most this many reviews of each class (files in sorted name order)

    Returns:
        texts: a list of reviews (the ``<br />`` line breaks of the originals become spaces)
        labels: (N,) int64 array, 1 = positive (``pos/``), 0 = negative (``neg/``); positives first

    Raises ``FileNotFoundError`` naming the missing folder.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split: got {split!r}; expected 'train' or 'test'")
    if max_per_class is not None and (isinstance(max_per_class, bool) or not isinstance(max_per_class, int)
                                      or max_per_class < 1):
        raise ValueError(f"max_per_class: got {max_per_class!r}; expected None or a positive integer")
    directory = os.fspath(directory)
    texts, labels = [], []
    for name, label in (("pos", 1), ("neg", 0)):
        folder = os.path.join(directory, split, name)
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"directory: the folder {folder} does not exist; expected the IMDb layout "
                                    f"DIR/{split}/pos/*.txt and DIR/{split}/neg/*.txt (e.g. an unpacked aclImdb)")
        files = sorted(f for f in os.listdir(folder) if f.endswith(".txt"))
        if max_per_class is not None:
            files = files[:max_per_class]
        for file_name in files:
            with open(os.path.join(folder, file_name), encoding="utf-8") as handle:
                texts.append(handle.read().replace("<br />", " ").strip())
            labels.append(label)
    return texts, np.asarray(labels, dtype=np.int64)
