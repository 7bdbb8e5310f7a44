"""Image<->text retrieval recall, as CLIP_benchmark defines it (clip-facts.md §6), and batched features.

All images and *all* their captions are embedded and L2-normalised; ``scores = texts @ images.T``.

* text->image R@k: for each caption, 1 if its image is among the k best-scoring images; mean over captions.
* image->text R@k: for each image, 1 if **any** of its captions is among the k best-scoring captions;
  mean over images.

``mean_recall`` is the mean of the six numbers (R@1/5/10 both ways). Values are fractions in [0, 1].
"""
from __future__ import annotations

import logging
import math
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

import mindspore as ms
from mindspore import Tensor, nn

logger = logging.getLogger(__name__)

__all__ = ["retrieval_metrics", "chance_recall", "ImageEncoder", "TextEncoder", "encode_images", "encode_texts",
           "format_metrics"]


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def retrieval_metrics(image_features: np.ndarray, text_features: np.ndarray, text_to_image: Sequence[int],
                      ks: Sequence[int] = (1, 5, 10)) -> Dict[str, float]:
    """Recall@k both ways from features ([N_img, D], [N_txt, D]) and each caption's image index.

    "Among the top k" is counted as "fewer than k candidates score strictly higher than the
    positive" (for i->t: than the best of the image's captions), which equals top-k membership
    whenever scores do not tie.
    """
    owners = np.asarray(text_to_image, dtype=np.int64)
    images, texts = _normalise(image_features), _normalise(text_features)
    if len(owners) != len(texts):
        raise ValueError(f"text_to_image has {len(owners)} entries for {len(texts)} captions")
    if owners.min(initial=0) < 0 or owners.max(initial=0) >= len(images):
        raise ValueError(f"text_to_image indices must be in [0, {len(images)})")
    scores = texts @ images.T  # [N_txt, N_img]
    positive = scores[np.arange(len(texts)), owners]
    t2i_rank = (scores > positive[:, None]).sum(axis=1)  # images better than the caption's own image
    # For each image, the best score among its own captions, then how many captions beat it.
    best_own = np.full(len(images), -np.inf)
    np.maximum.at(best_own, owners, positive)
    has_caption = np.isfinite(best_own)
    i2t_rank = (scores.T > best_own[:, None]).sum(axis=1)
    out: Dict[str, float] = {}
    for k in ks:
        out[f"image_to_text_R@{k}"] = float(np.mean(i2t_rank[has_caption] < k))
    for k in ks:
        out[f"text_to_image_R@{k}"] = float(np.mean(t2i_rank < k))
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


class ImageEncoder(nn.Cell):
    """Compiled ``model.get_image_features`` (unnormalised)."""

    def __init__(self, model: nn.Cell):
        super().__init__(auto_prefix=False)
        self.model = model

    def construct(self, pixel_values):
        return self.model.get_image_features(pixel_values)


class TextEncoder(nn.Cell):
    """Compiled ``model.get_text_features`` (unnormalised)."""

    def __init__(self, model: nn.Cell):
        super().__init__(auto_prefix=False)
        self.model = model

    def construct(self, input_ids):
        return self.model.get_text_features(input_ids)


def encode_images(model: nn.Cell, batches, encoder: Optional[ImageEncoder] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Features of every image batch of an (image, ok) dataset; returns (features, ok mask)."""
    encoder = encoder or ImageEncoder(model)
    feats, oks = [], []
    for image, ok in batches.create_tuple_iterator(num_epochs=1):
        feats.append(encoder(image).asnumpy())
        oks.append(ok.asnumpy())
    return np.concatenate(feats), np.concatenate(oks).astype(bool)


def encode_texts(model: nn.Cell, texts: Sequence[str], batch_size: int = 256, context_length: int = 77,
                 encoder: Optional[TextEncoder] = None) -> np.ndarray:
    """Features of ``texts`` (tokenized with CLIP's tokenizer), in batches; the last batch is padded to
    ``batch_size`` so one compiled graph serves every batch."""
    from ms_clip.tokenizer import tokenize

    encoder = encoder or TextEncoder(model)
    out = []
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start:start + batch_size])
        tokens = tokenize(chunk, context_length=context_length)
        if len(chunk) < batch_size and len(texts) > batch_size:
            tokens = np.concatenate([tokens, np.repeat(tokens[-1:], batch_size - len(chunk), axis=0)])
        out.append(encoder(Tensor(tokens, ms.int32)).asnumpy()[:len(chunk)])
    return np.concatenate(out)


def format_metrics(metrics: Dict[str, float]) -> str:
    """One line: ``i->t R@1 12.3 R@5 ... | t->i ... | mean 45.6`` (percent)."""
    parts = []
    for direction, label in (("image_to_text", "i->t"), ("text_to_image", "t->i")):
        keys = sorted((k for k in metrics if k.startswith(direction + "_R@")), key=lambda k: int(k.split("@")[1]))
        parts.append(label + " " + " ".join(f"R@{k.split('@')[1]} {100 * metrics[k]:.2f}" for k in keys))
    return " | ".join(parts) + f" | mean recall {100 * metrics['mean_recall']:.2f}"
