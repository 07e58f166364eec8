r"""Hugging Face model folders: the one place that reads them into models built from this library's layers.

A folder written by ``transformers``' ``save_pretrained`` holds ``config.json`` (the sizes, and
``model_type`` / ``architectures`` naming the model) and the weights, ``model.safetensors`` or, for a large
model, shards listed by ``model.safetensors.index.json``. :func:`load_pretrained` reads such a folder:

1. **config**: :func:`read_config` parses ``config.json``; its ``model_type`` picks a :class:`Family` in the
   registry, which checks that every key it needs is there (a missing key is named) and that no value
   asks for something the library does not compute (e.g. GPT-2's ``scale_attn_by_inverse_layer_idx``);
2. **architecture**: the model class asked for (``GPT.from_pretrained`` asks for :class:`GPT`), or else the
   config's ``architectures[0]``, picks one :class:`Architecture` of the family, which builds our model
   from the config (with random weights);
3. **names**: the architecture lists, for each of our ``state_dict`` keys, the Hugging Face tensor(s) it is
   made of and how (:class:`TensorMap`): a plain ``copy``; a ``stack`` of several tensors along axis 0
   (BERT's separate query, key and value weights are the three row blocks of our ``in_proj_weight``); or a
   ``transpose`` (GPT-2 stores its linear layers as ``Conv1D`` with the weight laid out (in, out), ours is
   (out, in)). A base model's tensors may carry the family's prefix (``bert.``, ``transformer.``) when the
   file is from a model with a head;
4. **weights**: every tensor is checked (present, right shape) before anything is written; then they are
   read (:func:`~numpy_transformer.io.safetensors.load_safetensors`, memory-mapped) and loaded all at once.
   Any problem raises one error that lists every problem, and no model is returned half loaded.

Tensors of the file that the model does not use (BERT's ``pooler``, a tied ``lm_head.weight``, buffers
such as ``attn.bias``) are ignored. ``pytorch_model.bin`` is a pickle that only torch can read safely: a
folder holding only that gets an error that says how to convert it to safetensors.

The families registered here:

| ``model_type`` | architectures | our model (``numpy_transformer.models``) |
|---|---|---|
| ``bert`` | ``BertModel`` | ``bert.BertModel`` |
| ``distilbert`` | ``DistilBertModel``, ``DistilBertForSequenceClassification`` | ``distilbert.`` (the same names) |
| ``gpt2`` | ``GPT2LMHeadModel``, ``GPT2Model`` | ``gpt.GPT`` |
| ``vit`` | ``ViTForImageClassification``, ``ViTModel`` | ``vit.VisionTransformer`` |
| ``llama`` | ``LlamaForCausalLM``, ``LlamaModel`` | ``llama.`` (the same names) |

**A new family plugs in** with :func:`register_family`: a :class:`Family` with its ``model_type``, the
config keys it needs, a ``check_config`` for values it cannot honour, its base-model prefix, and one
:class:`Architecture` per Hugging Face class: a ``build(config, dtype)`` that returns our model and a
``tensors(model)`` that lists its :class:`TensorMap` entries. (The Llama family below is the shortest
example: our keys ARE Hugging Face's, so every map is a plain copy; ``lm_head.weight`` is listed unless
``tie_word_embeddings``.) Nothing else changes: loading, checking, the errors and :func:`to_hf_state_dict`
all work from those lists.
"""
from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .safetensors import load_safetensors, safetensors_header

