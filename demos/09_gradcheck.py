"""09 -- Gradient checking: proving a hand-written backward pass right (or catching it wrong).

Every layer in this library has a backward pass written by hand, and a backward pass can be wrong in ways
that still train a little. A gradient check compares it with the definition of the derivative: nudge one
number of the input by +eps and -eps, run the forward pass twice, and the slope

    (L(x + eps) - L(x - eps)) / (2 eps)

must match what backward says, for every number of every input and parameter (in float64, to about 1e-9).

Here we write a layer from scratch -- RMSNorm, the normalization of LLaMA-style models,
``y = g * x / sqrt(mean(x^2) + eps)`` -- with forward, backward and named_parameters, and check it with
``numpy_transformer.gradcheck.gradcheck_module``. Then we break its backward the way people usually do
(forgetting that the normalizer depends on x too) and watch the check catch it.
"""
import numpy as np
from _common import done, save, section, setup

from numpy_transformer.gradcheck import gradcheck_module

args = setup("09_gradcheck", "check a hand-written backward pass against finite differences")
rng = np.random.default_rng(args.seed)


class Parameter:
    """The least a parameter needs: its value, its gradient, and whether it is trained."""

    def __init__(self, data):
        self.data = data
        self.grad = None
        self.requires_grad = True


class RMSNorm:
    """y = g * x * r with r = 1 / sqrt(mean(x^2) + eps), over the last axis.

    Backward, with xhat = x * r and upstream gradient dy:
        dg = sum over rows of dy * xhat
        dxhat = dy * g
        dx = r * (dxhat - xhat * mean(dxhat * xhat))      (r depends on x: that is the second term)
    """

    def __init__(self, width, eps=1e-6):
        self.weight = Parameter(1.0 + 0.1 * rng.standard_normal(width))  # (D,), random so that bugs show
        self.eps = eps

    def named_parameters(self):
        yield "weight", self.weight

    def forward(self, x):
        r = 1.0 / np.sqrt((x * x).mean(axis=-1, keepdims=True) + self.eps)  # (..., 1)
        xhat = x * r                                                          # (..., D)
        self.cache = (xhat, r)
        return xhat * self.weight.data                                        # (..., D)

    def backward(self, dy):
        xhat, r = self.cache
        # forward: y = xhat * g
        dweight = (dy * xhat).reshape(-1, xhat.shape[-1]).sum(axis=0)         # (..., D) -> (D,)
        dxhat = dy * self.weight.data                                         # (..., D)
        # forward: xhat = x * r, r = (mean(x^2) + eps)^(-1/2)
        dx = r * (dxhat - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
        self.weight.grad = dweight if self.weight.grad is None else self.weight.grad + dweight  # accumulate
        return dx


class BrokenRMSNorm(RMSNorm):
    """The same layer with a classic mistake: r treated as a constant in the backward pass."""

    def backward(self, dy):
        xhat, r = self.cache
        dweight = (dy * xhat).reshape(-1, xhat.shape[-1]).sum(axis=0)
        dx = r * (dy * self.weight.data)  # WRONG: misses the path through r = r(x)
        self.weight.grad = dweight if self.weight.grad is None else self.weight.grad + dweight
        return dx


B, T, D = (2, 3, 5) if args.quick else (3, 4, 7)
x = rng.standard_normal((B, T, D))  # float64: finite differences need the precision

section("1. a correct backward")
layer = RMSNorm(D)
report = gradcheck_module(layer, [x], input_names=["x"])
print(f"  gradcheck_module(RMSNorm({D}), x of shape {x.shape}):")
print("  " + str(report).replace("\n", "\n  "))
print(f"  passed: {report.ok}")

section("2. a broken backward")
broken = BrokenRMSNorm(D)
broken.weight.data = layer.weight.data.copy()
broken_report = gradcheck_module(broken, [x], input_names=["x"])
print("  " + str(broken_report).replace("\n", "\n  "))
print(f"  passed: {broken_report.ok}  <- the gradient of x is wrong, the weight's is right: the table says which")
try:
    broken_report.assert_ok()
except AssertionError as error:
    message = str(error).replace("\n", "\n    | ")
    print(f"  report.assert_ok() raises AssertionError, as a test would, with the message:\n    | {message}")

print(f"\nresult: correct layer max error {report.max_error:.2e} (ok: {report.ok}); "
      f"broken layer max error {broken_report.max_error:.2e} (ok: {broken_report.ok})")

section("pictures")
import matplotlib.pyplot as plt  # noqa: E402

names = list(report.errors)
positions = np.arange(len(names))
fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
ax.bar(positions - 0.2, [max(report.errors[n], 1e-16) for n in names], width=0.4, label="correct backward")
ax.bar(positions + 0.2, [max(broken_report.errors[n], 1e-16) for n in names], width=0.4,
       label="broken backward (r treated as constant)", color="C3")
ax.axhline(report.tol, color="black", linestyle="--", linewidth=1, label=f"tolerance {report.tol:.0e}")
ax.set_yscale("log")
ax.set_xticks(positions, [f"d{n}" for n in names])
ax.set_xlabel("gradient")
ax.set_ylabel("worst relative error vs finite differences")
ax.set_title("Gradient check of a hand-written RMSNorm")
ax.legend(fontsize=8, loc="upper right")
save(fig, args.out, "gradcheck_errors.png")
plt.close(fig)
done(args.out)
