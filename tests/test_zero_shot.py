"""Zero-shot classifier (vs open_clip), cache, scores and top-k, and the task's evaluate/predict.

The classifier proof loads one set of seeded random weights into both open_clip's ``CLIP`` and
our ``CLIPModel`` (the parameter names are identical) and compares open_clip's own
``build_zero_shot_classifier`` (with open_clip's tokenizer) to ours on CIFAR-100 x 18 templates.
"""
import csv
import json
import logging

import numpy as np
import pytest

import mindspore as ms

from ms_clip.data.classification import write_cifar100
from ms_clip.eval.templates import (CIFAR10_CLASSNAMES, CIFAR100_CLASSNAMES, OPENAI_CIFAR_TEMPLATES,
                                    resolve_templates)
from ms_clip.eval.zero_shot import (accuracy, build_zero_shot_classifier, classifier_cache_key, per_class_accuracy,
                                    tokenize_prompts, topk_correct, zero_shot_scores)
from ms_clip import create_model
from ms_clip.run_config import RunConfigError, load_run_config
from ms_clip.tasks import zero_shot as task

TASK = "zero_shot_image_classification"


@pytest.fixture(scope="module")
def models():
    """(open_clip reference, our CLIPModel) holding the same seeded random weights (clip_tiny shape)."""
    import torch
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    torch.manual_seed(0)
    ref = CLIP(64, CLIPVisionCfg(layers=2, width=64, head_width=16, image_size=32, patch_size=8),
               CLIPTextCfg(context_length=77, vocab_size=49408, width=64, heads=4, layers=2), quick_gelu=True).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # LayerNorm 1/0 and zero biases become random, so none of them can hide
        for p in ref.parameters():
            if p.numel() > 1 and float(p.std()) == 0.0:
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
    from ms_clip.weights import assign_weights

    ours = create_model("clip_tiny")
    assign_weights(ours, {k: v.numpy() for k, v in ref.state_dict().items() if k != "attn_mask"})
    return ref, ours


@pytest.fixture(scope="module")
def model(models):
    return models[1]


# ----------------------------------------------------------------------------- templates


def test_templates_and_classnames():
    assert len(CIFAR100_CLASSNAMES) == 100 and len(set(CIFAR100_CLASSNAMES)) == 100
    assert len(CIFAR10_CLASSNAMES) == 10 and len(OPENAI_CIFAR_TEMPLATES) == 18
    # The pickle's fine_label_names order is alphabetical with underscores.
    assert sorted(n.replace(" ", "_") for n in CIFAR100_CLASSNAMES) == [n.replace(" ", "_") for n in CIFAR100_CLASSNAMES]
    assert [n for n in CIFAR100_CLASSNAMES if " " in n] == [
        "aquarium fish", "lawn mower", "maple tree", "oak tree", "palm tree", "pickup truck", "pine tree",
        "sweet pepper", "willow tree"]
    assert OPENAI_CIFAR_TEMPLATES[9:] == tuple(t.replace("of a ", "of the ") for t in OPENAI_CIFAR_TEMPLATES[:9])
    assert resolve_templates("openai") == OPENAI_CIFAR_TEMPLATES
    assert resolve_templates("a {} here") == ("a {} here",)
    for bad in ("opnai", [], ["no placeholder"], ["{} and {}"]):
        with pytest.raises(ValueError):
            resolve_templates(bad)


# ----------------------------------------------------------------------------- classifier vs open_clip


def test_ensemble_classifier_equals_open_clip(models):
    import open_clip

    ref, ours = models
    classnames = list(CIFAR100_CLASSNAMES)
    expected = open_clip.build_zero_shot_classifier(ref, open_clip.get_tokenizer("ViT-B-32"), classnames,
                                                    OPENAI_CIFAR_TEMPLATES).numpy()
    got = build_zero_shot_classifier(ours, classnames, "openai", batch_size=256)
    assert got.shape == expected.shape == (64, 100) and got.dtype == np.float32
    err = float(np.abs(got - expected).max())
    print(f"ensemble classifier max abs error vs open_clip: {err:.3g}")
    assert err <= 1e-5
    np.testing.assert_allclose(np.linalg.norm(got, axis=0), 1.0, atol=1e-6)


