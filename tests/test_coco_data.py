"""COCO captions in their real layout (annotations/captions_{train,val}2017.json + {train,val}2017/*.jpg) and
the rows of HF's COCO dataset script (image_path, caption) -> CaptionRecords; errors named in one line."""
import json
import os
import re
import shutil
from collections import defaultdict

import numpy as np
import pytest
from PIL import Image

from ms_clip.data.captions import DataError, load_caption_records, one_record_per_caption, read_coco_captions
from ms_clip.demo.coco_shapes import write_dataset_script_rows, write_shapes_coco
from ms_clip.run_config import RunConfigError, load_run_config

PRETRAIN = "contrastive_language_image_pretrain"


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    return write_shapes_coco(str(tmp_path_factory.mktemp("coco")), n_train=12, n_val=6, seed=3, image_size=24)


def _copy(coco, tmp_path):
    return shutil.copytree(coco, str(tmp_path / "coco"))


def _edit(root, stage, change):
    path = os.path.join(root, "annotations", f"captions_{stage}2017.json")
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    change(data)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f)
    return path


def _grouped_from_json(root, stage):
    """Independent grouping: {absolute image path: sorted captions} straight from the JSON."""
    with open(os.path.join(root, "annotations", f"captions_{stage}2017.json"), encoding="utf-8") as f:
        data = json.load(f)
    names = {image["id"]: image["file_name"] for image in data["images"]}
    out = defaultdict(list)
    for annotation in data["annotations"]:
        out[os.path.join(root, f"{stage}2017", names[annotation["image_id"]])].append(annotation["caption"])
    return {path: sorted(caps) for path, caps in out.items()}, [os.path.join(root, f"{stage}2017", image["file_name"])
                                                                  for image in data["images"]]


@pytest.mark.parametrize("stage,count", [("train", 12), ("val", 6)])
def test_reads_the_real_layout_with_all_captions_of_each_image(coco, stage, count):
    records = read_coco_captions(coco, stage)
    grouped, file_order = _grouped_from_json(coco, stage)
    assert len(records) == count and records.num_captions == 5 * count
    assert records.image_paths == file_order  # images[] order, whatever order annotations[] has
    assert {p: sorted(c) for p, c in zip(records.image_paths, records.captions)} == grouped
    assert all(len(c) == 5 for c in records.captions) and all(os.path.isfile(p) for p in records.image_paths)
    with Image.open(records.image_paths[0]) as img:
        assert img.format == "JPEG" and img.size == (24, 24)
    # The annotations are shuffled in the file: grouping really gathers captions from all over it.
    with open(os.path.join(coco, "annotations", f"captions_{stage}2017.json"), encoding="utf-8") as f:
        ids = [a["image_id"] for a in json.load(f)["annotations"]]
    assert any(len(ids) - ids[::-1].index(i) - ids.index(i) > 5 for i in set(ids))  # some image's are not adjacent


def test_run_config_loader_stages_year_and_per_caption(coco):
    val = load_caption_records({"type": "CocoCaptionDataLoader", "dataset_dir": coco, "stage": "val"})
    assert load_caption_records({"type": "CocoCaptionDataLoader", "dataset_dir": coco, "stage": "dev",
                                 "year": 2017}).image_paths == val.image_paths
    assert "val2017" in val.source
    pairs = load_caption_records({"type": "CocoCaptionDataLoader", "dataset_dir": coco, "per_caption": True})
    train = read_coco_captions(coco, "train")
    assert len(pairs) == train.num_captions == 60 and all(len(c) == 1 for c in pairs.captions)
    assert sorted((p, c[0]) for p, c in zip(pairs.image_paths, pairs.captions)) == \
        sorted((p, c) for p, caps in zip(train.image_paths, train.captions) for c in caps)
    assert one_record_per_caption(val).num_captions == val.num_captions
    with pytest.raises(DataError, match=r"COCO caption file not found: .*captions_train2014.json; expected COCO's"):
        load_caption_records({"type": "CocoCaptionDataLoader", "dataset_dir": coco, "year": 2014})
    with pytest.raises(DataError, match="COCO's test split has no public captions; evaluate on stage: val"):
        read_coco_captions(coco, "test")
    with pytest.raises(DataError, match=r"COCO dataset_dir not found: '/nonexistent/coco'; expected COCO's layout"):
        read_coco_captions("/nonexistent/coco")


