"""MindFormers' ``mindformers.tools`` names that CLIP code used: ``logger`` and ``image_tools.load_image``."""
import logging

# MindFormers' code logs through ``from mindformers.tools import logger``; ms_clip's package logger.
logger = logging.getLogger("ms_clip")

__all__ = ["logger"]
