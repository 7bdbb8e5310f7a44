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


# --------------------------------------------------------------------------- ties (issue 12 item 16)


def _identical_images(n_img=33, per=5, dim=512, seed=0):
    """n_img copies of one image feature and distinct captions. 33 x 512 is a shape where BLAS rounds the
    scores of identical rows differently (by ~1e-14), so ties must be found without relying on it."""
    rng = np.random.default_rng(seed)
    images = np.repeat(rng.standard_normal((1, dim)), n_img, axis=0)
    owners = np.repeat(np.arange(n_img), per)
    return images, rng.standard_normal((n_img * per, dim)), owners


def test_identical_images_give_chance_text_to_image_recall_not_100_percent():
    images, texts, owners = _identical_images()
    n_img = len(images)
    metrics = retrieval_metrics(images, texts, owners)
    # Every image scores the same for every caption: no caption can find its image better than by chance.
    for k in (1, 5, 10):
        assert metrics[f"text_to_image_R@{k}"] == pytest.approx(k / n_img), k
    pessimistic = retrieval_metrics(images, texts, owners, ties="pessimistic")
    for k in (1, 5, 10):  # all 32 other images tie with the right one and count as ranked before it
        assert pessimistic[f"text_to_image_R@{k}"] == 0.0


def test_all_features_identical_give_exactly_the_chance_formula_both_ways():
    images, _, owners = _identical_images(n_img=20, per=5, dim=64)
    texts = np.repeat(images[:1], len(owners), axis=0)
    metrics = retrieval_metrics(images, texts, owners)
    expected = chance_recall(20, 5)
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value), key
    pessimistic = retrieval_metrics(images, texts, owners, ties="pessimistic")
    assert pessimistic["image_to_text_R@10"] == 0.0 and pessimistic["mean_recall"] == 0.0


def test_image_to_text_ties_with_other_images_captions_are_shared():
    # Image 0 and image 1 are identical and so are their single captions: each image's caption ties with
    # the other image's caption, so R@1 is a coin flip (0.5), pessimistically a miss, and R@2 a sure hit.
    images = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    texts = images.copy()
    owners = [0, 1, 2]
    metrics = retrieval_metrics(images, texts, owners, ks=(1, 2))
    assert metrics["image_to_text_R@1"] == pytest.approx((0.5 + 0.5 + 1) / 3)
    assert metrics["text_to_image_R@1"] == pytest.approx((0.5 + 0.5 + 1) / 3)
    assert metrics["image_to_text_R@2"] == metrics["text_to_image_R@2"] == 1.0
    pessimistic = retrieval_metrics(images, texts, owners, ks=(1, 2), ties="pessimistic")
    assert pessimistic["image_to_text_R@1"] == pessimistic["text_to_image_R@1"] == pytest.approx(1 / 3)
    assert pessimistic["image_to_text_R@2"] == 1.0
    # Ties among an image's *own* captions never count against it.
    own = retrieval_metrics(images[2:], texts[[2, 2, 2]], [0, 0, 0], ks=(1,), ties="pessimistic")
    assert own["image_to_text_R@1"] == 1.0 and own["text_to_image_R@1"] == 1.0
    with pytest.raises(ValueError, match="ties"):
        retrieval_metrics(images, texts, owners, ties="optimistic")


def test_expected_tie_credit_is_the_mean_over_random_tie_orders():
    """The "expected" credit equals recall averaged over random orderings of the tied candidates
    (an independent computation: shuffle, stable-sort by score, take the top k)."""
    rng = np.random.default_rng(4)
    basis = rng.standard_normal((3, 8))  # few distinct features: heavy ties both ways
    n_img, per = 12, 3
    images = basis[rng.integers(0, 3, n_img)]
    owners = np.repeat(np.arange(n_img), per)
    texts = basis[rng.integers(0, 3, n_img * per)]
    metrics = retrieval_metrics(images, texts, owners, ks=(1, 4))
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    scores = np.round(unit(texts) @ unit(images).T, 9)  # cosine, exact ties whatever the BLAS rounding
    trials, sums = 3000, {}
    for _ in range(trials):
        img_perm, txt_perm = rng.permutation(n_img), rng.permutation(len(texts))
        # Rank candidates by score, ties in the random order of the permutation.
        t2i_order = img_perm[np.argsort(-scores[:, img_perm], axis=1, kind="stable")]
        i2t_order = txt_perm[np.argsort(-scores.T[:, txt_perm], axis=1, kind="stable")]
        for k in (1, 4):
            sums.setdefault(("t", k), 0.0)
            sums.setdefault(("i", k), 0.0)
            sums[("t", k)] += np.mean([owners[t] in t2i_order[t, :k] for t in range(len(texts))])
            sums[("i", k)] += np.mean([np.any(owners[i2t_order[i, :k]] == i) for i in range(n_img)])
    for k in (1, 4):
        assert metrics[f"text_to_image_R@{k}"] == pytest.approx(sums[("t", k)] / trials, abs=0.01)
        assert metrics[f"image_to_text_R@{k}"] == pytest.approx(sums[("i", k)] / trials, abs=0.01)
    assert 0.05 < metrics["mean_recall"] < 0.95
