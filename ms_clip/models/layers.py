"""Blocks shared by the towers: float32-exact LayerNorm, torch-layout Linear, activations, OpenAI's
pre-LN residual attention block and transformer.

Dense layers run in the tower's compute dtype; LayerNorm and softmax run in float32, which is what
Ascend needs for fp16/bf16 stability and what keeps the fp32 path bit-close to PyTorch. The CPU
speed choices (2-D residual stream, MatMul(transpose_b), transpose-free attention layout) were
measured; benchmarks/README.md has the numbers.
"""
from __future__ import annotations

from typing import Optional

import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common.initializer import Normal, initializer

__all__ = ["DTYPES", "normal", "LayerNorm", "Linear", "QuickGELU", "GELU", "activation", "Dropout",
           "MultiheadAttention", "MLP", "ResidualAttentionBlock", "Transformer", "HIDDEN_ACTS"]

HIDDEN_ACTS = ("quick_gelu", "gelu", "gelu_tanh", "relu")

DTYPES = {"float32": ms.float32, "float16": ms.float16, "bfloat16": ms.bfloat16}


def normal(shape, std: float) -> Parameter:
    return initializer(Normal(sigma=std), shape, ms.float32)


# ----------------------------------------------------------------------------- layers


class LayerNorm(nn.Cell):
    """LayerNorm over the last axis computed in float32; returns the input dtype."""

    def __init__(self, width: int, eps: float = 1e-5):
        super().__init__()
        self.weight = Parameter(initializer("ones", (width,), ms.float32), name="weight")
        self.bias = Parameter(initializer("zeros", (width,), ms.float32), name="bias")
        self.layer_norm = ops.LayerNorm(begin_norm_axis=-1, begin_params_axis=-1, epsilon=eps)

    def construct(self, x: Tensor) -> Tensor:
        if x.dtype == ms.float32:  # resolved at compile time: no Cast kernels on the float32 path
            return self.layer_norm(x, self.weight, self.bias)[0]
        y, _, _ = self.layer_norm(x.astype(ms.float32), self.weight, self.bias)
        return y.astype(x.dtype)


class Linear(nn.Cell):
    """torch.nn.Linear layout (weight [out, in]) computed as a 2-D MatMul(transpose_b) on [N, in].

    The 2-D transpose_b MatMul is MindSpore's fastest CPU GEMM on every version measured (MindSpore
    2.7-2.10: ~110 GFLOP/s where ops.matmul and BatchMatMul fell to ~40 on 2.9/2.10, see
    benchmarks/README.md); the transformer keeps its residual stream 2-D for it.
    """

    def __init__(self, in_features: int, out_features: int, std: float, has_bias: bool = True,
                 compute_dtype=ms.float32):
        super().__init__()
        self.weight = Parameter(normal((out_features, in_features), std), name="weight")
        self.has_bias = has_bias
        self.bias = Parameter(initializer("zeros", (out_features,), ms.float32), name="bias") if has_bias else None
        self.cast = compute_dtype != ms.float32  # float32 weights: no per-call Cast of the weight
        self.compute_dtype = compute_dtype
        self.matmul = ops.MatMul(transpose_b=True)
        self.bias_add = ops.BiasAdd()

    def construct(self, x: Tensor) -> Tensor:
        if self.cast:
            y = self.matmul(x.astype(self.compute_dtype), self.weight.astype(self.compute_dtype))
            return self.bias_add(y, self.bias.astype(self.compute_dtype)) if self.has_bias else y
        y = self.matmul(x, self.weight)
        return self.bias_add(y, self.bias) if self.has_bias else y


class QuickGELU(nn.Cell):
    """OpenAI's activation: x * sigmoid(1.702 x)."""

    def construct(self, x: Tensor) -> Tensor:
        return x * ops.sigmoid(1.702 * x)


class GELU(nn.Cell):
    def __init__(self, approximate: bool):
        super().__init__()
        self.approximate = "tanh" if approximate else "none"

    def construct(self, x: Tensor) -> Tensor:
        return ops.gelu(x, approximate=self.approximate)


def activation(name: str) -> nn.Cell:
    if name == "quick_gelu":
        return QuickGELU()
    if name == "gelu":
        return GELU(approximate=False)
    if name == "gelu_tanh":
        return GELU(approximate=True)
    return nn.ReLU()  # config validation allows only the four names


class Dropout(nn.Cell):
    """Dropout that is a no-op (no kernel at all) when p == 0, the CLIP default."""

    def __init__(self, p: float):
        super().__init__()
        self.active = p > 0
        self.dropout = nn.Dropout(p=p) if p > 0 else None

    def construct(self, x: Tensor) -> Tensor:
        if self.active:
            return self.dropout(x)
        return x


