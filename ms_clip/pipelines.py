"""``pipeline("zero_shot_image_classification", ...)``: MindFormers' pipeline API over ms_clip.

Example:
    >>> from ms_clip import pipeline
    >>> classifier = pipeline("zero_shot_image_classification", model="clip_vit_b_32",
    ...                       candidate_labels=["sunflower", "tree", "dog", "cat", "toy"])
    >>> classifier("sunflower.png", top_k=2)
    [[{'score': 0.99..., 'label': 'sunflower'}, {'score': 2.5e-05, 'label': 'toy'}]]

The pipeline is the single-template zero-shot classifier of ``ms_clip.eval.zero_shot`` (one
``hypothesis_template``, or a list of templates for prompt ensembling) applied to preprocessed
images, encoded by ``ms_clip.features``. Class embeddings are computed once per (labels,
templates) and kept in memory.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from ms_clip.constants import IMAGE_EXTENSIONS
from ms_clip.eval.templates import MINDFORMERS_HYPOTHESIS_TEMPLATE, resolve_templates
from ms_clip.eval.zero_shot import DEFAULT_LOGIT_SCALE, build_zero_shot_classifier, check_labels, zero_shot_scores
from ms_clip.features import encode_images, is_chinese_clip
from ms_clip.processor import ImageLoadError

logger = logging.getLogger(__name__)

__all__ = ["pipeline", "ZeroShotImageClassificationPipeline", "SUPPORTED_TASKS", "expand_image_inputs",
           "DEFAULT_MODEL", "model_image_processor", "default_hypothesis_template"]

DEFAULT_MODEL = "clip_vit_b_32"  # MindFormers' default for this task

Prediction = List[Dict[str, Any]]


# ----------------------------------------------------------------------------- inputs


def _is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def expand_image_inputs(inputs: Any) -> List[Tuple[str, Any]]:
    """Flatten pipeline/predict inputs into ``(name, image-like)`` pairs, in order.

    Accepted: a PIL image, a numpy array (HWC/HW image, or a [N, H, W, C] batch), a MindSpore
    Tensor, a path, a URL, a directory (its image files, sorted), ``{"image": ...}``, or a
    list/tuple of any of these. ``name`` identifies the image in logs and results files.
    """
    out: List[Tuple[str, Any]] = []

    def add(item: Any, name: str) -> None:
        if isinstance(item, dict):
            if "image" not in item:
                raise ValueError(f"input {name}: a dict input must have an 'image' key, got keys {sorted(item)}")
            add(item["image"], name)
        elif isinstance(item, (str, os.PathLike)):
            text = os.fspath(item)
            if not _is_url(text) and os.path.isdir(text):
                files = sorted(f for f in os.listdir(text) if f.lower().endswith(IMAGE_EXTENSIONS))
                if not files:
                    raise ValueError(f"input directory {text} holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
                out.extend((os.path.join(text, f), os.path.join(text, f)) for f in files)
            else:
                out.append((text, text))
        elif hasattr(item, "asnumpy"):  # mindspore.Tensor
            add(item.asnumpy(), name)
        elif isinstance(item, np.ndarray) and item.size == 0:
            # Caught here, where the input's name is known; deeper down it is a ZeroDivisionError in the resize.
            raise ImageLoadError(f"input {name}: empty image array of shape {tuple(item.shape)} (every dimension "
                                 f"must be > 0)")
        elif isinstance(item, np.ndarray) and item.ndim == 4:
            out.extend((f"{name}[{i}]", img) for i, img in enumerate(item))
        elif isinstance(item, Image.Image) and 0 in item.size:
            raise ImageLoadError(f"input {name}: empty image of {item.size[0]}x{item.size[1]} pixels")
        elif isinstance(item, (list, tuple)):
            for i, sub in enumerate(item):
                add(sub, f"input[{i}]")
        else:
            out.append((name, item))

    add(inputs, "input[0]")
    if not out:
        raise ValueError("no images given: the input is an empty list")
    return out


# ----------------------------------------------------------------------------- pipeline


def model_image_processor(model) -> Any:
    """The model's own preprocessing: for CLIP the one its weights were trained with (``config.preprocessing``,
    OpenAI's resize + center crop by default), Chinese-CLIP's bicubic resize to size x size without crop for
    Chinese-CLIP."""
    from ms_clip.processor import CLIPImageProcessor, image_processor_for

    size = model.config.vision_config.image_size
    if is_chinese_clip(model):
        return CLIPImageProcessor(image_resolution=size, resize_mode="squash")
    return image_processor_for(model.config)  # the weights' own mean/std and resize mode (pretrained tag)


def default_hypothesis_template(model) -> Union[str, Sequence[str]]:
    """MindFormers' "a picture of {}." for CLIP; Chinese-CLIP's Chinese prompts ("chinese_clip": the
    set its zero-shot evaluation uses) for Chinese-CLIP."""
    return "chinese_clip" if is_chinese_clip(model) else MINDFORMERS_HYPOTHESIS_TEMPLATE


def _resolve_preprocess(image_processor: Any, image_size: int, model: Any = None) -> Callable[[Any], np.ndarray]:
    """A per-image function (image-like -> float32 [3, H, W]) from a CLIPImageProcessor or a callable
    (None: the model's own, ``model_image_processor``).

    Inputs go through ``ms_clip.processor.to_pil_image`` first (paths, URLs, arrays, Tensors ->
    PIL, mode kept: the processor converts to RGB after resize and crop, like OpenAI).
    """
    from ms_clip.processor import CLIPImageProcessor, to_pil_image

    if image_processor is None:
        image_processor = model_image_processor(model) if model is not None else \
            CLIPImageProcessor(image_resolution=image_size)
    if hasattr(image_processor, "preprocess_one"):
        fn = image_processor.preprocess_one
    elif callable(image_processor):
        fn = image_processor
    else:
        raise TypeError(f"image_processor must be a CLIPImageProcessor or a callable (PIL image -> [3, H, W] "
                        f"array), got {type(image_processor).__name__}")

    def preprocess(item: Any) -> np.ndarray:
        out = fn(to_pil_image(item))
        out = out.asnumpy() if hasattr(out, "asnumpy") else np.asarray(out)
        if out.ndim == 4 and out.shape[0] == 1:
            out = out[0]
        if out.ndim != 3 or out.shape[1:] != (image_size, image_size):
            raise ValueError(f"image_processor returned shape {list(out.shape)}; the model expects "
                             f"[3, {image_size}, {image_size}]")
        return out.astype(np.float32, copy=False)

    return preprocess


class ZeroShotImageClassificationPipeline:
    """Scores images against candidate labels: softmax over ``logit_scale`` x cosine similarity.

    Args:
        model: a ``CLIPModel`` or a ``ChineseCLIPModel``.
        candidate_labels: default labels (can also be given per call).
        hypothesis_template: one template with ``{}``, a list of templates (ensembled), or a set
            name such as ``"openai"``; None: the model's default (``default_hypothesis_template``:
            MindFormers' ``"a picture of {}."`` for CLIP, Chinese-CLIP's Chinese prompts for Chinese-CLIP).
        tokenizer: None (the model's own: CLIP's BPE or Chinese-CLIP's WordPiece), a ``CLIPTokenizer`` or a
            callable returning token ids.
        image_processor: None (the model's own preprocessing at its resolution: ``model_image_processor``)
            or a callable mapping one PIL image to float32 [3, H, W].
        top_k: default number of labels returned per image (None: all).
        batch_size: images per forward pass.
        logit_scale: softmax temperature (see ``ms_clip.eval.zero_shot.DEFAULT_LOGIT_SCALE``);
            None uses the model's ``exp(logit_scale)``.
        context_length: prompt token length (default: the model's, 77).
        cache: keep class embeddings on disk too (False, True or a directory; see
            ``build_zero_shot_classifier``).
    """

    task = "zero_shot_image_classification"

    def __init__(self, model, candidate_labels: Optional[Sequence[str]] = None,
                 hypothesis_template: Union[str, Sequence[str], None] = None,
                 tokenizer: Any = None, image_processor: Any = None, top_k: Optional[int] = None,
                 batch_size: int = 8, logit_scale: Optional[float] = DEFAULT_LOGIT_SCALE,
                 context_length: Optional[int] = None, cache: Union[bool, str] = False):
        from ms_clip.models.base import PreTrainedModel

        if isinstance(model, (str, os.PathLike)):  # MindFormers: ZeroShotImageClassificationPipeline(model="name")
            from ms_clip.loader import from_pretrained

            model = from_pretrained(os.fspath(model))
        if not isinstance(model, PreTrainedModel) or not hasattr(model, "get_image_features"):
            raise TypeError(f"model must be an ms_clip image-text model (CLIPModel, ChineseCLIPModel), got "
                            f"{type(model).__name__}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.model.set_train(False)
        # None: build_zero_shot_classifier takes the model's own tokenizer (tokenizer_for_model).
        self.tokenizer = tokenizer
        self.preprocess = _resolve_preprocess(image_processor, model.config.vision_config.image_size, model)
        self.candidate_labels = check_labels(candidate_labels) if candidate_labels is not None else None
        if hypothesis_template is None:
            hypothesis_template = default_hypothesis_template(model)
        self.hypothesis_template = resolve_templates(hypothesis_template, "hypothesis_template")
        self.top_k = self._check_top_k(top_k)
        self.batch_size = batch_size
        self.logit_scale = logit_scale
        self.context_length = context_length
        self.cache = cache
        self._classifiers: Dict[Tuple[Tuple[str, ...], Tuple[str, ...]], np.ndarray] = {}

    @staticmethod
    def _check_top_k(top_k: Optional[int]) -> Optional[int]:
        if top_k is not None and (not isinstance(top_k, (int, np.integer)) or isinstance(top_k, bool) or top_k < 1):
            raise ValueError(f"top_k must be a positive integer or None (all labels), got {top_k!r}")
        return top_k

    def classifier(self, labels: Sequence[str], templates: Sequence[str]) -> np.ndarray:
        """Class embeddings [E, C] for ``labels`` (kept in memory per labels and templates)."""
        key = (tuple(labels), tuple(templates))
        if key not in self._classifiers:
            self._classifiers[key] = build_zero_shot_classifier(self.model, list(labels), list(templates),
                                                                tokenizer=self.tokenizer, cache=self.cache,
                                                                context_length=self.context_length)
        return self._classifiers[key]

    def image_features(self, images: Sequence[Any]) -> np.ndarray:
        """Unnormalised image features [N, E] for image-likes (paths, URLs, PIL, arrays)."""
        pixels = np.stack([self.preprocess(img) for img in images])
        return encode_images(self.model, pixels, self.batch_size)

    def __call__(self, inputs: Any, candidate_labels: Optional[Sequence[str]] = None,
                 hypothesis_template: Union[str, Sequence[str], None] = None,
                 top_k: Optional[int] = None) -> List[Prediction]:
        """One list of ``{"score", "label"}`` per image, sorted by score (descending).

        ``inputs``: an image, path, URL, directory, ``{"image": ...}`` or a list of these.
        Scores are softmax probabilities over *all* candidate labels, so each full list sums to
        1; ``top_k`` only truncates it.
        """
        labels = check_labels(candidate_labels) if candidate_labels is not None else self.candidate_labels
        if labels is None:
            raise ValueError("candidate_labels are required: pass them to pipeline(...) or to the call, "
                             "e.g. candidate_labels=['cat', 'dog']")
        templates = (resolve_templates(hypothesis_template, "hypothesis_template")
                     if hypothesis_template is not None else self.hypothesis_template)
        top_k = self._check_top_k(top_k) if top_k is not None else self.top_k
        features = self.image_features([img for _, img in expand_image_inputs(inputs)])
        scale = self.logit_scale if self.logit_scale is not None else float(np.exp(self.model.logit_scale.asnumpy()))
        probs = zero_shot_scores(features, self.classifier(labels, templates), scale)
        return [rank_labels(row, labels, top_k) for row in probs]


def rank_labels(scores: np.ndarray, labels: Sequence[str], top_k: Optional[int] = None) -> Prediction:
    """``[{"score", "label"}]`` sorted by descending score (ties: label order), truncated to top_k."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    if top_k is not None:
        order = order[:top_k]
    return [{"score": float(scores[i]), "label": labels[i]} for i in order]


# ----------------------------------------------------------------------------- factory

SUPPORTED_TASKS: Dict[str, type] = {"zero_shot_image_classification": ZeroShotImageClassificationPipeline}


def pipeline(task: str, model: Any = None, candidate_labels: Optional[Sequence[str]] = None,
             hypothesis_template: Union[str, Sequence[str], None] = None,
             tokenizer: Any = None, image_processor: Any = None, backend: str = "ms",
             **kwargs: Any) -> ZeroShotImageClassificationPipeline:
    """Build a task pipeline (MindFormers' ``pipeline``).

    Args:
        task: ``"zero_shot_image_classification"``.
        model: a ``CLIPModel`` / ``ChineseCLIPModel``, or a registry name / directory / ``.ckpt`` loaded
            with ``ms_clip.loader.from_pretrained`` (default ``"clip_vit_b_32"``); the family (CLIP,
            Chinese-CLIP) comes from the weights, and with it the tokenizer, preprocessing and default prompts.
        candidate_labels, hypothesis_template, tokenizer, image_processor: see
            ``ZeroShotImageClassificationPipeline``.
        backend: ``"ms"`` only (MindFormers' argument).
        **kwargs: ``top_k``, ``batch_size``, ``logit_scale``, ``context_length``, ``cache``.
    """
    if task not in SUPPORTED_TASKS:
        raise ValueError(f"unknown pipeline task {task!r}; supported tasks: {sorted(SUPPORTED_TASKS)}")
    if backend != "ms":
        raise ValueError(f"backend must be 'ms' (MindSpore), got {backend!r}")
    if model is None or isinstance(model, (str, os.PathLike)):
        from ms_clip.loader import from_pretrained

        model = from_pretrained(os.fspath(model) if model is not None else DEFAULT_MODEL)
    return SUPPORTED_TASKS[task](model, candidate_labels=candidate_labels, hypothesis_template=hypothesis_template,
                                 tokenizer=tokenizer, image_processor=image_processor, **kwargs)
