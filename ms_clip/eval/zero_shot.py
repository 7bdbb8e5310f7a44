"""Zero-shot classification: class embeddings from prompt templates, scores and top-k accuracy.

The classifier follows OpenAI's notebook and open_clip's ``build_zero_shot_classifier``
(open_clip/src/open_clip/zero_shot_classifier.py): for each class, encode every template filled with the
class name, L2-normalise each prompt embedding, average them, and L2-normalise the mean. The
result is a weight matrix ``W`` [E, C]; with one template this is MindFormers' single
``hypothesis_template`` classifier.

Building ``W`` for CIFAR-100 x 18 templates costs 1800 text-tower passes, so it is cached on disk,
keyed by a hash of the text-tower weights, the class names, the templates and the token ids
(which pins the tokenizer and the context length).

Prompts and images are encoded by ``ms_clip.features`` (batched, compiled once per model).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ms_clip.eval.templates import resolve_templates
from ms_clip.features import as_tokenizer, encode_token_ids, l2_normalize, model_context_length, tokenizer_for_model
from ms_clip.fileio import atomic_write

logger = logging.getLogger(__name__)

__all__ = ["build_zero_shot_classifier", "tokenize_prompts", "classifier_cache_key", "default_cache_dir",
           "zero_shot_scores", "topk_predictions", "topk_correct", "accuracy", "per_class_accuracy",
           "DEFAULT_LOGIT_SCALE", "check_labels"]

# Scores are softmax(100 * cosine). 100 is exp(logit_scale) of every released CLIP checkpoint
# (training clamps logit_scale at ln 100 and all of them reach the clamp) and the constant used
# by OpenAI's zero-shot notebook and open_clip's evaluation. Fixing it, instead of reading the
# model's learned value, keeps probabilities comparable across checkpoints, including partly
# trained ones; accuracy does not depend on the scale at all.
DEFAULT_LOGIT_SCALE = 100.0
_CACHE_VERSION = 1
# Only these parameters influence text features, so only they enter the cache key.
# CLIP's text tower, and Chinese-CLIP's BERT ("bert.").
_TEXT_PARAM_PREFIXES = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text_projection",
                        "bert.")

Tokenizer = Union[Callable[..., Any], None]


def check_labels(labels: Sequence[str], what: str = "candidate_labels") -> List[str]:
    """Validate class names: a non-empty sequence of distinct non-empty strings."""
    if isinstance(labels, str):
        raise ValueError(f"{what} must be a list of strings, got the single string {labels!r}; "
                         f"wrap it in a list")
    labels = list(labels) if labels is not None else []
    if not labels:
        raise ValueError(f"{what} is empty: give at least one class name")
    bad = [x for x in labels if not isinstance(x, str) or not x.strip()]
    if bad:
        raise ValueError(f"{what} must be non-empty strings, got {bad[:5]}")
    seen, dups = set(), []
    for x in labels:
        if x in seen and x not in dups:
            dups.append(x)
        seen.add(x)
    if dups:
        raise ValueError(f"{what} contains duplicates {dups[:10]}: each label must appear once, "
                         f"otherwise their scores would split between identical classes")
    return labels


def tokenize_prompts(texts: Sequence[str], tokenizer: Tokenizer = None, context_length: int = 77) -> np.ndarray:
    """Token ids int32 [N, L] of ``texts`` from CLIP's tokenizer (None), a ``CLIPTokenizer`` or any
    callable returning ids (e.g. open_clip's tokenizer); see ``ms_clip.features.as_tokenizer``."""
    return as_tokenizer(tokenizer, context_length)(texts)


def _text_parameters(model) -> List[Tuple[str, np.ndarray]]:
    params = [(p.name, p) for p in model.get_parameters() if p.name.startswith(_TEXT_PARAM_PREFIXES)]
    if not params:
        raise ValueError(f"{type(model).__name__} has no text-tower parameters {_TEXT_PARAM_PREFIXES}; "
                         f"expected an ms_clip CLIPModel")
    return [(name, p.asnumpy()) for name, p in sorted(params, key=lambda x: x[0])]


def classifier_cache_key(model, classnames: Sequence[str], templates: Sequence[str], token_ids: np.ndarray) -> str:
    """Hex digest over the text-tower weights (names, dtypes, shapes, bytes), compute dtype, class
    names, templates and the prompt token ids."""
    h = hashlib.blake2b(digest_size=20)
    h.update(json.dumps({"v": _CACHE_VERSION, "classnames": list(classnames), "templates": list(templates),
                         "compute_dtype": str(getattr(getattr(model, "config", None), "compute_dtype", ""))}
                        ).encode("utf-8"))
    for name, arr in _text_parameters(model):
        h.update(f"{name}|{arr.dtype}|{arr.shape}".encode("utf-8"))
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update(np.ascontiguousarray(token_ids, dtype=np.int32).tobytes())
    return h.hexdigest()


def default_cache_dir() -> str:
    """``$MS_CLIP_HOME/zero_shot_classifiers`` (default home ``~/.cache/ms_clip``)."""
    from ms_clip.hub import cache_home

    return os.path.join(cache_home(), "zero_shot_classifiers")


def _read_cache(path: str, shape: Tuple[int, int]) -> Optional[np.ndarray]:
    if not os.path.isfile(path):
        return None
    try:
        weights = np.load(path, allow_pickle=False)
    except Exception as err:  # a truncated or foreign file: rebuild rather than fail an evaluation
        logger.warning("ignoring unreadable class-embedding cache %s (%s); rebuilding it", path, err)
        return None
    if weights.shape != shape or weights.dtype != np.float32 or not np.isfinite(weights).all():
        logger.warning("ignoring class-embedding cache %s: %s %s, expected float32 %s", path, weights.dtype,
                       weights.shape, shape)
        return None
    return weights


def _write_cache(path: str, weights: np.ndarray) -> None:
    # Atomic, so a concurrent reader never sees half a file. The cache only saves time: a directory
    # that cannot be written (read-only MS_CLIP_HOME, full disk) costs a warning, not the evaluation.
    try:
        with atomic_write(path, "wb") as f:
            np.save(f, weights)
    except OSError as err:
        logger.warning("could not cache the zero-shot classifier at %s (%s); continuing without the cache",
                       path, err)
        return
    logger.info("zero-shot classifier cached at %s", path)


def build_zero_shot_classifier(model, classnames: Sequence[str], templates: Union[str, Sequence[str]] = "openai",
                               tokenizer: Tokenizer = None, batch_size: int = 256,
                               context_length: Optional[int] = None, cache: Union[bool, str] = False,
                               use_tqdm: bool = False) -> np.ndarray:
    """Zero-shot classifier weights ``W`` float32 [E, C] (columns are unit class embeddings).

    Args:
        model: an ms_clip ``CLIPModel``.
        classnames: C distinct class names.
        templates: template strings with one ``{}`` (e.g. ``"a photo of a {}."``), or a set name
            (``"openai"``: OpenAI's 18 CIFAR templates). One template = single-prompt mode.
        tokenizer: None (the model's own: ``ms_clip.features.tokenizer_for_model``), a ``CLIPTokenizer`` or a
            callable returning ids.
        batch_size: prompts per text-tower call.
        context_length: token row length; default: the model's (77).
        cache: False (no disk cache), True (``default_cache_dir()``) or a directory.
        use_tqdm: show a progress bar over prompt batches.

    Example:
        >>> W = build_zero_shot_classifier(model, ["cat", "dog"], "a photo of a {}.")
        >>> probs = zero_shot_scores(model_image_features, W)
    """
    classnames = check_labels(classnames, "classnames")
    templates = resolve_templates(templates)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    context_length = int(context_length or model_context_length(model))
    prompts = [t.format(c) for c in classnames for t in templates]  # class-major, like open_clip
    # No tokenizer given: the model's own (CLIP's BPE, or Chinese-CLIP's WordPiece with its text normalisation).
    token_ids = tokenize_prompts(prompts, tokenizer if tokenizer is not None else
                                 tokenizer_for_model(model, context_length), context_length)
    num_c, num_t = len(classnames), len(templates)

    path = None
    if cache:
        cache_dir = default_cache_dir() if cache is True else os.fspath(cache)
        key = classifier_cache_key(model, classnames, templates, token_ids)
        path = os.path.join(cache_dir, f"{key}.npy")
        embed_dim = int(model.config.projection_dim)
        cached = _read_cache(path, (embed_dim, num_c))
        if cached is not None:
            logger.info("zero-shot classifier (%d classes x %d templates) loaded from cache %s", num_c, num_t, path)
            return cached

    progress = f"class embeddings ({num_c} classes x {num_t} templates)" if use_tqdm else None
    features = encode_token_ids(model, token_ids, batch_size, progress=progress)
    # Normalised per prompt before the mean (open_clip's order), in float64.
    per_prompt = l2_normalize(features).reshape(num_c, num_t, -1)
    weights = l2_normalize(per_prompt.mean(axis=1)).T.astype(np.float32)  # [E, C]
    if path is not None:
        _write_cache(path, weights)
    return weights


def zero_shot_scores(image_features: np.ndarray, classifier: np.ndarray,
                     logit_scale: float = DEFAULT_LOGIT_SCALE) -> np.ndarray:
    """Class probabilities float32 [N, C] = softmax(logit_scale * cos(image, class)).

    ``image_features`` need not be normalised; ``classifier`` is ``build_zero_shot_classifier``'s
    [E, C]. See ``DEFAULT_LOGIT_SCALE`` for why the scale is 100.
    """
    feats = l2_normalize(image_features)
    classifier = np.asarray(classifier, dtype=np.float64)
    if feats.ndim != 2 or classifier.ndim != 2 or feats.shape[1] != classifier.shape[0]:
        raise ValueError(f"image_features [N, E] and classifier [E, C] do not fit: {list(feats.shape)} vs "
                         f"{list(classifier.shape)}")
    logits = float(logit_scale) * feats @ classifier
    logits -= logits.max(axis=1, keepdims=True)  # stable softmax
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    return probs.astype(np.float32)


def topk_predictions(scores: np.ndarray, k: int) -> np.ndarray:
    """Class ids [N, min(k, C)] by descending score; ties keep the lower class id first."""
    scores = np.asarray(scores)
    k = min(int(k), scores.shape[1])
    # Stable sort of negated scores: deterministic order under ties.
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def topk_correct(scores: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (1, 5)) -> Dict[int, np.ndarray]:
    """For each k, a bool [N]: is the true label among the k best scores (k capped at C)."""
    labels = np.asarray(labels).reshape(-1, 1)
    top = topk_predictions(scores, max(ks))
    return {k: (top[:, :k] == labels).any(axis=1) for k in ks}


def accuracy(scores: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (1, 5)) -> Dict[int, float]:
    """Top-k accuracy (fraction in [0, 1]) for each k."""
    if len(labels) == 0:
        raise ValueError("accuracy of an empty set is undefined: no labels given")
    return {k: float(c.mean()) for k, c in topk_correct(scores, labels, ks).items()}


def per_class_accuracy(scores: np.ndarray, labels: np.ndarray, classnames: Sequence[str],
                       ks: Sequence[int] = (1, 5)) -> List[Dict[str, Any]]:
    """One record per class: index, name, sample count and top-k accuracy (None without samples)."""
    labels = np.asarray(labels)
    correct = topk_correct(scores, labels, ks)
    rows = []
    for idx, name in enumerate(classnames):
        mask = labels == idx
        n = int(mask.sum())
        row: Dict[str, Any] = {"class_index": idx, "class_name": name, "num_samples": n}
        for k in ks:
            row[f"top{k}"] = float(correct[k][mask].mean()) if n else None
        rows.append(row)
    return rows