def test_run_config_accepts_the_loader_and_names_bad_values():
    config = load_run_config({"train_dataset": {"data_loader": {"type": "CocoCaptionDataLoader", "year": 2014,
                                                                "per_caption": True}},
                              "eval_dataset": {"data_loader": {"type": "CocoCaptionDataLoader", "stage": "val"}}},
                             task=PRETRAIN)
    assert config.train_dataset.data_loader.year == 2014 and config.train_dataset.data_loader.per_caption
    for raw, message in [
        ({"eval_dataset": {"data_loader": {"type": "CocoCaptionDataLoader"}}},
         r"eval_dataset.data_loader.stage: COCO's caption splits are train and val, got 'test' \(COCO's test split"),
        ({"train_dataset": {"data_loader": {"type": "CocoCaptionDataLoader", "year": 17}}},
         r"train_dataset.data_loader.year: expected a four-digit COCO year such as 2017, got 17"),
        ({"eval_dataset": {"data_loader": {"type": "CocoCaptionDataLoader", "stage": "val", "per_caption": True}}},
         r"eval_dataset.data_loader.per_caption: only for train_dataset"),
        ({"train_dataset": {"data_loader": {"type": "CocoDataLoader"}}},
         r"train_dataset.data_loader.type: expected one of \[.*'CocoCaptionDataLoader'\], got 'CocoDataLoader'"),
    ]:
        with pytest.raises(RunConfigError, match=message):
            load_run_config(raw, task=PRETRAIN)


def test_missing_images_follow_on_bad_image(coco, tmp_path, caplog):
    root = _copy(coco, tmp_path)
    records = read_coco_captions(root, "val")
    gone = records.image_paths[2]
    os.remove(gone)
    kept = read_coco_captions(root, "val", on_bad_image="skip")
    assert len(kept) == 5 and kept.missing_images == [gone] and gone not in kept.image_paths
    assert "skipped 1 listed images that are missing on disk" in caplog.text
    with pytest.raises(DataError, match=rf"image file not found: {re.escape(gone)} \(set on_bad_image: skip"):
        load_caption_records({"type": "CocoCaptionDataLoader", "dataset_dir": root, "stage": "val",
                              "on_bad_image": "fail"})


def test_malformed_annotations_are_named(coco, tmp_path):
    root = _copy(coco, tmp_path)

    def unknown_id(data):
        data["annotations"][3]["image_id"] = 424242424

    path = _edit(root, "val", unknown_id)
    with pytest.raises(DataError, match=rf"^{re.escape(path)}: annotations\[3\] \(id \d+\) has image_id 424242424, "
                                        r"which no entry of images\[\] has$"):
        read_coco_captions(root, "val")

    def empty_caption(data):
        data["annotations"][3]["image_id"] = data["images"][0]["id"]
        data["annotations"][7]["caption"] = "   "

    _edit(root, "val", empty_caption)
    with pytest.raises(DataError, match=r"annotations\[7\] \(id \d+, image_id \d+\): empty caption '   '; expected a "
                                        r"non-empty string"):
        read_coco_captions(root, "val")

    def no_file_name(data):
        data["annotations"][7]["caption"] = "a red circle"
        del data["images"][1]["file_name"]

    _edit(root, "val", no_file_name)
    with pytest.raises(DataError, match=r"images\[1\]: expected \{\"id\": <int>, \"file_name\": \"<name>.jpg\"\}"):
        read_coco_captions(root, "val")
    _edit(root, "val", lambda data: data.pop("annotations"))
    with pytest.raises(DataError, match=r"'annotations' must be a list, got missing \(keys: \['images', 'info', "
                                        r"'licenses'\]\); expected a COCO captions file"):
        read_coco_captions(root, "val")
    with open(path, "w", encoding="utf-8") as f:
        f.write('{"images": [], "annotations": [')
    with pytest.raises(DataError, match=rf"^{re.escape(path)}: not valid JSON \(.*line 1 column \d+.*\); expected a "
                                        r"COCO captions file \{\"images\": \[...\], \"annotations\": \[...\]\}$"):
        read_coco_captions(root, "val")
    with open(path, "w", encoding="utf-8") as f:
        json.dump([{"image_id": 1, "caption": "x"}], f)
    with pytest.raises(DataError, match=r"expected a JSON object .* at the top level, got a list"):
        read_coco_captions(root, "val")
    shutil.rmtree(os.path.join(root, "val2017"))
    with pytest.raises(DataError, match=r"COCO image folder not found: .*val2017 \(the images of .*captions_val2017"):
        read_coco_captions(root, "val")


