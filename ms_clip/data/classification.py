"""Image-classification data for zero-shot evaluation: CIFAR-100, CIFAR-10 and image folders.

Readers return a :class:`ClassificationData` (images in memory or as file paths, integer labels,
class names). Writers produce the exact CIFAR "python version" pickles, so tests and the offline
demo exercise the same reader a user's downloaded ``cifar-100-python/`` goes through.

Layouts (as distributed by https://www.cs.toronto.edu/~kriz/cifar.html):

* ``cifar-100-python/{meta,train,test}``: ``meta`` holds ``fine_label_names`` and
  ``coarse_label_names``; ``train``/``test`` hold ``data`` (uint8 [N, 3072], each row the R, G
  and B planes of a 32x32 image), ``fine_labels``, ``coarse_labels``, ``filenames``.
* ``cifar-10-batches-py/{batches.meta,data_batch_1..5,test_batch}``: ``label_names``;
  ``data``, ``labels``, ``filenames``.
* image folder: ``root/<class name>/<image files>``, one sub-folder per class (sorted order
  gives the label ids, as torchvision's ImageFolder).

The pickles were written by Python 2, so they are read with ``encoding="bytes"`` and their keys
and names arrive as bytes; files written by Python 3 (str keys) are accepted as well. Class
names have ``_`` replaced by a space (``aquarium_fish`` -> ``aquarium fish``), which is the form
CLIP's prompts use (MindFormers kept the underscores).
"""
from __future__ import annotations

import logging
import os
import pickle
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ms_clip.constants import IMAGE_EXTENSIONS
from ms_clip.errors import MsClipError
from ms_clip.fileio import atomic_write
from ms_clip.safe_pickle import UnsafePickleError, safe_load

logger = logging.getLogger(__name__)

__all__ = ["DatasetError", "ClassificationData", "load_cifar100", "load_cifar10", "load_image_folder",
           "load_classification_dataset", "detect_layout", "read_classnames", "write_cifar100", "write_cifar10",
           "build_classification_dataset", "IMAGE_EXTENSIONS", "LAYOUTS"]

CIFAR100_DIR = "cifar-100-python"
CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
SPLITS = ("train", "test", "all")

CIFAR100_LAYOUT = "cifar-100-python/{meta,train,test} (the CIFAR-100 python-version pickles)"
CIFAR10_LAYOUT = "cifar-10-batches-py/{batches.meta,data_batch_1..5,test_batch} (the CIFAR-10 python-version pickles)"
FOLDER_LAYOUT = "root/<class name>/<image files>, one sub-folder per class"
LAYOUTS = ("auto", "cifar100", "cifar10", "image_folder")


class DatasetError(MsClipError, ValueError):
    """A dataset file or folder is missing or malformed; the message names it and the expected layout."""


@dataclass
class ClassificationData:
    """A labelled image set.

    Attributes:
        images: uint8 [N, H, W, 3] array (CIFAR) or a list of N image file paths (image folder).
        labels: int64 [N] class ids into ``classnames``.
        classnames: the class names, underscores replaced by spaces.
        source: where the data was read from (for messages).
    """

    images: Union[np.ndarray, List[str]]
    labels: np.ndarray
    classnames: List[str]
    source: str

    def __len__(self) -> int:
        return len(self.labels)


# ----------------------------------------------------------------------------- pickle helpers


def _clean_name(name: Union[str, bytes]) -> str:
    if isinstance(name, bytes):
        name = name.decode("utf-8")
    return name.replace("_", " ")


_CIFAR_PICKLE_CONTENT = "a CIFAR pickle holds only dicts, lists, bytes/str, numbers and numpy arrays"


