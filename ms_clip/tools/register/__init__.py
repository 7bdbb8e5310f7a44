"""``mindformers.tools.register`` names CLIP code used (``MindFormerConfig``)."""
from ms_clip.tools.register.config import MindFormerConfig

__all__ = ["MindFormerConfig"]
