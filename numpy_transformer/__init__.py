"""numpy_transformer: the Transformer in vectorized NumPy, every forward pass with a hand-written backward pass.

Reading order (each file is one page of the textbook):

1. ``functional/``: pure ``*_forward(...) -> (out, cache)`` / ``*_backward(dout, cache) -> grads`` pairs,
   one idea per file, each opening with its math and the derivation of its backward pass.
2. ``nn/``: thin ``torch.nn``-compatible modules that own parameters and chain those pairs.
3. ``models/``: complete models (translator, GPT, ViT, classifier, BERT).
4. ``optim/``, ``io/``, ``text/``, ``viz/``: training, checkpoints, tokenizers, pictures.

``no_grad()`` runs inference without the caches a backward pass needs (less memory, fewer fresh arrays).
``gradcheck`` checks any forward/backward pair or layer (yours too) against finite differences.
Arrays may be NumPy (CPU) or CuPy (GPU) arrays: every function computes with the array module of its inputs.
"""
from . import backend, checks, data, functional, gradcheck, io, models, nn, optim, text, viz
from .backend import get_array_module, to_device, to_numpy
from .grad_mode import enable_grad, is_grad_enabled, no_grad

__version__ = "0.1.0"

__all__ = ["backend", "checks", "data", "functional", "gradcheck", "io", "models", "nn", "optim", "text", "viz",
           "get_array_module", "to_device", "to_numpy", "no_grad", "enable_grad", "is_grad_enabled"]