def _read_pickle(path: str, layout: str) -> Dict[str, Any]:
    """A CIFAR pickle as a dict with str keys (Python 2 files give bytes keys)."""
    if not os.path.isfile(path):
        raise DatasetError(f"missing file {path}; expected the layout {layout}")
    try:
        with open(path, "rb") as f:
            # A pickle is a program: the restricted unpickler admits only what CIFAR files hold (dicts,
            # lists, bytes/str, numbers, numpy arrays) and refuses any other global before it is imported.
            obj = safe_load(f, path, what=_CIFAR_PICKLE_CONTENT, encoding="bytes")
    except UnsafePickleError as err:
        raise DatasetError(str(err)) from None
    except Exception as err:  # truncated/corrupt pickles raise many different exception types
        raise DatasetError(f"{path} is not a readable CIFAR pickle ({type(err).__name__}: {err}); "
                           f"expected the layout {layout}") from None
    if not isinstance(obj, Mapping):
        raise DatasetError(f"{path}: expected a pickled dict, got {type(obj).__name__}; expected the layout {layout}")
    return {(k.decode("utf-8") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def _require(obj: Mapping[str, Any], key: str, path: str, layout: str) -> Any:
    if key not in obj:
        raise DatasetError(f"{path}: missing key '{key}' (found {sorted(obj)}); expected the layout {layout}")
    return obj[key]


def _read_batch(path: str, label_key: str, layout: str, num_classes: int) -> tuple:
    """(images uint8 [N, 32, 32, 3], labels int64 [N]) from one CIFAR data pickle."""
    obj = _read_pickle(path, layout)
    data = np.asarray(_require(obj, "data", path, layout))
    labels = np.asarray(_require(obj, label_key, path, layout), dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.dtype != np.uint8:
        raise DatasetError(f"{path}: 'data' must be uint8 [N, 3072] (32x32 RGB planes), got "
                           f"{data.dtype} {list(data.shape)}; expected the layout {layout}")
    if labels.shape != (data.shape[0],):
        raise DatasetError(f"{path}: '{label_key}' has {labels.size} entries for {data.shape[0]} images")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetError(f"{path}: '{label_key}' must lie in [0, {num_classes}), got values in "
                           f"[{labels.min()}, {labels.max()}]")
    # Rows are the R, G, B planes of one image: [N, 3, 32, 32] -> HWC for PIL.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _split_files(split: str, train: Sequence[str], test: Sequence[str]) -> List[str]:
    if split not in SPLITS:
        raise DatasetError(f"unknown split (stage) {split!r}; expected one of {list(SPLITS)}")
    return {"train": list(train), "test": list(test), "all": list(train) + list(test)}[split]


def _resolve_root(root: str, subdir: str, marker: str) -> str:
    """Accept either the dataset folder itself or its parent (``./`` vs ``./cifar-100-python``)."""
    root = os.fspath(root)
    if not os.path.isfile(os.path.join(root, marker)) and os.path.isdir(os.path.join(root, subdir)):
        return os.path.join(root, subdir)
    return root


def _concat(parts: List[tuple]) -> tuple:
    images = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, 32, 32, 3), np.uint8)
    labels = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0,), np.int64)
    return images, labels


# ----------------------------------------------------------------------------- readers


def load_cifar100(root: str, split: str = "test", fine_label: bool = True) -> ClassificationData:
    """CIFAR-100 from ``cifar-100-python`` (or its parent folder).

    Args:
        root: the ``cifar-100-python`` folder or the folder containing it.
        split: ``"train"``, ``"test"`` or ``"all"`` (MindFormers' ``stage``).
        fine_label: the 100 fine classes if True, else the 20 coarse superclasses.
    """
    root = _resolve_root(root, CIFAR100_DIR, "meta")
    if not os.path.isdir(root):
        raise DatasetError(f"CIFAR-100 folder not found: {root}; expected the layout {CIFAR100_LAYOUT}")
    kind = "fine" if fine_label else "coarse"
    classnames = read_classnames(root, "cifar100", fine_label)
    files = _split_files(split, ["train"], ["test"])
    parts = [_read_batch(os.path.join(root, f), f"{kind}_labels", CIFAR100_LAYOUT, len(classnames)) for f in files]
    images, labels = _concat(parts)
    logger.info("CIFAR-100 %s (%s labels): %d images, %d classes from %s", split, kind, len(labels),
                len(classnames), root)
    return ClassificationData(images, labels, classnames, root)


