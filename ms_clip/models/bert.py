"""A BERT-family text encoder (BERT, RoBERTa) with Hugging Face ``BertModel``'s parameter names.

Post-LN encoder: ``LayerNorm(x + attention(x))`` then ``LayerNorm(x + MLP(x))``; word + position +
token-type embeddings followed by a LayerNorm; GELU with the exact erf by default; padding keys
masked from the pad id. Parameter names are exactly those of ``transformers.BertModel``
(``embeddings.word_embeddings.weight``, ``encoder.layer.N.attention.self.query.weight``, ...,
``pooler.dense.*``), which are also the names inside Chinese-CLIP's ``bert.*``, so checkpoints of
both map one to one.

RoBERTa differs only in configuration: position ids count from ``pad_token_id + 1`` over the
non-padding tokens (``position_ids_from_padding=True``) and there is one token type
(``type_vocab_size=1``).

Like ``layers.Transformer`` the residual stream is kept 2-D (``[B*L, W]``) so every dense layer is a
single transpose_b GEMM (the fast path on MindSpore CPU); LayerNorm and softmax run in float32.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common.initializer import initializer

from .base import ConfigError, StrictConfig
from .layers import GELU, Dropout, LayerNorm, Linear, QuickGELU, normal

__all__ = ["BertConfig", "BertModel", "BERT_HIDDEN_ACTS", "MASK_VALUE"]

# HF's ACT2FN names for the activations BERT-family checkpoints use ("gelu" is the exact erf GELU,
# "gelu_new"/"gelu_pytorch_tanh" the tanh approximation).
BERT_HIDDEN_ACTS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_tanh", "relu", "quick_gelu")

# Additive score for padding keys. Chinese-CLIP's BERT uses -10000 (HF uses the dtype minimum); both
# make exp() underflow to exactly 0 in float32 for any realistic score, and a finite value keeps
# fp16/bf16 arithmetic free of inf - inf.
MASK_VALUE = -10000.0


@dataclass
class BertConfig(StrictConfig):
    """BERT / RoBERTa text encoder. Field names and defaults are HF ``BertConfig``'s.

    ``position_ids_from_padding`` and ``add_pooling_layer`` are ours: RoBERTa's position numbering and
    whether the ``pooler.dense`` layer exists (Chinese-CLIP has none; a dual encoder pools with it).
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    # RoBERTa: position id = pad_token_id + (1-based index among non-padding tokens); padding gets pad_token_id.
    position_ids_from_padding: bool = False
    add_pooling_layer: bool = False

    def __post_init__(self):
        self._check_positive("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                             "intermediate_size", "max_position_embeddings", "type_vocab_size")
        self._check_heads()
        self._check_choice("hidden_act", BERT_HIDDEN_ACTS)
        self._check_prob("hidden_dropout_prob", "attention_probs_dropout_prob")
        if not isinstance(self.pad_token_id, int) or not 0 <= self.pad_token_id < self.vocab_size:
            raise ConfigError(f"BertConfig.pad_token_id must be an id in [0, vocab_size={self.vocab_size}), "
                              f"got {self.pad_token_id!r}")
        if not isinstance(self.layer_norm_eps, (int, float)) or self.layer_norm_eps <= 0:
            raise ConfigError(f"BertConfig.layer_norm_eps must be a positive number, got {self.layer_norm_eps!r}")
        for name in ("position_ids_from_padding", "add_pooling_layer"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"BertConfig.{name} must be true or false, got {getattr(self, name)!r}")

    @property
    def max_text_length(self) -> int:
        """The longest input the position table allows (RoBERTa reserves pad_token_id + 1 rows)."""
        if self.position_ids_from_padding:
            return self.max_position_embeddings - self.pad_token_id - 1
        return self.max_position_embeddings

    def check_context_length(self, length: int, where: str) -> None:
        """A family's ``context_length``: room for the start and end tokens, within the usable positions."""
        if length < 2 or length > self.max_text_length:
            raise ConfigError(f"{where} must be in [2, {self.max_text_length}] (room for the start and end tokens, "
                              f"within the text tower's usable positions: max_position_embeddings="
                              f"{self.max_position_embeddings}{' - pad_token_id - 1' if self.position_ids_from_padding else ''}"
                              f"), got {length}")


def _activation(name: str) -> nn.Cell:
    if name == "gelu":
        return GELU(approximate=False)
    if name in ("gelu_new", "gelu_pytorch_tanh", "gelu_tanh"):
        return GELU(approximate=True)
    if name == "quick_gelu":
        return QuickGELU()
    return nn.ReLU()


class Embedding(nn.Cell):
    """torch.nn.Embedding's parameter (``weight`` [num, dim]) over a plain gather."""

    def __init__(self, num: int, dim: int, std: float, zero_row: Optional[int] = None):
        super().__init__()
        table = normal((num, dim), std).init_data().asnumpy()
        if zero_row is not None:  # HF's _init_weights zeroes the padding row (nn.Embedding padding_idx)
            table[zero_row] = 0.0
        self.weight = Parameter(Tensor(table, ms.float32), name="weight")

    def construct(self, ids: Tensor) -> Tensor:
        return ops.gather(self.weight, ids, 0)


class BertEmbeddings(nn.Cell):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        std = cfg.initializer_range
        self.word_embeddings = Embedding(cfg.vocab_size, cfg.hidden_size, std, zero_row=cfg.pad_token_id)
        pad_row = cfg.pad_token_id if cfg.position_ids_from_padding else None
        self.position_embeddings = Embedding(cfg.max_position_embeddings, cfg.hidden_size, std, zero_row=pad_row)
        self.token_type_embeddings = Embedding(cfg.type_vocab_size, cfg.hidden_size, std)
        self.LayerNorm = LayerNorm(cfg.hidden_size, cfg.layer_norm_eps)
        self.dropout = Dropout(cfg.hidden_dropout_prob)
        self.from_padding = cfg.position_ids_from_padding
        self.pad_token_id = cfg.pad_token_id

    def construct(self, input_ids: Tensor, token_type_ids: Optional[Tensor] = None) -> Tensor:
        """[B, L] ids -> [B*L, W] embeddings (the 2-D residual stream)."""
        b, length = input_ids.shape
        words = self.word_embeddings(input_ids.reshape(b * length))
        if self.from_padding:
            # RoBERTa (HF create_position_ids_from_input_ids): padding keeps pad_token_id, real tokens count
            # on from pad_token_id + 1, wherever the padding sits.
            mask = (input_ids != self.pad_token_id).astype(ms.int32)
            position_ids = ops.cumsum(mask, 1) * mask + self.pad_token_id
            positions = self.position_embeddings(position_ids.reshape(b * length))
        else:
            table = self.position_embeddings.weight[:length]  # ids 0..L-1 for every row
            positions = ops.tile(table, (b, 1))
        if token_type_ids is None:
            # All zeros (HF's default buffer): one row broadcast, no gather.
            x = words + positions + self.token_type_embeddings.weight[0]
        else:
            x = words + positions + self.token_type_embeddings(token_type_ids.reshape(b * length))
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Cell):
    """Separate ``query``/``key``/``value`` Linear layers (HF names) and scaled dot-product attention."""

    def __init__(self, cfg: BertConfig, compute_dtype=ms.float32):
        super().__init__()
        width, std = cfg.hidden_size, cfg.initializer_range
        self.query = Linear(width, width, std, compute_dtype=compute_dtype)
        self.key = Linear(width, width, std, compute_dtype=compute_dtype)
        self.value = Linear(width, width, std, compute_dtype=compute_dtype)
        self.width = width
        self.heads = cfg.num_attention_heads
        self.head_dim = width // cfg.num_attention_heads
        self.scale = self.head_dim ** -0.5
        self.cast = compute_dtype != ms.float32
        self.compute_dtype = compute_dtype
        self.bmm = ops.BatchMatMul()
        self.softmax = ops.Softmax(axis=-1)
        self.dropout = Dropout(cfg.attention_probs_dropout_prob)

    def construct(self, x: Tensor, batch: int, length: int, mask: Tensor) -> Tensor:
        """x [B*L, W], additive key mask [B, 1, 1, L] (float32) -> context [B*L, W]."""
        heads, head_dim = self.heads, self.head_dim
        # Same layouts as layers.MultiheadAttention (K straight to [B, H, d, L]: no transpose flag on the GEMM).
        q = (self.query(x) * self.scale).reshape(batch, length, heads, head_dim).transpose(0, 2, 1, 3)
        k = self.key(x).reshape(batch, length, heads, head_dim).transpose(0, 2, 3, 1)
        v = self.value(x).reshape(batch, length, heads, head_dim).transpose(0, 2, 1, 3)
        scores = self.bmm(q, k)
        if self.cast:
            scores = scores.astype(ms.float32)
        probs = self.dropout(self.softmax(scores + mask))
        if self.cast:
            probs = probs.astype(self.compute_dtype)
        return self.bmm(probs, v).transpose(0, 2, 1, 3).reshape(batch * length, self.width)


