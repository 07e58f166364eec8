"""Sinusoidal positional encoding: the paper's formula, sin/cos parity, odd widths, offsets, bad input."""
import math

import numpy as np
import pytest

from numpy_transformer.functional.positional import (
    positional_encoding_backward,
    positional_encoding_forward,
    sinusoidal_table,
)
from numpy_transformer.gradcheck import gradcheck
from reference import DTYPES, assert_close


def paper_formula(max_len, d_model):
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d)), element by element."""
    table = np.zeros((max_len, d_model))
    for pos in range(max_len):
        for channel in range(d_model):
            i = channel // 2
            angle = pos / 10000 ** (2 * i / d_model)
            table[pos, channel] = math.sin(angle) if channel % 2 == 0 else math.cos(angle)
    return table


@pytest.mark.parametrize("d_model", [1, 6, 7, 16])
def test_table_matches_paper_formula(d_model):
    table = sinusoidal_table(13, d_model, dtype=np.float64)
    assert table.shape == (13, d_model) and table.dtype == np.float64
    np.testing.assert_allclose(table, paper_formula(13, d_model), rtol=0, atol=1e-12)


def test_table_matches_torch_formula(torch):
    # the usual torch construction: div_term = exp(arange(0, D, 2) * -(log(10000) / D))
    max_len, d_model = 50, 10
    position = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float64) * (-math.log(10000.0) / d_model))
    expected = torch.zeros(max_len, d_model, dtype=torch.float64)
    expected[:, 0::2] = torch.sin(position * div_term)
    expected[:, 1::2] = torch.cos(position * div_term)
    assert_close(sinusoidal_table(max_len, d_model, dtype=np.float64), expected, what="table")


def test_table_parity_and_dtype():
    table = sinusoidal_table(20, 9)
    assert table.dtype == np.float32
    # position 0: every sine is 0 and every cosine is 1
    np.testing.assert_array_equal(table[0, 0::2], 0)
    np.testing.assert_array_equal(table[0, 1::2], 1)
    # channel pair (0, 1) has frequency 1: sin(pos), cos(pos)
    positions = np.arange(20)
    np.testing.assert_allclose(table[:, 0], np.sin(positions), atol=1e-6)
    np.testing.assert_allclose(table[:, 1], np.cos(positions), atol=1e-6)
    # each (sin, cos) pair lies on the unit circle; the odd width leaves a final sine with no partner
    pairs = table[:, :8].astype(np.float64).reshape(20, 4, 2)
    np.testing.assert_allclose((pairs**2).sum(-1), 1, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("offset", [0, 3])
def test_positional_encoding_adds_rows_from_offset(rng, dtype, offset):
    table = sinusoidal_table(12, 5, dtype=dtype)
    x = rng.standard_normal((2, 4, 5)).astype(dtype)
    out, cache = positional_encoding_forward(x, table, offset=offset)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, x + table[offset:offset + 4][None])
    dout = rng.standard_normal(x.shape).astype(dtype)
    np.testing.assert_array_equal(positional_encoding_backward(dout, cache), dout)


@pytest.mark.parametrize("shape", [(3, 4, 5), (1, 1, 5)])
def test_positional_encoding_matches_finite_differences(rng, shape):
    table = sinusoidal_table(9, 5, dtype=np.float64)
    x = rng.standard_normal(shape)
    report = gradcheck(
        lambda x: positional_encoding_forward(x, table, offset=2),
        positional_encoding_backward,
        [x],
        names=["x"],
    )
    report.assert_ok()


def test_positional_encoding_exactly_full_table(rng):
    table = sinusoidal_table(6, 4, dtype=np.float64)
    x = rng.standard_normal((2, 4, 4))
    out, _ = positional_encoding_forward(x, table, offset=2)  # rows 2..5: the last row of the table
    np.testing.assert_array_equal(out, x + table[2:])


def test_positional_bad_input_names_argument(rng):
    table = sinusoidal_table(6, 4, dtype=np.float64)
    x = rng.standard_normal((2, 4, 4))
    with pytest.raises(ValueError, match="max_len"):
        positional_encoding_forward(x, table, offset=3)
    with pytest.raises(ValueError, match="max_len"):
        positional_encoding_forward(rng.standard_normal((2, 7, 4)), table)
    with pytest.raises(ValueError, match="offset"):
        positional_encoding_forward(x, table, offset=-1)
    with pytest.raises(ValueError, match="table"):
        positional_encoding_forward(rng.standard_normal((2, 4, 5)), table)
    with pytest.raises(TypeError, match="table"):
        positional_encoding_forward(x, table.astype(np.float32))
    with pytest.raises(ValueError, match="max_len"):
        sinusoidal_table(0, 4)
    with pytest.raises(ValueError, match="d_model"):
        sinusoidal_table(4, 0)
