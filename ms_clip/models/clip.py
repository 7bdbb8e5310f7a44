"""CLIP (OpenAI's architecture): the text transformer, and ``CLIPModel`` = a vision tower + the text tower.

Parameter names follow OpenAI's ``clip/model.py`` exactly (``visual.conv1.weight``,
``transformer.resblocks.3.attn.in_proj_weight``, ``ln_final.weight``, ...), so an OpenAI /
open_clip state dict maps onto this model one to one and other sources need only a rename table
(``ms_clip.convert``). The text tower's parameters sit at the top level, as in OpenAI's model.

Layout is batch-first ([B, L, D]); OpenAI's sequence-first layout does not change the maths.
Dense layers run in ``config.compute_dtype``; LayerNorm, softmax and the final projections
run in float32 (see layers.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops

from .base import ConfigError, PreTrainedModel, compiled_method, StrictConfig
from .layers import DTYPES, HIDDEN_ACTS, LayerNorm, Transformer, normal
from .towers import build_vision_tower, vision_config_from
from .vit import CLIPVisionConfig

__all__ = ["CLIPTextConfig", "CLIPConfig", "CLIPModel", "clip_logits", "COMPUTE_DTYPES"]

COMPUTE_DTYPES = tuple(DTYPES)


@dataclass
class CLIPTextConfig(StrictConfig):
    """Text transformer. Defaults are ViT-B/32's (MindFormers/OpenAI)."""

    vocab_size: int = 49408
    hidden_size: int = 512
    intermediate_size: int = 2048  # MLP width (OpenAI: 4 * hidden_size)
    num_hidden_layers: int = 12
    num_attention_heads: int = 8
    max_position_embeddings: int = 77  # context length
    hidden_act: str = "quick_gelu"
    dropout: float = 0.0  # residual dropout after attention and MLP
    attention_dropout: float = 0.0
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02  # std of token embedding init (OpenAI)
    initializer_factor: float = 1.0  # multiplies every init std (HF convention)
    # MindFormers spelled the dropout argument `drop_out`; accept it as an alias.
    _aliases = {"drop_out": "dropout"}

    def __post_init__(self):
        self._check_positive("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                             "num_attention_heads", "max_position_embeddings")
        self._check_heads()
        self._check_choice("hidden_act", HIDDEN_ACTS)
        self._check_prob("dropout", "attention_dropout")


@dataclass
class CLIPConfig(StrictConfig):
    """The whole model: two towers, the shared embedding size and the temperature."""

    text_config: CLIPTextConfig = field(default_factory=CLIPTextConfig)
    vision_config: StrictConfig = field(default_factory=CLIPVisionConfig)  # any registered vision tower
    projection_dim: int = 512
    logit_scale_init_value: float = math.log(1 / 0.07)  # 2.6592..., OpenAI's init
    # Computation dtype of Dense/matmul layers; LayerNorm, softmax and the loss stay float32.
    compute_dtype: str = "float32"
    # Weights to load after construction: a registry name, a directory or a .ckpt ('' = random init).
    checkpoint_name_or_path: str = ""
    # How the weights expect images (the pretrained tag's): {mean, std, interpolation, resize_mode}; None = OpenAI's
    # (CLIP mean/std, bicubic, shorter side + centre crop). Read by ms_clip.processor.image_processor_for.
    preprocessing: Optional[Dict[str, Any]] = None
    # MindFormers called compute_dtype `dtype`.
    _aliases = {"dtype": "compute_dtype"}

    def __post_init__(self):
        self._sub_config("text_config", CLIPTextConfig)
        # The vision tower is chosen by vision_config.type (ViT by default; see towers.py).
        self.vision_config = vision_config_from(self.vision_config, "CLIPConfig.vision_config")
        self._check_positive("projection_dim")
        self._check_choice("compute_dtype", COMPUTE_DTYPES)
        if self.checkpoint_name_or_path is None:
            self.checkpoint_name_or_path = ""
        if self.preprocessing is not None:
            self.preprocessing = check_preprocessing(self.preprocessing, "CLIPConfig.preprocessing")

    # The family surface that preprocessing, tokenizers and run-config checks read.
    @property
    def image_size(self) -> int:
        return self.vision_config.image_size

    @property
    def context_length(self) -> int:
        return self.text_config.max_position_embeddings


PREPROCESSING_KEYS = ("mean", "std", "interpolation", "resize_mode")
_INTERPOLATIONS = ("bicubic",)  # what every supported pretrained tag uses (and ms_clip.processor implements)
_RESIZE_MODES = ("crop", "squash")


def check_preprocessing(value: Any, where: str) -> Dict[str, Any]:
    """A validated preprocessing dict (all four keys); ConfigError naming the bad key and the valid values."""
    if not isinstance(value, Mapping) or set(value) != set(PREPROCESSING_KEYS):
        raise ConfigError(f"{where} must be a mapping with exactly the keys {list(PREPROCESSING_KEYS)}, got {value!r}")
    out = {"mean": [float(v) for v in value["mean"]], "std": [float(v) for v in value["std"]],
           "interpolation": value["interpolation"], "resize_mode": value["resize_mode"]}
    if len(out["mean"]) != 3 or len(out["std"]) != 3 or min(out["std"]) <= 0:
        raise ConfigError(f"{where}: mean and std need 3 values (RGB, std > 0), got {value['mean']!r}, {value['std']!r}")
    if out["interpolation"] not in _INTERPOLATIONS:
        raise ConfigError(f"{where}.interpolation must be one of {list(_INTERPOLATIONS)}, got {out['interpolation']!r}")
    if out["resize_mode"] not in _RESIZE_MODES:
        raise ConfigError(f"{where}.resize_mode must be one of {list(_RESIZE_MODES)}, got {out['resize_mode']!r}")
    return out


# ----------------------------------------------------------------------------- text tower parts


class TokenEmbedding(nn.Cell):
    """torch.nn.Embedding's parameter name (``weight``) over a plain gather."""

    def __init__(self, vocab_size: int, width: int, std: float):
        super().__init__()
        self.weight = Parameter(normal((vocab_size, width), std), name="weight")

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


class CLIPModel(PreTrainedModel):
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

    config_class = CLIPConfig

    def __init__(self, config: CLIPConfig):
        super().__init__()
        if not isinstance(config, CLIPConfig):
            raise TypeError(f"CLIPModel expects a CLIPConfig, got {type(config).__name__}")
        self.config = config
        tc: CLIPTextConfig = config.text_config
        vc = config.vision_config
        dtype = DTYPES[config.compute_dtype]
        self.compute_dtype = dtype
        self.context_length = tc.max_position_embeddings
        f = tc.initializer_factor

        self.visual = build_vision_tower(vc, config.projection_dim, dtype)
        self.token_embedding = TokenEmbedding(tc.vocab_size, tc.hidden_size, f * tc.initializer_range)
        self.positional_embedding = Parameter(
            normal((tc.max_position_embeddings, tc.hidden_size), f * 0.01), name="positional_embedding"
        )
        self.transformer = Transformer(tc, dtype)
        self.ln_final = LayerNorm(tc.hidden_size, tc.layer_norm_eps)
        self.text_projection = Parameter(
            normal((tc.hidden_size, config.projection_dim), f * tc.hidden_size ** -0.5), name="text_projection"
        )
        self.logit_scale = Parameter(Tensor(np.array(config.logit_scale_init_value, np.float32)), name="logit_scale")
        self.attn_mask = _causal_mask(tc.max_position_embeddings)
        self.load_named_weights()  # MindFormers: a config naming weights loads them (via ms_clip.loader)

    @compiled_method
    def get_text_features(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None) -> Tensor:
        """[B, L] token ids (EOT = the largest id) -> [B, projection_dim] (float32, not normalised).

        ``attention_mask`` is accepted for the shared family surface and not needed: the causal mask
        and EOT pooling never look at the padding after EOT.
        """
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
