r"""Evaluation metrics: BLEU for translation, accuracy and F1 for classification.

BLEU (Papineni et al., 2002), corpus level. For each $n = 1, \dots, N$, the *modified n-gram precision* pools the
counts over the whole corpus:

$$
p_n = \frac{\sum_{\text{sentences}} \sum_{g \in \text{n-grams(hyp)}} \min(\text{count}_{hyp}(g),
      \max_{\text{ref}} \text{count}_{ref}(g))}{\sum_{\text{sentences}} \#\text{n-grams(hyp)}}
$$

Each hypothesis n-gram counts at most as often as it occurs in the reference that has it most ("clipping"),
so "the the the the" does not score on "the cat". Short hypotheses are punished by the brevity penalty, with
$c$ the total hypothesis length and $r$ the sum, over sentences, of the reference length closest to the
hypothesis length (the shorter one on a tie):

$$
\text{BP} = 1 \text{ if } c > r \text{ else } e^{1 - r/c}, \qquad
\text{BLEU} = \text{BP} \cdot \exp\Big(\frac{1}{N} \sum_{n=1}^{N} \log p_n\Big)
$$

A single $p_n = 0$ makes BLEU 0. ``smooth=True`` adds 1 to the numerator and the denominator of $p_n$ for
$n \ge 2$ (Lin and Och, 2004), which keeps short or early-training outputs from all scoring 0.

The scores are fractions in [0, 1] (multiply by 100 for the usual reporting scale).
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from ..backend import to_numpy

__all__ = ["corpus_bleu", "accuracy", "token_accuracy", "precision_recall_f1", "exact_match"]


def _tokens(x, name: str) -> list:
    """A sentence as a list of tokens: a string is split on whitespace, a sequence is taken as is."""
    if isinstance(x, str):
        return x.split()
    if isinstance(x, (list, tuple)):
        return list(x)
    raise TypeError(f"{name}: got {type(x).__name__}; expected a string or a list of tokens")


def _references(refs, index: int) -> list[list]:
    """One hypothesis's references: a single reference (string / token list) or a list of them."""
    name = f"references[{index}]"
    if isinstance(refs, str):
        return [refs.split()]
    if isinstance(refs, (list, tuple)):
        if len(refs) == 0:
            raise ValueError(f"{name}: got an empty list; expected a reference or a list of references")
        if all(isinstance(r, (list, tuple, str)) for r in refs) and not all(isinstance(r, str) for r in refs):
            return [_tokens(r, name) for r in refs]  # several references, each a string or token list
        if all(isinstance(r, str) for r in refs) and any(" " in r for r in refs):
            return [r.split() for r in refs]  # several references given as strings
        return [list(refs)]  # one reference as a token list
    raise TypeError(f"{name}: got {type(refs).__name__}; expected a string, a token list or a list of them")


def _ngrams(tokens: list, n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(references: Sequence, hypotheses: Sequence, max_n: int = 4, smooth: bool = False) -> float:
    """Corpus-level BLEU of ``hypotheses`` against ``references``.

    Inputs:
        references: one entry per hypothesis: a reference (a string, split on whitespace, or a list of
            tokens) or a list of references
        hypotheses: the system outputs, each a string or a list of tokens
        max_n: the longest n-gram (4 for the standard BLEU-4)
        smooth: add-one smoothing of p_n for n >= 2

    Returns:
        BLEU as a float in [0, 1]
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"references: got {len(references)} entries; expected {len(hypotheses)} "
                         "(one per hypothesis)")
    if isinstance(max_n, bool) or not isinstance(max_n, int) or max_n < 1:
        raise ValueError(f"max_n: got {max_n!r}; expected a positive integer")
    matches = [0] * (max_n + 1)
    totals = [0] * (max_n + 1)
    hyp_length = ref_length = 0
    for index, (refs, hyp) in enumerate(zip(references, hypotheses, strict=True)):
        hyp = _tokens(hyp, f"hypotheses[{index}]")
        refs = _references(refs, index)
        hyp_length += len(hyp)
        # the reference length closest to the hypothesis length; the shorter one on a tie
        ref_length += min((abs(len(r) - len(hyp)), len(r)) for r in refs)[1]
        for n in range(1, max_n + 1):
            counts = _ngrams(hyp, n)
            most = Counter()
            for ref in refs:
                most |= _ngrams(ref, n)  # |: the elementwise max of the counts
            matches[n] += sum(min(count, most[gram]) for gram, count in counts.items())
            totals[n] += max(0, len(hyp) - n + 1)
    if hyp_length == 0:
        return 0.0
    log_sum = 0.0
    for n in range(1, max_n + 1):
        numerator, denominator = matches[n], totals[n]
        if smooth and n >= 2:
            numerator, denominator = numerator + 1, denominator + 1
        if numerator == 0:
            return 0.0
        log_sum += math.log(numerator / denominator)
    brevity = 1.0 if hyp_length > ref_length else math.exp(1.0 - ref_length / hyp_length)
    return brevity * math.exp(log_sum / max_n)


def _host_pair(pred, target):
    pred = np.asarray(to_numpy(pred) if hasattr(pred, "dtype") else pred)
    target = np.asarray(to_numpy(target) if hasattr(target, "dtype") else target)
    if pred.shape != target.shape:
        raise ValueError(f"pred: got shape {pred.shape}; expected {target.shape} (the shape of target)")
    return pred, target


def accuracy(pred, target) -> float:
    """Fraction of positions where ``pred == target`` (class ids of any shape; 0.0 for empty input)."""
    pred, target = _host_pair(pred, target)
    return float((pred == target).mean()) if pred.size else 0.0


def token_accuracy(pred, target, pad_id: int | None = None) -> float:
    """Fraction of the non-padding target tokens predicted right.

    Inputs:
        pred, target: integer token ids of the same shape, e.g. (B, T)
        pad_id: target positions holding this id are not counted (None: count all)
    """
    pred, target = _host_pair(pred, target)
    keep = np.ones(target.shape, dtype=bool) if pad_id is None else target != pad_id
    counted = int(keep.sum())
    return float((pred[keep] == target[keep]).sum() / counted) if counted else 0.0


def precision_recall_f1(pred, target, positive=1) -> tuple[float, float, float]:
    """Precision, recall and F1 of the class ``positive``.

    precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2 P R / (P + R); each is 0.0 when its
    denominator is 0.
    """
    pred, target = _host_pair(pred, target)
    predicted, actual = pred == positive, target == positive
    true_positive = int((predicted & actual).sum())
    precision = true_positive / int(predicted.sum()) if predicted.any() else 0.0
    recall = true_positive / int(actual.sum()) if actual.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return float(precision), float(recall), float(f1)


def exact_match(predictions: Sequence, targets: Sequence) -> float:
    """Fraction of predictions (strings or token sequences) exactly equal to their target."""
    if len(predictions) != len(targets):
        raise ValueError(f"predictions: got {len(predictions)}; expected {len(targets)} (one per target)")
    if len(targets) == 0:
        return 0.0
    same = sum(list(p) == list(t) if not isinstance(p, str) else p == t
               for p, t in zip(predictions, targets, strict=True))
    return same / len(targets)
