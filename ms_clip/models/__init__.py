"""Model families (configs + Cells only; nothing here imports from above ``ms_clip.models``).

``FAMILIES`` maps a family config's class name -- the ``type`` key of a model YAML, as in
MindFormers' ``model_config: {type: CLIPConfig}`` -- to (config class, model class). The loader
dispatches on it; a new family is one file and one entry here.
"""
from typing import Any, Dict, Mapping, Tuple

from .base import ConfigError, PreTrainedModel, StrictConfig, suggest
from .bert import BertConfig, BertModel
from .chinese_clip import ChineseCLIPConfig, ChineseCLIPModel
from .clip import CLIPConfig, CLIPModel, CLIPTextConfig, clip_logits
from .dual_encoder import VisionTextDualEncoderConfig, VisionTextDualEncoderModel
from .towers import VISION_TOWERS, build_vision_tower, register_vision_tower, vision_config_from
from .vit import CLIPVisionConfig

# MindFormers exported its CLIP tokenizer and processors from mindformers.models, so code importing them from
# there keeps working. They are leaves (they import nothing of the models), so this adds no import cycle.
from ms_clip.processor import CLIPImageProcessor, CLIPProcessor  # noqa: E402
from ms_clip.tokenizer import CLIPTokenizer  # noqa: E402

# MindFormers' base-class names: BaseModel (<= 1.1) / PreTrainedModel (1.2), BaseConfig / PretrainedConfig.
BaseModel = PreTrainedModel
BaseConfig = PretrainedConfig = StrictConfig

__all__ = ["CLIPModel", "CLIPConfig", "CLIPTextConfig", "CLIPVisionConfig", "ConfigError", "clip_logits",
           "BertConfig", "BertModel", "ChineseCLIPConfig", "ChineseCLIPModel",
           "VisionTextDualEncoderConfig", "VisionTextDualEncoderModel",
           "PreTrainedModel", "BaseModel", "StrictConfig", "BaseConfig", "PretrainedConfig", "FAMILIES",
           "family_config_from_dict", "model_class_for", "CLIPTokenizer", "CLIPImageProcessor", "CLIPProcessor",
           "VISION_TOWERS", "build_vision_tower", "register_vision_tower", "vision_config_from"]

FAMILIES: Dict[str, Tuple[type, type]] = {
    "CLIPConfig": (CLIPConfig, CLIPModel),
    "ChineseCLIPConfig": (ChineseCLIPConfig, ChineseCLIPModel),
    "VisionTextDualEncoderConfig": (VisionTextDualEncoderConfig, VisionTextDualEncoderModel),
}


def family_config_from_dict(data: Mapping[str, Any], where: str) -> StrictConfig:
    """A family config from a model-config dict; its ``type`` key picks the family (default CLIPConfig)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of model config keys, got {type(data).__name__}")
    kind = data.get("type") or "CLIPConfig"
    if kind not in FAMILIES:
        raise ConfigError(f"{where}.type: unknown model config type {kind!r}.{suggest(kind, FAMILIES)} "
                          f"Valid: {sorted(FAMILIES)}")
    return FAMILIES[kind][0].from_dict(data, where)


def model_class_for(config: StrictConfig) -> type:
    """The model class that builds ``config`` (e.g. CLIPConfig -> CLIPModel)."""
    for config_class, model_class in FAMILIES.values():
        if type(config) is config_class:
            return model_class
    raise ConfigError(f"no model family for config type {type(config).__name__}; known: {sorted(FAMILIES)}")