def test_single_template_classifier_equals_open_clip(models):
    import open_clip

    ref, ours = models
    labels = ["sunflower", "tree", "dog", "cat", "toy"]
    expected = open_clip.build_zero_shot_classifier(ref, open_clip.get_tokenizer("ViT-B-32"), labels,
                                                    ["a picture of {}."]).numpy()
    assert np.abs(build_zero_shot_classifier(ours, labels, "a picture of {}.") - expected).max() <= 1e-5


def test_ensemble_is_mean_of_normalised_prompts_not_of_raw_features(model):
    """Averaging unnormalised features would weight long feature vectors more; check we do not."""
    from mindspore import Tensor

    labels, templates = ["cat", "dog"], ["a photo of a {}.", "{}", "a blurry photo of the big {}."]
    feats = model.get_text_features(Tensor(tokenize_prompts([t.format(c) for c in labels for t in templates])))
    feats = feats.asnumpy().reshape(2, 3, -1).astype(np.float64)
    unit = feats / np.linalg.norm(feats, axis=-1, keepdims=True)
    right = unit.mean(1)
    right /= np.linalg.norm(right, axis=-1, keepdims=True)
    wrong = feats.mean(1)
    wrong /= np.linalg.norm(wrong, axis=-1, keepdims=True)
    got = build_zero_shot_classifier(model, labels, templates).T
    assert np.abs(got - right).max() < 1e-5 < np.abs(right - wrong).max()


def test_classifier_rejects_bad_labels(model):
    with pytest.raises(ValueError, match="duplicates.*'cat'"):
        build_zero_shot_classifier(model, ["cat", "dog", "cat"], "{}")
    with pytest.raises(ValueError, match="empty"):
        build_zero_shot_classifier(model, [], "{}")


# ----------------------------------------------------------------------------- cache


def test_cache_is_used_and_keyed(model, tmp_path, caplog):
    labels, templates = ["cat", "dog", "bird"], ["a photo of a {}.", "a {}."]
    first = build_zero_shot_classifier(model, labels, templates, cache=str(tmp_path))
    files = list(tmp_path.glob("*.npy"))
    assert len(files) == 1
    # A sentinel written into the cache file comes back: the second call reads the cache, not the model.
    sentinel = np.full_like(first, 0.125)
    np.save(files[0], sentinel)
    with caplog.at_level(logging.INFO, logger="ms_clip.eval.zero_shot"):
        assert np.array_equal(build_zero_shot_classifier(model, labels, templates, cache=str(tmp_path)), sentinel)
    assert "loaded from cache" in caplog.text
    # Other classes, templates or context length are other keys.
    build_zero_shot_classifier(model, labels[:2], templates, cache=str(tmp_path))
    build_zero_shot_classifier(model, labels, templates[:1], cache=str(tmp_path))
    build_zero_shot_classifier(model, labels, templates, cache=str(tmp_path), context_length=32)
    assert len(list(tmp_path.glob("*.npy"))) == 4
    # A corrupt cache file is rebuilt, with a warning, instead of failing.
    files[0].write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING, logger="ms_clip.eval.zero_shot"):
        np.testing.assert_array_equal(build_zero_shot_classifier(model, labels, templates, cache=str(tmp_path)), first)
    assert "unreadable class-embedding cache" in caplog.text


def test_unwritable_cache_warns_and_the_classifier_is_still_built(model, tmp_path, caplog):
    """The cache only saves time (issue 12 item 11): a cache directory that cannot be created or written
    (here a path below a regular file, which even root cannot write) costs a warning, not the evaluation."""
    blocker = tmp_path / "not_a_directory"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING, logger="ms_clip.eval.zero_shot"):
        got = build_zero_shot_classifier(model, ["cat", "dog"], "a {}.", cache=str(blocker / "cache"))
    np.testing.assert_array_equal(got, build_zero_shot_classifier(model, ["cat", "dog"], "a {}."))
    assert "could not cache the zero-shot classifier" in caplog.text


