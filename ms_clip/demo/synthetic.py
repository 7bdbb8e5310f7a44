"""A small, deterministic, learnable image-caption world, written in the real Flickr8k layout.

Each image is one PIL-drawn shape (circle, square, triangle, ...) in one colour, at one of two
sizes, in one of five positions, on a varying background with a little noise; its five captions
describe it with different templates (some name every attribute, some only colour and shape).
Nothing else in the image is informative, so a model that learns colour x shape x size x position
from pixels and words retrieves the right captions far above chance.

``write_flickr8k(root, n_images, seed, image_size)`` writes::

    root/Flickr8k/Flickr8k_Dataset/Flickr8k_Dataset/<id>_<hex>.jpg
    root/Flickr8k/Flickr8k_text/Flickr8k.token.txt         (img.jpg#k<TAB>caption, k = 0..4)
    root/Flickr8k/Flickr8k_text/Flickr_8k.{train,dev,test}Images.txt

exactly like the real dataset, so everything that reads Flickr8k reads it unchanged.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

logger = logging.getLogger(__name__)

__all__ = ["SHAPES", "COLOURS", "SIZES", "POSITIONS", "Scene", "make_scene", "render", "captions_for",
           "World", "BASIC_WORLD", "write_flickr8k"]

SHAPES = ("circle", "square", "triangle", "diamond", "cross", "star")
COLOURS: Dict[str, Tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 60, 220),
    "yellow": (235, 215, 20),
    "purple": (140, 40, 170),
    "orange": (245, 135, 20),
    "white": (250, 250, 250),
    "black": (15, 15, 15),
}
SIZES = ("small", "large")
POSITIONS = ("center", "left", "right", "top", "bottom")
# Backgrounds are nuisance: muted tones that differ from every shape colour.
BACKGROUNDS = ((128, 128, 128), (190, 175, 150), (110, 140, 160), (160, 120, 120), (100, 130, 100))

# Caption templates; several leave attributes out, as real captions do.
TEMPLATES = (
    "a {size} {colour} {shape} on the {position}",
    "a picture of a {colour} {shape}",
    "there is a {size} {shape} coloured {colour} in the {position}",
    "the {position} of the image shows a {colour} {shape}",
    "a {colour} {shape} that is {size}",
    "one {size} {colour} {shape}",
    "a drawing of a {shape} in {colour}",
    "{colour} {shape} near the {position}",
)
_POSITION_PHRASE = {"center": "middle", "left": "left side", "right": "right side", "top": "top", "bottom": "bottom"}


@dataclass(frozen=True)
class Scene:
    shape: str
    colour: str
    size: str
    position: str
    background: int  # index into BACKGROUNDS
    jitter: Tuple[float, float]  # sub-position offset, fraction of the image size


def make_scene(rng: np.random.Generator) -> Scene:
    return Scene(
        shape=SHAPES[rng.integers(len(SHAPES))],
        colour=list(COLOURS)[rng.integers(len(COLOURS))],
        size=SIZES[rng.integers(len(SIZES))],
        position=POSITIONS[rng.integers(len(POSITIONS))],
        background=int(rng.integers(len(BACKGROUNDS))),
        jitter=(float(rng.uniform(-0.05, 0.05)), float(rng.uniform(-0.05, 0.05))),
    )


def _polygon(shape: str, cx: float, cy: float, r: float) -> List[Tuple[float, float]]:
    if shape == "square":
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "triangle":
        return [(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "diamond":
        return [(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)]
    if shape == "cross":
        t = r / 3
        return [(cx - t, cy - r), (cx + t, cy - r), (cx + t, cy - t), (cx + r, cy - t), (cx + r, cy + t),
                (cx + t, cy + t), (cx + t, cy + r), (cx - t, cy + r), (cx - t, cy + t), (cx - r, cy + t),
                (cx - r, cy - t), (cx - t, cy - t)]
    if shape == "star":
        points = []
        for k in range(10):
            radius = r if k % 2 == 0 else r * 0.45
            angle = -math.pi / 2 + k * math.pi / 5
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
        return points
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def render(scene: Scene, image_size: int, rng: np.random.Generator) -> Image.Image:
    """The scene as an RGB image of ``image_size`` pixels, with mild pixel noise."""
    s = image_size
    img = Image.new("RGB", (s, s), BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(img)
    r = s * (0.14 if scene.size == "small" else 0.27)
    centres = {"center": (0.5, 0.5), "left": (0.28, 0.5), "right": (0.72, 0.5), "top": (0.5, 0.28),
               "bottom": (0.5, 0.72)}
    fx, fy = centres[scene.position]
    cx, cy = (fx + scene.jitter[0]) * s, (fy + scene.jitter[1]) * s
    colour = COLOURS[scene.colour]
    if scene.shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    else:
        draw.polygon(_polygon(scene.shape, cx, cy, r), fill=colour)
    pixels = np.asarray(img, dtype=np.int16) + rng.integers(-12, 13, size=(s, s, 3), dtype=np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def captions_for(scene: Scene, rng: np.random.Generator, n: int = 5) -> List[str]:
    """``n`` different captions of the scene, from distinct templates."""
    chosen = rng.choice(len(TEMPLATES), size=n, replace=n > len(TEMPLATES))
    words = {"shape": scene.shape, "colour": scene.colour, "size": scene.size,
             "position": _POSITION_PHRASE[scene.position]}
    return [TEMPLATES[i].format(**words) for i in chosen]


@dataclass(frozen=True)
class World:
    """How one image-caption pair is drawn: ``make_scene(rng)``, ``render(scene, image_size, rng)``,
    ``captions(scene, rng)`` (five captions). ``write_flickr8k`` calls them in that order, with the
    file name drawn between the scene and its rendering, so a world is deterministic in the seed."""
    make_scene: Callable[[np.random.Generator], Any]
    render: Callable[[Any, int, np.random.Generator], Image.Image]
    captions: Callable[[Any, np.random.Generator], List[str]]


BASIC_WORLD = World(make_scene=make_scene, render=render, captions=captions_for)


def _image_name(rng: np.random.Generator, used: set) -> str:
    """A Flickr-style file name (``1000268201_693b08cb0e.jpg``), unique within the dataset."""
    while True:
        name = f"{rng.integers(10**9, 10**10)}_{rng.integers(0, 16**10):010x}.jpg"
        if name not in used:
            used.add(name)
            return name


def write_flickr8k(root: str, n_images: int = 600, seed: int = 0, image_size: int = 64,
                   split_fractions: Sequence[float] = (0.7, 0.1, 0.2), world: World = BASIC_WORLD) -> str:
    """Write ``n_images`` synthetic scenes in the real Flickr8k layout under ``root``; returns ``root/Flickr8k``.

    Deterministic in ``seed``. The train/dev/test split lists get ``split_fractions`` of the images.
    ``world`` draws the scenes (default: this module's shapes; ``ms_clip.demo.shapes_world`` has a richer one).
    """
    if n_images < 3:
        raise ValueError(f"n_images must be at least 3 (one per split), got {n_images}")
    rng = np.random.default_rng(seed)
    base = os.path.join(root, "Flickr8k")
    image_dir = os.path.join(base, "Flickr8k_Dataset", "Flickr8k_Dataset")
    text_dir = os.path.join(base, "Flickr8k_text")
    os.makedirs(image_dir, exist_ok=True)
    os.makedirs(text_dir, exist_ok=True)
    used: set = set()
    names, lines = [], []
    for _ in range(n_images):
        scene = world.make_scene(rng)
        name = _image_name(rng, used)
        world.render(scene, image_size, rng).save(os.path.join(image_dir, name), quality=95)
        names.append(name)
        lines.extend(f"{name}#{k}\t{caption}" for k, caption in enumerate(world.captions(scene, rng)))
    with open(os.path.join(text_dir, "Flickr8k.token.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    n_train = int(round(split_fractions[0] * n_images))
    n_dev = max(1, int(round(split_fractions[1] * n_images)))
    splits = {"train": names[:n_train], "dev": names[n_train:n_train + n_dev], "test": names[n_train + n_dev:]}
    for split, members in splits.items():
        with open(os.path.join(text_dir, f"Flickr_8k.{split}Images.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(members) + "\n")
    logger.info("wrote %d synthetic Flickr8k images (%s) under %s", n_images,
                ", ".join(f"{k} {len(v)}" for k, v in splits.items()), base)
    return base
