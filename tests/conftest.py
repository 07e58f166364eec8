"""Shared fixtures for the test suite.

Reference checks need PyTorch (and, for the pretrained model, `transformers` and the checkpoint package).
Where those are absent the tests skip with a reason, unless the environment variable
``NT_REQUIRE_REFERENCES=1`` is set (as `.ci/run` does): then a missing reference is a failure, so a CI run
proves that every reference check really ran.
"""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))


def pytest_addoption(parser):
    parser.addoption(
        "--backend",
        action="store",
        default="numpy",
        choices=("numpy", "cupy"),
        help="array backend for the reference tests: numpy (CPU) or cupy (GPU, needs CuPy and a GPU)",
    )


@pytest.fixture
def rng():
    """A fresh, seeded NumPy Generator for each test."""
    return np.random.default_rng(1234)


@pytest.fixture
def torch():
    """The torch module, or a skip (a failure under NT_REQUIRE_REFERENCES=1) when it is not installed."""
    from reference import require

    return require("torch")


@pytest.fixture
def plain_torch(torch):
    """torch with its fused fast path off, so it computes attention the plain way."""
    if hasattr(torch.backends, "mha"):
        previous = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)
        yield torch
        torch.backends.mha.set_fastpath_enabled(previous)
    else:  # pragma: no cover - older torch
        yield torch
