"""The shapes world (``ms_clip.demo.synthetic``) written in COCO captions' real layout.

``write_shapes_coco(root, n_train, n_val, seed, image_size, year)`` writes::

    root/annotations/captions_{train,val}<year>.json    {"info", "licenses", "images": [{"id", "file_name",
                                                        "height", "width", ...}], "annotations": [{"id",
                                                        "image_id", "caption"}]}
    root/{train,val}<year>/<12-digit id>.jpg             (COCO's file names: 000000391895.jpg)

with five captions per image, as COCO has, so the COCO readers, the contrastive-image-text recipe and
its retrieval evaluation (R@K with 5 captions per image) run unchanged on it.
``write_dataset_script_rows`` writes what HF's ``ydshieh/coco_dataset_script`` yields for a split (one
row per caption with an absolute ``image_path``) as CSV or JSON lines.
"""
from __future__ import annotations

import csv
import json
import logging
import os
from typing import Dict, List, Union

import numpy as np

from ms_clip.demo.synthetic import BASIC_WORLD, World

logger = logging.getLogger(__name__)

__all__ = ["write_shapes_coco", "write_dataset_script_rows"]


def write_shapes_coco(root: str, n_train: int = 400, n_val: int = 100, seed: int = 0, image_size: int = 32,
                      year: Union[int, str] = 2017, world: World = BASIC_WORLD) -> str:
    """Write ``n_train`` + ``n_val`` synthetic scenes in COCO's caption layout under ``root``; returns ``root``.

    Deterministic in ``seed``; image ids are drawn at random (unique, as COCO's are) and the
    annotations are shuffled, so readers cannot rely on order.
    """
    rng = np.random.default_rng(seed)
    used: set = set()
    next_caption_id = 1
    for split, count in (("train", n_train), ("val", n_val)):
        image_dir = os.path.join(root, f"{split}{year}")
        os.makedirs(image_dir, exist_ok=True)
        images: List[Dict] = []
        annotations: List[Dict] = []
        for _ in range(count):
            scene = world.make_scene(rng)
            image_id = int(rng.integers(1, 10**6))
            while image_id in used:
                image_id = int(rng.integers(1, 10**6))
            used.add(image_id)
            name = f"{image_id:012d}.jpg"
            world.render(scene, image_size, rng).save(os.path.join(image_dir, name), quality=95)
            images.append({"license": 1, "file_name": name, "coco_url": f"http://images.cocodataset.org/{split}"
                           f"{year}/{name}", "height": image_size, "width": image_size, "id": image_id})
            for caption in world.captions(scene, rng):
                annotations.append({"image_id": image_id, "id": next_caption_id, "caption": caption})
                next_caption_id += 1
        order = rng.permutation(len(annotations))
        data = {"info": {"description": "ms_clip synthetic shapes in COCO's layout", "year": int(year)},
                "licenses": [{"id": 1, "name": "CC0"}], "images": images,
                "annotations": [annotations[i] for i in order]}
        os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
        with open(os.path.join(root, "annotations", f"captions_{split}{year}.json"), "w", encoding="utf-8") as f:
            json.dump(data, f)
    logger.info("wrote %d + %d synthetic COCO images under %s", n_train, n_val, root)
    return root


def write_dataset_script_rows(root: str, path: str, stage: str = "train", year: Union[int, str] = 2017) -> str:
    """The rows HF's COCO dataset script yields for ``stage`` (one per caption: ``image_id``, ``caption_id``,
    ``caption``, ``height``, ``width``, ``file_name``, ``coco_url``, absolute ``image_path``), written to
    ``path`` as JSON lines (``.jsonl``) or CSV; returns ``path``."""
    with open(os.path.join(root, "annotations", f"captions_{stage}{year}.json"), encoding="utf-8") as f:
        data = json.load(f)
    images = {image["id"]: image for image in data["images"]}
    rows = []
    for annotation in data["annotations"]:
        image = images[annotation["image_id"]]
        rows.append({"image_id": image["id"], "caption_id": annotation["id"], "caption": annotation["caption"],
                     "height": image["height"], "width": image["width"], "file_name": image["file_name"],
                     "coco_url": image["coco_url"],
                     "image_path": os.path.abspath(os.path.join(root, f"{stage}{year}", image["file_name"]))})
    if path.endswith(".jsonl"):
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
    else:
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return path