def test_images_without_captions_are_left_out(coco, tmp_path, caplog):
    root = _copy(coco, tmp_path)
    dropped = []

    def drop_captions(data):
        dropped.append(data["images"][0]["id"])
        data["annotations"] = [a for a in data["annotations"] if a["image_id"] != dropped[0]]

    _edit(root, "val", drop_captions)
    records = read_coco_captions(root, "val")
    assert len(records) == 5 and f"{dropped[0]:012d}.jpg" not in " ".join(records.image_paths)
    assert "1 of 6 images have no caption and are left out" in caplog.text


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_dataset_script_rows_through_the_csv_loader(coco, tmp_path, suffix):
    """HF's COCO dataset script yields one row per caption with an absolute image_path; grouped per image they
    are the COCO reader's records."""
    path = write_dataset_script_rows(coco, str(tmp_path / f"val{suffix}"), "val")
    loader = {"type": "CsvCaptionDataLoader", "annotation_file": str(tmp_path / f"{{stage}}{suffix}"), "stage": "val",
              "image_column": "image_path", "caption_column": "caption"}
    rows = load_caption_records(loader)
    coco_records = read_coco_captions(coco, "val")
    assert all(os.path.isabs(p) for p in rows.image_paths) and rows.source == path
    assert {p: sorted(c) for p, c in zip(rows.image_paths, rows.captions)} == \
        {p: sorted(c) for p, c in zip(coco_records.image_paths, coco_records.captions)}
    with pytest.raises(DataError, match=r"no column 'image'; columns are \['image_id', 'caption_id', 'caption', "
                                        r".*'image_path'\] \(set data_loader.image_column\)"):
        load_caption_records({**loader, "image_column": "image"})
    # A missing absolute path is named (fail) or skipped (skip) as for the other layouts.
    os.makedirs(tmp_path / "moved")
    victim = rows.image_paths[0]
    shutil.copy(victim, tmp_path / "moved")
    os.remove(victim)
    try:
        with pytest.raises(DataError, match=rf"image file not found: {re.escape(victim)}"):
            load_caption_records({**loader, "on_bad_image": "fail"})
        assert load_caption_records(loader).missing_images == [victim]
    finally:
        shutil.move(str(tmp_path / "moved" / os.path.basename(victim)), victim)


def test_coco_records_feed_the_training_pipeline(coco):
    """The caption pipeline reads COCO records as any other: image batches and one of each image's captions."""
    from ms_clip.data.pipeline import ImageTransform, build_caption_dataset

    records = read_coco_captions(coco, "train")
    dataset, _ = build_caption_dataset(records, 4, ImageTransform(24), seed=1, num_parallel_workers=1,
                                       context_length=16, with_index=True)
    batches = list(dataset.create_tuple_iterator(num_epochs=1, output_numpy=True))
    assert len(batches) == 3 and batches[0][0].shape == (4, 3, 24, 24) and batches[0][1].shape == (4, 16)
    assert sorted(np.concatenate([b[2] for b in batches]).tolist()) == list(range(12))
