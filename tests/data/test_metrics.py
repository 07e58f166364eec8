"""BLEU against counts worked out by hand, and the classification metrics."""
import math

import numpy as np
import pytest

from numpy_transformer.data.metrics import accuracy, corpus_bleu, exact_match, precision_recall_f1, token_accuracy
from reference import require

# Two sentences whose n-gram counts are worked out below.
HYPOTHESES = ["the cat the cat on the mat", "a dog runs fast"]
REFERENCES = [["the cat is on the mat"], ["the dog runs fast", "a dog runs quickly today"]]
# Sentence 1 (hyp 7 tokens, ref 6):
#   1-grams: the x3 (ref has 2), cat x2 (ref 1), on, mat      -> clipped 2+1+1+1 = 5 of 7
#   2-grams: the cat x2 (ref 1), cat the, cat on, on the, the mat -> 1+1+1 = 3 of 6
#   3-grams: the cat the, cat the cat, the cat on, cat on the, on the mat -> 1 of 5
#   4-grams: the cat the cat, cat the cat on, the cat on the, cat on the mat -> 0 of 4
# Sentence 2 (hyp 4 tokens; refs 4 and 5: the closest length is 4), clipped by the max over references:
#   1-grams: a, dog, runs, fast -> 4 of 4;  2-grams: a dog, dog runs, runs fast -> 3 of 3
#   3-grams: a dog runs, dog runs fast -> 2 of 2;  4-grams: a dog runs fast -> 0 of 1
MATCHES = {1: 5 + 4, 2: 3 + 3, 3: 1 + 2, 4: 0 + 0}
TOTALS = {1: 7 + 4, 2: 6 + 3, 3: 5 + 2, 4: 4 + 1}
# hypothesis length c = 11 > reference length r = 6 + 4 = 10, so the brevity penalty is 1


def test_bleu_matches_the_hand_worked_counts():
    expected = math.exp(sum(math.log(MATCHES[n] / TOTALS[n]) for n in (1, 2, 3)) / 3)
    assert corpus_bleu(REFERENCES, HYPOTHESES, max_n=3) == pytest.approx(expected, rel=1e-12)
    assert corpus_bleu(REFERENCES, HYPOTHESES, max_n=4) == 0.0  # no 4-gram matches at all


def test_bleu_smoothing_adds_one_from_bigrams_on():
    logs = [math.log(MATCHES[1] / TOTALS[1])] + [math.log((MATCHES[n] + 1) / (TOTALS[n] + 1)) for n in (2, 3, 4)]
    expected = math.exp(sum(logs) / 4)
    assert corpus_bleu(REFERENCES, HYPOTHESES, smooth=True) == pytest.approx(expected, rel=1e-12)


def test_bleu_brevity_penalty_and_tie_rule():
    # c = 2, r = 6, every n-gram matches: BLEU = exp(1 - 6/2)
    assert corpus_bleu(["the cat is on the mat"], ["the cat"], max_n=2) == pytest.approx(math.exp(-2.0))
    # references of length 4 and 6 are equally close to a hypothesis of 5: the shorter counts, so no penalty
    assert corpus_bleu([["a b c d", "a b c d e f"]], ["a b c d e"], max_n=1) == pytest.approx(1.0)
    # with only the longer reference the penalty is exp(1 - 6/5)
    assert corpus_bleu([["a b c d e f"]], ["a b c d e"], max_n=1) == pytest.approx(math.exp(1 - 6 / 5))


def test_bleu_input_forms_agree_and_perfect_is_one():
    tokens_refs = [[r.split() for r in refs] for refs in REFERENCES]
    tokens_hyps = [h.split() for h in HYPOTHESES]
    assert corpus_bleu(tokens_refs, tokens_hyps, max_n=3) == corpus_bleu(REFERENCES, HYPOTHESES, max_n=3)
    assert corpus_bleu([["le", "chien", "dort", "bien"]], [["le", "chien", "dort", "bien"]]) == 1.0
    assert corpus_bleu(["x"], [""]) == 0.0
    with pytest.raises(ValueError, match="references"):
        corpus_bleu(REFERENCES, HYPOTHESES[:1])


def test_bleu_against_nltk():
    nltk_bleu = require("nltk.translate.bleu_score")
    refs = [[r.split() for r in refs] for refs in REFERENCES]
    hyps = [h.split() for h in HYPOTHESES]
    weights = (1 / 3, 1 / 3, 1 / 3)
    assert corpus_bleu(refs, hyps, max_n=3) == pytest.approx(nltk_bleu.corpus_bleu(refs, hyps, weights=weights))


def test_accuracy_and_token_accuracy():
    pred = np.array([[1, 2, 3, 0], [4, 4, 0, 0]])
    target = np.array([[1, 2, 4, 0], [4, 5, 0, 0]])  # 0 is padding
    assert accuracy(pred, target) == pytest.approx(6 / 8)
    assert token_accuracy(pred, target, pad_id=0) == pytest.approx(3 / 5)
    assert token_accuracy(pred, target) == pytest.approx(6 / 8)
    with pytest.raises(ValueError, match="pred"):
        accuracy(pred[:1], target)


def test_precision_recall_f1():
    pred = np.array([1, 1, 1, 0, 0, 1])
    target = np.array([1, 0, 1, 1, 0, 0])
    # TP = 2 (positions 0, 2), FP = 2 (1, 5), FN = 1 (3)
    p, r, f1 = precision_recall_f1(pred, target)
    assert (p, r) == (pytest.approx(2 / 4), pytest.approx(2 / 3))
    assert f1 == pytest.approx(2 * (1 / 2) * (2 / 3) / (1 / 2 + 2 / 3))
    p0, r0, _ = precision_recall_f1(pred, target, positive=0)
    assert (p0, r0) == (pytest.approx(1 / 2), pytest.approx(1 / 3))
    assert precision_recall_f1(np.zeros(3), np.zeros(3)) == (0.0, 0.0, 0.0)


def test_exact_match():
    assert exact_match(["le chien dort", "la voiture"], ["le chien dort", "la voiture rouge"]) == 0.5
    assert exact_match([[1, 2], np.array([3])], [[1, 2], [3]]) == 1.0
