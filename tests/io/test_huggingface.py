"""Reading Hugging Face folders: config checks, clear refusals, all-or-nothing loading, shards, and a family
plugged in from outside. The folders are written here from our own models (no transformers needed)."""
import json
import os

import numpy as np
import pytest

from numpy_transformer.io import huggingface as hf
from numpy_transformer.io.safetensors import load_safetensors, save_safetensors
from numpy_transformer.models import GPT, BertConfig, BertModel, VisionTransformer
from numpy_transformer.nn import Linear, Module

GPT2_CONFIG = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": 11, "n_embd": 8,
               "n_layer": 2, "n_head": 2, "n_positions": 12}
BERT_CONFIG = dict(vocab_size=13, hidden_size=6, num_hidden_layers=2, num_attention_heads=2, intermediate_size=10,
                   max_position_embeddings=9)


def write_folder(folder, config: dict, tensors: dict | None):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as handle:
        json.dump(config, handle)
    if tensors is not None:
        save_safetensors(os.path.join(folder, "model.safetensors"), tensors)
    return str(folder)


def gpt2_folder(folder, prefix="transformer.", drop=None, **changes):
    source = GPT(11, d_model=8, nhead=2, num_layers=2, max_len=12, activation="gelu_tanh", rng=3)
    tensors = hf.to_hf_state_dict(source, prefix=prefix)
    if drop:
        del tensors[drop]
    return write_folder(folder, dict(GPT2_CONFIG, **changes), tensors), source


def test_gpt2_folder_round_trip_with_and_without_prefix(tmp_path):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 11, size=(2, 5))
    for prefix in ("transformer.", ""):
        folder, source = gpt2_folder(tmp_path / f"p{prefix}", prefix=prefix)
        loaded = hf.load_pretrained(folder, dtype=np.float64)
        assert isinstance(loaded, GPT) and not loaded.training
        assert loaded.blocks[0].activation == "gelu_tanh" and loaded.ln_f.eps == 1e-5
        np.testing.assert_allclose(loaded(ids), source.eval()(ids), rtol=1e-5, atol=1e-6)


