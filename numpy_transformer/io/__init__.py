"""Saving and loading: atomic .npz checkpoints of a model, its config and its optimizer; safetensors files;
Hugging Face model folders (BERT, DistilBERT, GPT-2, ViT) read into the library's own models."""
from .checkpoint import FORMAT, load_checkpoint, load_config, read_checkpoint, save_checkpoint
from .huggingface import (
    FAMILIES,
    Architecture,
    Family,
    TensorMap,
    load_pretrained,
    load_weights,
    read_config,
    register_family,
    to_hf_state_dict,
)
from .safetensors import SAFETENSORS_DTYPES, load_safetensors, safetensors_header, save_safetensors

__all__ = [
    "save_checkpoint", "load_checkpoint", "read_checkpoint", "load_config", "FORMAT",
    "load_safetensors", "save_safetensors", "safetensors_header", "SAFETENSORS_DTYPES",
    "load_pretrained", "load_weights", "read_config", "to_hf_state_dict", "register_family", "FAMILIES",
    "Family", "Architecture", "TensorMap",
]
