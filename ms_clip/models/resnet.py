"""OpenAI's ModifiedResNet vision tower (CLIP RN50, RN101, RN50x4, RN50x16, RN50x64).

What makes it "modified" (Radford et al. 2021, and OpenAI's ``clip/model.py``): a stem of three 3x3
convolutions (the first with stride 2) followed by a 2x2 average pool instead of one 7x7 convolution
and a max pool; anti-aliased strided bottlenecks (the stride is an average pool after the 3x3
convolution, and in the shortcut an average pool before the 1x1 convolution); and an attention
pooling head (one query, the mean of the feature map, attending over the map with learned
positional embeddings) instead of global average pooling.

Parameter names are OpenAI's state-dict keys under ``visual.``: ``conv1.weight``, ``bn1.weight``,
``bn1.running_mean``, ``layer1.0.conv1.weight``, ``layer1.0.downsample.0.weight``,
``attnpool.{positional_embedding,q_proj,k_proj,v_proj,c_proj}``, so a checkpoint maps on one to one
(torch's ``num_batches_tracked`` counters are dropped by the converter: inference does not use them).

Speed on CPU (benchmarks/README.md, "ResNet tower"): measured on MindSpore 2.10, the CPU ``Conv2D``
(oneDNN) beats an im2col + ``MatMul(transpose_b)`` formulation for every convolution of this tower
(2-10x), so the convolutions stay convolutions (NCHW); inference-mode BatchNorm is folded into them
(weights scaled per output channel, shift added as the bias), so it costs no pass over the activations.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common.initializer import Normal, initializer

from .base import ConfigError, StrictConfig
from .layers import Linear

__all__ = ["CLIPResNetVisionConfig", "BatchNorm2d", "Conv2d", "Bottleneck", "AttentionPool2d", "ModifiedResNet"]

_BN_EPS = 1e-5  # torch.nn.BatchNorm2d's defaults, which OpenAI's model uses
_BN_MOMENTUM = 0.1


@dataclass
class CLIPResNetVisionConfig(StrictConfig):
    """OpenAI's ModifiedResNet. Defaults are RN50's.

    ``layers``: bottlenecks per stage (RN50 [3, 4, 6, 3]); ``width``: channels of the stem's output
    (64 for RN50; the tower's feature width is ``width * 32``); ``num_attention_heads``: heads of the
    attention pool (OpenAI: ``width * 32 // 64``).
    """

    layers: List[int] = field(default_factory=lambda: [3, 4, 6, 3])
    width: int = 64
    num_attention_heads: int = 32
    image_size: int = 224
    num_channels: int = 3
    initializer_factor: float = 1.0

    def __post_init__(self):
        if (not isinstance(self.layers, (list, tuple)) or len(self.layers) != 4
                or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in self.layers)):
            raise ConfigError(f"CLIPResNetVisionConfig.layers must be 4 positive integers (blocks per stage), "
                              f"got {self.layers!r}")
        self.layers = [int(n) for n in self.layers]
        self._check_positive("width", "num_attention_heads", "image_size", "num_channels")
        if self.width % 2:
            raise ConfigError(f"CLIPResNetVisionConfig.width must be even (the stem halves it), got {self.width}")
        if self.image_size % 32:
            raise ConfigError(f"CLIPResNetVisionConfig.image_size must be a multiple of 32 (the tower downsamples "
                              f"by 32), got {self.image_size}")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(f"CLIPResNetVisionConfig: the feature width {self.hidden_size} (width * 32) must be "
                              f"divisible by num_attention_heads, got {self.num_attention_heads}")

    @property
    def hidden_size(self) -> int:
        """Channels of the last stage = the attention pool's embedding width."""
        return self.width * 32

    @property
    def grid_size(self) -> int:
        return self.image_size // 32

    @property
    def num_hidden_layers(self) -> int:  # for architecture summaries
        return sum(self.layers)


# ----------------------------------------------------------------------------- building blocks


class BatchNorm2d(nn.Cell):
    """torch.nn.BatchNorm2d's parameters (``weight``, ``bias``, ``running_mean``, ``running_var``), NCHW.

    Inference (``set_train(False)``) uses the running statistics; the owner folds them into its convolution via
    ``scale_shift``. Training uses the batch's statistics (biased variance for normalising) and updates
    the running ones with momentum 0.1 and the unbiased variance, as torch does.
    """

    def __init__(self, channels: int, weight_init: str = "ones"):
        super().__init__()
        self.weight = Parameter(initializer(weight_init, (channels,), ms.float32), name="weight")
        self.bias = Parameter(initializer("zeros", (channels,), ms.float32), name="bias")
        self.running_mean = Parameter(initializer("zeros", (channels,), ms.float32), name="running_mean",
                                      requires_grad=False)
        self.running_var = Parameter(initializer("ones", (channels,), ms.float32), name="running_var",
                                     requires_grad=False)

    def scale_shift(self) -> Tuple[Tensor, Tensor]:
        """(scale, shift) with y = x * scale + shift under the running statistics."""
        scale = self.weight / ops.sqrt(self.running_var + _BN_EPS)
        return scale, self.bias - self.running_mean * scale

    def batch_norm(self, x: Tensor) -> Tensor:
        """Training mode on NCHW: normalise with the batch's statistics and update the running ones."""
        x32 = x.astype(ms.float32)
        mean = x32.mean(axis=(0, 2, 3), keep_dims=True)
        centered = x32 - mean
        var = (centered * centered).mean(axis=(0, 2, 3), keep_dims=True)
        count = x32.shape[0] * x32.shape[2] * x32.shape[3]
        unbiased = var.reshape(-1) * (count / max(count - 1, 1))
        ops.assign(self.running_mean, (1 - _BN_MOMENTUM) * self.running_mean + _BN_MOMENTUM * mean.reshape(-1))
        ops.assign(self.running_var, (1 - _BN_MOMENTUM) * self.running_var + _BN_MOMENTUM * unbiased)
        y = centered / ops.sqrt(var + _BN_EPS) * self.weight.reshape(1, -1, 1, 1) + self.bias.reshape(1, -1, 1, 1)
        return y.astype(x.dtype)


def _kaiming(shape, factor: float) -> Parameter:
    fan_in = int(np.prod(shape[1:]))
    return initializer(Normal(sigma=factor * (2.0 / fan_in) ** 0.5), shape, ms.float32)


def _avg_pool(x: Tensor, pool: int) -> Tensor:
    """AvgPool2d(pool) on NCHW; like torch, trailing rows/columns that do not fill a window are dropped."""
    return ops.avg_pool2d(x, kernel_size=pool, stride=pool)


class Conv2d(nn.Cell):
    """A bias-free torch Conv2d (``weight`` [out, in, k, k], padding k // 2) on NCHW activations.

    ``construct(x, scale, shift)`` computes ``conv(x) * scale + shift`` per output channel with the scale
    folded into the weight and the shift added as a bias: inference-mode BatchNorm at no extra pass over the
    activations. MindSpore's CPU Conv2D (oneDNN) was measured 2-10x faster than an im2col + GEMM formulation
    of these convolutions (benchmarks/README.md "ResNet tower"), unlike the ViT's kernel = stride = 32 patch
    embedding, where the GEMM won.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, factor: float,
                 compute_dtype=ms.float32):
        super().__init__()
        self.in_channels, self.out_channels, self.k, self.stride = in_channels, out_channels, kernel_size, stride
        self.weight = Parameter(_kaiming((out_channels, in_channels, kernel_size, kernel_size), factor),
                                name="weight")
        self.compute_dtype = compute_dtype
        self.cast = compute_dtype != ms.float32
        self.conv = ops.Conv2D(out_channels, kernel_size, mode=1, pad_mode="pad", pad=kernel_size // 2, stride=stride)
        self.bias_add = ops.BiasAdd()

    def construct(self, x: Tensor, scale: Optional[Tensor] = None, shift: Optional[Tensor] = None) -> Tensor:
        """NCHW [N, Cin, H, W] -> NCHW [N, Cout, Ho, Wo] (no activation)."""
        weight = self.weight
        if scale is not None:
            weight = weight * scale.reshape(-1, 1, 1, 1)
        if self.cast:
            x, weight = x.astype(self.compute_dtype), weight.astype(self.compute_dtype)
        y = self.conv(x, weight)
        if shift is not None:
            y = self.bias_add(y, shift.astype(y.dtype))
        return y


def _conv_bn(conv: Conv2d, bn: BatchNorm2d, x: Tensor, training: bool) -> Tensor:
    """conv then BatchNorm: folded into the convolution at inference, batch statistics in training."""
    if training:
        return bn.batch_norm(conv(x))
    scale, shift = bn.scale_shift()
    return conv(x, scale, shift)


class _Downsample(nn.SequentialCell):
    """OpenAI's shortcut ``downsample`` Sequential: ``-1`` AvgPool2d(stride) (no parameters), ``0`` Conv2d
    1x1, ``1`` BatchNorm2d. A SequentialCell names its items 0 and 1: exactly torch's keys for the parameters."""

    def __init__(self, inplanes: int, outplanes: int, stride: int, factor: float, compute_dtype):
        super().__init__([Conv2d(inplanes, outplanes, 1, 1, factor, compute_dtype), BatchNorm2d(outplanes)])
        self.pool = stride

    def construct(self, x: Tensor) -> Tensor:
        if self.pool > 1:
            x = _avg_pool(x, self.pool)
        return _conv_bn(self[0], self[1], x, self.training)


class Bottleneck(nn.Cell):
    """1x1 -> 3x3 -> (avgpool if strided) -> 1x1 (x4 channels), shortcut with avgpool + 1x1 when the shape
    changes; ReLU after each stage and after the sum. The last BatchNorm starts at zero (OpenAI's init)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int, factor: float, compute_dtype=ms.float32):
        super().__init__()
        out = planes * self.expansion
        self.stride = stride
        self.conv1, self.bn1 = Conv2d(inplanes, planes, 1, 1, factor, compute_dtype), BatchNorm2d(planes)
        self.conv2, self.bn2 = Conv2d(planes, planes, 3, 1, factor, compute_dtype), BatchNorm2d(planes)
        self.conv3, self.bn3 = Conv2d(planes, out, 1, 1, factor, compute_dtype), BatchNorm2d(out, "zeros")
        self.has_downsample = stride > 1 or inplanes != out
        self.downsample = _Downsample(inplanes, out, stride, factor, compute_dtype) if self.has_downsample else None
        self.relu = ops.ReLU()

    def construct(self, x: Tensor) -> Tensor:
        y = self.relu(_conv_bn(self.conv1, self.bn1, x, self.training))
        y = self.relu(_conv_bn(self.conv2, self.bn2, y, self.training))
        if self.stride > 1:
            y = _avg_pool(y, self.stride)
        y = _conv_bn(self.conv3, self.bn3, y, self.training)
        identity = self.downsample(x) if self.has_downsample else x
        return self.relu(y + identity)


class AttentionPool2d(nn.Cell):
    """One query (the mean of the map, plus its positional embedding) attends over [mean; map] with
    separate q/k/v projections (torch ``multi_head_attention_forward`` with ``q_proj``/``k_proj``/
    ``v_proj`` weights and biases); ``c_proj`` maps to the output width."""

    def __init__(self, spacial_dim: int, embed_dim: int, heads: int, output_dim: int, factor: float,
                 compute_dtype=ms.float32):
        super().__init__()
        std = factor * embed_dim ** -0.5
        self.positional_embedding = Parameter(
            initializer(Normal(sigma=embed_dim ** -0.5), (spacial_dim ** 2 + 1, embed_dim), ms.float32),
            name="positional_embedding")
        self.q_proj = Linear(embed_dim, embed_dim, std, compute_dtype=compute_dtype)
        self.k_proj = Linear(embed_dim, embed_dim, std, compute_dtype=compute_dtype)
        self.v_proj = Linear(embed_dim, embed_dim, std, compute_dtype=compute_dtype)
        self.c_proj = Linear(embed_dim, output_dim, std, compute_dtype=compute_dtype)
        self.heads = heads
        self.head_dim = embed_dim // heads
        self.scale = self.head_dim ** -0.5
        self.bmm = ops.BatchMatMul()
        self.softmax = ops.Softmax(axis=-1)

    def construct(self, x: Tensor) -> Tensor:
        """NCHW [N, C, H, W] -> [N, output_dim]."""
        n, c, h, w = x.shape
        tokens = x.reshape(n, c, h * w).transpose(0, 2, 1)
        tokens = ops.concat((tokens.mean(axis=1, keep_dims=True), tokens), axis=1)
        tokens = tokens + self.positional_embedding.astype(tokens.dtype)
        length = h * w + 1
        heads, d = self.heads, self.head_dim
        q = self.q_proj(tokens[:, 0, :]) * self.scale  # only the mean token's query is needed
        flat = tokens.reshape(n * length, c)
        k = self.k_proj(flat).reshape(n, length, heads, d).transpose(0, 2, 3, 1)  # [N, H, d, L]
        v = self.v_proj(flat).reshape(n, length, heads, d).transpose(0, 2, 1, 3)  # [N, H, L, d]
        scores = self.bmm(q.reshape(n, heads, 1, d), k).astype(ms.float32)
        probs = self.softmax(scores).astype(v.dtype)
        out = self.bmm(probs, v).reshape(n, c)
        return self.c_proj(out)


class ModifiedResNet(nn.Cell):
    """Pixels [B, C, H, W] -> projected image features [B, projection_dim] (float32, not normalised)."""

    def __init__(self, cfg: CLIPResNetVisionConfig, projection_dim: int, compute_dtype=ms.float32):
        super().__init__()
        width, f = cfg.width, cfg.initializer_factor
        self.image_size = cfg.image_size
        half = width // 2
        self.conv1, self.bn1 = Conv2d(cfg.num_channels, half, 3, 2, f, compute_dtype), BatchNorm2d(half)
        self.conv2, self.bn2 = Conv2d(half, half, 3, 1, f, compute_dtype), BatchNorm2d(half)
        self.conv3, self.bn3 = Conv2d(half, width, 3, 1, f, compute_dtype), BatchNorm2d(width)
        inplanes = width
        stages = []
        for i, blocks in enumerate(cfg.layers):
            planes = width * (2 ** i)
            stage = []
            for b in range(blocks):
                stride = 2 if (i > 0 and b == 0) else 1
                stage.append(Bottleneck(inplanes, planes, stride, f, compute_dtype))
                inplanes = planes * Bottleneck.expansion
            stages.append(nn.CellList(stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.attnpool = AttentionPool2d(cfg.grid_size, width * 32, cfg.num_attention_heads, projection_dim, f,
                                        compute_dtype)
        self.relu = ops.ReLU()
        self.compute_dtype = compute_dtype

    def construct(self, pixel_values: Tensor) -> Tensor:
        x = pixel_values
        if self.compute_dtype != ms.float32:
            x = x.astype(self.compute_dtype)
        x = self.relu(_conv_bn(self.conv1, self.bn1, x, self.training))
        x = self.relu(_conv_bn(self.conv2, self.bn2, x, self.training))
        x = self.relu(_conv_bn(self.conv3, self.bn3, x, self.training))
        x = _avg_pool(x, 2)
        for block in self.layer1:
            x = block(x)
        for block in self.layer2:
            x = block(x)
        for block in self.layer3:
            x = block(x)
        for block in self.layer4:
            x = block(x)
        return self.attnpool(x).astype(ms.float32)
