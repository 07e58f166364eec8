"""Complete models built from the layers: an encoder-decoder translator, a GPT language model, a Vision
Transformer, a sequence classifier, and BERT (which loads pretrained Hugging Face checkpoints). Each has a
hand-written backward pass and loads a torch twin's ``state_dict`` key for key."""
from .bert import BertClassifier, BertConfig, BertModel
from .classifier import TransformerClassifier
from .gpt import GPT
from .translator import Seq2SeqTransformer, length_penalty_factor
from .vit import VisionTransformer

__all__ = ["BertConfig", "BertModel", "BertClassifier", "Seq2SeqTransformer", "length_penalty_factor", "GPT", "VisionTransformer", "TransformerClassifier"]