__all__ = [
    "TensorMap", "Architecture", "Family", "FAMILIES", "register_family", "read_config", "load_pretrained",
    "load_weights", "weight_names", "to_hf_state_dict", "find_architecture", "CONFIG_NAME", "WEIGHTS_NAME",
    "INDEX_NAME",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
_PICKLE_NAMES = ("pytorch_model.bin", "pytorch_model.bin.index.json")


# ---------------------------------------------------------------------------------------------- registry

@dataclass(frozen=True)
class TensorMap:
    """Where one of our ``state_dict`` entries comes from in a Hugging Face file.

    ours: our key, e.g. ``"blocks.0.self_attn.in_proj_weight"``
    theirs: the Hugging Face tensor name(s), e.g. ``("h.0.attn.c_attn.weight",)``
    kind: ``"copy"``; ``"stack"`` (ours = their tensors stacked along axis 0, in order); ``"transpose"``
        (ours = theirs.T: a Conv1D weight (in, out) as a Linear weight (out, in))
    base: the tensor belongs to the base model, so it may carry the family's prefix in the file; head
        tensors (a classifier) never do
    """

    ours: str
    theirs: tuple
    kind: str = "copy"
    base: bool = True


@dataclass(frozen=True)
class Architecture:
    """One Hugging Face model class of a family, and how to build and fill ours.

    name: the Hugging Face class name (``config.json``'s ``architectures[0]``), e.g. ``"GPT2LMHeadModel"``
    model_class: our model's class, or ``"module:Class"`` (imported when first needed)
    build: ``build(config: dict, dtype) -> our model`` with random weights
    tensors: ``tensors(model) -> list[TensorMap]``, covering every key of ``model.state_dict()``
    """

    name: str
    model_class: Any
    build: Callable[[dict, Any], Any]
    tensors: Callable[[Any], list]

    def resolve_class(self) -> type:
        if isinstance(self.model_class, type):
            return self.model_class
        module, name = self.model_class.split(":")
        return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Family:
    """A ``model_type`` of ``config.json`` and the architectures of it that load here.

    required: config keys that must be present (the sizes; the rest have Hugging Face's defaults)
    base_prefix: the attribute name of the base model inside a model with a head, with a dot (``"bert."``)
    check_config: raises ValueError, naming the key, for a value the library cannot compute (or None)
    """

    model_type: str
    required: tuple
    base_prefix: str
    architectures: tuple
    check_config: Callable[[dict], None] | None = field(default=None)

    def architecture(self, name: str) -> Architecture:
        for arch in self.architectures:
            if arch.name == name:
                return arch
        supported = ", ".join(a.name for a in self.architectures)
        raise ValueError(f"architectures: got {name!r} for model_type {self.model_type!r}; expected one of "
                         f"{supported}")


#: model_type -> Family; extend with :func:`register_family`
FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Add (or replace) a family in the registry, so that :func:`load_pretrained` knows its folders."""
    if not isinstance(family, Family):
        raise TypeError(f"family: got {type(family).__name__}; expected a Family")
    FAMILIES[family.model_type] = family
    return family


# ---------------------------------------------------------------------------------------------- config

def read_config(folder) -> dict:
    """The parsed ``config.json`` of a local folder (a FileNotFoundError or ValueError that names the file)."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"folder: {folder} is not a directory; expected a Hugging Face model folder "
                                f"holding {CONFIG_NAME} and {WEIGHTS_NAME}")
    path = os.path.join(folder, CONFIG_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"folder: {path} does not exist; expected the model's {CONFIG_NAME}")
    with open(path, encoding="utf-8") as handle:
        try:
            values = json.load(handle)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: got a JSON {type(values).__name__}; expected an object of settings")
    return values


def _family_of(values: dict, path: str) -> Family:
    model_type = values.get("model_type")
    if model_type is None:
        raise ValueError(f"{path}: missing key 'model_type'; expected one of {', '.join(sorted(FAMILIES))}")
    if model_type not in FAMILIES:
        raise ValueError(f"{path}: model_type {model_type!r} is not supported; supported: "
                         f"{', '.join(sorted(FAMILIES))}")
    family = FAMILIES[model_type]
    missing = [key for key in family.required if values.get(key) is None]
    if missing:
        raise ValueError(f"{path}: missing key {missing[0]!r} (model_type {model_type!r} needs "
                         f"{', '.join(family.required)})")
    if family.check_config is not None:
        try:
            family.check_config(values)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
    return family


def _choose_architecture(family: Family, values: dict, model_class, path: str) -> Architecture:
    named = (values.get("architectures") or [None])[0]
    if model_class is not None:
        fitting = [arch for arch in family.architectures if arch.resolve_class() is model_class]
        for arch in fitting:                                     # the config's own architecture first
            if arch.name == named:
                return arch
        if fitting:
            return fitting[0]
        able = sorted({FAMILIES[t].model_type for t in FAMILIES for a in FAMILIES[t].architectures
                       if a.resolve_class() is model_class})
        raise ValueError(f"{path}: model_type {family.model_type!r} cannot load into {model_class.__name__}; "
                         f"{model_class.__name__} loads model_type {', '.join(repr(t) for t in able) or 'none'}")
    try:
        return family.architecture(named or family.architectures[0].name)
    except ValueError as error:
        raise ValueError(f"{path}: {error}. To load only the base model, call the from_pretrained of its "
                         "class (e.g. BertModel.from_pretrained)") from None