class MultiheadAttention(nn.Cell):
    """torch.nn.MultiheadAttention's parameters (packed q,k,v ``in_proj_*`` + ``out_proj``).

    Like torch, q is scaled by head_dim**-0.5 before q @ k^T; softmax runs in float32.
    """

    def __init__(self, width: int, heads: int, attn_std: float, proj_std: float, attention_dropout: float,
                 compute_dtype=ms.float32):
        super().__init__()
        self.width = width
        self.heads = heads
        self.head_dim = width // heads
        self.scale = self.head_dim ** -0.5
        self.in_proj_weight = Parameter(normal((3 * width, width), attn_std), name="in_proj_weight")
        self.in_proj_bias = Parameter(initializer("zeros", (3 * width,), ms.float32), name="in_proj_bias")
        self.out_proj = Linear(width, width, proj_std, compute_dtype=compute_dtype)
        self.compute_dtype = compute_dtype
        self.cast = compute_dtype != ms.float32
        self.matmul = ops.MatMul(transpose_b=True)
        self.bias_add = ops.BiasAdd()
        self.bmm = ops.BatchMatMul()
        self.softmax = ops.Softmax(axis=-1)
        self.attn_drop = Dropout(attention_dropout)

    def construct(self, x: Tensor, batch: int, length: int, attn_mask: Optional[Tensor] = None) -> Tensor:
        """x: the residual stream as [batch * length, width]; returns the same shape."""
        width, heads, head_dim = self.width, self.heads, self.head_dim
        if self.cast:
            x = x.astype(self.compute_dtype)
            qkv = self.bias_add(self.matmul(x, self.in_proj_weight.astype(self.compute_dtype)),
                                self.in_proj_bias.astype(self.compute_dtype))
        else:
            qkv = self.bias_add(self.matmul(x, self.in_proj_weight), self.in_proj_bias)
        q, k, v = ops.split(qkv.reshape(batch, length, 3 * width), width, axis=-1)
        # [B, L, W] -> [B, H, L, d]; K goes straight to [B, H, d, L] so the score matmul needs no transpose flag
        # (the layout that measured fastest on CPU, benchmarks/README.md).
        q = (q * self.scale).reshape(batch, length, heads, head_dim).transpose(0, 2, 1, 3)
        k = k.reshape(batch, length, heads, head_dim).transpose(0, 2, 3, 1)
        v = v.reshape(batch, length, heads, head_dim).transpose(0, 2, 1, 3)
        scores = self.bmm(q, k)
        if self.cast:
            scores = scores.astype(ms.float32)
        if attn_mask is not None:
            scores = scores + attn_mask
        probs = self.attn_drop(self.softmax(scores))
        if self.cast:
            probs = probs.astype(self.compute_dtype)
        out = self.bmm(probs, v).transpose(0, 2, 1, 3).reshape(batch * length, width)
        return self.out_proj(out)


class MLP(nn.Cell):
    def __init__(self, width: int, hidden: int, act: str, fc_std: float, proj_std: float, compute_dtype=ms.float32):
        super().__init__()
        self.c_fc = Linear(width, hidden, fc_std, compute_dtype=compute_dtype)
        self.gelu = activation(act)  # OpenAI's attribute name, whatever the activation
        self.c_proj = Linear(hidden, width, proj_std, compute_dtype=compute_dtype)

    def construct(self, x: Tensor) -> Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))


class ResidualAttentionBlock(nn.Cell):
    """Pre-LN block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, cfg, proj_std: float, attn_std: float, fc_std: float, compute_dtype=ms.float32):
        super().__init__()
        width = cfg.hidden_size
        self.ln_1 = LayerNorm(width, cfg.layer_norm_eps)
        self.attn = MultiheadAttention(width, cfg.num_attention_heads, attn_std, proj_std, cfg.attention_dropout,
                                       compute_dtype)
        self.ln_2 = LayerNorm(width, cfg.layer_norm_eps)
        self.mlp = MLP(width, cfg.intermediate_size, cfg.hidden_act, fc_std, proj_std, compute_dtype)
        self.drop = Dropout(cfg.dropout)

    def construct(self, x: Tensor, batch: int, length: int, attn_mask: Optional[Tensor] = None) -> Tensor:
        x = x + self.drop(self.attn(self.ln_1(x), batch, length, attn_mask))
        x = x + self.drop(self.mlp(self.ln_2(x)))
        return x


class Transformer(nn.Cell):
    def __init__(self, cfg, compute_dtype=ms.float32):
        super().__init__()
        width, layers = cfg.hidden_size, cfg.num_hidden_layers
        f = cfg.initializer_factor
        # OpenAI's init (clip/model.py initialize_parameters).
        attn_std = f * width ** -0.5
        proj_std = f * width ** -0.5 * (2 * layers) ** -0.5
        fc_std = f * (2 * width) ** -0.5
        self.resblocks = nn.CellList(
            [ResidualAttentionBlock(cfg, proj_std, attn_std, fc_std, compute_dtype) for _ in range(layers)]
        )

    def construct(self, x: Tensor, attn_mask: Optional[Tensor] = None) -> Tensor:
        """x: [B, L, W] -> [B, L, W]. Inside, the residual stream is 2-D [B*L, W] so every Linear is one
        2-D GEMM with no reshapes around it (~10% faster on CPU than a 3-D stream)."""
        batch, length, width = x.shape
        x = x.reshape(batch * length, width)
        for block in self.resblocks:
            x = block(x, batch, length, attn_mask)
        return x.reshape(batch, length, width)
