"""CIFAR-100 / CIFAR-10 / image-folder readers and writers, bad-file errors, and the eval dataset pipeline.

Every dataset here is written to disk in the real format (pickled dicts with bytes keys, as the
Python 2 originals load) and read back through the same code a user's download goes through.
"""
import os
import pickle

import numpy as np
import pytest
from PIL import Image

from ms_clip.data.classification import (DatasetError, build_classification_dataset, detect_layout, load_cifar10,
                                         load_cifar100, load_classification_dataset, load_image_folder,
                                         read_classnames, write_cifar10, write_cifar100)

FINE = ["apple", "aquarium_fish", "maple_tree", "sweet_pepper", "worm"]
COARSE = ["fruit_and_vegetables", "fish"]


def _images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


@pytest.fixture
def cifar100(tmp_path):
    rng = np.random.default_rng(1)
    test = dict(images=_images(12, 2), fine=rng.integers(0, 5, 12), coarse=rng.integers(0, 2, 12))
    train = dict(images=_images(7, 3), fine=rng.integers(0, 5, 7), coarse=rng.integers(0, 2, 7))
    for split, d in (("test", test), ("train", train)):
        write_cifar100(tmp_path, d["images"], d["fine"], d["coarse"], FINE, COARSE, split)
    return tmp_path, test, train


def test_cifar100_round_trip_fine_and_coarse(cifar100):
    root, test, train = cifar100
    data = load_cifar100(root / "cifar-100-python", "test")
    np.testing.assert_array_equal(data.images, test["images"])
    np.testing.assert_array_equal(data.labels, test["fine"])
    assert data.classnames == ["apple", "aquarium fish", "maple tree", "sweet pepper", "worm"]
    coarse = load_cifar100(root, "train", fine_label=False)  # the parent folder works too
    np.testing.assert_array_equal(coarse.labels, train["coarse"])
    assert coarse.classnames == ["fruit and vegetables", "fish"]
    both = load_cifar100(root, "all")
    assert len(both) == 19
    np.testing.assert_array_equal(both.images[:7], train["images"])  # "all" = train then test


