"""OpenAI's vision transformer tower (``visual.*``): config, patch embedding, tower.

Parameter names follow OpenAI's ``clip/model.py`` (``conv1.weight``, ``class_embedding``,
``positional_embedding``, ``ln_pre``, ``transformer.resblocks.N.*``, ``ln_post``, ``proj``).
Chinese-CLIP uses the same tower.
"""
from __future__ import annotations

from dataclasses import dataclass

import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops

from .base import ConfigError, StrictConfig
from .layers import HIDDEN_ACTS, LayerNorm, Transformer, normal

__all__ = ["CLIPVisionConfig", "PatchEmbedding", "VisionTransformer"]


@dataclass
class CLIPVisionConfig(StrictConfig):
    """Vision transformer. Defaults are ViT-B/32's (MindFormers' field names)."""

    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    image_size: int = 224
    patch_size: int = 32
    num_channels: int = 3
    hidden_act: str = "quick_gelu"
    dropout: float = 0.0
    attention_dropout: float = 0.0
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    initializer_factor: float = 1.0

    def __post_init__(self):
        self._check_positive("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                             "image_size", "patch_size", "num_channels")
        self._check_heads()
        if self.image_size % self.patch_size:
            raise ConfigError(
                f"CLIPVisionConfig: image_size must be divisible by patch_size "
                f"(got {self.image_size} and {self.patch_size})"
            )
        self._check_choice("hidden_act", HIDDEN_ACTS)
        self._check_prob("dropout", "attention_dropout")

    @property
    def grid_size(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_positions(self) -> int:
        return self.grid_size ** 2 + 1


class PatchEmbedding(nn.Cell):
    """``conv1`` of OpenAI (Conv2d 3->W, kernel = stride = patch, no bias) as a reshape + GEMM.

    A stride-equals-kernel convolution is exactly a matmul over non-overlapping patches. MindSpore
    2.9/2.10's CPU Conv2d is ~300x slower than this for the patch embedding (batch 32 of ViT-B/32:
    12.7 s vs 0.04 s measured); the weight keeps torch's Conv2d shape [W, C, p, p] so checkpoints
    load as they are.
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
            normal((cfg.hidden_size, cfg.num_channels, cfg.patch_size, cfg.patch_size), std), name="weight"
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
    """Pixels [B, C, H, W] -> projected image features [B, projection_dim] (float32, not normalised)."""

    def __init__(self, cfg: CLIPVisionConfig, projection_dim: int, compute_dtype=ms.float32):
        super().__init__()
        width = cfg.hidden_size
        scale = cfg.initializer_factor * width ** -0.5
        self.image_size = cfg.image_size
        self.conv1 = PatchEmbedding(cfg, compute_dtype)
        self.class_embedding = Parameter(normal((width,), scale), name="class_embedding")
        self.positional_embedding = Parameter(normal((cfg.num_positions, width), scale), name="positional_embedding")
        self.ln_pre = LayerNorm(width, cfg.layer_norm_eps)
        self.transformer = Transformer(cfg, compute_dtype)
        self.ln_post = LayerNorm(width, cfg.layer_norm_eps)
        self.proj = Parameter(normal((width, projection_dim), scale), name="proj")
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
