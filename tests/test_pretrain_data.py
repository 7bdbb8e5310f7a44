"""Pretraining data: synthetic Flickr8k, caption readers (Flickr8k / JSON / CSV / TSV / JSONL), bad-data
errors, and the mindspore.dataset pipeline (caption sampling, sharding, resume position, bad images)."""
import csv
import json
import os
import shutil

import numpy as np
import pytest

from ms_clip.data.captions import (DataError, flatten_captions, load_caption_records, read_flickr8k,
                                   read_json_captions, read_table_captions)
from ms_clip.data.pipeline import (ImageTransform, build_caption_dataset, build_image_dataset, epoch_order,
                                   pick_caption, shard_order)
from ms_clip.demo.synthetic import write_flickr8k
from ms_clip.tokenizer import tokenize

N_IMAGES = 60


@pytest.fixture(scope="module")
def flickr_src(tmp_path_factory):
    return write_flickr8k(str(tmp_path_factory.mktemp("synth")), n_images=N_IMAGES, seed=3, image_size=40)


@pytest.fixture
def flickr(flickr_src, tmp_path):
    """A private copy each test may damage."""
    dst = str(tmp_path / "Flickr8k")
    shutil.copytree(flickr_src, dst)
    return dst


def _text(root, name):
    return os.path.join(root, "Flickr8k_text", name)


def _images(root):
    return os.path.join(root, "Flickr8k_Dataset", "Flickr8k_Dataset")


def _batches(dataset):
    return [(img, txt) for img, txt in dataset.create_tuple_iterator(num_epochs=1, output_numpy=True)]


# --------------------------------------------------------------------------- synthetic world


