"""Image-caption files -> ``CaptionRecords`` (image paths and their captions), with clear errors.

Layouts read:

* **Flickr8k** (MindFormers' ``Flickr8kDataLoader``)::

      <dataset_dir>/Flickr8k_Dataset/Flickr8k_Dataset/*.jpg
      <dataset_dir>/Flickr8k_text/Flickr8k.token.txt              img.jpg#k<TAB>caption
      <dataset_dir>/Flickr8k_text/Flickr_8k.{train,dev,test}Images.txt
                                   (the docs' spelling Flickr8k.{train,dev,test}Images.txt works too)

  ``dataset_dir`` may also be the folder that holds ``Flickr8k/``.
* **JSON** (PyTorch CLIP fine-tuning recipes): ``<dataset_dir>/en_train.json`` / ``en_val.json``,
  each a list of ``{"image": "relative/path.jpg", "caption": ["...", ...]}`` (a single string works).
* **CSV / TSV / JSONL** with configurable image and caption columns (open_clip's
  ``--csv-img-key/--csv-caption-key/--csv-separator``); rows of the same image are grouped. The rows of
  HF's COCO dataset script (``image_path`` absolute, ``caption``) read with ``image_column: image_path``.
* **COCO** captions in their released layout (``read_coco_captions``)::

      <dataset_dir>/annotations/captions_{train,val}<year>.json    {"images": [{"id", "file_name", ...}],
                                                                   "annotations": [{"image_id", "caption", ...}]}
      <dataset_dir>/{train,val}<year>/*.jpg

  COCO val2017 has 5,000 images with 5 (a few 6-7) captions each; train2017 118,287 images and 591,753
  captions; the test split has no public captions. HF's contrastive-image-text example reads the same files
  through the ``ydshieh/coco_dataset_script`` dataset script, one row per caption (``image_path``, ``caption``,
  ...); such rows as CSV / JSON lines read with the CSV layout and ``image_column: image_path``.

An image listed but missing on disk is skipped and counted (``on_bad_image="skip"``) or fails
naming the file (``"fail"``); corrupt images are handled the same way when they are decoded
(``ms_clip.data.pipeline``).
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from ms_clip.errors import MsClipError

logger = logging.getLogger(__name__)

__all__ = ["DataError", "CaptionRecords", "read_flickr8k", "read_json_captions", "read_table_captions",
           "load_caption_records", "one_record_per_caption", "flickr8k_root", "CAPTION_LOADER_TYPES",
           "FLICKR8K_LAYOUT", "ON_BAD_IMAGE", "COCO_LAYOUT", "COCO_STAGES", "coco_files", "read_coco_captions"]

ON_BAD_IMAGE = ("skip", "fail")
# The data_loader types load_caption_records reads (ChineseCLIPDataLoader: ms_clip.data.chinese_clip).
CAPTION_LOADER_TYPES = ("Flickr8kDataLoader", "JsonCaptionDataLoader", "CsvCaptionDataLoader", "CocoCaptionDataLoader")
FLICKR8K_LAYOUT = (
    "expected Flickr8k's layout: <dataset_dir>/Flickr8k_Dataset/Flickr8k_Dataset/*.jpg, "
    "<dataset_dir>/Flickr8k_text/Flickr8k.token.txt (lines 'img.jpg#k<TAB>caption') and "
    "<dataset_dir>/Flickr8k_text/Flickr_8k.{train,dev,test}Images.txt"
)
JSON_LAYOUT = ("expected <dataset_dir>/en_train.json and <dataset_dir>/en_val.json, each a JSON list of "
               "{\"image\": \"path/relative/to/image_dir.jpg\", \"caption\": [\"...\", ...]}")


class DataError(MsClipError, ValueError):
    """A dataset file or folder is missing or malformed; the message names it and the expected layout."""


@dataclass
class CaptionRecords:
    """Images (absolute paths) and their captions, index-aligned."""

    image_paths: List[str]
    captions: List[List[str]]
    source: str  # what was read, for messages
    missing_images: List[str] = field(default_factory=list)  # listed but not on disk (skipped)

    def __len__(self) -> int:
        return len(self.image_paths)

    @property
    def num_captions(self) -> int:
        return sum(len(c) for c in self.captions)


def _check_policy(on_bad_image: str) -> None:
    if on_bad_image not in ON_BAD_IMAGE:
        raise DataError(f"on_bad_image must be one of {list(ON_BAD_IMAGE)}, got {on_bad_image!r}")


def _finish(paths: List[str], captions: List[List[str]], source: str, on_bad_image: str) -> CaptionRecords:
    """Drop (and count) or reject images missing on disk; reject an empty result."""
    _check_policy(on_bad_image)
    keep_paths, keep_caps, missing = [], [], []
    for path, caps in zip(paths, captions):
        if os.path.isfile(path):
            keep_paths.append(path)
            keep_caps.append(caps)
        elif on_bad_image == "fail":
            raise DataError(f"{source}: image file not found: {path} (set on_bad_image: skip to skip such images)")
        else:
            missing.append(path)
    if missing:
        logger.warning("%s: skipped %d listed images that are missing on disk (first: %s)", source, len(missing),
                       missing[:3])
    if not keep_paths:
        raise DataError(f"{source}: no usable images (listed {len(paths)}, missing {len(missing)})")
    return CaptionRecords(keep_paths, keep_caps, source, missing)


def flickr8k_root(dataset_dir: str) -> str:
    """The folder holding ``Flickr8k_Dataset`` and ``Flickr8k_text`` (``dataset_dir`` or ``dataset_dir/Flickr8k``)."""
    dataset_dir = os.fspath(dataset_dir)
    if not os.path.isdir(dataset_dir):
        raise DataError(f"Flickr8k dataset_dir not found: {dataset_dir} ({FLICKR8K_LAYOUT})")
    for candidate in (dataset_dir, os.path.join(dataset_dir, "Flickr8k")):
        if os.path.isdir(os.path.join(candidate, "Flickr8k_text")) or \
                os.path.isdir(os.path.join(candidate, "Flickr8k_Dataset")):
            return candidate
    return dataset_dir


def _read_text(path: str) -> str:
    """A caption file's text; DataError naming the file and the offending byte when it is not UTF-8.

    A UTF-8 byte-order mark (Windows editors write one) is dropped.
    """
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise DataError(f"{path}: not UTF-8 text (byte 0x{data[err.start]:02x} at byte {err.start}, line {line}); "
                        f"save the file as UTF-8") from None


def _read_lines(path: str) -> List[str]:
    # Universal newlines, as text-mode open() reads: \n, \r\n and \r all end a line.
    return [line.rstrip("\n") for line in io.StringIO(_read_text(path), newline=None)]


def _read_token_file(path: str) -> Dict[str, List[str]]:
    """``img.jpg#k<TAB>caption`` lines -> {image name: [captions in k order]}; malformed lines fail."""
    captions: Dict[str, List[str]] = {}
    for number, line in enumerate(_read_lines(path), 1):
        if not line.strip():
            continue
        key, tab, caption = line.rpartition("\t")
        name, hash_, _k = key.partition("#")
        if not tab or not hash_ or not name.strip() or not caption.strip():
            raise DataError(f"{path}:{number}: malformed caption line {line[:120]!r}; expected "
                            f"'<image>.jpg#<k><TAB><caption>'")
        captions.setdefault(name.strip(), []).append(caption.strip())
    if not captions:
        raise DataError(f"{path}: no captions in the file; expected lines '<image>.jpg#<k><TAB><caption>'")
    return captions


