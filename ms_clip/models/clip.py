"""CLIP in MindSpore, from blocks up to ``CLIPModel``.

Parameter names follow OpenAI's ``clip/model.py`` exactly (``visual.conv1.weight``,
``transformer.resblocks.3.attn.in_proj_weight``, ``ln_final.weight``, ...), so an OpenAI /
open_clip state dict maps onto this model one to one and HF checkpoints need only a small
rename table (see ``ms_clip.convert``).

Layout is batch-first ([B, L, D]); OpenAI's sequence-first layout does not change the maths.
Dense layers run in ``config.compute_dtype``; LayerNorm, softmax and the final projections
run in float32, which is what Ascend needs for fp16/bf16 stability and what keeps the fp32
path bit-close to PyTorch.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common.initializer import Normal, initializer

from .config import CLIPConfig, CLIPTextConfig, CLIPVisionConfig, SupportList

__all__ = ["CLIPModel", "VisionTransformer", "Transformer", "ResidualAttentionBlock", "clip_logits"]

_DTYPES = {"float32": ms.float32, "float16": ms.float16, "bfloat16": ms.bfloat16}


def _normal(shape, std: float) -> Parameter:
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

    The 2-D transpose_b MatMul is MindSpore's fastest CPU GEMM on every version measured
    (../shared/reference/environment.md); the transformer keeps its residual stream 2-D for it.
    """

    def __init__(self, in_features: int, out_features: int, std: float, has_bias: bool = True,
                 compute_dtype=ms.float32):
        super().__init__()
        self.weight = Parameter(_normal((out_features, in_features), std), name="weight")
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


def _activation(name: str) -> nn.Cell:
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
        self.in_proj_weight = Parameter(_normal((3 * width, width), attn_std), name="in_proj_weight")
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
        self.gelu = _activation(act)  # OpenAI's attribute name, whatever the activation
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


# ----------------------------------------------------------------------------- towers


class PatchEmbedding(nn.Cell):
    """``conv1`` of OpenAI (Conv2d 3->W, kernel = stride = patch, no bias) as a reshape + GEMM.

    A stride-equals-kernel convolution is exactly a matmul over non-overlapping patches.
    MindSpore 2.9/2.10's CPU Conv2d is ~300x slower than this for the patch embedding
    (environment.md); the weight keeps torch's Conv2d shape [W, C, p, p] so checkpoints load as-is.
    """

    def __init__(self, cfg: CLIPVisionConfig, compute_dtype=ms.float32):
        super().__init__()
        self.patch = cfg.patch_size
        self.grid = cfg.grid_size
        self.channels = cfg.num_channels
        self.width = cfg.hidden_size
        # OpenAI leaves conv1 at torch's default init; HF draws the patch embedding from
        # N(0, initializer_range * factor), which makes the vision initializer_range meaningful.
        std = cfg.initializer_factor * cfg.initializer_range
        self.weight = Parameter(
            _normal((cfg.hidden_size, cfg.num_channels, cfg.patch_size, cfg.patch_size), std), name="weight"
        )
        self.compute_dtype = compute_dtype
        self.matmul = ops.MatMul(transpose_b=True)

    def construct(self, pixel_values: Tensor) -> Tensor:
        b = pixel_values.shape[0]
        g, p, c = self.grid, self.patch, self.channels
        x = pixel_values.astype(self.compute_dtype).reshape(b, c, g, p, g, p).transpose(0, 2, 4, 1, 3, 5)
        x = x.reshape(b * g * g, c * p * p)
        w = self.weight.astype(self.compute_dtype).reshape(self.width, c * p * p)
        return self.matmul(x, w).reshape(b, g * g, self.width)


class VisionTransformer(nn.Cell):
    def __init__(self, cfg: CLIPVisionConfig, projection_dim: int, compute_dtype=ms.float32):
        super().__init__()
        width = cfg.hidden_size
        scale = cfg.initializer_factor * width ** -0.5
        self.image_size = cfg.image_size
        self.conv1 = PatchEmbedding(cfg, compute_dtype)
        self.class_embedding = Parameter(_normal((width,), scale), name="class_embedding")
        self.positional_embedding = Parameter(_normal((cfg.num_positions, width), scale), name="positional_embedding")
        self.ln_pre = LayerNorm(width, cfg.layer_norm_eps)
        self.transformer = Transformer(cfg, compute_dtype)
        self.ln_post = LayerNorm(width, cfg.layer_norm_eps)
        self.proj = Parameter(_normal((width, projection_dim), scale), name="proj")
        self.compute_dtype = compute_dtype

    def construct(self, pixel_values: Tensor) -> Tensor:
        x = self.conv1(pixel_values)  # [B, grid^2, W]
        b, _, w = x.shape
        cls = ops.broadcast_to(self.class_embedding.astype(x.dtype).reshape(1, 1, w), (b, 1, w))
        x = ops.concat((cls, x), axis=1) + self.positional_embedding.astype(x.dtype)
        x = self.ln_pre(x)
        x = self.transformer(x)
        x = self.ln_post(x[:, 0, :]).astype(ms.float32)
        return ops.matmul(x, self.proj)


class TokenEmbedding(nn.Cell):
    """torch.nn.Embedding's parameter name (``weight``) over a plain gather."""

    def __init__(self, vocab_size: int, width: int, std: float):
        super().__init__()
        self.weight = Parameter(_normal((vocab_size, width), std), name="weight")

    def construct(self, input_ids: Tensor) -> Tensor:
        return ops.gather(self.weight, input_ids, 0)


