"""Saving and loading: atomic .npz checkpoints of a model, its config and its optimizer; safetensors files."""
from .checkpoint import FORMAT, load_checkpoint, load_config, read_checkpoint, save_checkpoint
from .safetensors import SAFETENSORS_DTYPES, load_safetensors, safetensors_header, save_safetensors

__all__ = [
    "save_checkpoint", "load_checkpoint", "read_checkpoint", "load_config", "FORMAT",
    "load_safetensors", "save_safetensors", "safetensors_header", "SAFETENSORS_DTYPES",
]