def load_cifar10(root: str, split: str = "test") -> ClassificationData:
    """CIFAR-10 from ``cifar-10-batches-py`` (or its parent folder); ``split`` as for CIFAR-100."""
    root = _resolve_root(root, CIFAR10_DIR, "batches.meta")
    if not os.path.isdir(root):
        raise DatasetError(f"CIFAR-10 folder not found: {root}; expected the layout {CIFAR10_LAYOUT}")
    classnames = read_classnames(root, "cifar10")
    files = _split_files(split, CIFAR10_TRAIN_BATCHES, ["test_batch"])
    parts = [_read_batch(os.path.join(root, f), "labels", CIFAR10_LAYOUT, len(classnames)) for f in files]
    images, labels = _concat(parts)
    logger.info("CIFAR-10 %s: %d images, %d classes from %s", split, len(labels), len(classnames), root)
    return ClassificationData(images, labels, classnames, root)


def load_image_folder(root: str) -> ClassificationData:
    """Images under ``root/<class name>/``; label ids follow the sorted sub-folder names."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise DatasetError(f"image folder not found: {root}; expected the layout {FOLDER_LAYOUT}")
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
    if not classes:
        raise DatasetError(f"{root} has no class sub-folders; expected the layout {FOLDER_LAYOUT}")
    paths: List[str] = []
    labels: List[int] = []
    empty = []
    for idx, name in enumerate(classes):
        folder = os.path.join(root, name)
        files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
        if not files:
            empty.append(name)
        paths.extend(os.path.join(folder, f) for f in files)
        labels.extend([idx] * len(files))
    if not paths:
        raise DatasetError(f"{root}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in any class folder; "
                           f"expected the layout {FOLDER_LAYOUT}")
    if empty:
        logger.warning("%s: %d class folders hold no images: %s", root, len(empty), empty[:10])
    logger.info("image folder %s: %d images, %d classes", root, len(paths), len(classes))
    return ClassificationData(paths, np.asarray(labels, np.int64), [_clean_name(c) for c in classes], root)


def detect_layout(root: str) -> str:
    """``cifar100``, ``cifar10`` or ``image_folder`` for a dataset folder (or the parent of a CIFAR folder)."""
    root = os.fspath(root)
    for layout, subdir, marker in (("cifar100", CIFAR100_DIR, "meta"), ("cifar10", CIFAR10_DIR, "batches.meta")):
        if os.path.isfile(os.path.join(root, marker)) or os.path.isdir(os.path.join(root, subdir)):
            return layout
    if os.path.isdir(root):
        return "image_folder"
    raise DatasetError(f"dataset folder not found: {root}; expected one of the layouts {CIFAR100_LAYOUT}; "
                       f"{CIFAR10_LAYOUT}; or {FOLDER_LAYOUT}")


def load_classification_dataset(root: str, layout: str = "auto", split: str = "test",
                                fine_label: bool = True) -> ClassificationData:
    """Read any supported layout; ``layout="auto"`` detects it from the folder contents."""
    if layout not in LAYOUTS:
        raise DatasetError(f"unknown dataset layout {layout!r}; expected one of {list(LAYOUTS)}")
    if layout == "auto":
        layout = detect_layout(root)
    if layout == "cifar100":
        return load_cifar100(root, split, fine_label)
    if layout == "cifar10":
        return load_cifar10(root, split)
    return load_image_folder(root)


def read_classnames(root: str, layout: str = "auto", fine_label: bool = True) -> List[str]:
    """Only the class names of a dataset (CIFAR ``meta`` / ``batches.meta``, or the class folders)."""
    if layout not in LAYOUTS:
        raise DatasetError(f"unknown dataset layout {layout!r}; expected one of {list(LAYOUTS)}")
    if layout == "auto":
        layout = detect_layout(root)
    if layout == "image_folder":
        return load_image_folder(root).classnames
    subdir, meta, key, expected = {
        "cifar100": (CIFAR100_DIR, "meta", "fine_label_names" if fine_label else "coarse_label_names",
                     CIFAR100_LAYOUT),
        "cifar10": (CIFAR10_DIR, "batches.meta", "label_names", CIFAR10_LAYOUT),
    }[layout]
    path = os.path.join(_resolve_root(root, subdir, meta), meta)
    return [_clean_name(n) for n in _require(_read_pickle(path, expected), key, path, expected)]


# ----------------------------------------------------------------------------- writers


def _start_writing(root: str, subdir: str, split: str, images: np.ndarray) -> Tuple[str, np.ndarray]:
    """Check the split and images, create ``root/subdir``; returns it and the uint8 [N, 3072] rows."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise ValueError(f"images must be uint8 [N, 32, 32, 3], got {images.dtype} {list(images.shape)}")
    folder = os.path.join(os.fspath(root), subdir)
    os.makedirs(folder, exist_ok=True)
    # Each row holds the R, G and B planes in turn: HWC -> CHW, flattened.
    return folder, np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), -1))


