"""Image<->text retrieval recall, as CLIP_benchmark defines it (its ``zeroshot_retrieval.py``).

All images and *all* their captions are embedded and L2-normalised; ``scores = texts @ images.T``.

* text->image R@k: for each caption, 1 if its image is among the k best-scoring images; mean over captions.
* image->text R@k: for each image, 1 if **any** of its captions is among the k best-scoring captions;
  mean over images.

``mean_recall`` is the mean of the six numbers (R@1/5/10 both ways). Values are fractions in [0, 1].
Tied scores never count in the model's favour (see ``retrieval_metrics``). Features come from
``ms_clip.features`` (``tasks.pretrain.retrieval_eval`` does the encoding).
"""
from __future__ import annotations

import logging
import math
from typing import Dict, Sequence

import numpy as np

from ms_clip.features import l2_normalize

logger = logging.getLogger(__name__)

__all__ = ["retrieval_metrics", "chance_recall", "format_metrics", "TIES"]

# How retrieval_metrics counts candidates that score exactly as much as the correct one.
TIES = ("expected", "pessimistic")


def _scores(images: np.ndarray, texts: np.ndarray) -> np.ndarray:
    """Cosine scores [N_txt, N_img], equal for equal features.

    A BLAS product may round the dot products of two identical rows differently (by ~1e-14, depending
    on where they fall in its blocks), which would turn a tie into a win or a loss at random. Scoring
    the distinct rows once and spreading the scores back makes identical features score identically.
    """
    unique_images, image_of = np.unique(images, axis=0, return_inverse=True)
    unique_texts, text_of = np.unique(texts, axis=0, return_inverse=True)
    return (unique_texts @ unique_images.T)[np.ix_(np.ravel(text_of), np.ravel(image_of))]


def _hit_rate(higher: np.ndarray, own_tied: np.ndarray, other_tied: np.ndarray, k: int, ties: str) -> np.ndarray:
    """Per query, the credit for "a correct item is among the top k" given how the best correct item
    ranks: ``higher`` wrong items score strictly more, and ``own_tied`` correct and ``other_tied``
    wrong items score exactly as much (the best correct one included in ``own_tied``)."""
    if ties == "pessimistic":  # every tied wrong item is ranked before the correct ones
        return (higher + other_tied < k).astype(np.float64)
    # "expected": the top k takes the ``higher`` items, then r = k - higher items drawn at random from the
    # tied group; the chance that none of them is correct is C(other_tied, r) / C(own_tied + other_tied, r).
    slots = k - higher
    miss = np.ones(len(higher))
    for j in range(max(0, int(slots.max(initial=0)))):
        left = own_tied + other_tied - j  # tied candidates not drawn yet
        factor = np.where(left > 0, np.maximum(other_tied - j, 0) / np.maximum(left, 1), 0.0)
        miss = np.where(j < slots, miss * factor, miss)
    return np.where(slots > 0, 1.0 - miss, 0.0)