def test_cifar100_pickles_have_the_original_layout(cifar100):
    root = cifar100[0] / "cifar-100-python"
    with open(root / "test", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    assert set(raw) == {b"data", b"fine_labels", b"coarse_labels", b"filenames", b"batch_label"}
    assert raw[b"data"].shape == (12, 3072) and raw[b"data"].dtype == np.uint8
    # Row = R plane, then G, then B (the CIFAR convention), i.e. CHW flattening.
    np.testing.assert_array_equal(raw[b"data"][0, :1024].reshape(32, 32), cifar100[1]["images"][0, :, :, 0])
    with open(root / "meta", "rb") as f:
        meta = pickle.load(f, encoding="bytes")
    assert meta[b"fine_label_names"][1] == b"aquarium_fish"


def test_cifar100_python3_pickles_with_str_keys(tmp_path):
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    with open(root / "meta", "wb") as f:
        pickle.dump({"fine_label_names": ["a_b", "c"], "coarse_label_names": ["x"]}, f)
    with open(root / "test", "wb") as f:
        pickle.dump({"data": np.zeros((2, 3072), np.uint8), "fine_labels": [1, 0], "coarse_labels": [0, 0]}, f)
    data = load_cifar100(root)
    assert data.classnames == ["a b", "c"] and data.labels.tolist() == [1, 0]


def test_cifar10_round_trip(tmp_path):
    names = ["airplane", "automobile", "bird"]
    train, test = _images(11, 4), _images(4, 5)
    write_cifar10(tmp_path, train, [i % 3 for i in range(11)], names, "train")
    write_cifar10(tmp_path, test, [2, 1, 0, 2], names, "test")
    folder = tmp_path / "cifar-10-batches-py"
    assert sorted(os.listdir(folder)) == ["batches.meta"] + [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    data = load_cifar10(tmp_path, "train")
    np.testing.assert_array_equal(data.images, train)
    assert data.labels.tolist() == [i % 3 for i in range(11)]
    assert load_cifar10(folder, "test").labels.tolist() == [2, 1, 0, 2]
    assert len(load_cifar10(folder, "all")) == 15
    assert detect_layout(tmp_path) == "cifar10" and read_classnames(folder) == names


def test_image_folder(tmp_path):
    for cls, n in (("golden_retriever", 2), ("cat", 3)):
        (tmp_path / cls).mkdir()
        for i in range(n):
            Image.fromarray(_images(1, i)[0]).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    data = load_image_folder(tmp_path)
    assert data.classnames == ["cat", "golden retriever"]  # sorted folder names, spaces
    assert data.labels.tolist() == [0, 0, 0, 1, 1]
    assert all(p.endswith(".png") for p in data.images)
    assert detect_layout(tmp_path) == "image_folder"
    assert load_classification_dataset(tmp_path).classnames == data.classnames


def test_detect_layout_and_dispatch(cifar100):
    root = cifar100[0]
    assert detect_layout(root) == "cifar100" and detect_layout(root / "cifar-100-python") == "cifar100"
    assert read_classnames(root, fine_label=False) == ["fruit and vegetables", "fish"]
    assert len(load_classification_dataset(root, "cifar100", "train")) == 7


# ----------------------------------------------------------------------------- bad inputs


def _message(excinfo) -> str:
    return str(excinfo.value)


def test_missing_meta_names_file_and_layout(cifar100):
    root = cifar100[0] / "cifar-100-python"
    os.remove(root / "meta")
    with pytest.raises(DatasetError) as e:
        load_cifar100(root)
    assert str(root / "meta") in _message(e) and "cifar-100-python/{meta,train,test}" in _message(e)


def test_missing_split_file(cifar100):
    root = cifar100[0] / "cifar-100-python"
    os.remove(root / "test")
    with pytest.raises(DatasetError, match="missing file .*test"):
        load_cifar100(root, "test")
    load_cifar100(root, "train")  # the other split still reads


def test_missing_cifar10_batch(tmp_path):
    write_cifar10(tmp_path, _images(5), [0] * 5, ["a"], "train")
    os.remove(tmp_path / "cifar-10-batches-py" / "data_batch_3")
    with pytest.raises(DatasetError, match="data_batch_3.*cifar-10-batches-py"):
        load_cifar10(tmp_path, "train")


def test_malformed_pickle(cifar100):
    path = cifar100[0] / "cifar-100-python" / "test"
    path.write_bytes(path.read_bytes()[:100])  # truncated download
    with pytest.raises(DatasetError) as e:
        load_cifar100(path.parent)
    assert str(path) in _message(e) and "not a readable CIFAR pickle" in _message(e)
    path.write_bytes(b"definitely not a pickle")
    with pytest.raises(DatasetError, match="not a readable CIFAR pickle"):
        load_cifar100(path.parent)


def test_pickle_of_wrong_type(cifar100):
    path = cifar100[0] / "cifar-100-python" / "meta"
    with open(path, "wb") as f:
        pickle.dump([1, 2, 3], f)
    with pytest.raises(DatasetError, match="expected a pickled dict, got list"):
        load_cifar100(path.parent)


@pytest.mark.parametrize("file,drop,match", [
    ("meta", b"fine_label_names", "missing key 'fine_label_names'"),
    ("test", b"data", "missing key 'data'"),
    ("test", b"fine_labels", "missing key 'fine_labels'"),
])
def test_wrong_keys(cifar100, file, drop, match):
    path = cifar100[0] / "cifar-100-python" / file
    with open(path, "rb") as f:
        obj = pickle.load(f, encoding="bytes")
    del obj[drop]
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)
    with pytest.raises(DatasetError, match=match) as e:
        load_cifar100(path.parent)
    assert str(path) in _message(e)


@pytest.mark.parametrize("mutate,match", [
    (lambda o: o.__setitem__(b"data", np.zeros((12, 100), np.uint8)), r"uint8 \[N, 3072\]"),
    (lambda o: o.__setitem__(b"data", np.zeros((12, 3072), np.float32)), r"uint8 \[N, 3072\]"),
    (lambda o: o.__setitem__(b"fine_labels", [0] * 11), "11 entries for 12 images"),
    (lambda o: o.__setitem__(b"fine_labels", [7] * 12), r"must lie in \[0, 5\)"),
])
def test_malformed_arrays(cifar100, mutate, match):
    path = cifar100[0] / "cifar-100-python" / "test"
    with open(path, "rb") as f:
        obj = pickle.load(f, encoding="bytes")
    mutate(obj)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)
    with pytest.raises(DatasetError, match=match):
        load_cifar100(path.parent)