def _dump(path: str, obj: Dict[bytes, Any]) -> None:
    # Protocol 2 and bytes keys/values: what the Python 2 originals contain once read back.
    with atomic_write(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _check_labels(labels: Sequence[int], n: int, names: Sequence[str], what: str) -> List[int]:
    labels = [int(x) for x in labels]
    if len(labels) != n:
        raise ValueError(f"{what}: {len(labels)} labels for {n} images")
    if labels and (min(labels) < 0 or max(labels) >= len(names)):
        raise ValueError(f"{what} must lie in [0, {len(names)}), got [{min(labels)}, {max(labels)}]")
    return labels


def _batch_dict(rows: np.ndarray, label_fields: Dict[str, List[int]], batch_label: str, prefix: str) -> Dict[bytes, Any]:
    out: Dict[bytes, Any] = {
        b"batch_label": batch_label.encode(),
        b"data": rows,
        b"filenames": [f"{prefix}_{i:05d}.png".encode() for i in range(len(rows))],
    }
    out.update({k.encode(): v for k, v in label_fields.items()})
    return out


def write_cifar100(root: str, images: np.ndarray, fine_labels: Sequence[int], coarse_labels: Sequence[int],
                   fine_names: Sequence[str], coarse_names: Sequence[str], split: str = "test") -> str:
    """Write a CIFAR-100 split (and ``meta``) in the original pickle format under ``root/cifar-100-python``.

    Args:
        images: uint8 [N, 32, 32, 3].
        fine_names / coarse_names: stored as given (use underscores, as the real file does).
        split: ``"train"`` or ``"test"``; call twice for both.
    Returns:
        the ``cifar-100-python`` folder.
    """
    folder, rows = _start_writing(root, CIFAR100_DIR, split, images)
    fine = _check_labels(fine_labels, len(rows), fine_names, "fine_labels")
    coarse = _check_labels(coarse_labels, len(rows), coarse_names, "coarse_labels")
    _dump(os.path.join(folder, "meta"), {b"fine_label_names": [n.encode() for n in fine_names],
                                         b"coarse_label_names": [n.encode() for n in coarse_names]})
    _dump(os.path.join(folder, split), _batch_dict(rows, {"fine_labels": fine, "coarse_labels": coarse},
                                                   f"{split}ing batch 1 of 1", split))
    return folder


def write_cifar10(root: str, images: np.ndarray, labels: Sequence[int], names: Sequence[str],
                  split: str = "test") -> str:
    """Write a CIFAR-10 split under ``root/cifar-10-batches-py``: ``test_batch`` or the five
    ``data_batch_*`` files (the train images divided among them in order). Returns the folder."""
    folder, rows = _start_writing(root, CIFAR10_DIR, split, images)
    labels = _check_labels(labels, len(rows), names, "labels")
    _dump(os.path.join(folder, "batches.meta"), {b"label_names": [n.encode() for n in names],
                                                 b"num_cases_per_batch": 10000, b"num_vis": 3072})
    if split == "test":
        _dump(os.path.join(folder, "test_batch"), _batch_dict(rows, {"labels": labels}, "testing batch 1 of 1", "test"))
        return folder
    bounds = np.linspace(0, len(rows), len(CIFAR10_TRAIN_BATCHES) + 1).astype(int)
    for i, name in enumerate(CIFAR10_TRAIN_BATCHES):
        lo, hi = bounds[i], bounds[i + 1]
        _dump(os.path.join(folder, name), _batch_dict(rows[lo:hi], {"labels": labels[lo:hi]},
                                                      f"training batch {i + 1} of 5", name))
    return folder


# ----------------------------------------------------------------------------- mindspore.dataset pipeline


class _Source:
    """Random-access source for ``GeneratorDataset``: (raw image, label) per index.

    Images stay raw (uint8 HWC array or a file path) here; decoding and preprocessing run in the
    parallel ``map`` so workers share the work.
    """

    def __init__(self, data: ClassificationData):
        self.images = data.images
        self.labels = data.labels.astype(np.int32)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image = self.images[index]
        if isinstance(image, str):
            # Paths travel as fixed-width bytes arrays (GeneratorDataset columns must be numpy).
            image = np.frombuffer(image.encode("utf-8"), dtype=np.uint8)
        return image, self.labels[index]


class _Preprocess:
    """Picklable per-sample transform: raw image (uint8 HWC array or encoded path) -> float32 CHW."""

    def __init__(self, preprocess: Callable[[Any], np.ndarray], from_paths: bool):
        self.preprocess = preprocess
        self.from_paths = from_paths

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if self.from_paths:
            from ms_clip.processor import load_image  # raises ImageLoadError naming the file

            image = load_image(image.tobytes().decode("utf-8"))
        return np.asarray(self.preprocess(image), dtype=np.float32)


def build_classification_dataset(data: ClassificationData, preprocess: Callable[[Any], np.ndarray],
                                 batch_size: int = 32, num_parallel_workers: int = 1,
                                 python_multiprocessing: bool = False, drop_remainder: bool = False,
                                 shuffle: bool = False, seed: Optional[int] = None,
                                 prefetch_size: Optional[int] = None, numa_enable: bool = False,
                                 num_shards: Optional[int] = None, shard_id: Optional[int] = None):
    """A batched ``mindspore.dataset`` of ``(image float32 [B, 3, H, W], label int32 [B])``.

    ``preprocess`` maps one image (a uint8 HWC array, or a PIL image for image folders) to a
    float32 CHW array; pass ``CLIPImageProcessor(...).preprocess_one`` so 32x32 CIFAR images are
    upsampled with PIL bicubic like OpenAI (MindFormers' yaml used a bilinear Resize here).
    """
    import mindspore.dataset as ds

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if prefetch_size:
        ds.config.set_prefetch_size(int(prefetch_size))
    if numa_enable:
        ds.config.set_numa_enable(True)
    if seed is not None:
        ds.config.set_seed(int(seed))
    # MindSpore rejects more workers than CPUs; the YAMLs' 8 must still run on a 2-core machine.
    workers = max(1, min(int(num_parallel_workers), os.cpu_count() or 1))
    if workers != num_parallel_workers:
        logger.info("num_parallel_workers %s -> %d (this machine has %s CPUs)", num_parallel_workers, workers,
                    os.cpu_count())
    dataset = ds.GeneratorDataset(_Source(data), column_names=["image", "label"], shuffle=shuffle,
                                  num_shards=num_shards, shard_id=shard_id)
    from_paths = not isinstance(data.images, np.ndarray)
    dataset = dataset.map(operations=_Preprocess(preprocess, from_paths), input_columns=["image"],
                          num_parallel_workers=workers, python_multiprocessing=python_multiprocessing)
    return dataset.batch(batch_size, drop_remainder=drop_remainder)