# ---------------------------------------------------------------------------------------------- weights

def _weight_files(folder: str) -> dict:
    """Tensor name -> the safetensors file holding it (one file, or the shards of an index)."""
    single = os.path.join(folder, WEIGHTS_NAME)
    index = os.path.join(folder, INDEX_NAME)
    if os.path.isfile(single):
        return {name: single for name in safetensors_header(single) if name != "__metadata__"}
    if os.path.isfile(index):
        with open(index, encoding="utf-8") as handle:
            try:
                weight_map = json.load(handle)["weight_map"]
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                raise ValueError(f"{index}: expected a JSON object with a 'weight_map' ({error})") from None
        return {name: os.path.join(folder, shard) for name, shard in weight_map.items()}
    pickled = [name for name in _PICKLE_NAMES if os.path.isfile(os.path.join(folder, name))]
    if pickled:
        raise ValueError(
            f"folder: {folder} holds {pickled[0]} but no {WEIGHTS_NAME}. That file is a Python pickle, which "
            "only torch can read (and reading one can run code), so this library does not. Convert it once, "
            "where torch and transformers are installed:\n"
            f"    python -c \"import transformers; m = transformers.AutoModel.from_pretrained(r'{folder}'); "
            f"m.save_pretrained(r'{folder}', safe_serialization=True)\"\n"
            "(use the model's own class, e.g. GPT2LMHeadModel, instead of AutoModel to keep its head)")
    raise FileNotFoundError(f"folder: {folder} has no {WEIGHTS_NAME} (nor {INDEX_NAME}); expected the weights "
                            "in safetensors format")