def test_synthetic_writes_the_real_flickr8k_layout(flickr_src, tmp_path):
    with open(_text(flickr_src, "Flickr8k.token.txt"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert len(lines) == 5 * N_IMAGES
    name, caption = lines[0].split("\t")
    assert name.endswith(".jpg#0") and caption
    jpgs = sorted(os.listdir(_images(flickr_src)))
    assert len(jpgs) == N_IMAGES and all(j.endswith(".jpg") for j in jpgs)
    splits = {s: open(_text(flickr_src, f"Flickr_8k.{s}Images.txt")).read().split() for s in ("train", "dev", "test")}
    assert sum(map(len, splits.values())) == N_IMAGES
    assert not set(splits["train"]) & set(splits["test"])
    # Deterministic in the seed: a second write is byte-identical.
    again = write_flickr8k(str(tmp_path), n_images=N_IMAGES, seed=3, image_size=40)
    assert open(_text(again, "Flickr8k.token.txt")).read() == "\n".join(lines) + "\n"
    first = sorted(os.listdir(_images(again)))[0]
    assert open(os.path.join(_images(again), first), "rb").read() == \
        open(os.path.join(_images(flickr_src), first), "rb").read()


# --------------------------------------------------------------------------- Flickr8k reader


def test_flickr8k_reader_groups_all_captions_in_split_order(flickr_src):
    records = read_flickr8k(flickr_src, "test")
    order = open(_text(flickr_src, "Flickr_8k.testImages.txt")).read().split()
    assert [os.path.basename(p) for p in records.image_paths] == order
    assert all(len(c) == 5 for c in records.captions)
    texts, owners = flatten_captions(records)
    assert len(texts) == 5 * len(order) and owners[:6] == [0, 0, 0, 0, 0, 1]
    # dataset_dir may be the Flickr8k folder or its parent; 'all' lists every image.
    assert read_flickr8k(os.path.dirname(flickr_src), "test").image_paths == records.image_paths
    assert len(read_flickr8k(flickr_src, "all")) == N_IMAGES


def test_flickr8k_accepts_the_docs_split_file_spelling(flickr):
    os.rename(_text(flickr, "Flickr_8k.devImages.txt"), _text(flickr, "Flickr8k.devImages.txt"))
    assert len(read_flickr8k(flickr, "dev")) > 0


@pytest.mark.parametrize("remove, expected", [
    ("Flickr8k_text/Flickr_8k.trainImages.txt", "split file not found"),
    ("Flickr8k_text/Flickr8k.token.txt", "caption file not found"),
    ("Flickr8k_Dataset", "image folder not found"),
])
def test_flickr8k_missing_parts_name_the_path_and_layout(flickr, remove, expected):
    target = os.path.join(flickr, remove)
    shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)
    with pytest.raises(DataError) as err:
        read_flickr8k(flickr, "train")
    message = str(err.value)
    assert expected in message and os.path.join(flickr, remove.split("/")[0]) in message
    assert "Flickr8k_Dataset/Flickr8k_Dataset/*.jpg" in message  # the expected layout


def test_flickr8k_missing_dataset_dir_and_bad_stage(tmp_path, flickr_src):
    with pytest.raises(DataError, match="dataset_dir not found: .*nowhere"):
        read_flickr8k(str(tmp_path / "nowhere"), "train")
    with pytest.raises(DataError, match="stage must be one of"):
        read_flickr8k(flickr_src, "validation")


def test_malformed_caption_line_names_file_and_line(flickr):
    path = _text(flickr, "Flickr8k.token.txt")
    lines = open(path).read().splitlines()
    lines[7] = lines[7].replace("\t", " ")  # no tab
    open(path, "w").write("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"Flickr8k\.token\.txt:8: malformed caption line .*expected '<image>\.jpg#<k><TAB><caption>'"):
        read_flickr8k(flickr, "train")


def test_split_image_without_captions_is_an_error(flickr):
    path = _text(flickr, "Flickr_8k.trainImages.txt")
    with open(path, "a") as f:
        f.write("1234_nocaption.jpg\n")
    with pytest.raises(DataError, match="1234_nocaption.jpg"):
        read_flickr8k(flickr, "train")


def test_missing_image_file_skip_counts_and_fail_names_it(flickr):
    victim = read_flickr8k(flickr, "train").image_paths[2]
    os.remove(victim)
    records = read_flickr8k(flickr, "train", on_bad_image="skip")
    assert records.missing_images == [victim] and victim not in records.image_paths
    with pytest.raises(DataError, match=f"image file not found: {victim}"):
        read_flickr8k(flickr, "train", on_bad_image="fail")


# --------------------------------------------------------------------------- JSON / CSV / TSV / JSONL


def _write_json_layout(root, flickr_src):
    src = read_flickr8k(flickr_src, "all")
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    entries = []
    for path, caps in zip(src.image_paths, src.captions):
        shutil.copy(path, os.path.join(root, "images", os.path.basename(path)))
        entries.append({"image": "images/" + os.path.basename(path), "caption": caps})
    json.dump(entries[:40], open(os.path.join(root, "en_train.json"), "w"))
    json.dump(entries[40:], open(os.path.join(root, "en_val.json"), "w"))
    return entries


def test_json_layout(tmp_path, flickr_src):
    entries = _write_json_layout(str(tmp_path), flickr_src)
    train = load_caption_records({"type": "JsonCaptionDataLoader", "dataset_dir": str(tmp_path), "stage": "train"})
    val = read_json_captions(str(tmp_path), "val")
    assert len(train) == 40 and len(val) == N_IMAGES - 40
    assert train.captions[0] == entries[0]["caption"]
    os.remove(tmp_path / "en_val.json")
    with pytest.raises(DataError, match=r"caption file not found: .*en_val\.json; expected .*en_train\.json"):
        read_json_captions(str(tmp_path), "test")
    json.dump([{"image": "x.jpg"}], open(tmp_path / "en_val.json", "w"))
    with pytest.raises(DataError, match=r"en_val\.json\[0\]: expected"):
        read_json_captions(str(tmp_path), "val")


@pytest.mark.parametrize("ext", ["csv", "tsv", "jsonl"])
def test_table_layouts_with_configurable_columns(tmp_path, flickr_src, ext):
    src = read_flickr8k(flickr_src, "test")
    path = str(tmp_path / f"captions_test.{ext}")
    rows = [{"filepath": p, "title": c} for p, caps in zip(src.image_paths, src.captions) for c in caps[:2]]
    if ext == "jsonl":
        with open(path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    else:
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, ["filepath", "title"], delimiter="\t" if ext == "tsv" else ",")
            writer.writeheader()
            writer.writerows(rows)
    loader = {"type": "CsvCaptionDataLoader", "annotation_file": str(tmp_path / ("captions_{stage}." + ext)),
              "stage": "test", "image_column": "filepath", "caption_column": "title"}
    records = load_caption_records(loader)
    assert records.image_paths == src.image_paths  # rows of one image are grouped, order kept
    assert records.captions == [caps[:2] for caps in src.captions]
    with pytest.raises(DataError, match=r"no column 'caption'; columns are \['filepath', 'title'\]"):
        read_table_captions(path, image_column="filepath")
    with pytest.raises(DataError, match="caption file not found"):
        read_table_captions(str(tmp_path / f"nope.{ext}"))


def test_unknown_loader_type_and_policy():
    with pytest.raises(DataError, match="unknown data_loader.type 'CocoLoader'"):
        load_caption_records({"type": "CocoLoader", "dataset_dir": "."})
    with pytest.raises(DataError, match="on_bad_image must be one of"):
        load_caption_records({"type": "Flickr8kDataLoader", "dataset_dir": ".", "on_bad_image": "ignore"})


# --------------------------------------------------------------------------- pipeline


def test_fresh_random_caption_per_image_and_epoch(flickr_src):
    records = read_flickr8k(flickr_src, "train")
    # Pure function of (seed, epoch, index): MindFormers always picked caption 4.
    picks = np.array([[pick_caption(5, 7, epoch, i) for i in range(len(records))] for epoch in range(40)])
    assert set(np.unique(picks)) == {0, 1, 2, 3, 4}
    assert (picks[0] != picks[1]).mean() > 0.5  # a new draw each epoch
    counts = np.bincount(picks.ravel(), minlength=5) / picks.size
    assert np.all(np.abs(counts - 0.2) < 0.03), counts
    # The pipeline tokenizes exactly that caption.
    transform = ImageTransform(32)
    dataset, _ = build_caption_dataset(records, 8, transform, seed=7, epoch=3, shuffle=False)
    _, tokens = _batches(dataset)[0]
    expected = tokenize([records.captions[i][picks[3][i]] for i in range(8)])
    np.testing.assert_array_equal(tokens, expected)


def test_shuffle_sharding_and_resume_position(flickr_src):
    records = read_flickr8k(flickr_src, "all")
    n = len(records)
    order0, order1 = epoch_order(n, 5, 0, True), epoch_order(n, 5, 1, True)
    assert sorted(order0) == list(range(n)) and not np.array_equal(order0, order1)
    shards = [shard_order(order0, 4, 3, r) for r in range(3)]
    assert not set(shards[0]) & set(shards[1]) and not set(shards[1]) & set(shards[2])
    # Global batch k of 3 shards x 4 == batch k of one device with batch 12.
    single = shard_order(order0, 12, 1, 0).reshape(-1, 12)
    stacked = np.stack([s.reshape(-1, 4) for s in shards], axis=1).reshape(-1, 12)
    np.testing.assert_array_equal(single, stacked)

    # Through the real pipeline: images of shard 1 are the images of those indices; a resumed pipeline
    # (start_batch=2) yields exactly the remaining batches of the same epoch.
    transform = ImageTransform(24, random_crop=True)
    full, _ = build_caption_dataset(records, 4, transform, seed=5, epoch=2, num_shards=3, shard_id=1)
    rest, _ = build_caption_dataset(records, 4, transform, seed=5, epoch=2, num_shards=3, shard_id=1, start_batch=2)
    full_b, rest_b = _batches(full), _batches(rest)
    assert len(full_b) == n // 12 and len(rest_b) == len(full_b) - 2
    for (ai, at), (bi, bt) in zip(full_b[2:], rest_b):
        np.testing.assert_array_equal(ai, bi)
        np.testing.assert_array_equal(at, bt)
    assert full_b[0][0].shape == (4, 3, 24, 24) and full_b[0][0].dtype == np.float32
    assert full_b[0][1].shape == (4, 77) and full_b[0][1].dtype == np.int32


def _corrupt(path):
    with open(path, "wb") as f:
        f.write(b"this is not a jpeg")


def test_corrupt_image_is_skipped_and_counted(flickr):
    records = read_flickr8k(flickr, "train")
    bad = records.image_paths[1]
    _corrupt(bad)
    dataset, source = build_caption_dataset(records, 4, ImageTransform(32), shuffle=False, on_bad_image="skip")
    batches = _batches(dataset)
    assert len(batches) == len(records) // 4  # nothing lost: the next good image stands in
    assert list(source.bad.files) == [bad]
    images, _ = build_image_dataset(records, 8, ImageTransform(32), on_bad_image="skip")
    ok = np.concatenate([o for _, o in images.create_tuple_iterator(num_epochs=1, output_numpy=True)])
    assert ok.tolist() == [i != 1 for i in range(len(records))]


def test_corrupt_image_fails_naming_the_file(flickr):
    records = read_flickr8k(flickr, "train")
    bad = records.image_paths[1]
    _corrupt(bad)
    dataset, _ = build_caption_dataset(records, 4, ImageTransform(32), shuffle=False, on_bad_image="fail",
                                       num_parallel_workers=1)
    with pytest.raises(Exception) as err:  # MindSpore re-raises worker errors as RuntimeError
        _batches(dataset)
    assert os.path.basename(bad) in str(err.value) and "on_bad_image" in str(err.value)
