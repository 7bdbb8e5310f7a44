"""Vision-text dual encoder (HF ``VisionTextDualEncoderModel``): a CLIP vision tower + a BERT/RoBERTa text tower.

What is computed (HF transformers' ``modeling_vision_text_dual_encoder.py``):

* image feature = the vision tower's pooled output (CLIP ViT: post-LayerNorm CLS) @ ``visual_projection``
  (no bias). Our ViT's ``proj`` is exactly that projection, so the tower is ``build_vision_tower`` as for
  CLIP and Chinese-CLIP;
* text feature = the text tower's pooler output, ``tanh(dense(h[:, 0]))`` (HF ``BertPooler`` /
  ``RobertaPooler``), @ ``text_projection`` (no bias);
* ``logit_scale`` starts at ``logit_scale_init_value`` (HF's 2.6592 = log(1 / 0.07) rounded).

Parameter names: ``visual.*`` are our (OpenAI's) ViT names as in Chinese-CLIP (``visual.proj`` is HF's
``visual_projection.weight`` transposed); ``text_model.*`` are HF's own BERT/RoBERTa names (``BertModel`` keeps
them), so an HF folder's text keys load as they are; ``text_projection`` is ``[hidden, projection_dim]`` (HF's
``text_projection.weight`` transposed, used as ``x @ text_projection`` like CLIP's) and ``logit_scale``.
For freezing a tower as run_clip.py does (``freeze_vision_model``): HF's vision tower excludes
``visual_projection``, i.e. our ``visual.proj`` is not part of it.

Building from two pretrained towers (``from_vision_text_pretrained``) needs files, so it is done by the
loader (``ms_clip.loader.from_vision_text_pretrained``); the classmethod here delegates to it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import numpy as np

from mindspore import Parameter, Tensor, ops

from .base import ConfigError, PreTrainedModel, StrictConfig, _loader, compiled_method
from .bert import BertConfig, BertModel
from .layers import DTYPES, normal
from .towers import build_vision_tower, vision_config_from
from .vit import CLIPVisionConfig

__all__ = ["VisionTextDualEncoderConfig", "VisionTextDualEncoderModel", "DUAL_ENCODER_CONTEXT_LENGTH",
           "HF_LOGIT_SCALE_INIT"]

# run_clip.py's --max_seq_length default (the example's tokenizer pads/truncates to it).
DUAL_ENCODER_CONTEXT_LENGTH = 128
# HF VisionTextDualEncoderConfig.logit_scale_init_value.
HF_LOGIT_SCALE_INIT = 2.6592


def _roberta_base() -> BertConfig:
    # roberta-base's config.json (the example's text tower): byte-level BPE vocabulary of 50,265, positions
    # counted from pad id 1 (514 rows = 512 usable), one token type, LayerNorm eps 1e-5, with the pooler.
    return BertConfig(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5,
                      pad_token_id=1, position_ids_from_padding=True, add_pooling_layer=True)


def _vit_b_32() -> CLIPVisionConfig:
    return CLIPVisionConfig()  # openai/clip-vit-base-patch32's vision tower (the example's)


@dataclass
class VisionTextDualEncoderConfig(StrictConfig):
    """A vision tower, a BERT/RoBERTa text tower with its pooler, the shared embedding size and the temperature.

    Defaults are the example's pair: CLIP ViT-B/32's vision tower + roberta-base, ``projection_dim`` 512,
    ``context_length`` 128.
    """

    vision_config: StrictConfig = field(default_factory=_vit_b_32)  # any registered vision tower
    text_config: BertConfig = field(default_factory=_roberta_base)
    projection_dim: int = 512
    logit_scale_init_value: float = HF_LOGIT_SCALE_INIT
    # Token ids per text (the tokenizer's max length); at most the text tower's usable positions.
    context_length: int = DUAL_ENCODER_CONTEXT_LENGTH
    compute_dtype: str = "float32"
    checkpoint_name_or_path: str = ""
    _aliases = {"dtype": "compute_dtype"}

    def __post_init__(self):
        if isinstance(self.text_config, Mapping) and "add_pooling_layer" not in self.text_config:
            # The pooler output is what gets projected, so a dual encoder's text tower always has one.
            self.text_config = {**self.text_config, "add_pooling_layer": True}
        self._sub_config("text_config", BertConfig)
        if not self.text_config.add_pooling_layer:
            raise ConfigError("VisionTextDualEncoderConfig.text_config.add_pooling_layer must be true: the text "
                              "feature is the BERT/RoBERTa pooler output (HF VisionTextDualEncoderModel)")
        self.vision_config = vision_config_from(self.vision_config, "VisionTextDualEncoderConfig.vision_config")
        self._check_positive("projection_dim", "context_length")
        self._check_choice("compute_dtype", tuple(DTYPES))
        if not isinstance(self.logit_scale_init_value, (int, float)) or isinstance(self.logit_scale_init_value,
                                                                                   bool):
            raise ConfigError(f"VisionTextDualEncoderConfig.logit_scale_init_value must be a number, "
                              f"got {self.logit_scale_init_value!r}")
        self.text_config.check_context_length(self.context_length, "VisionTextDualEncoderConfig.context_length")
        if self.checkpoint_name_or_path is None:
            self.checkpoint_name_or_path = ""

    @property
    def image_size(self) -> int:
        return self.vision_config.image_size


class VisionTextDualEncoderModel(PreTrainedModel):
    """HF's ``VisionTextDualEncoderModel`` with ``CLIPModel``'s surface.

    ``construct(image, text)`` returns ``(image_embeds, text_embeds, exp(logit_scale))`` with L2-normalised
    embeddings (as ``CLIPModel`` / ``ChineseCLIPModel``, so Trainer, retrieval and pipeline use it unchanged);
    ``get_image_features`` / ``get_text_features`` return the unnormalised projections (HF's
    ``get_image_features(...).pooler_output`` / ``get_text_features(...).pooler_output``).

    ``tokenizer_dir`` (not part of the architecture) is the folder holding the text tower's tokenizer files, when
    known (``from_vision_text_pretrained``'s text folder, or the folder the model was loaded from);
    ``save_pretrained`` copies those files next to ``config.yaml``.

    Example:
        >>> model = VisionTextDualEncoderModel.from_vision_text_pretrained("clip_vit_b_32", "roberta-base-folder")
        >>> img, txt, scale = model(pixel_values, input_ids)
    """

    config_class = VisionTextDualEncoderConfig
    base_model_prefix = "vision_text_dual_encoder"

    def __init__(self, config: VisionTextDualEncoderConfig):
        super().__init__()
        if not isinstance(config, VisionTextDualEncoderConfig):
            raise TypeError(f"VisionTextDualEncoderModel expects a VisionTextDualEncoderConfig, "
                            f"got {type(config).__name__}")
        self.config = config
        tc: BertConfig = config.text_config
        dtype = DTYPES[config.compute_dtype]
        self.compute_dtype = dtype
        self.context_length = config.context_length
        self.pad_token_id = tc.pad_token_id
        self.tokenizer_dir: Optional[str] = None

        self.visual = build_vision_tower(config.vision_config, config.projection_dim, dtype)
        self.text_model = BertModel(tc, dtype)
        # HF initialises both projections with its generic _init_weights: nn.Linear ~ N(0, std), std = the text
        # config's initializer_range (VisionTextDualEncoderConfig has none of its own, so get_text_config()'s is
        # used); logit_scale = logit_scale_init_value.
        std = tc.initializer_range
        if hasattr(self.visual, "proj"):  # the ViT's projection is visual_projection (ResNet towers keep theirs)
            self.visual.proj.set_data(normal(tuple(self.visual.proj.shape), std))
        self.text_projection = Parameter(normal((tc.hidden_size, config.projection_dim), std),
                                         name="text_projection")
        self.logit_scale = Parameter(Tensor(np.array(config.logit_scale_init_value, np.float32)), name="logit_scale")
        self.load_named_weights()

    @compiled_method
    def get_text_features(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None) -> Tensor:
        """[B, L] token ids -> [B, projection_dim] (float32, not normalised): pooler output @ text_projection.

        ``attention_mask`` (1 = token, 0 = padding) defaults to ``input_ids != pad_token_id``. HF's default would be
        all ones (padding attended); the tokenizer's own mask, which run_clip.py passes, is exactly ours, so a
        model called with ids alone computes what HF computes with the tokenizer's mask.
        """
        hidden = self.text_model(input_ids, attention_mask)
        return ops.matmul(self.text_model.pooled_output(hidden), self.text_projection)

    @classmethod
    def from_vision_text_pretrained(cls, vision: str, text: str, projection_dim: int = 512,
                                    **overrides: Any) -> "VisionTextDualEncoderModel":
        """A dual encoder from a pretrained vision tower and a pretrained text tower (HF's classmethod).

        Args:
            vision: a registered CLIP name (``clip_vit_b_32``), an ms_clip checkpoint / save_pretrained folder or an
                HF ``CLIPModel`` folder; its vision tower is used, its projection dropped (as HF does).
            text: an HF BERT/RoBERTa folder (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``); its
                tokenizer files travel with the model (``save_pretrained``).
            projection_dim: the shared embedding size; both projections are new (``N(0, initializer_range)``).
            overrides: other top-level config fields (``context_length``, ``logit_scale_init_value``,
                ``compute_dtype``).
        """
        return _loader().from_vision_text_pretrained(vision, text, projection_dim=projection_dim, **overrides)