def read_flickr8k(dataset_dir: str, stage: str = "train", on_bad_image: str = "skip") -> CaptionRecords:
    """Flickr8k's ``stage`` split (train | dev | test | all) with all captions of each image, in split order."""
    root = flickr8k_root(dataset_dir)
    image_dir = os.path.join(root, "Flickr8k_Dataset", "Flickr8k_Dataset")
    text_dir = os.path.join(root, "Flickr8k_text")
    for path, what in ((image_dir, "image folder"), (text_dir, "text folder")):
        if not os.path.isdir(path):
            raise DataError(f"Flickr8k {what} not found: {path}; {FLICKR8K_LAYOUT}")
    token_file = os.path.join(text_dir, "Flickr8k.token.txt")
    if not os.path.isfile(token_file):
        raise DataError(f"Flickr8k caption file not found: {token_file}; {FLICKR8K_LAYOUT}")
    stages = ("train", "dev", "test", "all")
    if stage == "val":  # the JSON layout's name for the held-out split
        stage = "dev"
    if stage not in stages:
        raise DataError(f"Flickr8k stage must be one of {list(stages)}, got {stage!r}")
    by_image = _read_token_file(token_file)
    if stage == "all":
        names = sorted(n for n in os.listdir(image_dir) if n.lower().endswith(".jpg"))
        names = [n for n in names if n in by_image]
    else:
        # The code's real names use an underscore; MindFormers' docs wrote Flickr8k.<stage>Images.txt.
        candidates = [os.path.join(text_dir, f"Flickr_8k.{stage}Images.txt"),
                      os.path.join(text_dir, f"Flickr8k.{stage}Images.txt")]
        split_file = next((p for p in candidates if os.path.isfile(p)), None)
        if split_file is None:
            raise DataError(f"Flickr8k split file not found: {candidates[0]} (or {os.path.basename(candidates[1])}); "
                            f"{FLICKR8K_LAYOUT}")
        names = [line.strip() for line in _read_lines(split_file) if line.strip()]
        no_caption = [n for n in names if n not in by_image]
        if no_caption:
            raise DataError(f"{split_file}: {len(no_caption)} images have no caption in {token_file} "
                            f"(first: {no_caption[:3]})")
    paths = [os.path.join(image_dir, n) for n in names]
    return _finish(paths, [by_image[n] for n in names], f"Flickr8k {stage} split ({root})", on_bad_image)


