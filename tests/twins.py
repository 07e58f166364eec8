"""PyTorch twins of our complete models, written from ``torch.nn`` layers, shared by the tests, the precision
script and the benchmarks (one source, so the three cannot disagree about what "the same model" is).

Each ``*_twin(torch, model)`` reads the sizes and options off OUR model, builds the same architecture in the
parameter dtype of our model, loads our ``state_dict`` into it (the keys match one-to-one: ``strict=True``) and
puts it in training mode (dropout as ours; training mode also keeps torch off its fused inference path). The
position tables and masks are written here in torch, independently of our functional ops. torch is passed in,
so importing this file never needs it.
"""
import math


def torch_dtype(torch, model):
    """The torch dtype of our model's parameters."""
    dtype = next(param for _, param in model.named_parameters()).data.dtype
    return {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16}[str(dtype)]


def load_twin(torch, twin, model):
    """Load our state_dict into ``twin`` (strict), in training mode; returns the twin."""
    twin.load_state_dict({k: torch.tensor(v) for k, v in model.state_dict().items()}, strict=True)
    return twin.train()


def _activation(torch, name: str):
    """torch's activation argument for our activation name."""
    if name == "gelu_tanh":
        return lambda x: torch.nn.functional.gelu(x, approximate="tanh")
    return name


def _encoder_layer(torch, layer, dtype):
    """A torch.nn.TransformerEncoderLayer with the options of our ``layer``."""
    return torch.nn.TransformerEncoderLayer(
        layer.d_model, layer.nhead, layer.linear1.weight.shape[0], dropout=layer.dropout.p,
        activation=_activation(torch, layer.activation), batch_first=True, norm_first=layer.norm_first, dtype=dtype)


def sinusoidal(torch, length: int, width: int, dtype):
    """The sinusoidal table of "Attention Is All You Need", written out in torch: (length, width)."""
    position = torch.arange(length, dtype=dtype)[:, None]
    frequency = 10000.0 ** (-torch.arange(0, width, 2, dtype=dtype) / width)
    table = torch.zeros(length, width, dtype=dtype)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: width // 2])
    return table


def translator_twin(torch, model):
    """Seq2SeqTransformer: embeddings * sqrt(D) + sinusoidal positions, nn.Transformer with causal target and
    padding masks, the generator (tied to the target embedding when ours is)."""
    nn, dtype = torch.nn, torch_dtype(torch, model)
    pad = model.pad_id

    class TorchTranslator(nn.Module):
        def __init__(self):
            super().__init__()
            (V_src, D), V_tgt = model.src_embed.weight.shape, model.tgt_embed.weight.shape[0]
            t = model.transformer
            layer = t.encoder.layers[0]
            self.scale = math.sqrt(D)
            self.src_embed = nn.Embedding(V_src, D, padding_idx=pad, dtype=dtype)
            self.tgt_embed = nn.Embedding(V_tgt, D, padding_idx=pad, dtype=dtype)
            self.transformer = nn.Transformer(
                D, t.nhead, len(t.encoder.layers), len(t.decoder.layers), layer.linear1.weight.shape[0],
                dropout=layer.dropout.p, activation=_activation(torch, layer.activation), batch_first=True,
                norm_first=layer.norm_first, dtype=dtype)
            self.generator = nn.Linear(D, V_tgt, dtype=dtype)
            if model.tie_weights:
                self.generator.weight = self.tgt_embed.weight
            self.register_buffer("pe", sinusoidal(torch, model.src_positional.max_len, D, dtype), persistent=False)

        def forward(self, src, tgt):
            S, T = src.shape[1], tgt.shape[1]
            src_pad, tgt_pad = src == pad, tgt == pad
            causal = torch.triu(torch.ones(T, T, dtype=torch.bool, device=tgt.device), diagonal=1)
            s = self.src_embed(src) * self.scale + self.pe[:S]
            t = self.tgt_embed(tgt) * self.scale + self.pe[:T]
            h = self.transformer(s, t, tgt_mask=causal, src_key_padding_mask=src_pad, tgt_key_padding_mask=tgt_pad,
                                 memory_key_padding_mask=src_pad)
            return self.generator(h)

    return load_twin(torch, TorchTranslator(), model)


