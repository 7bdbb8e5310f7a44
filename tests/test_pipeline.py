"""pipeline("zero_shot_image_classification"): inputs of every kind, output contract, errors.

URL inputs are served by a real HTTP server on 127.0.0.1; image files are real PNG/JPEG files.
"""
import re

import numpy as np
import pytest
from PIL import Image

import mindspore as ms

from _helpers_http import serve_directory
from ms_clip import pipeline
from ms_clip.eval.zero_shot import build_zero_shot_classifier, zero_shot_scores
from ms_clip.pipelines import ZeroShotImageClassificationPipeline
from ms_clip.processor import CLIPImageProcessor, ImageLoadError
from ms_clip import create_model

LABELS = ["sunflower", "tree", "dog", "cat", "toy"]


@pytest.fixture(scope="module")
def model():
    ms.set_seed(3)
    return create_model("clip_tiny")


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (40 + 7 * i, 48, 3), dtype=np.uint8) for i in range(3)]


@pytest.fixture(scope="module")
def files(tmp_path_factory, images):
    folder = tmp_path_factory.mktemp("imgs")
    Image.fromarray(images[0]).save(folder / "a.png")
    Image.fromarray(images[1]).save(folder / "b.png")
    (folder / "readme.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def server(files):
    with serve_directory(files) as url:
        yield url


@pytest.fixture(scope="module")
def classifier(model):
    return pipeline("zero_shot_image_classification", model=model, candidate_labels=LABELS)


def _check(result, n_images, top_k=len(LABELS)):
    assert isinstance(result, list) and len(result) == n_images
    for preds in result:
        assert len(preds) == top_k
        scores = [p["score"] for p in preds]
        assert scores == sorted(scores, reverse=True)
        assert all(isinstance(p["score"], float) and p["label"] in LABELS for p in preds)
        if top_k == len(LABELS):
            assert sum(scores) == pytest.approx(1.0, abs=1e-5)
            assert sorted(p["label"] for p in preds) == sorted(LABELS)


def test_single_image_and_list(classifier, images):
    one = classifier(Image.fromarray(images[0]))
    _check(one, 1)
    many = classifier([Image.fromarray(img) for img in images])
    _check(many, 3)
    assert [p["label"] for p in many[0]] == [p["label"] for p in one[0]]
    np.testing.assert_allclose([p["score"] for p in many[0]], [p["score"] for p in one[0]], rtol=1e-5, atol=1e-7)


def test_scores_are_the_single_template_classifier(model, classifier, images):
    """pipeline == softmax(100 * cos(image, build_zero_shot_classifier(labels, [template])))."""
    proc = CLIPImageProcessor(32)
    feats = model.get_image_features(ms.Tensor(np.stack([proc.preprocess_one(img) for img in images]))).asnumpy()
    probs = zero_shot_scores(feats, build_zero_shot_classifier(model, LABELS, "a picture of {}."))
    for row, preds in zip(probs, classifier(images)):
        got = {p["label"]: p["score"] for p in preds}
        np.testing.assert_allclose([got[label] for label in LABELS], row, rtol=1e-4, atol=1e-6)


def test_top_k(classifier, images):
    _check(classifier(images, top_k=2), 3, top_k=2)
    full = classifier(images[0])
    assert classifier(images[0], top_k=1)[0] == full[0][:1]
    _check(classifier(images[0], top_k=50), 1)  # more than there are labels: all of them
    for bad in (0, -1, 1.5, "3"):
        with pytest.raises(ValueError, match="top_k"):
            classifier(images[0], top_k=bad)


def test_input_kinds(classifier, images, files, server):
    expected = classifier(images[0])
    for item in (images[0], {"image": images[0]}, str(files / "a.png"), f"{server}/a.png",
                 ms.Tensor(images[0]), images[0].transpose(2, 0, 1)):
        got = classifier(item)
        assert [p["label"] for p in got[0]] == [p["label"] for p in expected[0]], type(item)
    # A directory expands to its image files (sorted); a 4-D array is a batch.
    _check(classifier(str(files)), 2)
    _check(classifier(np.stack([images[0], images[0]])[:, :40, :40]), 2)
    _check(classifier([str(files / "b.png"), f"{server}/a.png", images[2]]), 3)


def test_per_call_labels_and_templates(classifier, images):
    out = classifier(images[0], candidate_labels=["x", "y"], hypothesis_template="a photo of a {}.")
    assert sorted(p["label"] for p in out[0]) == ["x", "y"]
    ensemble = classifier(images[0], hypothesis_template="openai")
    assert sum(p["score"] for p in ensemble[0]) == pytest.approx(1.0, abs=1e-5)


def test_model_by_path(model, tmp_path, images):
    model.save_pretrained(str(tmp_path / "tiny"))
    pipe = pipeline("zero_shot_image_classification", model=str(tmp_path / "tiny"), candidate_labels=LABELS)
    ref = pipeline("zero_shot_image_classification", model=model, candidate_labels=LABELS)
    np.testing.assert_allclose([p["score"] for p in pipe(images[0])[0]], [p["score"] for p in ref(images[0])[0]],
                               rtol=1e-5)


# ----------------------------------------------------------------------------- errors


def test_label_errors(model, classifier, images):
    for labels, match in (([], "empty"), (["cat", "dog", "cat"], r"duplicates \['cat'\]"), ("cat", "single string"),
                          (["cat", ""], "non-empty strings")):
        with pytest.raises(ValueError, match=match):
            pipeline("zero_shot_image_classification", model=model, candidate_labels=labels)
        with pytest.raises(ValueError, match=match):
            classifier(images[0], candidate_labels=labels)
    bare = pipeline("zero_shot_image_classification", model=model)
    with pytest.raises(ValueError, match="candidate_labels are required"):
        bare(images[0])


def test_import_spellings_are_callable(model):
    import ms_clip
    import ms_clip.pipelines as module

    from ms_clip import pipeline as name

    for factory in (ms_clip.pipeline, name, module.pipeline):
        assert isinstance(factory("zero_shot_image_classification", model=model, candidate_labels=LABELS),
                          ZeroShotImageClassificationPipeline)


def test_unknown_task_lists_supported(model):
    with pytest.raises(ValueError) as e:
        pipeline("image_captioning", model=model, candidate_labels=LABELS)
    assert "image_captioning" in str(e.value) and "zero_shot_image_classification" in str(e.value)


def test_bad_inputs(classifier, files, server, tmp_path, images):
    with pytest.raises(ImageLoadError, match="readme.txt"):
        classifier(str(files / "readme.txt"))
    with pytest.raises(ImageLoadError, match="not found.*missing.png"):
        classifier(str(tmp_path / "missing.png"))
    with pytest.raises(ImageLoadError, match="missing.png"):
        classifier(f"{server}/missing.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        classifier(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="no images given"):
        classifier([])
    with pytest.raises(ValueError, match="'image' key"):
        classifier({"img": images[0]})
    with pytest.raises(TypeError):
        classifier(12345)
    with pytest.raises(ValueError, match="placeholder"):
        classifier(images[0], hypothesis_template="no placeholder")


def test_constructor_errors(model):
    with pytest.raises(TypeError, match="CLIPModel"):
        ZeroShotImageClassificationPipeline(object(), candidate_labels=LABELS)
    with pytest.raises(ValueError, match="backend"):
        pipeline("zero_shot_image_classification", model=model, candidate_labels=LABELS, backend="torch")
    with pytest.raises(ValueError, match="batch_size"):
        pipeline("zero_shot_image_classification", model=model, candidate_labels=LABELS, batch_size=0)


@pytest.mark.parametrize("shape", [(0, 0, 3), (0, 40, 3), (40, 0), (7, 9, 0), (0, 32, 32, 3)])
def test_zero_size_image_array_is_a_one_line_error_naming_it(classifier, shape):
    """Issue 12 item 15: a zero-size array used to raise ZeroDivisionError from the resize."""
    with pytest.raises(ImageLoadError, match=r"input\[0\].*empty.*" + re.escape(str(shape))) as err:
        classifier(np.zeros(shape, np.uint8))
    assert "\n" not in str(err.value)
    with pytest.raises(ImageLoadError, match=r"input\[1\].*empty"):  # the culprit, not its neighbour
        classifier([np.zeros((8, 8, 3), np.uint8), np.zeros(shape, np.uint8)])


def test_zero_size_pil_image_is_a_one_line_error(classifier):
    with pytest.raises(ImageLoadError, match=r"input\[0\].*empty.*0x0"):
        classifier(Image.new("RGB", (0, 0)))
