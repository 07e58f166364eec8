r"""Cross-entropy loss from logits, with ``ignore_index`` and label smoothing (torch semantics).

Each row of ``logits`` (one position's scores over a vocabulary of $V$ classes) is turned into log
probabilities by a log-softmax, and the loss is the cross-entropy between a target distribution $q$ and
the predicted distribution $p = \mathrm{softmax}(z)$:

$$
\log p_c = z_c - \log \sum_k e^{z_k}, \qquad
\ell = -\sum_c q_c \log p_c
$$

The log-sum-exp is computed stably: with $m = \max_k z_k$,
$\log \sum_k e^{z_k} = m + \log \sum_k e^{z_k - m}$, so no exponent is larger than 0 and nothing overflows
even for logits of $10^4$.

Label smoothing $\epsilon$ (as in ``torch.nn.functional.cross_entropy``) mixes the one-hot target $t$ with the
uniform distribution over all $V$ classes (the target class included):

$$
q_c = (1 - \epsilon)\, [c = t] + \frac{\epsilon}{V}, \qquad
\ell = (1 - \epsilon)\,(-\log p_t) + \epsilon \cdot \frac{1}{V} \sum_c (-\log p_c)
$$

Rows whose target equals ``ignore_index`` (padding) contribute nothing, and the loss is the mean over the
$n$ rows that are not ignored: $L = \frac{1}{n} \sum_{\text{valid rows}} \ell$. When every row is ignored, torch
returns nan (0 / 0); here the loss is 0 and the gradient 0, so a batch of padding cannot poison training.

Backward. For one row, $\partial \ell / \partial z_c = p_c - q_c$: from $\log p_k = z_k - \mathrm{lse}(z)$
follows $\partial \log p_k / \partial z_c = [k = c] - p_c$, so
$\partial \ell / \partial z_c = -q_c + p_c \sum_k q_k = p_c - q_c$ because $q$ sums to 1 (derived in
``docs/derivations/cross_entropy.md``). Hence

$$
\frac{\partial L}{\partial z_{r c}} = \frac{g}{n} \left( p_{r c} - q_{r c} \right)
    \text{ for a valid row } r, \qquad 0 \text{ for an ignored row}
$$

with $g$ the upstream gradient of the scalar loss. $q$ is never built: the gradient is
$p - \epsilon/V$ everywhere, minus $1 - \epsilon$ at the target (a scatter, not a one-hot product). The cache
keeps ``probs``, the (clamped) targets, the mask of valid rows, $n$ and $\epsilon$.

Shapes: logits (..., V), e.g. (B, V) or (B, T, V); targets (...) integer, e.g. (B,) or (B, T); the loss is
a 0-d array.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..backend import Array, get_array_module
from ..checks import check_float, check_integer, check_upstream


def cross_entropy_forward(logits: Array, targets: Array, ignore_index: int = -100,
                          label_smoothing: float = 0.0) -> tuple[Array, dict]:
    """Mean cross-entropy between ``softmax(logits)`` and the (smoothed) targets over non-ignored positions.

    The same as ``torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1),
    ignore_index=ignore_index, label_smoothing=label_smoothing)``, except that when every target is
    ignored the loss is 0 (torch gives nan).

    Inputs:
        logits: (..., V) float array of unnormalized scores
        targets: (...) integer array of class indices in [0, V), or ``ignore_index``
        ignore_index: a target value whose positions are skipped (torch's default -100)
        label_smoothing: eps in [0, 1]; the target distribution is (1 - eps) one-hot + eps / V uniform

    Returns:
        loss: 0-d array of the dtype of ``logits``
        cache: dict with ``probs`` (..., V) = softmax(logits), ``targets`` (...) with ignored positions set
            to 0, ``valid`` (...) bool, ``count`` = number of valid positions (at least 1, a 0-d
            array) and ``label_smoothing``
    """
    check_float("logits", logits)
    check_integer("targets", targets)
    if logits.ndim < 1 or logits.shape[-1] == 0:
        raise ValueError(f"logits: got shape {tuple(logits.shape)}; expected (..., V) with V >= 1 classes")
    if tuple(targets.shape) != tuple(logits.shape[:-1]):
        raise ValueError(
            f"targets: got shape {tuple(targets.shape)}; expected {tuple(logits.shape[:-1])} "
            f"= logits.shape[:-1] for logits of shape {tuple(logits.shape)}"
        )
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"ignore_index: got {ignore_index!r}; expected an integer")
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real) or not (
        0.0 <= float(label_smoothing) <= 1.0
    ):
        raise ValueError(f"label_smoothing: got {label_smoothing!r}; expected a number in [0, 1]")
    xp = get_array_module(logits, targets)
    vocab = logits.shape[-1]
    valid = targets != ignore_index                                # (...) bool
    out_of_range = valid & ((targets < 0) | (targets >= vocab))    # (...) bool
    # Like every value check, this reads the array back to the host: done on NumPy arrays only, so that a
    # GPU training step never waits on a device-to-host copy.
    if xp is np and bool(out_of_range.any()):
        bad = int(targets[out_of_range].reshape(-1)[0])
        raise ValueError(
            f"targets: got class index {bad}; expected indices in [0, V) with V = logits.shape[-1] = {vocab}, "
            f"or ignore_index = {ignore_index}"
        )
    eps = float(label_smoothing)

    # stable log-softmax: log p = (z - m) - log sum exp(z - m), m the row maximum
    shifted = logits - logits.max(axis=-1, keepdims=True)          # (..., V)
    exps = xp.exp(shifted)                                         # (..., V), every entry in (0, 1]
    sums = exps.sum(axis=-1, keepdims=True)                        # (..., V) -> (..., 1)
    log_probs = shifted - xp.log(sums)                             # (..., V)
    probs = exps / sums                                            # (..., V)

    # -log p at the target: a gather, with ignored positions pointed at class 0 and masked out below
    safe_targets = xp.where(valid, targets, 0)                     # (...)
    flat_log_probs = log_probs.reshape(-1, vocab)                  # (..., V) -> (M, V), M = prod(...)
    rows = xp.arange(flat_log_probs.shape[0])                      # (M,)
    nll = -flat_log_probs[rows, safe_targets.reshape(-1)]          # (M,)
    per_position = (1.0 - eps) * nll                               # (M,)
    if eps:
        per_position = per_position - eps * flat_log_probs.mean(axis=-1)  # (M, V) -> (M,)

    count = xp.maximum(valid.sum(dtype=logits.dtype), 1.0)         # () number of targets, kept on the device
    total = (per_position * valid.reshape(-1)).sum()               # (M,) -> ()
    loss = xp.asarray(total / count, dtype=logits.dtype)           # () ; 0 when every target is ignored
    cache = {
        "probs": probs,
        "targets": safe_targets,
        "valid": valid,
        "count": count,
        "label_smoothing": eps,
    }
    return loss, cache


def cross_entropy_backward(dloss: Array | float, cache: dict) -> Array:
    """Gradient of :func:`cross_entropy_forward` with respect to the logits.

    Inputs:
        dloss: upstream gradient of the scalar loss, a number or a 0-d array (usually 1.0); it only scales,
            and is taken in the dtype of the logits
        cache: from :func:`cross_entropy_forward`

    Returns:
        dlogits: (..., V), zero on ignored positions
    """
    if hasattr(dloss, "shape"):                                    # a 0-d array; cast to the loss's dtype below
        check_upstream("dloss", dloss, ((), dloss.dtype), "the loss (a 0-d array)")
    elif isinstance(dloss, bool) or not isinstance(dloss, numbers.Real):
        raise TypeError(f"dloss: got {type(dloss).__name__}; expected a number or a 0-d array")
    # EXERCISE: dlogits from the cached probs, targets, valid, count and label_smoothing; build no one-hot.
    probs, targets, valid = cache["probs"], cache["targets"], cache["valid"]
    count, eps = cache["count"], cache["label_smoothing"]
    xp = get_array_module(probs)
    vocab = probs.shape[-1]

    # forward: loss = total / count, total = sum over valid positions of per_position
    scale = xp.asarray(dloss, dtype=probs.dtype) / count           # ()

    # forward: per_position = -sum_c q_c log p_c, log p = log_softmax(logits)  =>  d/dlogits = p - q,
    # with q = (1 - eps) one-hot + eps / V: subtract eps / V everywhere and 1 - eps at the target (a scatter)
    dlogits = probs - eps / vocab                                  # (..., V), a fresh array
    flat = dlogits.reshape(-1, vocab)                              # (..., V) -> (M, V), a view
    flat[xp.arange(flat.shape[0]), targets.reshape(-1)] -= 1.0 - eps

    # forward: ignored positions were masked out of the sum
    dlogits *= scale * valid[..., None]                            # (..., V)
    return dlogits
    # END EXERCISE
