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
from .towers import VISION_TOWERS, build_vision_tower, register_vision_tower, vision_config_from
from .vit import CLIPVisionConfig

__all__ = ["CLIPModel", "CLIPConfig", "CLIPTextConfig", "CLIPVisionConfig", "ConfigError", "clip_logits",
           "BertConfig", "BertModel", "ChineseCLIPConfig", "ChineseCLIPModel",
           "PreTrainedModel", "StrictConfig", "FAMILIES", "family_config_from_dict", "model_class_for",
           "VISION_TOWERS", "build_vision_tower", "register_vision_tower", "vision_config_from"]

FAMILIES: Dict[str, Tuple[type, type]] = {
    "CLIPConfig": (CLIPConfig, CLIPModel),
    "ChineseCLIPConfig": (ChineseCLIPConfig, ChineseCLIPModel),
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
