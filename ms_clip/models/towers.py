"""Vision towers chosen by config: ``vision_config.type`` names the tower's config class.

A family model (CLIP, Chinese-CLIP, the dual encoder) builds its ``visual`` tower with
``build_vision_tower``; adding a tower (e.g. OpenAI's ModifiedResNet) is one entry in
``VISION_TOWERS`` and a file of its own, with no change to the families.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Tuple

from mindspore import nn

from .base import ConfigError, StrictConfig, suggest
from .resnet import CLIPResNetVisionConfig, ModifiedResNet
from .vit import CLIPVisionConfig, VisionTransformer

__all__ = ["VISION_TOWERS", "vision_config_from", "build_vision_tower", "register_vision_tower"]

# config class name (the ``type`` key in YAML) -> (config class, tower constructor(cfg, projection_dim, dtype)).
VISION_TOWERS: Dict[str, Tuple[type, Callable[..., nn.Cell]]] = {
    "CLIPVisionConfig": (CLIPVisionConfig, VisionTransformer),
    "CLIPResNetVisionConfig": (CLIPResNetVisionConfig, ModifiedResNet),  # OpenAI's RN50 ... RN50x64
}
# Short names accepted in YAML for readability.
_TYPE_ALIASES = {"vit": "CLIPVisionConfig", "resnet": "CLIPResNetVisionConfig"}


def register_vision_tower(config_class: type, tower: Callable[..., nn.Cell], alias: str = "") -> None:
    VISION_TOWERS[config_class.__name__] = (config_class, tower)
    if alias:
        _TYPE_ALIASES[alias] = config_class.__name__


def vision_config_from(value: Any, where: str) -> StrictConfig:
    """A vision tower config from a config object or a dict whose ``type`` picks the tower (default: ViT)."""
    if isinstance(value, tuple(cls for cls, _ in VISION_TOWERS.values())):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a vision config or dict, got {type(value).__name__}")
    kind = _TYPE_ALIASES.get(value.get("type") or "CLIPVisionConfig", value.get("type") or "CLIPVisionConfig")
    if kind not in VISION_TOWERS:
        valid = sorted(VISION_TOWERS) + sorted(_TYPE_ALIASES)
        raise ConfigError(f"{where}.type: unknown vision tower {value.get('type')!r}.{suggest(kind, valid)} "
                          f"Valid: {valid}")
    return VISION_TOWERS[kind][0].from_dict(value, where)


def build_vision_tower(cfg: StrictConfig, projection_dim: int, compute_dtype) -> nn.Cell:
    return VISION_TOWERS[type(cfg).__name__][1](cfg, projection_dim, compute_dtype)