def _caption_list(value: Any, where: str) -> List[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(c, str) and c.strip() for c in value):
        raise DataError(f"{where}: 'caption' must be a non-empty string or list of strings, got {value!r}")
    return [c.strip() for c in value]


def read_json_captions(dataset_dir: str, stage: str = "train", annotation_file: Optional[str] = None,
                       image_dir: Optional[str] = None, on_bad_image: str = "skip") -> CaptionRecords:
    """``en_train.json`` (stage train) or ``en_val.json`` (val/dev/test): lists of {image, caption}."""
    if annotation_file is None:
        if not os.path.isdir(dataset_dir):
            raise DataError(f"JSON caption dataset_dir not found: {dataset_dir}; {JSON_LAYOUT}")
        annotation_file = os.path.join(dataset_dir, "en_train.json" if stage == "train" else "en_val.json")
    if not os.path.isfile(annotation_file):
        raise DataError(f"caption file not found: {annotation_file}; {JSON_LAYOUT}")
    image_dir = image_dir or (dataset_dir if os.path.isdir(dataset_dir) else os.path.dirname(annotation_file))
    if not os.path.isdir(image_dir):
        raise DataError(f"image folder not found: {image_dir} (images in {annotation_file} are relative to it)")
    try:
        entries = json.loads(_read_text(annotation_file))
    except json.JSONDecodeError as err:
        raise DataError(f"{annotation_file}: not valid JSON ({err}); {JSON_LAYOUT}") from None
    if not isinstance(entries, list):
        raise DataError(f"{annotation_file}: expected a JSON list at the top level, got {type(entries).__name__}; "
                        f"{JSON_LAYOUT}")
    grouped: Dict[str, List[str]] = {}
    for i, entry in enumerate(entries):
        where = f"{annotation_file}[{i}]"
        if not isinstance(entry, Mapping) or "image" not in entry or "caption" not in entry:
            raise DataError(f"{where}: expected {{\"image\": ..., \"caption\": [...]}}, got {str(entry)[:120]}")
        grouped.setdefault(os.path.join(image_dir, str(entry["image"])), []).extend(
            _caption_list(entry["caption"], where))
    return _finish(list(grouped), list(grouped.values()), annotation_file, on_bad_image)


