"""Optimizers (SGD, Adam, AdamW), learning-rate schedules and gradient clipping, with torch.optim's semantics."""
from .clip import clip_grad_norm_
from .optimizers import SGD, Adam, AdamW, Optimizer
from .schedules import LambdaLR, warmup_cosine, warmup_inverse_sqrt, warmup_linear_decay

__all__ = [
    "Optimizer", "SGD", "Adam", "AdamW",
    "LambdaLR", "warmup_inverse_sqrt", "warmup_linear_decay", "warmup_cosine",
    "clip_grad_norm_",
]
