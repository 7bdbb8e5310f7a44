"""Class names and prompt templates for zero-shot classification (data only).

Source: OpenAI CLIP's ``data/prompts.md`` (github.com/openai/CLIP); the Chinese prompts are Chinese-CLIP's
(see ``CHINESE_CLIP_TEMPLATES``). CIFAR-100 and
CIFAR-10 share the same 18 templates. The CIFAR-100 names are torchvision's / the pickle's
``fine_label_names`` in the same (alphabetical) order with ``_`` replaced by a space.
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple, Union

__all__ = ["CIFAR100_CLASSNAMES", "CIFAR10_CLASSNAMES", "OPENAI_CIFAR_TEMPLATES", "TEMPLATE_SETS",
           "MINDFORMERS_HYPOTHESIS_TEMPLATE", "resolve_templates", "CHINESE_CLIP_TEMPLATES",
           "CHINESE_CLIP_CIFAR100_TEMPLATES", "CHINESE_CLIP_SIMPLE_TEMPLATE"]

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

# Chinese-CLIP's prompts (cn_clip/eval/cvinw_zeroshot_templates.py), in its order. CHINESE_CLIP_TEMPLATES is its
# ``openai_templates``: the Chinese translation of OpenAI's ImageNet prompts that its zeroshot_evaluation.py uses
# for every dataset without a set of its own -- CIFAR-10 and CIFAR-100 included. It lists 183 prompts of which
# 4 repeat; they are kept, since Chinese-CLIP averages all 183. CHINESE_CLIP_CIFAR100_TEMPLATES is the file's
# ``cifar100_templates`` (defined there, not used by its evaluation script).
CHINESE_CLIP_TEMPLATES: Tuple[str, ...] = (
    "{}的照片", "质量差的{}的照片", "许多{}的照片", "{}的雕塑", "难以看到{}的照片", "{}的低分辨率照片", "{}的渲染", "涂鸦{}", "{}的糟糕照片", "{}的裁剪照片",
    "{}的纹身", "{}的刺绣照片", "很难看到{}的照片", "{}的明亮照片", "一张干净的{}的照片", "一张包含{}的照片", "{}的深色照片", "{}的手绘画", "我的{}的照片",
    "不自然的{}的照片", "一张酷的{}的照片", "{}的特写照片", "{}的黑白照片", "一幅{}的画", "一幅{}的绘画", "一张{}的像素照片", "{}的雕像", "一张{}的明亮照片",
    "{}的裁剪照片", "人造的{}的照片", "一张关于{}的照片", "损坏的{}的jpeg照片", "{}的模糊照片", "{}的相片", "一张{}的好照片", "{}的渲染照", "视频游戏中的{}",
    "一张{}的照片", "{}的涂鸦", "{}的近距离照片", "{}的折纸", "{}在视频游戏中", "{}的草图", "{}的涂鸦照", "{}的折纸形状", "低分辨率的{}的照片", "玩具{}",
    "{}的副本", "{}的干净的照片", "一张大{}的照片", "{}的重现", "一张漂亮的{}的照片", "一张奇怪的{}的照片", "模糊的{}的照片", "卡通{}", "{}的艺术作品", "{}的素描",
    "刺绣{}", "{}的像素照", "{}的拍照", "{}的损坏的照片", "高质量的{}的照片", "毛绒玩具{}", "漂亮的{}的照片", "小{}的照片", "照片是奇怪的{}", "漫画{}",
    "{}的艺术照", "{}的图形", "大{}的照片", "黑白的{}的照片", "{}毛绒玩具", "一张{}的深色照片", "{}的摄影图", "{}的涂鸦照", "玩具形状的{}", "拍了{}的照片",
    "酷酷的{}的照片", "照片里的小{}", "{}的刺青", "{}的可爱的照片", "一张{}可爱的照片", "{}可爱图片", "{}酷炫图片", "一张{}的酷炫的照片", "一张{}的酷炫图片", "这是{}",
    "{}的好看照片", "一张{}的好看的图片", "{}的好看图片", "{}的照片。", "质量差的{}的照片。", "许多{}的照片。", "{}的雕塑。", "难以看到{}的照片。", "{}的低分辨率照片。",
    "{}的渲染。", "涂鸦{}。", "{}的糟糕照片。", "{}的裁剪照片。", "{}的纹身。", "{}的刺绣照片。", "很难看到{}的照片。", "{}的明亮照片。", "一张干净的{}的照片。",
    "一张包含{}的照片。", "{}的深色照片。", "{}的手绘画。", "我的{}的照片。", "不自然的{}的照片。", "一张酷的{}的照片。", "{}的特写照片。", "{}的黑白照片。", "一幅{}的画。",
    "一幅{}的绘画。", "一张{}的像素照片。", "{}的雕像。", "一张{}的明亮照片。", "{}的裁剪照片。", "人造的{}的照片。", "一张关于{}的照片。", "损坏的{}的jpeg照片。",
    "{}的模糊照片。", "{}的相片。", "一张{}的好照片。", "{}的渲染照。", "视频游戏中的{}。", "一张{}的照片。", "{}的涂鸦。", "{}的近距离照片。", "{}的折纸。",
    "{}在视频游戏中。", "{}的草图。", "{}的涂鸦照。", "{}的折纸形状。", "低分辨率的{}的照片。", "玩具{}。", "{}的副本。", "{}的干净的照片。", "一张大{}的照片。",
    "{}的重现。", "一张漂亮的{}的照片。", "一张奇怪的{}的照片。", "模糊的{}的照片。", "卡通{}。", "{}的艺术作品。", "{}的素描。", "刺绣{}。", "{}的像素照。",
    "{}的拍照。", "{}的损坏的照片。", "高质量的{}的照片。", "毛绒玩具{}。", "漂亮的{}的照片。", "小{}的照片。", "照片是奇怪的{}。", "漫画{}。", "{}的艺术照。",
    "{}的图形。", "大{}的照片。", "黑白的{}的照片。", "{}毛绒玩具。", "一张{}的深色照片。", "{}的摄影图。", "{}的涂鸦照。", "玩具形状的{}。", "拍了{}的照片。",
    "酷酷的{}的照片。", "照片里的小{}。", "{}的刺青。", "{}的可爱的照片。", "一张{}可爱的照片。", "{}可爱图片。", "{}酷炫图片。", "一张{}的酷炫的照片。", "一张{}的酷炫图片。",
    "这是{}。", "{}的好看照片。", "一张{}的好看的图片。", "{}的好看图片。", "一种叫{}的花的照片", "一种叫{}的食物的照片", "{}的卫星照片",
)
CHINESE_CLIP_CIFAR100_TEMPLATES: Tuple[str, ...] = (
    "一张{}的照片", "一张{}的模糊照片", "一张{}", "一张{}的低对比度照片", "一张{}的高对比度照片", "一张{}的好照片", "一张小{}的照片", "一张大{}的照片", "一张{}的黑白照片",
    "一张{}的低对比度的照片", "一张{}的高对比度的照片",
)

# Chinese-CLIP's one-prompt set (``normal_templates``): "a picture of {}".
CHINESE_CLIP_SIMPLE_TEMPLATE = "{}的图片"

# Named prompt sets accepted wherever templates are configured (``templates: openai`` in a run YAML).
TEMPLATE_SETS: Dict[str, Tuple[str, ...]] = {
    "openai": OPENAI_CIFAR_TEMPLATES,
    "openai_cifar": OPENAI_CIFAR_TEMPLATES,
    "chinese_clip": CHINESE_CLIP_TEMPLATES,
    "chinese_clip_cifar100": CHINESE_CLIP_CIFAR100_TEMPLATES,
    "chinese_clip_simple": (CHINESE_CLIP_SIMPLE_TEMPLATE,),
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