# --------------------------------------------------------------------------- COCO

COCO_LAYOUT = ("expected COCO's layout: <dataset_dir>/annotations/captions_{train,val}<year>.json "
               "({\"images\": [{\"id\", \"file_name\"}], \"annotations\": [{\"image_id\", \"caption\"}]}) and "
               "<dataset_dir>/{train,val}<year>/*.jpg")
# Our stage names -> COCO's split folder names. "dev"/"valid"/"validation" are the other readers' and HF
# datasets' names for the held-out split.
COCO_STAGES = {"train": "train", "val": "val", "dev": "val", "valid": "val", "validation": "val"}


def _coco_split(stage: str) -> str:
    if stage == "test":
        raise DataError("COCO stage 'test': COCO's test split has no public captions; evaluate on stage: val")
    if stage not in COCO_STAGES:
        raise DataError(f"COCO stage must be one of {sorted(COCO_STAGES)}, got {stage!r}")
    return COCO_STAGES[stage]


def coco_files(dataset_dir: str, stage: str = "train", year: Union[str, int] = "2017") -> Dict[str, str]:
    """{"annotation_file", "image_dir"} of COCO's ``stage`` split under ``dataset_dir`` (not checked)."""
    split = _coco_split(stage)
    year = str(year)
    if not (year.isdigit() and len(year) == 4):
        raise DataError(f"COCO year must be a four-digit year such as 2017 or 2014, got {year!r}")
    return {"annotation_file": os.path.join(dataset_dir, "annotations", f"captions_{split}{year}.json"),
            "image_dir": os.path.join(dataset_dir, f"{split}{year}")}


def _load_coco_json(path: str) -> Mapping[str, Any]:
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
        _coco_split(stage)
    if not os.path.isfile(annotation_file):
        raise DataError(f"COCO caption file not found: {annotation_file}; {COCO_LAYOUT}")
    if not os.path.isdir(image_dir):
        raise DataError(f"COCO image folder not found: {image_dir} (the images of {annotation_file}); {COCO_LAYOUT}")
    data = _load_coco_json(annotation_file)
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
    source = f"COCO {_coco_split(stage)}{year} ({annotation_file})"
    records = _finish(paths, [captions[image_id] for image_id in ids], source, on_bad_image)
    uncaptioned = len(names) - len(ids)
    if uncaptioned:
        logger.warning("%s: %d of %d images have no caption and are left out", source,
                                            uncaptioned, len(names))
    return records


# --------------------------------------------------------------------------- CSV / TSV / JSONL


