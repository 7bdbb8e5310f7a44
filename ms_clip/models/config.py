"""The CLIP family's configs, importable from their historical place (``ms_clip.models.config``).

Each config lives beside its Cells now (``vit.py``, ``clip.py``); the strict dataclass base is in
``base.py``.
"""
from __future__ import annotations

from .base import ConfigError, StrictConfig
from .clip import COMPUTE_DTYPES, CLIPConfig, CLIPTextConfig
from .layers import HIDDEN_ACTS
from .vit import CLIPVisionConfig

__all__ = ["CLIPTextConfig", "CLIPVisionConfig", "CLIPConfig", "ConfigError", "StrictConfig", "COMPUTE_DTYPES",
           "HIDDEN_ACTS"]
