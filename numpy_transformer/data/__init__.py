"""Data for the demos and models: generated English -> French pairs, movie-review sentences, metrics.

- :mod:`.translation` -- a small English -> French grammar, splits that test new combinations, and a reader
  for Tatoeba / Anki tab-separated corpora.
- :mod:`.sentiment` -- built-in labelled movie-review sentences and an IMDb folder reader.
- :mod:`.metrics` -- corpus BLEU, accuracy, token accuracy, precision / recall / F1, exact match.
"""
from .metrics import accuracy, corpus_bleu, exact_match, precision_recall_f1, token_accuracy
from .sentiment import load_sentiment_sentences, read_imdb_folder, train_test_split
from .translation import (
    describe_grammar,
    held_out_combinations,
    make_translation_pairs,
    make_translation_splits,
    noun_adjective_pairs,
    random_pair,
    read_parallel_corpus,
    tokenize,
    translate,
)

__all__ = [
    "corpus_bleu",
    "accuracy",
    "token_accuracy",
    "precision_recall_f1",
    "exact_match",
    "load_sentiment_sentences",
    "train_test_split",
    "read_imdb_folder",
    "make_translation_pairs",
    "make_translation_splits",
    "held_out_combinations",
    "random_pair",
    "read_parallel_corpus",
    "tokenize",
    "translate",
    "describe_grammar",
    "noun_adjective_pairs",
]
