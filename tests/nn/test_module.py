"""Parameter, Module and ModuleList: registration, state_dict keys as torch's, all-or-nothing loading, modes."""
import numpy as np
import pytest

from numpy_transformer.nn import Embedding, LayerNorm, Linear, Module, ModuleList, Parameter


class Block(Module):
    """Two linears and a norm, with a buffer: enough tree to check keys, order and traversal."""

    def __init__(self):
        super().__init__()
        self.linear1 = Linear(3, 4, rng=0)
        self.norm = LayerNorm(4)
        self.layers = ModuleList([Linear(4, 4, rng=1), Linear(4, 2, bias=False, rng=2)])
        self.register_buffer("counts", np.arange(3, dtype=np.int64))
        self.register_buffer("table", np.ones(2, dtype=np.float32), persistent=False)


def torch_block(torch):
    class TorchBlock(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear1 = torch.nn.Linear(3, 4)
            self.norm = torch.nn.LayerNorm(4)
            self.layers = torch.nn.ModuleList([torch.nn.Linear(4, 4), torch.nn.Linear(4, 2, bias=False)])
            self.register_buffer("counts", torch.arange(3))
            self.register_buffer("table", torch.ones(2), persistent=False)

    return TorchBlock()


def test_keys_and_order_match_torch(torch):
    ours, theirs = Block(), torch_block(torch)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert ours.num_parameters() == sum(p.numel() for p in theirs.parameters())


def test_weights_round_trip_torch_here_torch(torch):
    ours, theirs = Block(), torch_block(torch)
    with torch.no_grad():
        for p in theirs.parameters():
            p.normal_()
    ours.load_state_dict(theirs.state_dict())  # torch tensors are accepted directly
    back = torch_block(torch)
    back.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    for key, value in theirs.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key
    assert ours.layers[0].weight.dtype == np.float32  # cast to the parameter's dtype


def test_state_dict_is_a_copy():
    block = Block()
    state = block.state_dict()
    state["linear1.weight"][...] = 7
    assert not np.any(block.linear1.weight.data == 7)


def test_load_errors_name_every_bad_key_and_change_nothing(rng):
    block = Block()
    before = block.state_dict()
    state = block.state_dict()
    del state["norm.bias"]
    del state["counts"]
    state["layers.5.weight"] = np.zeros(3)
    state["linear1.weight"] = np.zeros((4, 4))
    state["layers.0.bias"] = rng.standard_normal(4)  # a good entry: must not be written either
    with pytest.raises(ValueError) as error:
        block.load_state_dict(state)
    message = str(error.value)
    for expected in ("missing key: norm.bias", "missing key: counts", "unexpected key: layers.5.weight",
                     "linear1.weight: got shape (4, 4); expected (4, 3)"):
        assert expected in message
    for key, value in block.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_non_strict_load_reports_keys_but_checks_shapes():
    block = Block()
    state = {"norm.weight": np.full(4, 2.0), "extra": np.zeros(1)}
    result = block.load_state_dict(state, strict=False)
    assert "norm.bias" in result.missing_keys and result.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(block.norm.weight.data, np.full(4, 2.0, dtype=np.float32))
    with pytest.raises(ValueError, match="norm.weight"):
        block.load_state_dict({"norm.weight": np.ones(5)}, strict=False)


def test_tied_parameter_is_listed_once_saved_twice_and_sums_gradients(rng):
    class Tied(Module):
        def __init__(self):
            super().__init__()
            self.embed = Embedding(5, 3, rng=0)
            self.head = Linear(3, 5, bias=False, rng=0)
            self.head.weight = self.embed.weight

    model = Tied().to_dtype(np.float64)
    assert [n for n, _ in model.named_parameters()] == ["embed.weight"]
    assert list(model.state_dict()) == ["embed.weight", "head.weight"]
    ids = np.array([[1, 4]])
    hidden = model.embed(ids)
    model.head(hidden)
    dlogits = rng.standard_normal((1, 2, 5))
    model.embed.backward(model.head.backward(dlogits))
    expected = dlogits.reshape(-1, 5).T @ hidden.reshape(-1, 3)
    np.add.at(expected, ids.reshape(-1), (dlogits @ model.head.weight.data).reshape(-1, 3))
    np.testing.assert_allclose(model.embed.weight.grad, expected, rtol=1e-12)


def test_train_eval_freeze_zero_grad_are_recursive():
    block = Block()
    block.eval()
    assert not any(m.training for m in block.modules())
    block.train()
    assert all(m.training for m in block.modules())
    block.freeze()
    assert not any(p.requires_grad for p in block.parameters())
    assert block.num_parameters(trainable_only=True) == 0
    block.unfreeze()
    for p in block.parameters():
        p.accumulate_grad(np.ones(p.shape, dtype=p.dtype))
    block.zero_grad()
    assert all(p.grad is None for p in block.parameters())


def test_to_dtype_casts_parameters_grads_and_float_buffers():
    block = Block()
    block.linear1.weight.accumulate_grad(np.ones((4, 3), dtype=np.float32))
    block.to_dtype(np.float64)
    assert all(p.dtype == np.float64 for p in block.parameters())
    assert block.linear1.weight.grad.dtype == np.float64
    assert block.table.dtype == np.float64 and block.counts.dtype == np.int64
    with pytest.raises(TypeError, match="dtype"):
        block.to_dtype(np.int32)


def test_to_cpu_keeps_numpy_and_rejects_unknown_devices():
    block = Block().to("cpu")
    assert isinstance(block.linear1.weight.data, np.ndarray)
    with pytest.raises(ValueError, match="device"):
        block.to("tpu")


def test_parameter_accumulates_a_copy_and_checks_shape():
    param = Parameter(np.zeros(3))
    grad = np.ones(3)
    param.accumulate_grad(grad)
    param.accumulate_grad(grad)
    np.testing.assert_array_equal(param.grad, [2, 2, 2])
    np.testing.assert_array_equal(grad, [1, 1, 1])
    with pytest.raises(ValueError, match="grad"):
        param.accumulate_grad(np.ones(4))
    with pytest.raises(TypeError, match="data"):
        Parameter(np.arange(3))


def test_registration_rules():
    class Broken(Module):
        def __init__(self):
            self.weight = Parameter(np.ones(2))

    with pytest.raises(AttributeError, match="__init__"):
        Broken()
    block = Block()
    with pytest.raises(TypeError, match="linear1"):
        block.linear1 = np.ones(3)
    block.linear1 = None
    assert "linear1.weight" not in block.state_dict()
    block.table = np.zeros(2, dtype=np.float32)
    assert block.table.sum() == 0 and "table" in dict(block.named_buffers())


def test_module_list_behaves_like_a_list():
    layers = ModuleList([Linear(2, 2, rng=i) for i in range(3)])
    assert len(layers) == 3 and layers[-1] is layers[2]
    assert list(layers.state_dict())[:2] == ["0.weight", "0.bias"]
    assert len(layers[1:]) == 2
    with pytest.raises(IndexError, match="index"):
        layers[3]
    with pytest.raises(TypeError, match="module"):
        layers.append(np.ones(2))
