"""Complete models built from the layers: an encoder-decoder translator, a GPT language model, a Vision
Transformer and a BERT-style classifier. Each has a hand-written backward pass and loads a torch twin's
``state_dict`` key for key."""
from .classifier import TransformerClassifier
from .gpt import GPT
from .translator import Seq2SeqTransformer, length_penalty_factor
from .vit import VisionTransformer

__all__ = ["Seq2SeqTransformer", "length_penalty_factor", "GPT", "VisionTransformer", "TransformerClassifier"]
