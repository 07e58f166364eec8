"""Optimizers, schedules and clipping against torch.optim: same parameters, same gradients, many steps."""
import math

import numpy as np
import pytest

from numpy_transformer.nn import Parameter
from numpy_transformer.optim import (
    SGD,
    Adam,
    AdamW,
    LambdaLR,
    clip_grad_norm_,
    warmup_cosine,
    warmup_inverse_sqrt,
    warmup_linear_decay,
)
from reference import to_torch

SHAPES = [(3, 4), (4,), (2, 3, 2)]  # a weight, a bias, a higher-rank array
STEPS = 20


def _twins(rng, dtype=np.float64):
    values = [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]
    ours = [Parameter(v.copy()) for v in values]
    theirs = [to_torch(v.copy(), requires_grad=True) for v in values]
    return ours, theirs


def _run(rng, torch, make_ours, make_theirs, steps=STEPS, dtype=np.float64):
    """Apply the same gradient sequence to both and compare every parameter after every step."""
    ours, theirs = _twins(rng, dtype)
    optimizer, reference = make_ours(ours), make_theirs(theirs)
    for _ in range(steps):
        for p, t in zip(ours, theirs, strict=True):
            grad = rng.standard_normal(p.shape).astype(dtype)
            p.grad = grad.copy()
            t.grad = to_torch(grad.copy())
        optimizer.step()
        reference.step()
        for p, t in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-10, atol=1e-13)
    return optimizer, ours


def test_sgd_momentum_nesterov_weight_decay_matches_torch(rng, torch):
    _run(rng, torch, lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
         lambda ts: torch.optim.SGD(ts, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01))


def test_sgd_momentum_with_dampening_matches_torch(rng, torch):
    _run(rng, torch, lambda ps: SGD(ps, lr=0.05, momentum=0.8, dampening=0.3),
         lambda ts: torch.optim.SGD(ts, lr=0.05, momentum=0.8, dampening=0.3))


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_matches_torch(rng, torch, amsgrad):
    _run(rng, torch, lambda ps: Adam(ps, lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=amsgrad),
         lambda ts: torch.optim.Adam(ts, lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=amsgrad))


def test_adamw_param_groups_without_decay_on_biases_match_torch(rng, torch):
    def groups(params):
        return [{"params": [params[0], params[2]], "weight_decay": 0.1},
                {"params": [params[1]], "weight_decay": 0.0, "lr": 0.02}]

    optimizer, _ = _run(rng, torch, lambda ps: AdamW(groups(ps), lr=0.01),
                        lambda ts: torch.optim.AdamW(groups(ts), lr=0.01))
    assert optimizer.step_count == STEPS


def test_float32_stays_float32(rng):
    params = [Parameter(rng.standard_normal((3, 2)).astype(np.float32))]
    for optimizer in (SGD(params, lr=0.1, momentum=0.9), Adam(params), AdamW(params)):
        params[0].grad = rng.standard_normal((3, 2)).astype(np.float32)
        optimizer.step()
        assert params[0].data.dtype == np.float32
        assert all(v.dtype == np.float32 for v in optimizer.state[0].values())


def test_skips_missing_gradients_and_frozen_parameters(rng):
    a, b = Parameter(np.ones(2)), Parameter(np.ones(2), requires_grad=False)
    c = Parameter(np.ones(2))
    b.grad = np.ones(2)
    a.grad = np.ones(2)
    optimizer = Adam([a, b, c], lr=0.1)
    optimizer.step()
    assert not np.array_equal(a.data, np.ones(2))
    np.testing.assert_array_equal(b.data, np.ones(2))
    np.testing.assert_array_equal(c.data, np.ones(2))
    assert set(optimizer.state) == {0}
    optimizer.zero_grad()
    assert a.grad is None and b.grad is None


def test_state_dict_resume_continues_identically(rng):
    values = [rng.standard_normal(s) for s in SHAPES]
    grads = [[rng.standard_normal(s) for s in SHAPES] for _ in range(10)]

    def train(params, optimizer, steps):
        for step in steps:
            for p, g in zip(params, grads[step], strict=True):
                p.grad = g.copy()
            optimizer.step()

    straight = [Parameter(v.copy()) for v in values]
    train(straight, AdamW(straight, lr=0.01), range(10))
    first = [Parameter(v.copy()) for v in values]
    optimizer = AdamW(first, lr=0.01)
    train(first, optimizer, range(5))
    saved = optimizer.state_dict()
    resumed = [Parameter(p.data.copy()) for p in first]
    fresh = AdamW(resumed, lr=0.5)
    fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["lr"] == 0.01 and fresh.step_count == 5
    train(resumed, fresh, range(5, 10))
    for p, q in zip(straight, resumed, strict=True):
        np.testing.assert_array_equal(p.data, q.data)


def test_load_state_dict_checks_everything_first(rng):
    params = [Parameter(rng.standard_normal(s)) for s in SHAPES]
    optimizer = SGD(params, lr=0.1, momentum=0.9)
    for p in params:
        p.grad = np.ones(p.shape)
    optimizer.step()
    saved = optimizer.state_dict()
    saved["state"][0]["momentum_buffer"] = np.zeros((5, 5))
    saved["state"][1]["bogus"] = np.zeros(4)
    before = {k: {n: v.copy() for n, v in e.items()} for k, e in optimizer.state.items()}
    with pytest.raises(ValueError) as error:
        optimizer.load_state_dict(saved)
    assert "state[0].momentum_buffer: got shape (5, 5)" in str(error.value) and "state[1].bogus" in str(error.value)
    for key, entries in before.items():
        np.testing.assert_array_equal(optimizer.state[key]["momentum_buffer"], entries["momentum_buffer"])