def _their_shapes(tmap: TensorMap, shape: tuple) -> list:
    """The shape each of ``tmap.theirs`` must have, given the shape of our tensor."""
    if tmap.kind == "stack":
        n = len(tmap.theirs)
        return [(shape[0] // n,) + tuple(shape[1:])] * n
    if tmap.kind == "transpose":
        return [tuple(reversed(shape))]
    return [tuple(shape)]


def _combine(tmap: TensorMap, arrays: list):
    if tmap.kind == "stack":
        return np.concatenate(arrays, axis=0)                    # rows [q; k; v] ...
    if tmap.kind == "transpose":
        return np.ascontiguousarray(arrays[0].T)                 # (in, out) -> (out, in)
    return arrays[0]


def _split(tmap: TensorMap, array) -> list:
    if tmap.kind == "stack":
        return [np.ascontiguousarray(part) for part in np.split(array, len(tmap.theirs), axis=0)]
    if tmap.kind == "transpose":
        return [np.ascontiguousarray(array.T)]
    return [array]


def weight_names(folder) -> set:
    """The names of the tensors stored in a folder's safetensors file(s) (nothing is read but the headers)."""
    return set(_weight_files(os.fspath(folder)))


def load_weights(model, folder, architecture: Architecture | None = None, base_prefix: str | None = None):
    """Fill ``model`` (built by an architecture of the registry) from the weights of a folder, all or nothing.

    Inputs:
        model: our model; folder: a folder with ``model.safetensors`` (or its shards), or one ``.safetensors``
        architecture: the :class:`Architecture` whose tensor names to read (default: found from the model)
        base_prefix: the prefix base-model tensors may carry (default: the family's)

    Raises:
        FileNotFoundError naming the missing file; ValueError naming the folder and every missing tensor and
        every tensor of the wrong shape (got vs expected). On any error the model is unchanged.
    """
    folder = os.fspath(folder)
    if architecture is None:
        family, architecture = find_architecture(model)
        base_prefix = family.base_prefix if base_prefix is None else base_prefix
    base_prefix = base_prefix or ""
    if os.path.isfile(folder) and folder.endswith(".safetensors"):
        files = {name: folder for name in safetensors_header(folder) if name != "__metadata__"}
    else:
        files = _weight_files(folder)
    maps = architecture.tensors(model)
    # a base model's tensors carry the prefix when the file is from a model with a head
    prefix = ""
    if base_prefix and any(name.startswith(base_prefix) for name in files):
        if not any(tmap.base and tmap.theirs[0] in files for tmap in maps):
            prefix = base_prefix
    current = model.state_dict()
    problems, wanted = [], {}
    for tmap in maps:
        if tmap.ours not in current:
            raise KeyError(f"{architecture.name}: the tensor list names {tmap.ours!r}, which "
                           f"{type(model).__name__} does not have")
        for name, shape in zip(tmap.theirs, _their_shapes(tmap, current[tmap.ours].shape), strict=True):
            stored = (prefix if tmap.base else "") + name
            if stored not in files:
                problems.append(f"  missing tensor {stored!r} (for {tmap.ours}, expected shape {shape})")
                continue
            got = tuple(safetensors_header(files[stored])[stored]["shape"])
            if got != shape:
                problems.append(f"  tensor {stored!r}: got shape {got}; expected {shape} (for {tmap.ours}, "
                                "from the config)")
                continue
            wanted.setdefault(files[stored], []).append(stored)
    if problems:
        raise ValueError(f"{folder}: {len(problems)} problem(s) loading a {architecture.name}; nothing was "
                         "loaded:\n" + "\n".join(problems))
    tensors = {}
    for path, names in wanted.items():
        tensors.update(load_safetensors(path, names=names))
    state = {}
    for tmap in maps:
        arrays = [tensors[(prefix if tmap.base else "") + name] for name in tmap.theirs]
        state[tmap.ours] = _combine(tmap, arrays)
    model.load_state_dict(state)                                 # strict: the maps cover every key; casts dtype
    return model


def load_pretrained(folder, dtype=np.float32, model_class: type | None = None):
    """Our model of a local Hugging Face folder, with its weights, in eval mode. Nothing is downloaded.

    Inputs:
        folder: the folder (``config.json`` and ``model.safetensors`` or its shards)
        dtype: the parameters' dtype (float32; float64 for gradient checks)
        model_class: the class to load into (e.g. ``GPT``); default: the one of ``architectures[0]``

    Returns:
        the model, e.g. :class:`~numpy_transformer.models.gpt.GPT` for a ``GPT2LMHeadModel`` folder
    """
    values = read_config(folder)
    path = os.path.join(os.fspath(folder), CONFIG_NAME)
    family = _family_of(values, path)
    architecture = _choose_architecture(family, values, model_class, path)
    model = architecture.build(values, dtype)
    load_weights(model, folder, architecture, family.base_prefix)
    return model.eval()


def find_architecture(model) -> tuple:
    """The (Family, Architecture) whose tensor list covers exactly ``model``'s state dict."""
    keys = set(model.state_dict())
    for family in FAMILIES.values():
        for arch in family.architectures:
            if isinstance(model, arch.resolve_class()) and {t.ours for t in arch.tensors(model)} == keys:
                return family, arch
    raise ValueError(f"model: got a {type(model).__name__} that no registered architecture describes; "
                     f"registered model types: {', '.join(sorted(FAMILIES))}")


def to_hf_state_dict(model, prefix: str | None = None) -> dict:
    """``model``'s weights under Hugging Face's tensor names (the inverse of loading), as NumPy arrays.

    ``prefix`` is put before the base model's names (e.g. ``"bert."``); head tensors never get it. By
    default a model with a head gets its family's prefix (as ``save_pretrained`` writes it) and a base
    model none.
    """
    family, arch = find_architecture(model)
    maps = arch.tensors(model)
    if prefix is None:
        prefix = family.base_prefix if any(not tmap.base for tmap in maps) else ""
    state = model.state_dict()
    out = {}
    for tmap in maps:
        for name, part in zip(tmap.theirs, _split(tmap, state[tmap.ours]), strict=True):
            out[(prefix if tmap.base else "") + name] = part
    return out


# ---------------------------------------------------------------------------------------------- families

def _config_int(values: dict, key: str, default=None) -> int:
    value = values.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key}: got {value!r}; expected a positive integer")
    return value


def _pair(ours: str, theirs: str, base: bool = True) -> list:
    """The weight and the bias of one layer, copied."""
    return [TensorMap(f"{ours}.{kind}", (f"{theirs}.{kind}",), base=base) for kind in ("weight", "bias")]


def _layer_maps(ours: str, theirs: str, attention: tuple, qkv_kind: str = "stack") -> list:
    """The maps of one post- or pre-norm encoder layer (ours: ``self_attn``, ``linear1/2``, ``norm1/2``).

    attention: their (query, key, value) names, then their names of out_proj, norm1, linear1, linear2, norm2
    """
    query_key_value, rest = attention[:3], attention[3:]
    maps = [TensorMap(f"{ours}.self_attn.in_proj_weight", tuple(f"{theirs}.{p}.weight" for p in query_key_value),
                      qkv_kind),
            TensorMap(f"{ours}.self_attn.in_proj_bias", tuple(f"{theirs}.{p}.bias" for p in query_key_value),
                      qkv_kind)]
    for our_part, their_part in zip(("self_attn.out_proj", "norm1", "linear1", "linear2", "norm2"), rest, strict=True):
        for kind in ("weight", "bias"):
            maps.append(TensorMap(f"{ours}.{our_part}.{kind}", (f"{theirs}.{their_part}.{kind}",)))
    return maps


# ----- BERT

def _bert_tensors(model) -> list:
    maps = [TensorMap(f"embeddings.{table}.weight", (f"embeddings.{table}.weight",))
            for table in ("word_embeddings", "position_embeddings", "token_type_embeddings")]
    maps += _pair("embeddings.LayerNorm", "embeddings.LayerNorm")
    for i in range(len(model.encoder.layers)):
        maps += _layer_maps(f"encoder.layers.{i}", f"encoder.layer.{i}",
                            ("attention.self.query", "attention.self.key", "attention.self.value",
                             "attention.output.dense", "attention.output.LayerNorm", "intermediate.dense",
                             "output.dense", "output.LayerNorm"))
    return maps


def _build_bert(values: dict, dtype):
    from ..models.bert import BertConfig, BertModel

    return BertModel(BertConfig.from_dict(values), dtype=dtype, rng=0)


register_family(Family(
    model_type="bert",
    required=("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"),
    base_prefix="bert.",
    architectures=(Architecture("BertModel", "numpy_transformer.models.bert:BertModel", _build_bert, _bert_tensors),),
))


# ----- DistilBERT

def _distilbert_base_tensors(model) -> list:
    maps = [TensorMap(f"embeddings.{table}.weight", (f"embeddings.{table}.weight",))
            for table in ("word_embeddings", "position_embeddings")]
    maps += _pair("embeddings.LayerNorm", "embeddings.LayerNorm")
    for i in range(len(model.encoder.layers)):
        maps += _layer_maps(f"encoder.layers.{i}", f"transformer.layer.{i}",
                            ("attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin",
                             "sa_layer_norm", "ffn.lin1", "ffn.lin2", "output_layer_norm"))
    return maps


def _distilbert_classifier_tensors(model) -> list:
    maps = [TensorMap("distilbert." + t.ours, t.theirs, t.kind) for t in _distilbert_base_tensors(model.distilbert)]
    for head in ("pre_classifier", "classifier"):
        maps += [TensorMap(f"{head}.{kind}", (f"{head}.{kind}",), base=False) for kind in ("weight", "bias")]
    return maps


def _num_labels(values: dict) -> int:
    labels = values.get("id2label")
    return len(labels) if isinstance(labels, dict) and labels else _config_int(values, "num_labels", 2)


def _build_distilbert(values: dict, dtype):
    from ..models.distilbert import DistilBertConfig, DistilBertModel

    return DistilBertModel(DistilBertConfig.from_dict(values), dtype=dtype, rng=0)


def _build_distilbert_classifier(values: dict, dtype):
    from ..models.distilbert import DistilBertForSequenceClassification

    return DistilBertForSequenceClassification(_build_distilbert(values, dtype), _num_labels(values), rng=0)


register_family(Family(
    model_type="distilbert",
    required=("vocab_size", "dim", "n_layers", "n_heads", "hidden_dim"),
    base_prefix="distilbert.",
    architectures=(
        Architecture("DistilBertModel", "numpy_transformer.models.distilbert:DistilBertModel", _build_distilbert,
                     _distilbert_base_tensors),
        Architecture("DistilBertForSequenceClassification",
                     "numpy_transformer.models.distilbert:DistilBertForSequenceClassification",
                     _build_distilbert_classifier, _distilbert_classifier_tensors),
    ),
))


# ----- GPT-2

_GPT2_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu"}


def _check_gpt2(values: dict) -> None:
    activation = values.get("activation_function", "gelu_new")
    if activation not in _GPT2_ACTIVATIONS:
        raise ValueError(f"activation_function: got {activation!r}; expected one of "
                         f"{', '.join(_GPT2_ACTIVATIONS)}")
    for key, supported in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                           ("add_cross_attention", False)):
        if values.get(key, supported) != supported:
            raise ValueError(f"{key}: got {values[key]!r}; expected {supported!r} (the only setting computed here)")
    if values.get("tie_word_embeddings", True) is not True:
        raise ValueError(f"tie_word_embeddings: got {values['tie_word_embeddings']!r}; expected true (GPT ties "
                         "its output projection to the token embedding)")


