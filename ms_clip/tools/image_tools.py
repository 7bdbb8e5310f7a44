"""``load_image`` where MindFormers kept it (``mindformers.tools.image_tools``): ms_clip's own loader.

Paths, http(s) URLs (bounded download), encoded bytes and PIL images are accepted; the result is a fully
decoded PIL image with its EXIF orientation applied. Unlike MindFormers' version, it is not converted to RGB
here: the preprocessing converts after resize and crop, as OpenAI's does (see ``ms_clip.processor``).
"""
from ms_clip.processor import ImageLoadError, load_image

__all__ = ["load_image", "ImageLoadError"]
