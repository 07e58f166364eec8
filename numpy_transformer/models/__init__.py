"""Complete models built from the layers: an encoder-decoder translator, a GPT language model (GPT-2 loads
into it), a Llama-style decoder (Hugging Face's LlamaForCausalLM loads into it), a Vision Transformer (Hugging
Face's ViT loads into it), a sequence classifier, BERT and DistilBERT (which load pretrained Hugging Face
folders). Each has a hand-written backward pass; ``generation`` holds the
one decoding loop (greedy, temperature, top-k, top-p) and ``outputs`` the per-layer record."""
from .bert import BertClassifier, BertConfig, BertModel
from .classifier import TransformerClassifier
from .distilbert import DistilBertConfig, DistilBertForSequenceClassification, DistilBertModel
from .generation import generate, sample_next_token
from .gpt import GPT
from .llama import LlamaConfig, LlamaForCausalLM, LlamaModel
from .outputs import ModelOutput
from .translator import Seq2SeqTransformer, length_penalty_factor
from .vit import VisionTransformer

__all__ = ["BertConfig", "BertModel", "BertClassifier", "DistilBertConfig", "DistilBertModel",
           "DistilBertForSequenceClassification", "Seq2SeqTransformer", "length_penalty_factor", "GPT",
           "LlamaConfig", "LlamaModel", "LlamaForCausalLM",
           "VisionTransformer", "TransformerClassifier", "ModelOutput", "generate", "sample_next_token"]
