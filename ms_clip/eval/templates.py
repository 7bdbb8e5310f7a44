"""Class names and prompt templates for zero-shot classification (data only).

Source: OpenAI CLIP's ``data/prompts.md`` (github.com/openai/CLIP). CIFAR-100 and
CIFAR-10 share the same 18 templates. The CIFAR-100 names are torchvision's / the pickle's
``fine_label_names`` in the same (alphabetical) order with ``_`` replaced by a space.
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple, Union

__all__ = ["CIFAR100_CLASSNAMES", "CIFAR10_CLASSNAMES", "OPENAI_CIFAR_TEMPLATES", "TEMPLATE_SETS",
           "MINDFORMERS_HYPOTHESIS_TEMPLATE", "resolve_templates"]

CIFAR100_CLASSNAMES: Tuple[str, ...] = (
    "apple", "aquarium fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn mower", "leopard", "lion", "lizard", "lobster", "man", "maple tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak tree", "orange", "orchid", "otter", "palm tree", "pear", "pickup truck", "pine tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow tree", "wolf", "woman", "worm",
)

CIFAR10_CLASSNAMES: Tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)

OPENAI_CIFAR_TEMPLATES: Tuple[str, ...] = (
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a black and white photo of a {}.",
    "a low contrast photo of a {}.",
    "a high contrast photo of a {}.",
    "a bad photo of a {}.",
    "a good photo of a {}.",
    "a photo of a small {}.",
    "a photo of a big {}.",
    "a photo of the {}.",
    "a blurry photo of the {}.",
    "a black and white photo of the {}.",
    "a low contrast photo of the {}.",
    "a high contrast photo of the {}.",
    "a bad photo of the {}.",
    "a good photo of the {}.",
    "a photo of the small {}.",
    "a photo of the big {}.",
)

# MindFormers' single prompt (pipeline default; its CIFAR-100 yaml used it without the period).
MINDFORMERS_HYPOTHESIS_TEMPLATE = "a picture of {}."

# Named prompt sets accepted wherever templates are configured (``templates: openai`` in a run YAML).
TEMPLATE_SETS: Dict[str, Tuple[str, ...]] = {
    "openai": OPENAI_CIFAR_TEMPLATES,
    "openai_cifar": OPENAI_CIFAR_TEMPLATES,
}


def resolve_templates(spec: Union[str, Sequence[str]], where: str = "templates") -> Tuple[str, ...]:
    """Templates from a set name (``"openai"``), one template string, or a list of template strings.

    A string containing ``{}`` is a single template; any other string must name a set in
    ``TEMPLATE_SETS``. Every template must contain exactly one ``{}`` for the class name.
    """
    if isinstance(spec, str):
        if spec in TEMPLATE_SETS:
            return TEMPLATE_SETS[spec]
        if "{}" not in spec:
            raise ValueError(f"{where}: {spec!r} is neither a template containing '{{}}' nor a known "
                             f"template set {sorted(TEMPLATE_SETS)}")
        spec = [spec]
    templates = tuple(spec)
    if not templates:
        raise ValueError(f"{where}: expected at least one template, got an empty list")
    for t in templates:
        if not isinstance(t, str) or t.count("{}") != 1:
            raise ValueError(f"{where}: every template must be a string with exactly one '{{}}' "
                             f"placeholder for the class name, got {t!r}")
    return templates
