"""The shapes world with Chinese captions, written in Chinese-CLIP's dataset format (Flickr30k-CN / MUGE layout).

Scenes and pixels are ``ms_clip.demo.shapes_world``'s (twelve shapes, eight colours, two sizes, five photo
styles); the captions name them in Chinese. Every image gets two captions of its own; in the held-out
splits some texts describe a (colour, shape) combination and name **every** image showing it, so
text -> image retrieval has several correct images, as in Chinese-CLIP's data.

    write_chinese_shapes(root)  ->  root/{train,valid,test}_imgs.tsv + root/{train,valid,test}_texts.jsonl
"""
from __future__ import annotations

import logging
from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image

from ms_clip.data.chinese_clip import write_chinese_clip_split
from ms_clip.demo.shapes_world import WORLD_SHAPES, WorldScene, make_world_scene, render_world

logger = logging.getLogger(__name__)

__all__ = ["SHAPE_WORDS", "COLOUR_WORDS", "SIZE_WORDS", "STYLE_WORDS", "chinese_captions", "write_chinese_shapes"]

SHAPE_WORDS: Dict[str, str] = {
    "circle": "圆形", "square": "正方形", "triangle": "三角形", "diamond": "菱形", "cross": "十字", "star": "星星",
    "ring": "圆环", "crescent": "月牙", "heart": "爱心", "arrow": "箭头", "semicircle": "半圆", "rectangle": "长方形",
}
COLOUR_WORDS: Dict[str, str] = {
    "red": "红色", "green": "绿色", "blue": "蓝色", "yellow": "黄色", "purple": "紫色", "orange": "橙色",
    "white": "白色", "black": "黑色",
}
SIZE_WORDS: Dict[str, Tuple[str, ...]] = {"small": ("小", "小小的"), "large": ("大", "大大的")}
STYLE_WORDS: Dict[str, str] = {"plain": "照片", "blurry": "模糊照片", "black and white": "黑白照片",
                               "low contrast": "低对比度照片", "high contrast": "高对比度照片"}

# {colour} is empty for black-and-white photos (their captions cannot know the colour). Every caption names
# the colour and the shape, so a model trained for a minute from scratch already has a signal to learn.
_TEMPLATES = (
    "一张{colour}{shape}的{photo}",
    "一个{size}{colour}{shape}",
    "{colour}{shape}",
    "图片中间有一个{colour}{shape}",
    "一张{size}{colour}{shape}的{photo}",
    "这是一个{colour}的{shape}",
    "画着{colour}{shape}的图",
)


def _words(scene: WorldScene, rng: np.random.Generator) -> Dict[str, str]:
    bw = scene.style == "black and white"
    return {"shape": SHAPE_WORDS[scene.shape], "colour": "" if bw else COLOUR_WORDS[scene.colour],
            "size": str(rng.choice(SIZE_WORDS[scene.size])), "photo": STYLE_WORDS[scene.style]}


def chinese_captions(scene: WorldScene, rng: np.random.Generator, n: int = 2) -> List[str]:
    """``n`` distinct Chinese captions of the scene; each names the shape."""
    chosen = rng.choice(len(_TEMPLATES), size=n, replace=False)
    return [_TEMPLATES[i].format(**_words(scene, rng)).replace("一个的", "一个") for i in chosen]


def _split(rng: np.random.Generator, n_images: int, image_size: int, first_image_id: int, first_text_id: int,
           group_texts: bool) -> Tuple[Dict[int, Image.Image], List[Tuple[int, str, List[int]]]]:
    scenes = [make_world_scene(rng) for _ in range(n_images)]
    images = {first_image_id + i: render_world(s, image_size, rng) for i, s in enumerate(scenes)}
    texts: List[Tuple[int, str, List[int]]] = []
    text_id = first_text_id
    for i, scene in enumerate(scenes):
        for caption in chinese_captions(scene, rng):
            texts.append((text_id, caption, [first_image_id + i]))
            text_id += 1
    if group_texts:
        groups: Dict[Tuple[str, str], List[int]] = {}
        for i, scene in enumerate(scenes):
            if scene.style != "black and white":
                groups.setdefault((scene.colour, scene.shape), []).append(first_image_id + i)
        for (colour, shape), ids in sorted(groups.items()):
            if len(ids) > 1:  # a text with several correct images
                texts.append((text_id, f"所有{COLOUR_WORDS[colour]}{SHAPE_WORDS[shape]}的图片", ids))
                text_id += 1
    return images, texts


def write_chinese_shapes(root: str, n_train: int = 480, n_valid: int = 60, n_test: int = 120, seed: int = 0,
                         image_size: int = 48, splits: Sequence[str] = ("train", "valid", "test")) -> str:
    """Write the world's splits under ``root`` in Chinese-CLIP's TSV/JSONL format; returns ``root``.

    Image and text ids are distinct integers across splits (as in Flickr30k-CN). Each split draws its
    scenes from its own random stream, so the held-out splits never repeat training images.
    """
    sizes = {"train": n_train, "valid": n_valid, "test": n_test}
    for k, split in enumerate(splits):
        rng = np.random.default_rng([seed, 7919 * (k + 1)])
        images, texts = _split(rng, sizes[split], image_size, 100_000 * (k + 1), 1_000_000 * (k + 1),
                               group_texts=split != "train")
        write_chinese_clip_split(root, split, images, texts)
        logger.info("wrote %s: %d images, %d texts (%d with several images)", split, len(images), len(texts),
                    sum(len(t[2]) > 1 for t in texts))
    return root