def gpt_twin(torch, model):
    """GPT: token + learned positions (``wpe`` an Embedding whose weight is the table), pre-norm blocks with a
    causal mask, a final LayerNorm and the output head tied to ``wte``."""
    nn, dtype = torch.nn, torch_dtype(torch, model)

    class TorchGPT(nn.Module):
        def __init__(self):
            super().__init__()
            V, D = model.wte.weight.shape
            self.wte = nn.Embedding(V, D, dtype=dtype)
            self.wpe = nn.Embedding(model.max_len, D, dtype=dtype)
            self.blocks = nn.ModuleList([_encoder_layer(torch, block, dtype) for block in model.blocks])
            self.ln_f = nn.LayerNorm(D, dtype=dtype)

        def forward(self, ids):
            T = ids.shape[1]
            x = self.wte(ids) + self.wpe.weight[:T]
            causal = torch.triu(torch.ones(T, T, dtype=torch.bool, device=ids.device), diagonal=1)
            for block in self.blocks:
                x = block(x, src_mask=causal)
            return self.ln_f(x) @ self.wte.weight.T

    return load_twin(torch, TorchGPT(), model)


def vit_twin(torch, model):
    """VisionTransformer: Conv2d patches (kernel = stride = P), a class token, learned positions, pre-norm
    encoder with a final LayerNorm, the head on the class token."""
    nn, dtype = torch.nn, torch_dtype(torch, model)
    D, C, P, _ = model.patch_embed.proj.weight.shape

    class Patches(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Conv2d(C, D, kernel_size=P, stride=P, dtype=dtype)

    class TorchViT(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch_embed = Patches()
            self.cls_token = nn.Parameter(torch.zeros(1, 1, D, dtype=dtype))
            self.pos_embed = nn.Parameter(torch.zeros(1, model.num_patches + 1, D, dtype=dtype))
            layers = model.encoder.layers
            self.encoder = nn.TransformerEncoder(_encoder_layer(torch, layers[0], dtype), len(layers),
                                                 norm=nn.LayerNorm(D, dtype=dtype), enable_nested_tensor=False)
            self.head = nn.Linear(D, model.head.weight.shape[0], dtype=dtype)

        def forward(self, images):
            x = self.patch_embed.proj(images).flatten(2).transpose(1, 2)  # (B, D, h, w) -> (B, N, D)
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
            return self.head(self.encoder(x)[:, 0])

    return load_twin(torch, TorchViT(), model)


def classifier_twin(torch, model):
    """TransformerClassifier: token + learned positions, encoder with key padding, cls or mean pooling."""
    nn, dtype = torch.nn, torch_dtype(torch, model)
    pad = model.pad_id

    class TorchClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            V, D = model.tok_embed.weight.shape
            self.tok_embed = nn.Embedding(V, D, padding_idx=pad, dtype=dtype)
            self.pos_embed = nn.Embedding(model.max_len, D, dtype=dtype)
            layers = model.encoder.layers
            norm = None if model.encoder.norm is None else nn.LayerNorm(D, dtype=dtype)
            self.encoder = nn.TransformerEncoder(_encoder_layer(torch, layers[0], dtype), len(layers), norm=norm,
                                                 enable_nested_tensor=False)
            self.head = nn.Linear(D, model.head.weight.shape[0], dtype=dtype)

        def forward(self, ids):
            padding = ids == pad
            x = self.tok_embed(ids) + self.pos_embed.weight[:ids.shape[1]]
            x = self.encoder(x, src_key_padding_mask=padding)
            if model.pooling == "cls":
                return self.head(x[:, 0])
            keep = (~padding).to(x.dtype)[..., None]
            return self.head((x * keep).sum(1) / keep.sum(1))

    return load_twin(torch, TorchClassifier(), model)
