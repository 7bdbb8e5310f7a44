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
from typing import Dict, List, Sequence

import numpy as np

from ms_clip.features import l2_normalize

logger = logging.getLogger(__name__)

__all__ = ["retrieval_metrics", "chance_recall", "format_metrics", "TIES", "multi_positive_metrics",
           "multi_positive_chance"]

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


# --------------------------------------------------------------------------- several correct items per query


def _relation_lists(text_images: Sequence[Sequence[int]], num_images: int) -> List[np.ndarray]:
    out = []
    for t, images in enumerate(text_images):
        ids = np.unique(np.asarray(list(images), dtype=np.int64))
        if len(ids) == 0:
            raise ValueError(f"text {t} has no correct image")
        if ids.min() < 0 or ids.max() >= num_images:
            raise ValueError(f"text {t}: image indices must be in [0, {num_images}), got {list(images)}")
        out.append(ids)
    return out


def multi_positive_metrics(image_features: np.ndarray, text_features: np.ndarray,
                           text_images: Sequence[Sequence[int]], ks: Sequence[int] = (1, 5, 10),
                           ties: str = "expected", chunk: int = 512) -> Dict[str, float]:
    """Recall@k both ways as Chinese-CLIP's evaluation defines it, where a text may have several correct images.

    Chinese-CLIP (``cn_clip/eval``: ``make_topk_predictions.py`` + ``evaluation.py`` for text->image,
    ``transform_ir_annotation_to_tr.py`` + ``make_topk_predictions_tr.py`` + ``evaluation_tr.py`` for
    image->text) scores every text against every image of the split (cosine, unit features):

    * text->image R@k: a text is a hit if **any** of its correct images is among the k best images;
      the mean over all texts;
    * image->text R@k: over the images that some text names, a hit if any of the texts naming it is
      among the k best texts; the mean over those images.

    ``<direction>_mean_recall`` is the mean of R@1/5/10 of one direction (what ``evaluation.py``
    reports as its score), ``mean_recall`` the mean of all six (Chinese-CLIP's "MR"). Fractions in [0, 1].

    Ties: Chinese-CLIP's top-k is a stable sort, so among equal scores the item listed first wins.
    Here ties never count in the model's favour, exactly as in ``retrieval_metrics`` (``ties``:
    "expected" or "pessimistic"); without exact ties the numbers equal Chinese-CLIP's.

    Args:
        image_features, text_features: [N_img, D], [N_txt, D] (normalised here).
        text_images: for each text, the indices of its correct images.
        chunk: texts scored per matrix product (bounds memory: chunk x N_img float64).
    """
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
    images, texts = l2_normalize(image_features), l2_normalize(text_features)
    if len(text_images) != len(texts):
        raise ValueError(f"text_images has {len(text_images)} entries for {len(texts)} texts")
    positives = _relation_lists(text_images, len(images))
    n_img, n_txt = len(images), len(texts)
    # Identical rows must score identically (see _scores): every distinct (text row, image row) pair is
    # computed exactly once, chunk by chunk over the distinct text rows.
    unique_images, image_of = np.unique(images, axis=0, return_inverse=True)
    unique_texts, text_of = np.unique(texts, axis=0, return_inverse=True)
    image_of, text_of = np.ravel(image_of), np.ravel(text_of)
    members = [[] for _ in range(len(unique_texts))]
    for t, u in enumerate(text_of):
        members[u].append(t)

    def score_rows():
        """(original text indices, their score rows [b, N_img]) for every text, in chunks."""
        for start in range(0, len(unique_texts), chunk):
            block = (unique_texts[start:start + chunk] @ unique_images.T)[:, image_of]
            rows = [(t, j) for j in range(len(block)) for t in members[start + j]]
            yield np.array([t for t, _ in rows], np.int64), block[[j for _, j in rows]]

    # Pass 1: text -> image counts, and each image's best score among the texts naming it.
    t2i = np.zeros((3, n_txt), np.int64)  # higher, own tied, other tied
    best_own = np.full(n_img, -np.inf)
    for idx, block in score_rows():
        for r, t in enumerate(idx):
            row, pos = block[r], positives[t]
            best = row[pos].max()
            t2i[0, t] = int((row > best).sum())
            own = int((row[pos] == best).sum())
            t2i[1, t], t2i[2, t] = own, int((row == best).sum()) - own
            np.maximum.at(best_own, pos, row[pos])
    # Pass 2: image -> text counts against each image's best own text.
    has_text = np.isfinite(best_own)
    higher = np.zeros(n_img, np.int64)
    tied = np.zeros(n_img, np.int64)
    own_tied = np.zeros(n_img, np.int64)
    for idx, block in score_rows():
        higher += (block > best_own[None, :]).sum(axis=0)
        tied += (block == best_own[None, :]).sum(axis=0)
        for r, t in enumerate(idx):
            pos = positives[t]
            own_tied[pos] += (block[r, pos] == best_own[pos])
    # No own text scores above best_own, so every text counted in `higher` is another image's.
    out: Dict[str, float] = {}
    for k in ks:
        hits = _hit_rate(higher, own_tied, tied - own_tied, k, ties)
        out[f"image_to_text_R@{k}"] = float(np.mean(hits[has_text])) if has_text.any() else 0.0
    for k in ks:
        out[f"text_to_image_R@{k}"] = float(np.mean(_hit_rate(t2i[0], t2i[1], t2i[2], k, ties)))
    for direction in ("image_to_text", "text_to_image"):
        out[f"{direction}_mean_recall"] = float(np.mean([out[f"{direction}_R@{k}"] for k in ks]))
    out["mean_recall"] = float(np.mean([out[f"{d}_R@{k}"] for d in ("image_to_text", "text_to_image") for k in ks]))
    out["num_images"] = int(n_img)
    out["num_texts"] = int(n_txt)
    return out


def multi_positive_chance(num_images: int, text_images: Sequence[Sequence[int]],
                          ks: Sequence[int] = (1, 5, 10)) -> Dict[str, float]:
    """Expected ``multi_positive_metrics`` of random features (= its value for identical features)."""
    positives = _relation_lists(text_images, num_images)
    per_image = np.zeros(num_images, np.int64)
    for pos in positives:
        per_image[pos] += 1
    n_txt = len(positives)
    out: Dict[str, float] = {}
    for k in ks:
        named = per_image[per_image > 0]
        out[f"image_to_text_R@{k}"] = float(np.mean([
            1.0 if k >= n_txt else 1.0 - math.comb(n_txt - c, k) / math.comb(n_txt, k) for c in named]))
    for k in ks:
        out[f"text_to_image_R@{k}"] = float(np.mean([
            1.0 if k >= num_images else 1.0 - math.comb(num_images - len(p), k) / math.comb(num_images, k)
            for p in positives]))
    out["mean_recall"] = float(np.mean([v for key, v in out.items() if "_R@" in key]))
    return out
