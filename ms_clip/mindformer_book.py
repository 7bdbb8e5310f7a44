"""``MindFormerBook`` where MindFormers kept it (``mindformers.mindformer_book``); see ``ms_clip.auto``."""
from ms_clip.auto import MindFormerBook

__all__ = ["MindFormerBook"]