def test_cache_key_follows_text_weights_only(tmp_path):
    a, b = create_model("clip_tiny"), create_model("clip_tiny")
    from ms_clip.weights import assign_weights

    assign_weights(b, {p.name: p.asnumpy() for p in a.get_parameters()})
    ids = tokenize_prompts(["a cat"])
    key = classifier_cache_key(a, ["cat"], ["{}"], ids)
    assert classifier_cache_key(b, ["cat"], ["{}"], ids) == key
    b.visual.proj.set_data(ms.Tensor(b.visual.proj.asnumpy() + 1))  # image tower: same key
    assert classifier_cache_key(b, ["cat"], ["{}"], ids) == key
    b.text_projection.set_data(ms.Tensor(b.text_projection.asnumpy() * 1.01))  # text tower: new key
    assert classifier_cache_key(b, ["cat"], ["{}"], ids) != key


# ----------------------------------------------------------------------------- scores and top-k


def test_scores_are_softmax_of_100_cosine():
    rng = np.random.default_rng(0)
    feats, w = rng.standard_normal((6, 8)), rng.standard_normal((8, 4))
    w /= np.linalg.norm(w, axis=0)
    probs = zero_shot_scores(feats * 7.0, w)  # the image norm must not matter
    logits = 100 * (feats / np.linalg.norm(feats, axis=1, keepdims=True)) @ w
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-6)
    assert not np.allclose(zero_shot_scores(feats, w, logit_scale=10.0), probs)
    with pytest.raises(ValueError, match="do not fit"):
        zero_shot_scores(feats, w.T)


def test_topk_helpers():
    scores = np.array([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1], [0.2, 0.3, 0.5], [0.3, 0.3, 0.4]])
    labels = np.array([2, 0, 0, 1])
    correct = topk_correct(scores, labels, (1, 2, 5))
    assert correct[1].tolist() == [False, True, False, False]
    # Row 3 ties 0.3/0.3 for second place: the lower class id (0) wins, so label 1 is not in the top 2.
    assert correct[2].tolist() == [True, True, False, False]
    assert correct[5].all()  # k beyond the class count covers every class
    assert accuracy(scores, labels, (1, 3)) == {1: 0.25, 3: 1.0}
    rows = per_class_accuracy(scores, labels, ["a", "b", "c", "d"], (1,))
    assert [(r["class_name"], r["num_samples"], r["top1"]) for r in rows] == [
        ("a", 2, 0.5), ("b", 1, 0.0), ("c", 1, 0.0), ("d", 0, None)]
    with pytest.raises(ValueError, match="empty"):
        accuracy(scores[:0], labels[:0])


# ----------------------------------------------------------------------------- task: evaluate / predict


CLASSES = ["apple", "aquarium_fish", "bicycle", "maple_tree", "rocket", "sunflower", "tank", "whale"]


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    """A CIFAR-100-format test split: 8 classes, 37 images (not a batch multiple)."""
    root = tmp_path_factory.mktemp("cifar")
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, (37, 32, 32, 3), dtype=np.uint8)
    fine = rng.integers(0, len(CLASSES), 37)
    write_cifar100(root, images, fine, fine % 2, CLASSES, ["even_class", "odd_class"], "test")
    return root, images, fine


def _config(root, out, **zero_shot):
    return load_run_config({
        "output_dir": str(out),
        "eval_dataset": {"data_loader": {"dataset_dir": str(root)}, "batch_size": 8, "num_parallel_workers": 2,
                         "transforms": [{"type": "Resize", "size": 32}, {"type": "CenterCrop", "size": 32},
                                        "ToTensor", {"type": "Normalize"}]},
        "zero_shot": {"cache_dir": str(out / "cache"), **zero_shot},
    }, task=TASK)