class BertSelfOutput(nn.Cell):
    """``dense`` + dropout, then the post-LN residual ``LayerNorm(x + input)`` (also BertOutput's shape)."""

    def __init__(self, in_width: int, width: int, cfg: BertConfig, compute_dtype=ms.float32):
        super().__init__()
        self.dense = Linear(in_width, width, cfg.initializer_range, compute_dtype=compute_dtype)
        self.LayerNorm = LayerNorm(width, cfg.layer_norm_eps)
        self.dropout = Dropout(cfg.hidden_dropout_prob)

    def construct(self, hidden: Tensor, residual: Tensor) -> Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden)).astype(residual.dtype) + residual)


class BertAttention(nn.Cell):
    def __init__(self, cfg: BertConfig, compute_dtype=ms.float32):
        super().__init__()
        self.self = BertSelfAttention(cfg, compute_dtype)  # HF's attribute name: attention.self.query...
        self.output = BertSelfOutput(cfg.hidden_size, cfg.hidden_size, cfg, compute_dtype)

    def construct(self, x: Tensor, batch: int, length: int, mask: Tensor) -> Tensor:
        return self.output(self.self(x, batch, length, mask), x)


class BertIntermediate(nn.Cell):
    def __init__(self, cfg: BertConfig, compute_dtype=ms.float32):
        super().__init__()
        self.dense = Linear(cfg.hidden_size, cfg.intermediate_size, cfg.initializer_range,
                            compute_dtype=compute_dtype)
        self.intermediate_act_fn = _activation(cfg.hidden_act)

    def construct(self, x: Tensor) -> Tensor:
        return self.intermediate_act_fn(self.dense(x))


