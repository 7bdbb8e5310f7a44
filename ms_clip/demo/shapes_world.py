"""The offline demo world: twelve shapes in eight colours, photographed in five styles, with varied captions.

It extends ``ms_clip.demo.synthetic`` (same colours, backgrounds and Flickr8k writer) so that a small
CLIP trained on it for a few minutes learns something a zero-shot classifier can use:

* every image shows one of :data:`WORLD_SHAPES` (the classes), in one colour, small or large,
  near the centre, on a muted background, in one photo *style* — plain, blurry, black and
  white, low contrast or high contrast — which is really applied to the pixels;
* its five captions name the shape and some of the other attributes, in wordings that include
  the phrases of OpenAI's CIFAR prompts ("a blurry photo of a ...", "a photo of the big ...") and
  MindFormers' pipeline prompt ("a picture of ..."), so zero-shot prompts are in the model's language;
* the held-out test set (:func:`write_shapes_cifar100`) draws fresh scenes from a separate random
  stream and stores them as real CIFAR-100 pickles (32x32, fine label = shape, coarse label =
  curved/angular), balanced over the classes.

Shapes are drawn 4x supersampled and downsampled with a Lanczos filter, so edges are antialiased
as in a photo rather than aliased pixel staircases that a tiny model could key on.

    write_shapes_world(root)   ->  root/Flickr8k/...  +  root/cifar-100-python/{meta,test}  +  root/samples/*.png
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from ms_clip.data.classification import write_cifar100
from ms_clip.demo.synthetic import BACKGROUNDS, COLOURS, SHAPES, SIZES, World, _polygon, write_flickr8k

logger = logging.getLogger(__name__)

__all__ = ["WORLD_SHAPES", "STYLES", "CURVED_SHAPES", "WorldScene", "make_world_scene", "render_world",
           "world_captions", "SHAPES_WORLD", "write_shapes_flickr8k", "write_shapes_cifar100",
           "write_sample_images", "write_shapes_world", "CIFAR_IMAGE_SIZE"]

# The zero-shot classes: the basic world's six shapes plus six that differ from them in outline.
WORLD_SHAPES: Tuple[str, ...] = SHAPES + ("ring", "crescent", "heart", "arrow", "semicircle", "rectangle")
CURVED_SHAPES = ("circle", "ring", "crescent", "heart", "semicircle")  # coarse label 0; the rest are angular
COARSE_NAMES = ("curved", "angular")
# Photo styles with their sampling weights; "plain" images are the "good photos" of the captions.
STYLES: Tuple[str, ...] = ("plain", "blurry", "black and white", "low contrast", "high contrast")
STYLE_WEIGHTS = (0.4, 0.15, 0.15, 0.15, 0.15)
SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("big", "large")}
CIFAR_IMAGE_SIZE = 32  # the CIFAR pickle format fixes 32x32
_SUPERSAMPLE = 4
# Seeds of the held-out test set and the sample images are derived from the user's seed with these
# offsets, so they never replay the training images' random stream.
_TEST_STREAM, _SAMPLE_STREAM = 1_000_003, 2_000_003

# {photo} is "a photo" / "a blurry photo" / ...; {colour} ends with a space, or is empty for black and white.
# Most templates name the shape without the colour on purpose: colour, size and style alone already
# tell most images of a batch apart, so captions that always spelled them out let the contrastive loss
# fall while the model never looked at the outline (measured: zero-shot top-1 stayed at chance). For the
# same reason the shapes stay near the centre: a ViT this small, trained for minutes, learns an outline
# at one place far faster than at five (measured: top-1 ~22% after 3 epochs at five positions, ~67% after 2 centred).
WORLD_TEMPLATES = (
    "{photo} of a {shape}.",
    "{photo} of the {shape}.",
    "{photo} of a {size} {shape}.",
    "{photo} of the {size} {shape}.",
    "{quality} photo of a {shape}.",
    "a picture of {shape}.",
    "a picture of a {shape}",
    "a drawing of a {shape}",
    "a {size} {shape}",
    "a {shape}",
    "{photo} of a {colour}{shape}.",
    "a {size} {colour}{shape} on a plain background",
    "there is a {shape} in the middle",
    "a drawing of a {shape}{in_colour}",
)


@dataclass(frozen=True)
class WorldScene:
    shape: str
    colour: str
    size: str
    background: int  # index into synthetic.BACKGROUNDS
    style: str
    jitter: Tuple[float, float]  # centre offset, fraction of the image size
    scale: float  # radius multiplier, so "small" and "large" are ranges rather than two exact sizes


def make_world_scene(rng: np.random.Generator, shape: Optional[str] = None) -> WorldScene:
    """A random scene; ``shape`` fixes the class (the held-out set is balanced that way)."""
    if shape is None:
        shape = WORLD_SHAPES[rng.integers(len(WORLD_SHAPES))]
    elif shape not in WORLD_SHAPES:
        raise ValueError(f"unknown shape {shape!r}; expected one of {WORLD_SHAPES}")
    return WorldScene(
        shape=shape,
        colour=list(COLOURS)[rng.integers(len(COLOURS))],
        size=SIZES[rng.integers(len(SIZES))],
        background=int(rng.integers(len(BACKGROUNDS))),
        style=STYLES[rng.choice(len(STYLES), p=STYLE_WEIGHTS)],
        jitter=(float(rng.uniform(-0.06, 0.06)), float(rng.uniform(-0.06, 0.06))),
        scale=float(rng.uniform(0.9, 1.1)),
    )


def _world_polygon(shape: str, cx: float, cy: float, r: float) -> List[Tuple[float, float]]:
    """Outline of the shapes drawn as one polygon (the basic world's, plus heart, arrow and rectangle)."""
    if shape == "heart":
        # The classic parametric heart, scaled so its width is about 2r, point down.
        ts = np.linspace(0, 2 * math.pi, 48, endpoint=False)
        xs = 16 * np.sin(ts) ** 3
        ys = -(13 * np.cos(ts) - 5 * np.cos(2 * ts) - 2 * np.cos(3 * ts) - np.cos(4 * ts))
        k = r / 16
        return [(cx + k * x, cy + k * (y + 2)) for x, y in zip(xs, ys)]
    if shape == "arrow":  # pointing right: a shaft and a triangular head
        t, h = 0.3 * r, 0.8 * r
        return [(cx - r, cy - t), (cx + 0.1 * r, cy - t), (cx + 0.1 * r, cy - h), (cx + r, cy),
                (cx + 0.1 * r, cy + h), (cx + 0.1 * r, cy + t), (cx - r, cy + t)]
    if shape == "rectangle":  # twice as wide as tall, so never a square
        return [(cx - r, cy - r / 2), (cx + r, cy - r / 2), (cx + r, cy + r / 2), (cx - r, cy + r / 2)]
    return _polygon(shape, cx, cy, r)


def _draw_shape(draw: ImageDraw.ImageDraw, scene: WorldScene, cx: float, cy: float, r: float) -> None:
    colour = COLOURS[scene.colour]
    box = [cx - r, cy - r, cx + r, cy + r]
    if scene.shape == "circle":
        draw.ellipse(box, fill=colour)
    elif scene.shape == "ring":
        draw.ellipse(box, outline=colour, width=max(1, int(round(0.35 * r))))
    elif scene.shape == "crescent":
        # A disc with an offset disc of background colour cut out of its upper right.
        draw.ellipse(box, fill=colour)
        ox, oy, rr = cx + 0.45 * r, cy - 0.2 * r, 0.85 * r
        draw.ellipse([ox - rr, oy - rr, ox + rr, oy + rr], fill=BACKGROUNDS[scene.background])
    elif scene.shape == "semicircle":  # flat side down, centred on the disc's centre of area
        dy = 0.4 * r
        draw.pieslice([cx - r, cy - r + dy, cx + r, cy + r + dy], 180, 360, fill=colour)
    else:
        draw.polygon(_world_polygon(scene.shape, cx, cy, r), fill=colour)


def _apply_style(img: Image.Image, style: str, image_size: int) -> Image.Image:
    if style == "blurry":
        return img.filter(ImageFilter.GaussianBlur(radius=0.02 * image_size))
    if style == "black and white":
        return img.convert("L").convert("RGB")
    if style == "low contrast":
        return ImageEnhance.Contrast(img).enhance(0.4)
    if style == "high contrast":
        return ImageEnhance.Contrast(img).enhance(1.8)
    if style != "plain":
        raise ValueError(f"unknown style {style!r}; expected one of {STYLES}")
    return img


def render_world(scene: WorldScene, image_size: int, rng: np.random.Generator) -> Image.Image:
    """The scene as an RGB image of ``image_size`` pixels: antialiased shape, style, mild pixel noise."""
    big = image_size * _SUPERSAMPLE
    img = Image.new("RGB", (big, big), BACKGROUNDS[scene.background])
    # Large enough that at CIFAR's 32 px a small shape still has a readable outline (radius ~7 px).
    r = big * (0.22 if scene.size == "small" else 0.33) * scene.scale
    _draw_shape(ImageDraw.Draw(img), scene, (0.5 + scene.jitter[0]) * big, (0.5 + scene.jitter[1]) * big, r)
    img = _apply_style(img.resize((image_size, image_size), Image.LANCZOS), scene.style, image_size)
    s = image_size
    pixels = np.asarray(img, dtype=np.int16) + rng.integers(-10, 11, size=(s, s, 3), dtype=np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _words(scene: WorldScene, rng: np.random.Generator) -> Dict[str, str]:
    bw = scene.style == "black and white"  # its captions cannot know the colour
    quality = {"plain": "a good", "blurry": "a bad", "low contrast": "a bad"}.get(scene.style, "a")
    return {
        "shape": scene.shape,
        "colour": "" if bw else scene.colour + " ",
        "in_colour": "" if bw else " in " + scene.colour,
        "size": str(rng.choice(SIZE_WORDS[scene.size])),
        "photo": "a photo" if scene.style == "plain" else f"a {scene.style} photo",
        "quality": quality,
    }


def world_captions(scene: WorldScene, rng: np.random.Generator, n: int = 5) -> List[str]:
    """``n`` captions of the scene from distinct templates; every one names the shape."""
    chosen = rng.choice(len(WORLD_TEMPLATES), size=n, replace=n > len(WORLD_TEMPLATES))
    return [WORLD_TEMPLATES[i].format(**_words(scene, rng)) for i in chosen]


SHAPES_WORLD = World(make_scene=make_world_scene, render=render_world, captions=world_captions)


def write_shapes_flickr8k(root: str, n_images: int = 6000, seed: int = 0, image_size: int = 64,
                          split_fractions: Sequence[float] = (0.9, 0.05, 0.05)) -> str:
    """The world's image-caption pairs in the real Flickr8k layout under ``root``; returns ``root/Flickr8k``."""
    return write_flickr8k(root, n_images=n_images, seed=seed, image_size=image_size,
                          split_fractions=split_fractions, world=SHAPES_WORLD)


def _balanced_scenes(rng: np.random.Generator, per_class: int) -> List[WorldScene]:
    """``per_class`` scenes of every shape, interleaved (circle, square, ..., circle, ...)."""
    return [make_world_scene(rng, shape) for _ in range(per_class) for shape in WORLD_SHAPES]


def write_shapes_cifar100(root: str, per_class: int = 50, seed: int = 0, render_size: int = 64) -> str:
    """A held-out test set of ``per_class`` images per shape as real CIFAR-100 pickles under
    ``root/cifar-100-python`` (``meta`` + ``test``); returns that folder.

    Scenes come from a random stream of their own (``seed`` offset), never from the training
    images'. They are rendered at ``render_size`` like the training images and resized to CIFAR's
    32x32 with bicubic filtering, as the training transform resizes the training images.
    """
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    rng = np.random.default_rng(seed + _TEST_STREAM)
    scenes = _balanced_scenes(rng, per_class)
    images = np.stack([np.asarray(render_world(s, render_size, rng).resize(
        (CIFAR_IMAGE_SIZE, CIFAR_IMAGE_SIZE), Image.BICUBIC)) for s in scenes])
    fine = [WORLD_SHAPES.index(s.shape) for s in scenes]
    coarse = [0 if s.shape in CURVED_SHAPES else 1 for s in scenes]
    folder = write_cifar100(root, images, fine, coarse, WORLD_SHAPES, COARSE_NAMES, split="test")
    logger.info("wrote %d held-out test images (%d classes x %d) in CIFAR-100 format under %s",
                len(scenes), len(WORLD_SHAPES), per_class, folder)
    return folder


def write_sample_images(folder: str, n: int = 6, seed: int = 0, image_size: int = 64) -> List[str]:
    """``n`` fresh scenes as PNG files named after what they show (``03_blue_star.png``); returns the paths."""
    rng = np.random.default_rng(seed + _SAMPLE_STREAM)
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(n):
        scene = make_world_scene(rng, WORLD_SHAPES[(i * 5) % len(WORLD_SHAPES)])  # 5 is coprime to 12: varied
        path = os.path.join(folder, f"{i:02d}_{scene.colour}_{scene.shape}.png")
        render_world(scene, image_size, rng).save(path)
        paths.append(path)
    return paths


def write_shapes_world(root: str, n_images: int = 6000, test_per_class: int = 50, n_samples: int = 6,
                       seed: int = 0, image_size: int = 64) -> Dict[str, str]:
    """Everything the demo needs under ``root``: ``flickr8k`` (training pairs), ``cifar100`` (held-out
    test set) and ``samples`` (a few images for prediction). Returns those three paths."""
    flickr = write_shapes_flickr8k(root, n_images=n_images, seed=seed, image_size=image_size)
    cifar = write_shapes_cifar100(root, per_class=test_per_class, seed=seed, render_size=image_size)
    samples = os.path.join(root, "samples")
    write_sample_images(samples, n=n_samples, seed=seed, image_size=image_size)
    return {"flickr8k": flickr, "cifar100": cifar, "samples": samples}