def test_evaluate_agrees_with_numpy(model, cifar, tmp_path, caplog):
    from ms_clip.processor import CLIPImageProcessor

    root, images, labels = cifar
    with caplog.at_level(logging.INFO, logger="ms_clip.tasks.zero_shot"):
        result = task.evaluate(model, _config(root, tmp_path))
    assert "Top1 Accuracy = {'Top1 Accuracy': " in caplog.text

    # Independent: preprocess each image, one forward pass, numpy cosine and a full argsort.
    pixels = np.stack([CLIPImageProcessor(32).preprocess_one(img) for img in images])
    feats = model.get_image_features(ms.Tensor(pixels)).asnumpy().astype(np.float64)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    names = [c.replace("_", " ") for c in CLASSES]
    w = build_zero_shot_classifier(model, names, OPENAI_CIFAR_TEMPLATES)
    rank = np.argsort(-(feats @ w), axis=1)
    top1 = float(np.mean(rank[:, 0] == labels))
    top5 = float(np.mean([labels[i] in rank[i, :5] for i in range(len(labels))]))
    print(f"evaluate: top1 {result['top1']} vs numpy {top1}; top5 {result['top5']} vs numpy {top5}")
    assert result["top1"] == result["Top1 Accuracy"] == top1
    assert result["top5"] == top5
    assert 0 < top1 < top5 < 1  # the comparison is not between trivial values
    assert (result["num_samples"], result["num_classes"], result["num_templates"]) == (37, 8, 18)

    metrics = json.loads((tmp_path / "zero_shot_metrics.json").read_text())
    assert metrics["top1"] == top1 and len(metrics["per_class"]) == 8
    with open(tmp_path / "zero_shot_per_class_accuracy.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["class_name"] for r in rows] == names
    for idx, row in enumerate(rows):
        mask = labels == idx
        assert int(row["num_samples"]) == int(mask.sum())
        if mask.any():
            assert float(row["top1"]) == pytest.approx(float(np.mean(rank[mask, 0] == idx)))


def test_evaluate_single_hypothesis_template_and_coarse_labels(model, cifar, tmp_path):
    root = cifar[0]
    cfg = _config(root, tmp_path, templates="hypothesis_template")
    cfg["eval_dataset"]["data_loader"]["fine_label"] = False
    result = task.evaluate(model, cfg)
    assert (result["num_classes"], result["num_templates"]) == (2, 1)
    assert result["top5"] == 1.0  # two classes: top-5 holds all of them


def test_evaluate_errors(model, cifar, tmp_path):
    cfg = _config(cifar[0], tmp_path, classnames=["a", "b"])
    with pytest.raises(ValueError, match="2 names but the dataset has 8 classes"):
        task.evaluate(model, cfg)
    cfg = _config(tmp_path / "missing", tmp_path)
    with pytest.raises(Exception, match="missing"):
        task.evaluate(model, cfg)
    cfg = _config(cifar[0], tmp_path)
    cfg["eval_dataset"]["transforms"][0]["size"] = 64
    cfg["eval_dataset"]["transforms"][1]["size"] = 64
    with pytest.raises(ValueError, match="crop images to 64 but the model expects 32x32"):
        task.evaluate(model, cfg)


def test_run_config_schema_errors(cifar, tmp_path):
    with pytest.raises(RunConfigError, match="zero_shot.templats.*Did you mean 'templates'"):
        load_run_config({"zero_shot": {"templats": "openai"}}, task=TASK)
    with pytest.raises(RunConfigError, match="zero_shot.templates"):
        load_run_config({"zero_shot": {"templates": "no placeholder"}}, task=TASK)
    with pytest.raises(RunConfigError, match="data_loader.type"):
        load_run_config({"eval_dataset": {"data_loader": {"type": "ImageNetDataLoader"}}}, task=TASK)
    with pytest.raises(RunConfigError, match="eval_dataset_task.dataset_config.*batch_sise"):
        load_run_config({"eval_dataset_task": {"dataset_config": {"batch_sise": 3}}}, task=TASK)
    with pytest.raises(RunConfigError, match="topk_accuracy"):
        load_run_config({"zero_shot": {"topk_accuracy": [0]}}, task=TASK)


def test_shipped_yamls_validate_and_match_the_registry():
    import glob

    from ms_clip.models.config import CLIPConfig
    from ms_clip.registry import load_config

    paths = sorted(glob.glob("configs/clip/run_clip_*_zero_shot_image_classification_cifar100.yaml"))
    assert len(paths) == 5
    for path in paths:
        cfg = load_run_config(path)
        assert cfg["trainer"]["type"] == "ZeroShotImageClassificationTrainer"
        arch = CLIPConfig.from_dict(cfg["model"]["model_config"]).to_dict()
        expected = load_config(cfg["trainer"]["model_name"]).to_dict()
        for key in ("text_config", "vision_config", "projection_dim"):
            assert arch[key] == expected[key], (path, key)
        size = arch["vision_config"]["image_size"]
        assert [t.get("size") for t in cfg["eval_dataset"]["transforms"][:2]] == [size, size], path
        assert task.resolve_eval_templates(cfg) == OPENAI_CIFAR_TEMPLATES


def _check_ranked(preds, n_labels, top_k):
    assert len(preds) == min(top_k, n_labels)
    scores = [p["score"] for p in preds]
    assert scores == sorted(scores, reverse=True)
    assert all(isinstance(p["score"], float) and isinstance(p["label"], str) for p in preds)


def test_predict_defaults_to_dataset_classes_and_writes_results(model, cifar, tmp_path, caplog):
    root, images, _ = cifar
    cfg = _config(root, tmp_path)
    with caplog.at_level(logging.INFO, logger="ms_clip.tasks.zero_shot"):
        out = task.predict(model, cfg, input_data=[images[0], images[1]])
    assert "output result is:" in caplog.text
    assert len(out) == 2
    for preds in out:
        _check_ranked(preds, 8, 3)  # top_k from the yaml: 3
        assert {p["label"] for p in preds} <= {c.replace("_", " ") for c in CLASSES}
    full = task.predict(model, cfg, input_data=images[0], top_k=100)
    assert len(full[0]) == 8 and sum(p["score"] for p in full[0]) == pytest.approx(1.0, abs=1e-5)
    # Same top 3; scores equal up to float32 rounding (CPU kernels may round a row differently in a batch of
    # one image than in a batch of two).
    assert [p["label"] for p in full[0][:3]] == [p["label"] for p in out[0]]
    np.testing.assert_allclose([p["score"] for p in full[0][:3]], [p["score"] for p in out[0]], rtol=1e-5, atol=1e-7)
    lines = (tmp_path / "results.txt").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["predictions"] == full[0]


def test_predict_labels_and_template_overrides(model, cifar, tmp_path):
    root, images, _ = cifar
    cfg = _config(root, tmp_path)
    out = task.predict(model, cfg, input_data=images[:3], top_k=1, candidate_labels=["cat", "dog"],
                       hypothesis_template="a picture of {}.")
    assert len(out) == 3 and all(len(p) == 1 and p[0]["label"] in ("cat", "dog") for p in out)


def test_predict_errors(model, tmp_path, cifar):
    cfg = _config(tmp_path / "no_dataset", tmp_path)
    with pytest.raises(ValueError, match="predict needs candidate labels.*no_dataset"):
        task.predict(model, cfg, input_data=cifar[1][0])
    with pytest.raises(ValueError, match="predict needs input_data"):
        task.predict(model, cfg, candidate_labels=["a", "b"])
    with pytest.raises(ValueError, match="duplicates"):
        task.predict(model, cfg, input_data=cifar[1][0], candidate_labels=["a", "a"])
