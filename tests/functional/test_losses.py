"""Cross-entropy: finite differences, PyTorch (float64 tight, float32 loose), extreme logits, bad input."""
import numpy as np
import pytest

from numpy_transformer.functional.losses import cross_entropy_backward, cross_entropy_forward
from numpy_transformer.gradcheck import gradcheck
from reference import DTYPES, assert_close, to_torch

IGNORE = -100


def make_targets(rng, shape, vocab, ignore_index=IGNORE, ignored=True):
    """Random class indices of ``shape``; with ``ignored`` the first position and about a quarter more are ignored."""
    targets = rng.integers(0, vocab, size=shape)
    if ignored:
        flat = targets.reshape(-1)
        flat[rng.random(flat.size) < 0.25] = ignore_index
        flat[0] = ignore_index
        flat[-1] = rng.integers(0, vocab)  # at least one target counts
    return targets


# (logits shape, label smoothing)
CASES = [((4, 5), 0.0), ((4, 5), 0.1), ((2, 3, 7), 0.0), ((2, 3, 7), 0.1), ((1, 6), 0.1), ((1, 1, 3), 0.0)]


@pytest.mark.parametrize("shape, smoothing", CASES)
def test_cross_entropy_matches_finite_differences(rng, shape, smoothing):
    logits = rng.standard_normal(shape) * 2 + 0.5
    targets = make_targets(rng, shape[:-1], shape[-1], ignored=len(shape) > 2 or shape[0] > 1)
    report = gradcheck(
        cross_entropy_forward,
        cross_entropy_backward,
        [logits, targets],
        names=["logits", "targets"],
        kwargs={"ignore_index": IGNORE, "label_smoothing": smoothing},
    )
    report.assert_ok()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, smoothing", CASES)
def test_cross_entropy_matches_torch(rng, torch, dtype, shape, smoothing):
    vocab = shape[-1]
    logits = (rng.standard_normal(shape) * 3).astype(dtype)
    targets = make_targets(rng, shape[:-1], vocab, ignored=len(shape) > 2 or shape[0] > 1)
    dloss = dtype(1.7)

    loss, cache = cross_entropy_forward(logits, targets, ignore_index=IGNORE, label_smoothing=smoothing)
    dlogits = cross_entropy_backward(dloss, cache)

    tlogits = to_torch(logits, requires_grad=True)
    tloss = torch.nn.functional.cross_entropy(
        tlogits.reshape(-1, vocab), to_torch(targets).reshape(-1), ignore_index=IGNORE, label_smoothing=smoothing
    )
    tloss.backward(to_torch(np.asarray(dloss)))
    assert loss.shape == () and loss.dtype == dlogits.dtype == np.dtype(dtype)
    assert_close(loss, tloss, what="loss")
    assert_close(dlogits, tlogits.grad, what="dlogits")


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_cross_entropy_other_ignore_index_matches_torch(rng, torch, smoothing):
    # ignore_index may be an ordinary class: those positions are skipped, the class still gets gradient
    logits = rng.standard_normal((3, 4, 5))
    targets = rng.integers(0, 5, size=(3, 4))
    targets[0, 0] = 2
    loss, cache = cross_entropy_forward(logits, targets, ignore_index=2, label_smoothing=smoothing)
    dlogits = cross_entropy_backward(1.0, cache)
    tlogits = to_torch(logits, requires_grad=True)
    tloss = torch.nn.functional.cross_entropy(
        tlogits.reshape(-1, 5), to_torch(targets).reshape(-1), ignore_index=2, label_smoothing=smoothing
    )
    tloss.backward()
    assert_close(loss, tloss, what="loss")
    assert_close(dlogits, tlogits.grad, what="dlogits")
    assert (dlogits[targets == 2] == 0).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_extreme_logits_stay_finite(rng, torch, dtype):
    logits = (np.sign(rng.standard_normal((3, 6))) * 1e4).astype(dtype)
    logits[:, 0] = 1e4
    targets = np.array([0, 3, IGNORE])
    for smoothing in (0.0, 0.1):
        loss, cache = cross_entropy_forward(logits, targets, label_smoothing=smoothing)
        dlogits = cross_entropy_backward(np.float64(1.0), cache)  # a float64 upstream does not upcast
        assert loss.dtype == dlogits.dtype == np.dtype(dtype)
        assert np.isfinite(loss) and np.isfinite(dlogits).all()
        tlogits = to_torch(logits, requires_grad=True)
        tloss = torch.nn.functional.cross_entropy(tlogits, to_torch(targets), label_smoothing=smoothing)
        tloss.backward()
        assert_close(loss, tloss, what="loss")
        assert_close(dlogits, tlogits.grad, what="dlogits")


def test_cross_entropy_every_target_ignored_gives_zero(rng):
    # torch returns nan here (0 / 0); a batch of pure padding gives loss 0 and gradient 0 instead
    logits = rng.standard_normal((2, 3, 4))
    targets = np.full((2, 3), IGNORE)
    for smoothing in (0.0, 0.2):
        loss, cache = cross_entropy_forward(logits, targets, label_smoothing=smoothing)
        dlogits = cross_entropy_backward(1.0, cache)
        assert loss == 0.0
        assert dlogits.shape == logits.shape and (dlogits == 0).all()


def test_cross_entropy_by_hand():
    # uniform logits over V classes: loss = log V whatever the smoothing; the gradient is (p - q) / n
    logits = np.zeros((2, 4))
    targets = np.array([1, 3])
    loss, cache = cross_entropy_forward(logits, targets, label_smoothing=0.2)
    np.testing.assert_allclose(loss, np.log(4.0), rtol=1e-14)
    expected = np.full((2, 4), 0.25 - 0.2 / 4)
    expected[[0, 1], [1, 3]] -= 0.8
    np.testing.assert_allclose(cross_entropy_backward(1.0, cache), expected / 2, rtol=1e-14)


def test_cross_entropy_bad_input_names_argument(rng):
    logits = rng.standard_normal((2, 3, 5))
    targets = rng.integers(0, 5, size=(2, 3))
    bad = targets.copy()
    bad[1, 2] = 5
    with pytest.raises(ValueError, match=r"targets.*\b5\b.*V = logits.shape\[-1\] = 5"):
        cross_entropy_forward(logits, bad)
    bad[1, 2] = -1
    with pytest.raises(ValueError, match=r"targets.*-1"):
        cross_entropy_forward(logits, bad)
    with pytest.raises(TypeError, match="targets"):
        cross_entropy_forward(logits, targets.astype(np.float64))
    with pytest.raises(ValueError, match="targets"):
        cross_entropy_forward(logits, targets[:, :2])
    with pytest.raises(ValueError, match="targets"):
        cross_entropy_forward(logits, targets.reshape(-1))
    with pytest.raises(TypeError, match="logits"):
        cross_entropy_forward(logits.astype(np.int64), targets)
    with pytest.raises(ValueError, match="label_smoothing"):
        cross_entropy_forward(logits, targets, label_smoothing=1.5)
    with pytest.raises(TypeError, match="ignore_index"):
        cross_entropy_forward(logits, targets, ignore_index=0.5)
