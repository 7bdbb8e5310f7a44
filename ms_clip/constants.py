"""Constants shared by preprocessing, datasets and the CLI (one home each)."""
from __future__ import annotations

__all__ = ["CLIP_MEAN", "CLIP_STD", "IMAGE_EXTENSIONS"]

# OpenAI CLIP's image normalisation (clip/clip.py _transform), also used by Chinese-CLIP and HF's CLIP processors.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# File suffixes read as images by folder datasets, --predict_data folders and the pipeline (lower case;
# matching is case-insensitive). Everything here is a format Pillow decodes.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
