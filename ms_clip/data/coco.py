"""COCO captions in their released layout -> ``CaptionRecords`` (all captions of an image grouped).

Layout read (``dataset_dir`` = the COCO root; ``year`` 2017 by default, 2014 has the same shape)::

    <dataset_dir>/annotations/captions_{train,val}<year>.json
    <dataset_dir>/{train,val}<year>/*.jpg

The annotation file is COCO's: ``{"images": [{"id", "file_name", ...}], "annotations": [{"image_id",
"caption", ...}]}``. COCO val2017 has 5,000 images with 5 (a few have 6-7) captions each; train2017 has
118,287 images and 591,753 captions. The test split has no public captions.

HF's contrastive-image-text example reads the same files through the ``ydshieh/coco_dataset_script``
dataset script, which yields one row per caption (``image_path``, ``caption``, ``image_id``, ...);
such a table, written as CSV or JSON lines, is read by ``CsvCaptionDataLoader`` with
``image_column: image_path`` (see ``ms_clip.data.captions.read_table_captions``).
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, List, Mapping, Optional, Union

from ms_clip.data.captions import CaptionRecords, DataError, _check_policy, _finish, _read_text

logger = logging.getLogger(__name__)

__all__ = ["COCO_LAYOUT", "COCO_STAGES", "coco_files", "read_coco_captions"]

COCO_LAYOUT = ("expected COCO's layout: <dataset_dir>/annotations/captions_{train,val}<year>.json "
               "({\"images\": [{\"id\", \"file_name\"}], \"annotations\": [{\"image_id\", \"caption\"}]}) and "
               "<dataset_dir>/{train,val}<year>/*.jpg")
# Our stage names -> COCO's split folder names. "dev"/"valid"/"validation" are the other readers' and HF
# datasets' names for the held-out split.
COCO_STAGES = {"train": "train", "val": "val", "dev": "val", "valid": "val", "validation": "val"}


def _split(stage: str) -> str:
    if stage == "test":
        raise DataError("COCO stage 'test': COCO's test split has no public captions; evaluate on stage: val")
    if stage not in COCO_STAGES:
        raise DataError(f"COCO stage must be one of {sorted(COCO_STAGES)}, got {stage!r}")
    return COCO_STAGES[stage]


def coco_files(dataset_dir: str, stage: str = "train", year: Union[str, int] = "2017") -> Dict[str, str]:
    """{"annotation_file", "image_dir"} of COCO's ``stage`` split under ``dataset_dir`` (not checked)."""
    split = _split(stage)
    year = str(year)
    if not (year.isdigit() and len(year) == 4):
        raise DataError(f"COCO year must be a four-digit year such as 2017 or 2014, got {year!r}")
    return {"annotation_file": os.path.join(dataset_dir, "annotations", f"captions_{split}{year}.json"),
            "image_dir": os.path.join(dataset_dir, f"{split}{year}")}


def _load_json(path: str) -> Mapping[str, Any]:
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err}); expected a COCO captions file "
                        f"{{\"images\": [...], \"annotations\": [...]}}") from None
    if not isinstance(data, Mapping):
        raise DataError(f"{path}: expected a JSON object {{\"images\": [...], \"annotations\": [...]}} at the top "
                        f"level, got a {type(data).__name__}")
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            got = "missing" if key not in data else f"a {type(data[key]).__name__}"
            raise DataError(f"{path}: '{key}' must be a list, got {got} (keys: {sorted(data)[:8]}); expected a COCO "
                            f"captions file {{\"images\": [...], \"annotations\": [...]}}")
    return data


def read_coco_captions(dataset_dir: str, stage: str = "train", year: Union[str, int] = "2017",
                       annotation_file: Optional[str] = None, image_dir: Optional[str] = None,
                       on_bad_image: str = "skip") -> CaptionRecords:
    """COCO's ``stage`` split (train | val): one record per image of ``images[]`` (in file order) with all
    its captions (in ``annotations[]`` order). ``annotation_file`` / ``image_dir`` override the layout's.

    Images without any caption are left out; an annotation naming an image id that ``images[]`` does not
    list, an empty caption, or a malformed entry fails naming the file and the entry.
    """
    _check_policy(on_bad_image)
    dataset_dir = os.fspath(dataset_dir or "")
    if annotation_file is None or image_dir is None:
        if not os.path.isdir(dataset_dir):
            raise DataError(f"COCO dataset_dir not found: {dataset_dir!r}; {COCO_LAYOUT}")
        files = coco_files(dataset_dir, stage, year)
        annotation_file = annotation_file or files["annotation_file"]
        image_dir = image_dir or files["image_dir"]
    else:
        _split(stage)
    if not os.path.isfile(annotation_file):
        raise DataError(f"COCO caption file not found: {annotation_file}; {COCO_LAYOUT}")
    if not os.path.isdir(image_dir):
        raise DataError(f"COCO image folder not found: {image_dir} (the images of {annotation_file}); {COCO_LAYOUT}")
    data = _load_json(annotation_file)
    names: Dict[Any, str] = {}
    for i, image in enumerate(data["images"]):
        if not isinstance(image, Mapping) or "id" not in image or not isinstance(image.get("file_name"), str) \
                or not image["file_name"].strip():
            raise DataError(f"{annotation_file}: images[{i}]: expected {{\"id\": <int>, \"file_name\": "
                            f"\"<name>.jpg\"}}, got {json.dumps(image)[:120]}")
        if image["id"] in names:
            raise DataError(f"{annotation_file}: images[{i}]: image id {image['id']!r} is listed twice (also as "
                            f"{names[image['id']]!r})")
        names[image["id"]] = image["file_name"].strip()
    captions: Dict[Any, List[str]] = {}
    for i, annotation in enumerate(data["annotations"]):
        if not isinstance(annotation, Mapping) or "image_id" not in annotation or "caption" not in annotation:
            raise DataError(f"{annotation_file}: annotations[{i}]: expected {{\"image_id\": <int>, \"caption\": "
                            f"\"...\"}}, got {json.dumps(annotation)[:120]}")
        image_id, caption = annotation["image_id"], annotation["caption"]
        if image_id not in names:
            raise DataError(f"{annotation_file}: annotations[{i}] (id {annotation.get('id')!r}) has image_id "
                            f"{image_id!r}, which no entry of images[] has")
        if not isinstance(caption, str) or not caption.strip():
            raise DataError(f"{annotation_file}: annotations[{i}] (id {annotation.get('id')!r}, image_id "
                            f"{image_id!r}): empty caption {caption!r}; expected a non-empty string")
        captions.setdefault(image_id, []).append(caption.strip())
    if not captions:
        raise DataError(f"{annotation_file}: no captions (annotations[] is empty); {COCO_LAYOUT}")
    ids = [image_id for image_id in names if image_id in captions]
    paths = [os.path.join(image_dir, names[image_id]) for image_id in ids]
    source = f"COCO {_split(stage)}{year} ({annotation_file})"
    records = _finish(paths, [captions[image_id] for image_id in ids], source, on_bad_image)
    uncaptioned = len(names) - len(ids)
    if uncaptioned:
        logger.warning("%s: %d of %d images have no caption and are left out", source,
                                            uncaptioned, len(names))
    return records