def _gpt2_tensors(model) -> list:
    maps = [TensorMap("wte.weight", ("wte.weight",)), TensorMap("wpe.weight", ("wpe.weight",))]
    for i in range(len(model.blocks)):
        ours, theirs = f"blocks.{i}", f"h.{i}"
        maps += [TensorMap(f"{ours}.self_attn.in_proj_weight", (f"{theirs}.attn.c_attn.weight",), "transpose"),
                 TensorMap(f"{ours}.self_attn.in_proj_bias", (f"{theirs}.attn.c_attn.bias",)),
                 TensorMap(f"{ours}.self_attn.out_proj.weight", (f"{theirs}.attn.c_proj.weight",), "transpose"),
                 TensorMap(f"{ours}.self_attn.out_proj.bias", (f"{theirs}.attn.c_proj.bias",)),
                 TensorMap(f"{ours}.linear1.weight", (f"{theirs}.mlp.c_fc.weight",), "transpose"),
                 TensorMap(f"{ours}.linear1.bias", (f"{theirs}.mlp.c_fc.bias",)),
                 TensorMap(f"{ours}.linear2.weight", (f"{theirs}.mlp.c_proj.weight",), "transpose"),
                 TensorMap(f"{ours}.linear2.bias", (f"{theirs}.mlp.c_proj.bias",))]
        for norm, their_norm in (("norm1", "ln_1"), ("norm2", "ln_2")):
            maps += _pair(f"{ours}.{norm}", f"{theirs}.{their_norm}")
    maps += _pair("ln_f", "ln_f")
    return maps


