"""Pure forward/backward pairs, one idea per file. Read them in this order:

1. ``linear``      -- x W^T + b, the workhorse
2. ``activations`` -- ReLU and GELU (exact and tanh)
3. ``softmax``     -- softmax and log-softmax with the closed-form backward
4. ``embedding``   -- a gather forwards, a scatter-add backwards
5. ``positional``  -- the sinusoidal table of "Attention Is All You Need"
6. ``attention``   -- scaled dot-product attention with masks
   ``blocked_attention`` -- the same, in blocks: memory linear in the sequence length
7. ``heads``       -- splitting the model width into heads and merging them back
8. ``layernorm``   -- normalization over the features of each token
9. ``dropout``     -- inverted dropout
10. ``feedforward`` -- the position-wise feed-forward network (linear, activation, linear)
11. ``patchify``   -- images to patch vectors for the Vision Transformer
12. ``losses``     -- cross-entropy with ignore_index and label smoothing
13. ``pooling``    -- mean pooling over the real tokens and unit length (sentence embeddings)

Today's decoders (Llama, Mistral, Qwen) replace four of those parts:

14. ``rmsnorm``     -- RMSNorm: divide by the root mean square; no mean, no bias
15. ``silu``        -- SiLU (Swish), x * sigmoid(x)
16. ``swiglu``      -- the gated feed-forward block down(silu(gate(x)) * up(x))
17. ``rope``        -- rotary position embedding: position as a rotation of queries and keys
18. ``gqa``         -- grouped-query attention: key/value heads shared by groups of query heads

Every pair has the shape ``out, cache = name_forward(...)`` and ``grads = name_backward(dout, cache)``.
"""
from .activations import (
    activation_backward,
    activation_forward,
    gelu_backward,
    gelu_forward,
    relu_backward,
    relu_forward,
)
from .attention import causal_mask, scaled_dot_product_attention_backward, scaled_dot_product_attention_forward
from .blocked_attention import blocked_attention_backward, blocked_attention_forward
from .dropout import dropout_backward, dropout_forward
from .embedding import embedding_backward, embedding_forward
from .feedforward import feedforward_backward, feedforward_forward
from .gqa import end_aligned_causal_mask, grouped_query_attention_backward, grouped_query_attention_forward
from .heads import merge_heads_backward, merge_heads_forward, split_heads_backward, split_heads_forward
from .layernorm import layernorm_backward, layernorm_forward
from .linear import linear_backward, linear_forward
from .losses import cross_entropy_backward, cross_entropy_forward
from .patchify import patchify_backward, patchify_forward, unpatchify_backward, unpatchify_forward
from .pooling import l2_normalize_backward, l2_normalize_forward, mean_pooling_backward, mean_pooling_forward
from .positional import positional_encoding_backward, positional_encoding_forward, sinusoidal_table
from .rmsnorm import rmsnorm_backward, rmsnorm_forward
from .rope import rope_backward, rope_forward, rope_tables
from .silu import sigmoid, silu_backward, silu_forward
from .softmax import log_softmax_backward, log_softmax_forward, softmax_backward, softmax_forward
from .swiglu import swiglu_backward, swiglu_forward
