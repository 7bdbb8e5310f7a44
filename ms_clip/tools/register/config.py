"""``MindFormerConfig`` where MindFormers kept it (``mindformers.tools.register.config``); see ``ms_clip.auto``."""
from ms_clip.auto import MindFormerConfig

__all__ = ["MindFormerConfig"]
