"""Tokenizers: characters and words for the small demos, and BERT's WordPiece for the pretrained model."""
from .simple import CharTokenizer, WordTokenizer
from .wordpiece import BertTokenizer, basic_tokenize, wordpiece_tokenize

__all__ = ["BertTokenizer", "CharTokenizer", "WordTokenizer", "basic_tokenize", "wordpiece_tokenize"]
