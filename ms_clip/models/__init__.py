from .clip import CLIPModel, clip_logits
from .config import CLIPConfig, CLIPTextConfig, CLIPVisionConfig, ConfigError

__all__ = ["CLIPModel", "CLIPConfig", "CLIPTextConfig", "CLIPVisionConfig", "ConfigError", "clip_logits"]