def test_bad_arguments_name_themselves():
    params = [Parameter(np.ones(2))]
    with pytest.raises(ValueError, match="lr"):
        SGD(params, lr=-1.0)
    with pytest.raises(ValueError, match="nesterov"):
        SGD(params, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        Adam(params, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="params"):
        Adam([])
    with pytest.raises(ValueError, match="params"):
        Adam([{"params": params}, {"params": params}])
    with pytest.raises(ValueError, match="momentun"):
        SGD([{"params": params, "momentun": 0.9}], lr=0.1)


# ------------------------------------------------------------------------------------------- schedules
def _schedule_pair(torch, ours_factory, theirs_factory, steps=40):
    ours_opt = SGD([Parameter(np.ones(2)), Parameter(np.ones(1))], lr=0.5)
    param = torch.nn.Parameter(torch.ones(2))
    theirs_opt = torch.optim.SGD([param], lr=0.5)
    ours, theirs = ours_factory(ours_opt), theirs_factory(theirs_opt)
    for _ in range(steps):
        np.testing.assert_allclose(ours.get_last_lr()[0], theirs.get_last_lr()[0], rtol=1e-12, atol=1e-15)
        assert ours_opt.param_groups[0]["lr"] == ours.get_last_lr()[0]
        ours_opt.step()
        theirs_opt.step()
        ours.step()
        theirs.step()


def test_lambda_lr_matches_torch(torch):
    rule = lambda step: 0.95**step  # noqa: E731
    _schedule_pair(torch, lambda o: LambdaLR(o, rule), lambda o: torch.optim.lr_scheduler.LambdaLR(o, rule))


def test_warmup_inverse_sqrt_is_the_papers_formula(torch):
    d_model, warmup = 16, 5

    def paper(step):
        n = step + 1
        return d_model**-0.5 * min(n**-0.5, n * warmup**-1.5)

    _schedule_pair(torch, lambda o: warmup_inverse_sqrt(o, d_model, warmup),
                   lambda o: torch.optim.lr_scheduler.LambdaLR(o, paper))
    optimizer = SGD([Parameter(np.ones(1))], lr=1.0)
    schedule = warmup_inverse_sqrt(optimizer, d_model, warmup)
    rates = []
    for _ in range(12):
        rates.append(schedule.get_last_lr()[0])
        schedule.step()
    assert np.argmax(rates) == warmup - 1  # peak at update n = warmup
    np.testing.assert_allclose(max(rates), (d_model * warmup) ** -0.5)


def test_warmup_schedules_match_transformers(torch):
    transformers = pytest.importorskip("transformers")
    _schedule_pair(torch, lambda o: warmup_linear_decay(o, 7, 30),
                   lambda o: transformers.get_linear_schedule_with_warmup(o, 7, 30))
    _schedule_pair(torch, lambda o: warmup_cosine(o, 7, 30),
                   lambda o: transformers.get_cosine_schedule_with_warmup(o, 7, 30))


def test_cosine_without_warmup_matches_cosine_annealing(torch):
    _schedule_pair(torch, lambda o: warmup_cosine(o, 0, 25),
                   lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=25), steps=25)


def test_schedule_state_round_trip():
    optimizer = SGD([Parameter(np.ones(1))], lr=0.3)
    schedule = warmup_linear_decay(optimizer, 3, 10)
    for _ in range(4):
        schedule.step()
    state = schedule.state_dict()
    other_optimizer = SGD([Parameter(np.ones(1))], lr=0.3)
    other = warmup_linear_decay(other_optimizer, 3, 10)
    other.load_state_dict(state)
    other.step()
    schedule.step()
    assert other.get_last_lr() == schedule.get_last_lr()


# ------------------------------------------------------------------------------------------- clipping
@pytest.mark.parametrize("norm_type, max_norm", [(2.0, 1.0), (2.0, 100.0), (1.0, 0.5), (math.inf, 0.3), (3.0, 0.7)])
def test_clip_grad_norm_matches_torch(rng, torch, norm_type, max_norm):
    grads = [rng.standard_normal(s) for s in SHAPES]
    ours = [Parameter(np.zeros(s)) for s in SHAPES] + [Parameter(np.zeros(2))]  # the last has no gradient
    for p, g in zip(ours[:-1], grads, strict=True):
        p.grad = g.copy()
    theirs = [to_torch(np.zeros(s), requires_grad=True) for s in SHAPES]
    for t, g in zip(theirs, grads, strict=True):
        t.grad = to_torch(g.copy())
    total = clip_grad_norm_(ours, max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    np.testing.assert_allclose(total, expected.item(), rtol=1e-12)
    for p, t in zip(ours[:-1], theirs, strict=True):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-12)
    assert ours[-1].grad is None


def test_clip_keeps_dtype_and_handles_no_gradients(rng):
    param = Parameter(np.zeros(3, dtype=np.float32))
    param.grad = np.full(3, 10.0, dtype=np.float32)
    clip_grad_norm_(param, 1.0)
    assert param.grad.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(param.grad), 1.0, rtol=1e-5)
    assert float(clip_grad_norm_([Parameter(np.zeros(2))], 1.0)) == 0.0
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm_(param, -1.0)