def test_sharded_weights_load_like_one_file(tmp_path):
    folder, source = gpt2_folder(tmp_path / "one")
    tensors = load_safetensors(os.path.join(folder, "model.safetensors"))
    names = sorted(tensors)
    shards = tmp_path / "shards"
    shards.mkdir()
    weight_map = {}
    for number, part in enumerate((names[::2], names[1::2])):
        file = f"model-0000{number + 1}-of-00002.safetensors"
        save_safetensors(str(shards / file), {name: tensors[name] for name in part})
        weight_map.update({name: file for name in part})
    (shards / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (shards / "config.json").write_text(json.dumps(GPT2_CONFIG))
    for (name, a), (_, b) in zip(GPT.from_pretrained(folder).state_dict().items(),
                                 GPT.from_pretrained(str(shards)).state_dict().items(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_pytorch_bin_only_folder_is_refused_with_how_to_convert(tmp_path):
    folder = write_folder(tmp_path / "bin", GPT2_CONFIG, None)
    (tmp_path / "bin" / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(ValueError, match="pytorch_model.bin") as error:
        GPT.from_pretrained(folder)
    assert "pickle" in str(error.value) and "save_pretrained" in str(error.value)
    assert "safe_serialization=True" in str(error.value)


def test_unsupported_model_type_and_architecture_name_the_supported_ones(tmp_path):
    folder = write_folder(tmp_path / "t5", {"model_type": "t5", "d_model": 8}, {})
    supported = "bert, distilbert, gpt2, llama, vit"
    with pytest.raises(ValueError, match=f"model_type 't5' is not supported; supported: {supported}"):
        hf.load_pretrained(folder)
    bert = BertModel(BertConfig(**BERT_CONFIG), rng=0)
    folder = write_folder(tmp_path / "mlm", dict(BERT_CONFIG, model_type="bert", architectures=["BertForMaskedLM"]),
                          hf.to_hf_state_dict(bert, prefix="bert."))
    with pytest.raises(ValueError, match="'BertForMaskedLM' for model_type 'bert'; expected one of BertModel"):
        hf.load_pretrained(folder)
    loaded = BertModel.from_pretrained(folder)                     # its encoder, asked for by class
    np.testing.assert_array_equal(loaded.encoder.layers[1].linear1.weight.data,
                                  bert.encoder.layers[1].linear1.weight.data)
    with pytest.raises(ValueError, match="model_type 'bert' cannot load into GPT; GPT loads model_type 'gpt2'"):
        GPT.from_pretrained(folder)


def test_config_problems_name_the_key(tmp_path):
    config = dict(GPT2_CONFIG)
    del config["n_head"]
    with pytest.raises(ValueError, match="missing key 'n_head'"):
        hf.load_pretrained(write_folder(tmp_path / "a", config, {}))
    with pytest.raises(ValueError, match="missing key 'model_type'"):
        hf.load_pretrained(write_folder(tmp_path / "b", {"n_embd": 8}, {}))
    for key, value in (("scale_attn_by_inverse_layer_idx", True), ("activation_function", "swish"),
                       ("add_cross_attention", True)):
        with pytest.raises(ValueError, match=key):
            hf.load_pretrained(write_folder(tmp_path / key, dict(GPT2_CONFIG, **{key: value}), {}))
    with pytest.raises(ValueError, match="qkv_bias"):
        hf.load_pretrained(write_folder(tmp_path / "vit", {"model_type": "vit", "hidden_size": 8,
                                                           "num_hidden_layers": 1, "num_attention_heads": 2,
                                                           "intermediate_size": 8, "image_size": 4,
                                                           "patch_size": 2, "qkv_bias": False}, {}))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        hf.load_pretrained(str(tmp_path / "bad"))
    with pytest.raises(FileNotFoundError, match="config.json"):
        hf.load_pretrained(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        hf.load_pretrained(write_folder(tmp_path / "none", GPT2_CONFIG, None))


def test_every_problem_is_listed_and_nothing_is_loaded(tmp_path):
    folder, _ = gpt2_folder(tmp_path / "x", drop="transformer.h.1.mlp.c_fc.bias")
    tensors = load_safetensors(os.path.join(folder, "model.safetensors"))
    tensors["transformer.h.0.attn.c_attn.weight"] = np.zeros((8, 25), dtype=np.float32)
    save_safetensors(os.path.join(folder, "model.safetensors"), tensors)
    target = GPT(11, d_model=8, nhead=2, num_layers=2, max_len=12, rng=9)
    before = target.state_dict()
    with pytest.raises(ValueError, match="2 problem") as error:
        hf.load_weights(target, folder)
    message = str(error.value)
    assert "missing tensor 'transformer.h.1.mlp.c_fc.bias'" in message
    assert "'transformer.h.0.attn.c_attn.weight': got shape (8, 25); expected (8, 24)" in message
    assert "nothing was loaded" in message
    for name, value in target.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_conv1d_weights_are_transposed_and_qkv_stacked(tmp_path):
    """GPT-2 stores Linear weights (in, out); BERT stores query, key and value separately."""
    gpt = GPT(11, d_model=8, nhead=2, num_layers=1, max_len=12, rng=1)
    exported = hf.to_hf_state_dict(gpt)
    np.testing.assert_array_equal(exported["h.0.attn.c_attn.weight"], gpt.blocks[0].self_attn.in_proj_weight.data.T)
    np.testing.assert_array_equal(exported["h.0.mlp.c_fc.weight"], gpt.blocks[0].linear1.weight.data.T)
    bert = BertModel(BertConfig(**BERT_CONFIG), rng=0)
    exported = hf.to_hf_state_dict(bert)
    in_proj = bert.encoder.layers[0].self_attn.in_proj_weight.data
    for index, part in enumerate(("query", "key", "value")):
        np.testing.assert_array_equal(exported[f"encoder.layer.0.attention.self.{part}.weight"],
                                      in_proj[6 * index:6 * (index + 1)])


def test_a_new_family_plugs_in(tmp_path):
    """A family registered from outside loads through the same code (what a new model family does)."""

    class Toy(Module):
        def __init__(self, width):
            super().__init__()
            self.proj = Linear(width, width, rng=0)

        def forward(self, x):
            return self.proj(x)

    def build(values, dtype):
        return Toy(values["width"]).to_dtype(dtype)

    def tensors(model):
        return [hf.TensorMap("proj.weight", ("layers.0.w",), "transpose"),
                hf.TensorMap("proj.bias", ("layers.0.b",))]

    family = hf.Family("toy", required=("width",), base_prefix="model.",
                       architectures=(hf.Architecture("ToyForTesting", Toy, build, tensors),))
    hf.register_family(family)
    try:
        weight = np.arange(9, dtype=np.float32).reshape(3, 3)
        folder = write_folder(tmp_path / "toy", {"model_type": "toy", "architectures": ["ToyForTesting"], "width": 3},
                              {"model.layers.0.w": weight, "model.layers.0.b": np.ones(3, dtype=np.float32)})
        toy = hf.load_pretrained(folder, dtype=np.float64)
        np.testing.assert_array_equal(toy.proj.weight.data, weight.T)
        assert toy.proj.weight.dtype == np.float64
        np.testing.assert_array_equal(hf.to_hf_state_dict(toy)["layers.0.w"], weight)
    finally:
        del hf.FAMILIES["toy"]


def test_vit_without_head_is_a_vit_model(tmp_path):
    model = VisionTransformer(8, 4, in_channels=3, num_classes=None, d_model=8, nhead=2, num_layers=1,
                              dim_feedforward=12, rng=0)
    names = set(hf.to_hf_state_dict(model))
    assert "classifier.weight" not in names and "layernorm.weight" in names
    images = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    assert model(images).shape == (2, 5, 8)
