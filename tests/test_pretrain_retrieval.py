"""Retrieval recall (CLIP_benchmark definition) against an independent top-k implementation."""
import math

import numpy as np
import pytest

from ms_clip.eval.retrieval import chance_recall, format_metrics, retrieval_metrics


def _reference(images, texts, owners, k):
    """CLIP_benchmark's recall@k, written the direct way: top-k indices by argsort."""
    images = images / np.linalg.norm(images, axis=1, keepdims=True)
    texts = texts / np.linalg.norm(texts, axis=1, keepdims=True)
    scores = texts @ images.T
    top_images = np.argsort(-scores, axis=1)[:, :k]
    t2i = np.mean([owners[t] in top_images[t] for t in range(len(texts))])
    top_texts = np.argsort(-scores.T, axis=1)[:, :k]
    i2t = np.mean([any(owners[t] == i for t in top_texts[i]) for i in range(len(images))])
    return i2t, t2i


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_direct_topk_definition(seed):
    rng = np.random.default_rng(seed)
    n_img, per, dim = 50, 5, 16
    images = rng.standard_normal((n_img, dim))
    owners = np.repeat(np.arange(n_img), per)
    # Captions near their image, with enough noise that recall is neither 0 nor 1.
    texts = images[owners] + 1.5 * rng.standard_normal((n_img * per, dim))
    metrics = retrieval_metrics(images, texts, owners)
    for k in (1, 5, 10):
        i2t, t2i = _reference(images, texts, owners, k)
        assert metrics[f"image_to_text_R@{k}"] == pytest.approx(i2t)
        assert metrics[f"text_to_image_R@{k}"] == pytest.approx(t2i)
    six = [metrics[f"{d}_R@{k}"] for d in ("image_to_text", "text_to_image") for k in (1, 5, 10)]
    assert metrics["mean_recall"] == pytest.approx(np.mean(six))
    assert 0.05 < metrics["mean_recall"] < 0.95
    assert "mean recall" in format_metrics(metrics)


def test_perfect_and_unordered_captions():
    rng = np.random.default_rng(0)
    images = rng.standard_normal((20, 8))
    owners = np.array([i % 20 for i in range(60)])  # captions not grouped by image
    metrics = retrieval_metrics(images, images[owners], owners)
    assert metrics["image_to_text_R@1"] == 1.0 and metrics["text_to_image_R@1"] == 1.0
    assert metrics["num_images"] == 20 and metrics["num_texts"] == 60


def test_chance_formula_matches_random_features():
    n_img, per = 40, 5
    expected = chance_recall(n_img, per)
    assert expected["text_to_image_R@5"] == pytest.approx(5 / 40)
    assert expected["image_to_text_R@1"] == pytest.approx(per / (n_img * per))
    assert expected["image_to_text_R@10"] == pytest.approx(1 - math.comb(195, 10) / math.comb(200, 10))
    rng = np.random.default_rng(0)
    owners = np.repeat(np.arange(n_img), per)
    runs = [retrieval_metrics(rng.standard_normal((n_img, 32)), rng.standard_normal((n_img * per, 32)), owners)
            for _ in range(60)]
    simulated = np.mean([r["mean_recall"] for r in runs])
    assert simulated == pytest.approx(expected["mean_recall"], rel=0.1)


def test_bad_owner_indices():
    with pytest.raises(ValueError, match="text_to_image has 3 entries for 2 captions"):
        retrieval_metrics(np.ones((2, 4)), np.ones((2, 4)), [0, 1, 1])
    with pytest.raises(ValueError, match=r"must be in \[0, 2\)"):
        retrieval_metrics(np.ones((2, 4)), np.ones((2, 4)), [0, 2])