def _table_rows(path: str, separator: Optional[str]) -> List[Dict[str, Any]]:
    if path.endswith(".jsonl"):
        rows = []
        for number, line in enumerate(_read_lines(path), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{number}: not a JSON object ({err})") from None
            if not isinstance(row, Mapping):
                raise DataError(f"{path}:{number}: expected a JSON object per line, got {line[:120]!r}")
            rows.append(dict(row))
        return rows
    if separator is None:
        separator = "\t" if path.endswith((".tsv", ".tab")) else ","
    return list(csv.DictReader(io.StringIO(_read_text(path), newline=""), delimiter=separator))


def read_table_captions(path: str, image_column: str = "image", caption_column: str = "caption",
                        separator: Optional[str] = None, image_dir: Optional[str] = None,
                        on_bad_image: str = "skip") -> CaptionRecords:
    """A CSV/TSV/JSONL file with one image path and a caption (or, in JSONL, a list) per row."""
    if not os.path.isfile(path):
        raise DataError(f"caption file not found: {path}; expected a .csv/.tsv/.jsonl file with columns "
                        f"'{image_column}' and '{caption_column}'")
    image_dir = image_dir or os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(image_dir):
        raise DataError(f"image folder not found: {image_dir} (images in {path} are relative to it)")
    rows = _table_rows(path, separator)
    if not rows:
        raise DataError(f"{path}: no rows")
    for column in (image_column, caption_column):
        if column not in rows[0]:
            raise DataError(f"{path}: no column '{column}'; columns are {list(rows[0])} (set data_loader."
                            f"{'image' if column == image_column else 'caption'}_column)")
    grouped: Dict[str, List[str]] = {}
    for i, row in enumerate(rows):
        image = row.get(image_column)
        if not image:
            raise DataError(f"{path}: row {i + 1} has an empty '{image_column}'")
        grouped.setdefault(os.path.join(image_dir, str(image)), []).extend(
            _caption_list(row.get(caption_column), f"{path}: row {i + 1}"))
    return _finish(list(grouped), list(grouped.values()), path, on_bad_image)


def load_caption_records(loader: Mapping[str, Any], stage: Optional[str] = None) -> CaptionRecords:
    """Records for a run config's ``<split>_dataset.data_loader`` section (see tasks/pretrain.py);
    ``per_caption: True`` makes every caption its own record (``one_record_per_caption``)."""
    records = _load_records(loader, stage)
    return one_record_per_caption(records) if loader.get("per_caption") else records


def _load_records(loader: Mapping[str, Any], stage: Optional[str]) -> CaptionRecords:
    kind = loader.get("type", "Flickr8kDataLoader")
    stage = stage or loader.get("stage") or "train"
    dataset_dir = loader.get("dataset_dir") or ""
    policy = loader.get("on_bad_image", "skip")
    _check_policy(policy)
    if kind == "Flickr8kDataLoader":
        return read_flickr8k(dataset_dir, stage, policy)
    if kind == "CocoCaptionDataLoader":
        return read_coco_captions(dataset_dir, stage, loader.get("year") or "2017", loader.get("annotation_file"),
                                  loader.get("image_dir"), policy)
    if kind == "JsonCaptionDataLoader":
        return read_json_captions(dataset_dir, stage, loader.get("annotation_file"), loader.get("image_dir"), policy)
    if kind == "CsvCaptionDataLoader":
        key = "annotation_file" if loader.get("annotation_file") else "dataset_dir"
        template = loader.get("annotation_file") or dataset_dir
        try:
            path = template.format(stage=stage)
        except (KeyError, IndexError, ValueError) as err:  # run configs check this at load time too
            raise DataError(f"data_loader.{key}: {template!r} is not a path template with only '{{stage}}' in "
                            f"braces ({type(err).__name__}: {err}); write '{{{{' and '}}}}' for literal braces") \
                from None
        if os.path.isdir(path):
            raise DataError(f"CsvCaptionDataLoader: {path} is a folder; set data_loader.annotation_file (or "
                            f"dataset_dir) to the .csv/.tsv/.jsonl file ('{{stage}}' is replaced by the stage)")
        return read_table_captions(path, loader.get("image_column", "image"), loader.get("caption_column", "caption"),
                                   loader.get("separator"), loader.get("image_dir"), policy)
    raise DataError(f"unknown data_loader.type {kind!r}; expected one of {list(CAPTION_LOADER_TYPES)}")


def one_record_per_caption(records: CaptionRecords) -> CaptionRecords:
    """Each (image, caption) pair as its own record: an epoch visits every caption once, as HF's
    contrastive-image-text example does (its COCO dataset script yields one row per caption), instead of
    one random caption per image. For training only: retrieval needs the captions grouped per image."""
    if getattr(records, "load_image", None) is not None:
        raise DataError(f"{records.source}: per_caption works on image files, not on in-memory image stores")
    paths = [path for path, caps in zip(records.image_paths, records.captions) for _ in caps]
    captions = [[caption] for caps in records.captions for caption in caps]
    return CaptionRecords(paths, captions, f"{records.source}, one sample per caption", list(records.missing_images))


def flatten_captions(records: CaptionRecords) -> Sequence:
    """(all captions, index of each caption's image) in record order, for retrieval."""
    texts, owners = [], []
    for i, caps in enumerate(records.captions):
        texts.extend(caps)
        owners.extend([i] * len(caps))
    return texts, owners