def retrieval_metrics(image_features: np.ndarray, text_features: np.ndarray, text_to_image: Sequence[int],
                      ks: Sequence[int] = (1, 5, 10), ties: str = "expected") -> Dict[str, float]:
    """Recall@k both ways from features ([N_img, D], [N_txt, D]) and each caption's image index.

    For a query (a caption, or an image), let ``s`` be the score of its best correct candidate (the
    caption's image; the best-scoring of the image's captions), ``g`` the number of wrong candidates
    scoring strictly more than ``s``, and ``t`` the number of wrong candidates scoring exactly ``s``
    (``m`` correct candidates score exactly ``s``: 1 for a caption, 1 or more for an image). Without
    ties (``t == 0``) the query is a hit at k iff ``g < k``: plain top-k membership. Ties are never
    broken in the model's favour:

    * ``ties="expected"`` (default): the credit is the probability of a hit when the tied candidates
      are ordered at random, ``1 - C(t, k - g) / C(m + t, k - g)`` for ``g < k`` (0 otherwise); for a
      caption this is ``min(1, (k - g) / (t + 1))``. Identical features thus score exactly chance
      (``chance_recall``), and a model cannot gain from ties.
    * ``ties="pessimistic"``: every tied wrong candidate counts as ranked first, a hit iff
      ``g + t < k``: a lower bound (identical features score 0 for k below the candidate count).

    Identical feature rows always produce identical scores (see ``_scores``).
    """
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
    owners = np.asarray(text_to_image, dtype=np.int64)
    images, texts = l2_normalize(image_features), l2_normalize(text_features)
    if len(owners) != len(texts):
        raise ValueError(f"text_to_image has {len(owners)} entries for {len(texts)} captions")
    if owners.min(initial=0) < 0 or owners.max(initial=0) >= len(images):
        raise ValueError(f"text_to_image indices must be in [0, {len(images)})")
    scores = _scores(images, texts)  # [N_txt, N_img]
    captions = np.arange(len(texts))
    positive = scores[captions, owners]
    # text -> image: one correct image per caption.
    t2i = (scores > positive[:, None]).sum(axis=1), (scores == positive[:, None]).sum(axis=1) - 1
    # image -> text: the best score among each image's own captions, then how the other captions compare.
    best_own = np.full(len(images), -np.inf)
    np.maximum.at(best_own, owners, positive)
    has_caption = np.isfinite(best_own)
    # No own caption scores above best_own, so all of these are other images' captions.
    i2t_higher = (scores.T > best_own[:, None]).sum(axis=1)
    own_tied = np.zeros(len(images), np.int64)
    np.add.at(own_tied, owners, positive == best_own[owners])
    i2t = i2t_higher, own_tied, (scores.T == best_own[:, None]).sum(axis=1) - own_tied
    out: Dict[str, float] = {}
    for k in ks:
        hits = _hit_rate(i2t[0], i2t[1], i2t[2], k, ties)
        out[f"image_to_text_R@{k}"] = float(np.mean(hits[has_caption]))
    for k in ks:
        out[f"text_to_image_R@{k}"] = float(np.mean(_hit_rate(t2i[0], np.ones_like(t2i[1]), t2i[1], k, ties)))
    out["mean_recall"] = float(np.mean([out[f"{d}_R@{k}"] for d in ("image_to_text", "text_to_image") for k in ks]))
    out["num_images"] = int(len(images))
    out["num_texts"] = int(len(texts))
    return out


def chance_recall(num_images: int, captions_per_image: int, ks: Sequence[int] = (1, 5, 10)) -> Dict[str, float]:
    """Expected recall of random features (same keys as ``retrieval_metrics``).

    t->i: k / N. i->t: 1 - C(T - c, k) / C(T, k), the chance that a random top-k of the T captions
    holds one of the image's c captions.
    """
    total = num_images * captions_per_image
    out = {}
    for k in ks:
        miss = math.comb(total - captions_per_image, k) / math.comb(total, k) if k <= total else 0.0
        out[f"image_to_text_R@{k}"] = 1.0 - miss
    for k in ks:
        out[f"text_to_image_R@{k}"] = min(1.0, k / num_images)
    out["mean_recall"] = float(np.mean([v for key, v in out.items() if "_R@" in key]))
    return out


def format_metrics(metrics: Dict[str, float]) -> str:
    """One line: ``i->t R@1 12.3 R@5 ... | t->i ... | mean 45.6`` (percent)."""
    parts = []
    for direction, label in (("image_to_text", "i->t"), ("text_to_image", "t->i")):
        keys = sorted((k for k in metrics if k.startswith(direction + "_R@")), key=lambda k: int(k.split("@")[1]))
        parts.append(label + " " + " ".join(f"R@{k.split('@')[1]} {100 * metrics[k]:.2f}" for k in keys))
    return " | ".join(parts) + f" | mean recall {100 * metrics['mean_recall']:.2f}"