def _build_gpt2(values: dict, dtype):
    from ..models.gpt import GPT

    d_model = _config_int(values, "n_embd")
    model = GPT(_config_int(values, "vocab_size"), d_model=d_model, nhead=_config_int(values, "n_head"),
                num_layers=_config_int(values, "n_layer"),
                dim_feedforward=values.get("n_inner") or 4 * d_model, dropout=float(values.get("resid_pdrop", 0.1)),
                max_len=_config_int(values, "n_positions"),
                activation=_GPT2_ACTIVATIONS[values.get("activation_function", "gelu_new")],
                layer_norm_eps=float(values.get("layer_norm_epsilon", 1e-5)), dtype=dtype, rng=0)
    model.drop.p = float(values.get("embd_pdrop", 0.1))
    for block in model.blocks:
        block.self_attn.dropout = float(values.get("attn_pdrop", 0.1))
    return model


register_family(Family(
    model_type="gpt2",
    required=("vocab_size", "n_embd", "n_layer", "n_head", "n_positions"),
    base_prefix="transformer.",
    architectures=(Architecture("GPT2LMHeadModel", "numpy_transformer.models.gpt:GPT", _build_gpt2, _gpt2_tensors),
                   Architecture("GPT2Model", "numpy_transformer.models.gpt:GPT", _build_gpt2, _gpt2_tensors)),
    check_config=_check_gpt2,
))


# ----- ViT

_VIT_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu"}


def _check_vit(values: dict) -> None:
    activation = values.get("hidden_act", "gelu")
    if activation not in _VIT_ACTIVATIONS:
        raise ValueError(f"hidden_act: got {activation!r}; expected one of {', '.join(_VIT_ACTIVATIONS)}")
    if values.get("qkv_bias", True) is not True:
        raise ValueError(f"qkv_bias: got {values['qkv_bias']!r}; expected true (attention without query, key "
                         "and value biases is not supported)")


