"""Tokenizers: characters and words for the small demos, BERT's WordPiece and GPT-2's byte-level BPE for the
pretrained models."""
from .bpe import GPT2Tokenizer, pretokenize, train_byte_level_bpe
from .simple import CharTokenizer, WordTokenizer
from .wordpiece import BertTokenizer, basic_tokenize, wordpiece_tokenize

__all__ = ["BertTokenizer", "CharTokenizer", "GPT2Tokenizer", "WordTokenizer", "basic_tokenize", "pretokenize",
           "train_byte_level_bpe", "wordpiece_tokenize"]