def _causal_mask(length: int) -> Tensor:
    """Additive mask: 0 on and below the diagonal, -inf above (OpenAI's build_attention_mask)."""
    mask = np.triu(np.full((length, length), -np.inf, dtype=np.float32), k=1)
    return Tensor(mask)


def clip_logits(image_embeds: Tensor, text_embeds: Tensor, logit_scale: Tensor) -> Tuple[Tensor, Tensor]:
    """(logits_per_image [N_img, N_txt], logits_per_text) from normalised embeddings and exp(logit_scale)."""
    logits_per_image = logit_scale * ops.matmul(image_embeds, text_embeds.T)
    return logits_per_image, logits_per_image.T


# ----------------------------------------------------------------------------- model


class CLIPModel(nn.Cell, SupportList):
    """CLIP: a vision transformer and a causal text transformer sharing an embedding space.

    ``construct(image, text)`` always returns ``(image_embeds, text_embeds, logit_scale)``:
    L2-normalised embeddings [B, projection_dim] and ``exp(logit_scale)`` (a scalar), like
    open_clip. Logits are ``clip_logits(*model(image, text))``; the contrastive loss is
    ``ms_clip.loss.ClipLoss``. ``get_image_features`` / ``get_text_features`` return the
    unnormalised projections (HF / OpenAI ``encode_*``).

    Example:
        >>> model = CLIPModel(CLIPConfig.from_pretrained("clip_tiny"))
        >>> img, txt, scale = model(pixel_values, input_ids)
    """

    def __init__(self, config: CLIPConfig):
        super().__init__()
        if not isinstance(config, CLIPConfig):
            raise TypeError(f"CLIPModel expects a CLIPConfig, got {type(config).__name__}")
        self.config = config
        tc: CLIPTextConfig = config.text_config
        vc: CLIPVisionConfig = config.vision_config
        dtype = _DTYPES[config.compute_dtype]
        self.compute_dtype = dtype
        self.context_length = tc.max_position_embeddings
        f = tc.initializer_factor

        self.visual = VisionTransformer(vc, config.projection_dim, dtype)
        self.token_embedding = TokenEmbedding(tc.vocab_size, tc.hidden_size, f * tc.initializer_range)
        self.positional_embedding = Parameter(
            _normal((tc.max_position_embeddings, tc.hidden_size), f * 0.01), name="positional_embedding"
        )
        self.transformer = Transformer(tc, dtype)
        self.ln_final = LayerNorm(tc.hidden_size, tc.layer_norm_eps)
        self.text_projection = Parameter(
            _normal((tc.hidden_size, config.projection_dim), f * tc.hidden_size ** -0.5), name="text_projection"
        )
        self.logit_scale = Parameter(Tensor(np.array(config.logit_scale_init_value, np.float32)), name="logit_scale")
        self.attn_mask = _causal_mask(tc.max_position_embeddings)
        self.l2_normalize = ops.L2Normalize(axis=-1, epsilon=1e-12)
        if config.checkpoint_name_or_path:
            # MindFormers' behaviour: a config that names weights builds a model with those weights
            # (registry name, directory or .ckpt), strictly; never silently random.
            from ms_clip.registry import resolve_weights
            from ms_clip.weights import load_weights

            load_weights(self, resolve_weights(config.checkpoint_name_or_path)[1])

    def get_image_features(self, pixel_values: Tensor) -> Tensor:
        """[B, 3, H, W] normalised pixels -> [B, projection_dim] (float32, not normalised)."""
        return self.visual(pixel_values)

    def get_text_features(self, input_ids: Tensor) -> Tensor:
        """[B, L] token ids (EOT = the largest id) -> [B, projection_dim] (float32, not normalised)."""
        b, length = input_ids.shape
        x = self.token_embedding(input_ids) + self.positional_embedding[:length]
        x = x.astype(self.compute_dtype)
        x = self.transformer(x, self.attn_mask[:length, :length])
        x = self.ln_final(x).astype(ms.float32)
        # Pool at the EOT token: it has the highest id in the vocabulary (OpenAI's text.argmax(-1)).
        eot = ops.argmax(input_ids, dim=-1).astype(ms.int32)
        index = ops.arange(0, b, dtype=ms.int32) * length + eot
        pooled = ops.gather(x.reshape(b * length, -1), index, 0)
        return ops.matmul(pooled, self.text_projection)

    def construct(self, image: Tensor, text: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        image_embeds = self.l2_normalize(self.get_image_features(image))
        text_embeds = self.l2_normalize(self.get_text_features(text))
        return image_embeds, text_embeds, ops.exp(self.logit_scale)

    # ------------------------------------------------------------------ registry facade
    @classmethod
    def from_pretrained(cls, name_or_path: str, **overrides) -> "CLIPModel":
        """A model with weights: registry name (downloads/caches), directory, or .ckpt with its config.

        ``overrides`` replace top-level config fields (e.g. ``compute_dtype="float16"``).
        """
        from ms_clip.registry import load_pretrained_model

        return load_pretrained_model(name_or_path, **overrides)

    def save_pretrained(self, save_directory: str, save_name: str = "model") -> str:
        """Write ``config.yaml`` and ``<save_name>.ckpt`` (atomically) into ``save_directory``."""
        from ms_clip.registry import save_pretrained_model

        return save_pretrained_model(self, save_directory, save_name)