def _vit_tensors(model) -> list:
    maps = [TensorMap("cls_token", ("embeddings.cls_token",)),
            TensorMap("pos_embed", ("embeddings.position_embeddings",)),
            TensorMap("patch_embed.proj.weight", ("embeddings.patch_embeddings.projection.weight",)),
            TensorMap("patch_embed.proj.bias", ("embeddings.patch_embeddings.projection.bias",))]
    for i in range(len(model.encoder.layers)):
        maps += _layer_maps(f"encoder.layers.{i}", f"encoder.layer.{i}",
                            ("attention.attention.query", "attention.attention.key", "attention.attention.value",
                             "attention.output.dense", "layernorm_before", "intermediate.dense", "output.dense",
                             "layernorm_after"))
    maps += [TensorMap(f"encoder.norm.{kind}", (f"layernorm.{kind}",)) for kind in ("weight", "bias")]
    if model.head is not None:
        maps += [TensorMap(f"head.{kind}", (f"classifier.{kind}",), base=False) for kind in ("weight", "bias")]
    return maps


def _build_vit(values: dict, dtype, with_head: bool):
    from ..models.vit import VisionTransformer

    model = VisionTransformer(
        _config_int(values, "image_size"), _config_int(values, "patch_size"),
        in_channels=_config_int(values, "num_channels", 3), num_classes=_num_labels(values) if with_head else None,
        d_model=_config_int(values, "hidden_size"), nhead=_config_int(values, "num_attention_heads"),
        num_layers=_config_int(values, "num_hidden_layers"),
        dim_feedforward=_config_int(values, "intermediate_size"),
        dropout=float(values.get("hidden_dropout_prob", 0.0)),
        activation=_VIT_ACTIVATIONS[values.get("hidden_act", "gelu")],
        layer_norm_eps=float(values.get("layer_norm_eps", 1e-12)), dtype=dtype, rng=0)
    for layer in model.encoder.layers:
        layer.self_attn.dropout = float(values.get("attention_probs_dropout_prob", 0.0))
        layer.dropout.p = 0.0                                    # ViT has no dropout after the activation
    return model


register_family(Family(
    model_type="vit",
    required=("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "image_size",
              "patch_size"),
    base_prefix="vit.",
    architectures=(
        Architecture("ViTForImageClassification", "numpy_transformer.models.vit:VisionTransformer",
                     lambda values, dtype: _build_vit(values, dtype, True), _vit_tensors),
        Architecture("ViTModel", "numpy_transformer.models.vit:VisionTransformer",
                     lambda values, dtype: _build_vit(values, dtype, False), _vit_tensors),
    ),
    check_config=_check_vit,
))


# ----- Llama

def _llama_base_tensors(model, ours_prefix: str = "") -> list:
    """Our keys are Hugging Face's (``embed_tokens``, ``layers.{i}.self_attn.q_proj`` ...): every map a copy."""
    return [TensorMap(ours_prefix + name, (name,)) for name in model.state_dict()]


def _llama_causal_lm_tensors(model) -> list:
    maps = _llama_base_tensors(model.model, "model.")
    if not model.config.tie_word_embeddings:
        maps.append(TensorMap("lm_head.weight", ("lm_head.weight",), base=False))
    return maps


def _check_llama(values: dict) -> None:
    from ..models.llama import LlamaConfig

    LlamaConfig.from_dict(values)                               # raises ValueError naming the key


def _build_llama(values: dict, dtype, with_head: bool):
    from ..models.llama import LlamaConfig, LlamaForCausalLM, LlamaModel

    config = LlamaConfig.from_dict(values)
    return (LlamaForCausalLM if with_head else LlamaModel)(config, dtype=dtype, rng=0)


register_family(Family(
    model_type="llama",
    required=("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"),
    base_prefix="model.",
    architectures=(
        Architecture("LlamaForCausalLM", "numpy_transformer.models.llama:LlamaForCausalLM",
                     lambda values, dtype: _build_llama(values, dtype, True), _llama_causal_lm_tensors),
        Architecture("LlamaModel", "numpy_transformer.models.llama:LlamaModel",
                     lambda values, dtype: _build_llama(values, dtype, False), _llama_base_tensors),
    ),
    check_config=_check_llama,
))