class BertLayer(nn.Cell):
    def __init__(self, cfg: BertConfig, compute_dtype=ms.float32):
        super().__init__()
        self.attention = BertAttention(cfg, compute_dtype)
        self.intermediate = BertIntermediate(cfg, compute_dtype)
        self.output = BertSelfOutput(cfg.intermediate_size, cfg.hidden_size, cfg, compute_dtype)

    def construct(self, x: Tensor, batch: int, length: int, mask: Tensor) -> Tensor:
        x = self.attention(x, batch, length, mask)
        return self.output(self.intermediate(x), x)


class BertEncoder(nn.Cell):
    def __init__(self, cfg: BertConfig, compute_dtype=ms.float32):
        super().__init__()
        self.layer = nn.CellList([BertLayer(cfg, compute_dtype) for _ in range(cfg.num_hidden_layers)])

    def construct(self, x: Tensor, batch: int, length: int, mask: Tensor) -> Tensor:
        for block in self.layer:
            x = block(x, batch, length, mask)
        return x


class BertPooler(nn.Cell):
    """HF's pooler: tanh(dense(hidden state of the first token))."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.dense = Linear(cfg.hidden_size, cfg.hidden_size, cfg.initializer_range)

    def construct(self, first_token: Tensor) -> Tensor:
        return ops.tanh(self.dense(first_token))


class BertModel(nn.Cell):
    """``input_ids [B, L]`` -> last hidden states ``[B, L, hidden_size]`` (float32).

    ``attention_mask`` (1 = attend, 0 = padding) defaults to ``input_ids != pad_token_id``;
    ``token_type_ids`` default to zeros. ``pooled_output(hidden)`` applies the pooler when the config
    has one (``add_pooling_layer``).
    """

    def __init__(self, cfg: BertConfig, compute_dtype=ms.float32):
        super().__init__()
        if not isinstance(cfg, BertConfig):
            raise TypeError(f"BertModel expects a BertConfig, got {type(cfg).__name__}")
        self.config = cfg
        self.embeddings = BertEmbeddings(cfg)
        self.encoder = BertEncoder(cfg, compute_dtype)
        self.has_pooler = cfg.add_pooling_layer
        self.pooler = BertPooler(cfg) if cfg.add_pooling_layer else None
        self.compute_dtype = compute_dtype
        self.pad_token_id = cfg.pad_token_id
        self.width = cfg.hidden_size

    def construct(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None,
                  token_type_ids: Optional[Tensor] = None) -> Tensor:
        b, length = input_ids.shape
        if attention_mask is None:
            attention_mask = input_ids != self.pad_token_id
        # [B, 1, 1, L]: 0 for keys to attend, MASK_VALUE for padding; added to float32 scores.
        mask = (1.0 - attention_mask.astype(ms.float32)).reshape(b, 1, 1, length) * MASK_VALUE
        x = self.embeddings(input_ids, token_type_ids).astype(self.compute_dtype)
        x = self.encoder(x, b, length, mask)
        return x.astype(ms.float32).reshape(b, length, self.width)

    def pooled_output(self, hidden: Tensor) -> Tensor:
        """The pooler on ``hidden[:, 0]`` ([B, W]); a config without a pooler has none to apply."""
        if not self.has_pooler:
            raise ConfigError("this BertModel has no pooler (BertConfig.add_pooling_layer is false)")
        return self.pooler(hidden[:, 0, :])
