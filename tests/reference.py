"""Helpers for tests that hold our results against PyTorch.

- :func:`require` imports an optional reference package or skips (fails under NT_REQUIRE_REFERENCES=1).
- :func:`to_torch` / :func:`from_torch` convert arrays, keeping the dtype.
- :func:`assert_close` compares with the tolerance of the dtype: float64 is tight, float32 loose.
- :data:`DTYPES` parametrizes a test over both.
"""
import importlib
import os

import numpy as np
import pytest

#: tolerances (rtol, atol) per dtype for comparisons against PyTorch
TOLERANCES = {
    np.dtype(np.float64): (1e-10, 1e-12),
    np.dtype(np.float32): (2e-4, 2e-5),
}

DTYPES = [np.float64, np.float32]


def references_required() -> bool:
    return os.environ.get("NT_REQUIRE_REFERENCES", "") not in ("", "0")


def require(module_name: str):
    """Import ``module_name`` or skip the test with a reason (fail when references are required)."""
    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        message = f"{module_name} is not installed ({error}); install the test extra: pip install -e .[test]"
        if references_required():
            pytest.fail("NT_REQUIRE_REFERENCES is set but " + message)
        pytest.skip(message)


def to_torch(array, requires_grad: bool = False):
    torch = require("torch")
    tensor = torch.tensor(np.asarray(array))
    if requires_grad:
        tensor.requires_grad_(True)
    return tensor


def from_torch(tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


def assert_close(ours, theirs, dtype=None, what: str = "", rtol=None, atol=None):
    """Compare an array of ours with a reference (NumPy array or torch tensor) at the dtype's tolerance."""
    if hasattr(theirs, "detach"):
        theirs = from_torch(theirs)
    ours = np.asarray(ours.get() if hasattr(ours, "get") else ours)
    dtype = np.dtype(dtype or ours.dtype)
    default_rtol, default_atol = TOLERANCES.get(dtype, (1e-3, 1e-4))
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs reference {theirs.shape}"
    # scale the absolute tolerance by the reference's magnitude, so large-valued tensors are not over-strict
    scale = max(1.0, float(np.max(np.abs(theirs))) if theirs.size else 1.0)
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol * scale, err_msg=what)


def assert_float16_close(ours, theirs, what: str = "") -> None:
    """A float16 array of ours against PyTorch's float16 tensor: both float16, finite and not all zero, and
    within two units in the last place of the reference's largest value (float16 keeps 11 significant bits)."""
    theirs = from_torch(theirs)
    assert ours.dtype == theirs.dtype == np.float16, what
    assert np.isfinite(ours).all() and np.abs(ours).max() > 0, what
    atol = 2 * float(np.spacing(np.abs(theirs).max()))
    np.testing.assert_allclose(ours.astype(np.float64), theirs.astype(np.float64), rtol=0, atol=atol, err_msg=what)