def test_bad_split_layout_and_missing_folders(tmp_path, cifar100):
    with pytest.raises(DatasetError, match="unknown split.*'val'"):
        load_cifar100(cifar100[0], "val")
    with pytest.raises(DatasetError, match="unknown dataset layout"):
        load_classification_dataset(cifar100[0], "imagenet")
    with pytest.raises(DatasetError, match="dataset folder not found.*nowhere"):
        load_classification_dataset(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="CIFAR-10 folder not found"):
        load_cifar10(tmp_path / "nowhere")


def test_image_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="no class sub-folders"):
        load_image_folder(tmp_path)
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "a.txt").write_text("x")
    with pytest.raises(DatasetError, match="no image files"):
        load_image_folder(tmp_path)


def test_writer_rejects_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match=r"uint8 \[N, 32, 32, 3\]"):
        write_cifar100(tmp_path, np.zeros((2, 16, 16, 3), np.uint8), [0, 0], [0, 0], ["a"], ["b"])
    with pytest.raises(ValueError, match="fine_labels must lie"):
        write_cifar100(tmp_path, _images(2), [0, 3], [0, 0], ["a"], ["b"])
    with pytest.raises(ValueError, match="split must be"):
        write_cifar10(tmp_path, _images(2), [0, 0], ["a"], "val")


# ----------------------------------------------------------------------------- mindspore.dataset pipeline


def test_eval_dataset_batches_match_the_processor_bicubic(cifar100):
    from ms_clip.processor import CLIPImageProcessor

    root, test, _ = cifar100
    data = load_cifar100(root)
    proc = CLIPImageProcessor(64)
    # More workers than CPUs (the YAMLs say 8) is clamped, not an error.
    dataset = build_classification_dataset(data, proc.preprocess_one, batch_size=5, num_parallel_workers=64)
    batches = list(dataset.create_tuple_iterator(num_epochs=1, output_numpy=True))
    assert [b[0].shape for b in batches] == [(5, 3, 64, 64), (5, 3, 64, 64), (2, 3, 64, 64)]
    pixels = np.concatenate([b[0] for b in batches])
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), test["fine"])
    # Upsampling 32 -> 64 is PIL bicubic (OpenAI), not bilinear (MindFormers' eval yaml).
    img = Image.fromarray(test["images"][3])
    mean = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)[:, None, None]
    std = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)[:, None, None]
    for resample, equal in ((Image.BICUBIC, True), (Image.BILINEAR, False)):
        ref = (np.asarray(img.resize((64, 64), resample), np.float32).transpose(2, 0, 1) / 255 - mean) / std
        assert np.allclose(pixels[3], ref, atol=1e-5) == equal


def test_eval_dataset_names_a_corrupt_image(tmp_path):
    from ms_clip.processor import CLIPImageProcessor

    (tmp_path / "cls").mkdir()
    Image.fromarray(_images(1)[0]).save(tmp_path / "cls" / "good.png")
    (tmp_path / "cls" / "zbad.png").write_bytes(b"\x89PNG broken")
    data = load_image_folder(tmp_path)
    dataset = build_classification_dataset(data, CLIPImageProcessor(32).preprocess_one, batch_size=2)
    with pytest.raises(Exception, match="zbad.png"):
        list(dataset.create_tuple_iterator(num_epochs=1, output_numpy=True))
