"""Chinese-CLIP (OFA-Sys): a vision tower (OpenAI's ViT) + a BERT text tower, as ``cn_clip`` builds it.

Parameter names are ``cn_clip``'s state-dict keys without the DDP ``module.`` prefix: ``visual.*``
(OpenAI's ViT names, our ``VisionTransformer``), ``bert.*`` (HF ``BertModel`` names, no pooler),
``text_projection`` ([hidden, projection_dim], used as ``x @ text_projection``) and ``logit_scale``.

The text feature is the last hidden state at ``[CLS]`` (position 0) projected without a bias
(``cn_clip``: ``bert(text, attention_mask=text.ne(0))[0][:, 0, :] @ text_projection``; HF
``ChineseCLIPModel`` does the same with ``text_projection`` as a bias-free Linear).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

import mindspore as ms
from mindspore import Parameter, Tensor, ops

from .base import ConfigError, PreTrainedModel, compiled_method, StrictConfig
from .bert import BertConfig, BertModel
from .layers import DTYPES, normal
from .towers import build_vision_tower, vision_config_from
from .vit import CLIPVisionConfig

__all__ = ["ChineseCLIPConfig", "ChineseCLIPModel", "CHINESE_CLIP_CONTEXT_LENGTH"]

# Every released Chinese-CLIP model tokenizes to 52 ids (cn_clip.clip.tokenize's default).
CHINESE_CLIP_CONTEXT_LENGTH = 52


def _default_text_config() -> BertConfig:
    # RoBERTa-wwm-ext-base-chinese as cn_clip's model_configs/RoBERTa-wwm-ext-base-chinese.json has it.
    return BertConfig(vocab_size=21128)


def _default_vision_config() -> CLIPVisionConfig:
    return CLIPVisionConfig(patch_size=16)  # ViT-B/16


@dataclass
class ChineseCLIPConfig(StrictConfig):
    """Chinese-CLIP: a vision tower, a BERT text tower, the shared embedding size and the temperature.

    Defaults are ``chinese_clip_vit_b_16`` (ViT-B/16 + RoBERTa-wwm-ext-base-chinese).
    """

    vision_config: StrictConfig = field(default_factory=_default_vision_config)  # any registered vision tower
    text_config: BertConfig = field(default_factory=_default_text_config)
    projection_dim: int = 512
    logit_scale_init_value: float = math.log(1 / 0.07)
    # Token ids per text ([CLS] + up to context_length - 2 WordPieces + [SEP], zero padded).
    context_length: int = CHINESE_CLIP_CONTEXT_LENGTH
    compute_dtype: str = "float32"
    checkpoint_name_or_path: str = ""
    _aliases = {"dtype": "compute_dtype"}

    def __post_init__(self):
        self._sub_config("text_config", BertConfig)
        self.vision_config = vision_config_from(self.vision_config, "ChineseCLIPConfig.vision_config")
        self._check_positive("projection_dim", "context_length")
        self._check_choice("compute_dtype", tuple(DTYPES))
        self.text_config.check_context_length(self.context_length, "ChineseCLIPConfig.context_length")
        if self.checkpoint_name_or_path is None:
            self.checkpoint_name_or_path = ""

    @property
    def image_size(self) -> int:
        return self.vision_config.image_size


class ChineseCLIPModel(PreTrainedModel):
    """Chinese-CLIP with ``CLIPModel``'s surface.

    ``construct(image, text)`` returns ``(image_embeds, text_embeds, exp(logit_scale))`` with
    L2-normalised embeddings; ``get_image_features`` / ``get_text_features`` return the unnormalised
    projections (``cn_clip``'s ``encode_image`` / ``encode_text``).

    Example:
        >>> model = ChineseCLIPModel(ChineseCLIPConfig.from_pretrained("chinese_clip_tiny"))
        >>> img, txt, scale = model(pixel_values, input_ids)
    """

    config_class = ChineseCLIPConfig
    base_model_prefix = "chinese_clip"

    def __init__(self, config: ChineseCLIPConfig):
        super().__init__()
        if not isinstance(config, ChineseCLIPConfig):
            raise TypeError(f"ChineseCLIPModel expects a ChineseCLIPConfig, got {type(config).__name__}")
        self.config = config
        tc: BertConfig = config.text_config
        dtype = DTYPES[config.compute_dtype]
        self.compute_dtype = dtype
        self.context_length = config.context_length
        self.pad_token_id = tc.pad_token_id

        self.visual = build_vision_tower(config.vision_config, config.projection_dim, dtype)
        self.bert = BertModel(tc, dtype)
        # cn_clip's init: N(0, hidden ** -0.5).
        self.text_projection = Parameter(normal((tc.hidden_size, config.projection_dim), tc.hidden_size ** -0.5),
                                         name="text_projection")
        self.logit_scale = Parameter(Tensor(np.array(config.logit_scale_init_value, np.float32)), name="logit_scale")
        self.load_named_weights()

    @compiled_method
    def get_text_features(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None) -> Tensor:
        """[B, L] WordPiece ids ([CLS] first, 0 = padding) -> [B, projection_dim] (float32, not normalised).

        ``attention_mask`` defaults to ``input_ids != 0`` (cn_clip's ``text.ne(pad)``).
        """
        hidden = self.bert(input_ids, attention_mask)
        return ops.matmul(hidden[:, 0, :], self.text_projection)
