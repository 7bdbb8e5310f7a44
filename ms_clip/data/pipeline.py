"""Caption records -> a ``mindspore.dataset`` pipeline of (image, tokens) batches.

The pipeline is a ``GeneratorDataset`` over a random-access source (``CaptionSource``) with
parallel workers, fed by a ``SubsetSampler`` whose index list this module computes itself:

* **shuffle** is a permutation drawn from ``(seed, epoch)``, so every epoch has a new order and a
  run can be replayed exactly;
* **sharding** (``num_shards`` / ``shard_id``) splits each *global* batch into contiguous per-shard
  pieces, so global batch k of a sharded run holds exactly the samples of batch k of a one-device
  run with ``num_shards`` times the batch size (the distributed loss then equals the one-device loss),
  and no sample goes to two shards;
* **resume at a data position**: ``start_batch`` drops the batches an interrupted epoch already used;
* **captions**: every epoch each image gets a fresh caption drawn from ``(seed, epoch, index)``.
  MindFormers' ``RandomChoiceTokenizerForward`` re-seeded NumPy on every call and so always picked
  the 5th caption (``np.random.seed(2022)`` then ``choice(5)`` is always 4); this draw depends on nothing
  but its arguments, in any worker.

One pipeline is built per epoch (cheap), which is what lets the epoch enter the caption and
augmentation seeds without shared mutable state between workers.
"""
from __future__ import annotations

import functools

import logging
import re
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

import mindspore.dataset as ds

from ms_clip.data.captions import CaptionRecords, DataError
from ms_clip.errors import MsClipError
from ms_clip.processor import CLIP_MEAN, CLIP_STD, CLIPTrainTransform, ImageLoadError, load_image, preprocess

logger = logging.getLogger(__name__)

__all__ = ["ImageTransform", "image_transform_from_config", "read_image", "open_record_image", "CaptionSource", "ImageSource",
           "epoch_order", "shard_order", "steps_per_epoch", "build_caption_dataset", "build_image_dataset",
           "pick_caption", "surface_source_errors", "dataset_options", "apply_dataset_settings",
           "caption_tokenizer"]

# --------------------------------------------------------------------------- images


def read_image(path: str) -> Image.Image:
    """Decode ``path`` fully (EXIF orientation applied); DataError naming the file if it is missing or bad."""
    try:
        return load_image(path)
    except ImageLoadError as err:
        raise DataError(str(err)) from None


def open_record_image(records: CaptionRecords, index: int) -> Image.Image:
    """Record ``index``'s image: from the records' own store when they have one (``load_image``, e.g.
    Chinese-CLIP's base64 TSV/LMDB images, decoded in memory), else from its file."""
    load = getattr(records, "load_image", None)
    if load is not None:
        return load(index)
    return read_image(records.image_paths[index])


@dataclass(frozen=True)
class ImageTransform:
    """Resize + center crop (evaluation, ``processor.preprocess``) or open_clip's RandomResizedCrop
    (training, ``processor.CLIPTrainTransform``), then /255 and normalize -> float32 [3, size, size].

    Random crops draw from the ``rng`` passed in, so they are a function of the caller's seed.
    """

    size: int
    random_crop: bool = False
    scale: Tuple[float, float] = (0.9, 1.0)
    ratio: Tuple[float, float] = (3 / 4, 4 / 3)
    mean: Tuple[float, ...] = CLIP_MEAN
    std: Tuple[float, ...] = CLIP_STD
    # "crop": shorter side to `size`, then center crop (OpenAI). "squash": bicubic resize to size x size
    # without cropping (Chinese-CLIP's Resize((R, R)); a YAML Resize with a two-value size and no CenterCrop).
    resize: str = "crop"
    # "pil": OpenAI's PIL bicubic resize. "torchvision": HF run_clip.py's Transform (torchvision's antialiased
    # tensor resize, RGB first; resize "crop" only), the dual encoder's (``processor.CLIPImageProcessor`` backend).
    backend: str = "pil"

    def __call__(self, img: Image.Image, rng: Optional[np.random.Generator] = None) -> np.ndarray:
        if self.random_crop:
            crop = CLIPTrainTransform(self.size, self.scale, self.ratio, self.mean, self.std,
                                      seed=rng if rng is not None else np.random.default_rng())
            return crop(img)
        if self.backend == "torchvision":
            return _torchvision_processor(self.size, self.mean, self.std).preprocess_one(img)
        return preprocess(img, self.size, self.mean, self.std, resize_mode=self.resize)


@functools.lru_cache(maxsize=8)
def _torchvision_processor(size: int, mean: Tuple[float, ...], std: Tuple[float, ...]):
    from ms_clip.processor import CLIPImageProcessor

    return CLIPImageProcessor(size, mean, std, backend="torchvision")


_TRANSFORM_TYPES = ("Resize", "CenterCrop", "RandomResizedCrop", "ToTensor", "Normalize", "ToPIL",
                    "BatchResize", "BatchCenterCrop", "BatchToTensor", "BatchNormalize", "BatchPILize")


def image_transform_from_config(transforms: Optional[Sequence[Any]], default_size: int, where: str) -> ImageTransform:
    """Read MindFormers' ``transforms`` list (Resize/CenterCrop/RandomResizedCrop/ToTensor/Normalize)."""
    size, random_crop, scale, ratio = default_size, False, (0.9, 1.0), (3 / 4, 4 / 3)
    mean, std = CLIP_MEAN, CLIP_STD
    squash, center_crop = False, False
    for i, item in enumerate(transforms or []):
        item = {"type": item} if isinstance(item, str) else dict(item)
        kind = item.get("type")
        if kind not in _TRANSFORM_TYPES:
            raise DataError(f"{where}[{i}]: unknown transform {kind!r}; expected one of {list(_TRANSFORM_TYPES)}")
        if kind in ("Resize", "CenterCrop", "RandomResizedCrop", "BatchResize", "BatchCenterCrop"):
            value = item.get("size", item.get("image_resolution", size))
            size = int(value[0] if isinstance(value, (list, tuple)) else value)
            if kind in ("Resize", "BatchResize") and isinstance(value, (list, tuple)):
                # torchvision's Resize((h, w)) resizes to exactly h x w: no aspect ratio kept.
                if len(value) != 2 or int(value[0]) != int(value[1]):
                    raise DataError(f"{where}[{i}]: Resize size {list(value)}: expected one number (shorter side) "
                                    f"or two equal numbers (square resize without crop)")
                squash = True
            center_crop = center_crop or kind in ("CenterCrop", "BatchCenterCrop")
        if kind == "RandomResizedCrop":
            random_crop = True
            scale = tuple(item.get("scale", scale))
            ratio = tuple(item.get("ratio", ratio))
        if kind in ("Normalize", "BatchNormalize"):
            mean = tuple(item.get("mean", mean))
            std = tuple(item.get("std", std))
            # MindFormers writes 0..255 means when ToTensor is absent; ours always work on 0..1 pixels.
            if max(mean) > 1.0:
                mean, std = tuple(m / 255 for m in mean), tuple(s / 255 for s in std)
    return ImageTransform(size, random_crop, scale, ratio, mean, std,
                          resize="squash" if squash and not center_crop else "crop")


# --------------------------------------------------------------------------- ordering


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([int(k) & 0xFFFFFFFF for k in key])


def pick_caption(num_captions: int, seed: int, epoch: int, index: int) -> int:
    """The caption used for image ``index`` in ``epoch``: uniform, a pure function of its arguments."""
    return int(_rng(seed, epoch, index, 0).integers(num_captions))


def epoch_order(num_samples: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """All sample indices in the order of ``epoch`` (a fresh permutation per epoch when shuffling)."""
    if not shuffle:
        return np.arange(num_samples, dtype=np.int64)
    return _rng(seed, epoch, 1).permutation(num_samples).astype(np.int64)


def shard_order(order: np.ndarray, batch_size: int, num_shards: int = 1, shard_id: int = 0,
                drop_remainder: bool = True) -> np.ndarray:
    """This shard's indices: contiguous ``batch_size`` pieces of each global batch of ``batch_size * num_shards``."""
    if not 0 <= shard_id < num_shards:
        raise ValueError(f"shard_id must be in [0, {num_shards}), got {shard_id}")
    global_batch = batch_size * num_shards
    full = len(order) // global_batch
    blocks = order[:full * global_batch].reshape(full, num_shards, batch_size)[:, shard_id, :].reshape(-1)
    if drop_remainder:
        return blocks
    tail = order[full * global_batch:]
    return np.concatenate([blocks, np.array_split(tail, num_shards)[shard_id]])


def steps_per_epoch(num_samples: int, batch_size: int, num_shards: int = 1, drop_remainder: bool = True) -> int:
    """Batches per epoch on each shard."""
    full, rest = divmod(num_samples, batch_size * num_shards)
    return full + (1 if rest and not drop_remainder else 0)


# --------------------------------------------------------------------------- sources


class _BadImages:
    """Counts images that failed to decode, and warns once per file."""

    def __init__(self, on_bad_image: str):
        self.policy = on_bad_image
        self.files: Dict[str, str] = {}
        self._lock = threading.Lock()

    def handle(self, err: DataError, path: str) -> None:
        if self.policy == "fail":
            raise DataError(f"{err} (set data_loader.on_bad_image: skip to skip bad images)")
        with self._lock:
            if path not in self.files:
                self.files[path] = str(err)
                logger.warning("skipping bad image (%d so far): %s", len(self.files), err)


class CaptionSource:
    """Random access to (image [3,S,S] float32, tokens [L] int32) for one epoch.

    A bad image is skipped by using the next good one (counted and logged), or raises naming the file.
    """

    def __init__(self, records: CaptionRecords, transform: ImageTransform, epoch: int, seed: int,
                 random_caption: bool = True, context_length: int = 77, on_bad_image: str = "skip",
                 tokenizer: Optional[Callable[[List[str], int], np.ndarray]] = None):
        if tokenizer is None:
            from ms_clip.tokenizer import tokenize as tokenizer
        self.records = records
        self.transform = transform
        self.epoch = epoch
        self.seed = seed
        self.random_caption = random_caption
        self.context_length = context_length
        self.tokenizer = tokenizer
        self.bad = _BadImages(on_bad_image)
        self.error: Optional[MsClipError] = None  # the first user error __getitem__ raised

    def __len__(self) -> int:
        return len(self.records)

    def _image(self, index: int) -> np.ndarray:
        n = len(self.records)
        for offset in range(n):
            i = (index + offset) % n
            path = self.records.image_paths[i]
            try:
                img = open_record_image(self.records, i)
            except DataError as err:
                self.bad.handle(err, path)
                continue
            return self.transform(img, _rng(self.seed, self.epoch, index, 2))
        raise DataError(f"{self.records.source}: no image could be decoded")

    def __getitem__(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        try:
            index = int(index)
            captions = self.records.captions[index]
            k = pick_caption(len(captions), self.seed, self.epoch, index) if self.random_caption else 0
            tokens = self.tokenizer([captions[k]], context_length=self.context_length)[0].astype(np.int32)
            return self._image(index), tokens
        except MsClipError as err:
            self.error = self.error or err  # MindSpore buries it in its own message: see surface_source_errors
            raise


class ImageSource:
    """Random access to (image, ok) for evaluation; a skipped bad image gives ok = 0 and zero pixels."""

    def __init__(self, records: CaptionRecords, transform: ImageTransform, on_bad_image: str = "skip"):
        self.records = records
        self.transform = transform
        self.bad = _BadImages(on_bad_image)
        self.error: Optional[MsClipError] = None  # the first user error __getitem__ raised

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        path = self.records.image_paths[int(index)]
        try:
            return self.transform(open_record_image(self.records, int(index))), np.array(1, np.int32)
        except DataError as err:
            try:
                self.bad.handle(err, path)
            except MsClipError as fatal:
                self.error = self.error or fatal
                raise
            size = self.transform.size
            return np.zeros((3, size, size), np.float32), np.array(0, np.int32)


class _WithIndex:
    """A source's items plus the sample index (an int64 "index" column, for per-rank bookkeeping)."""

    def __init__(self, source: CaptionSource):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (*self.source[index], np.array(int(index), np.int64))


# --------------------------------------------------------------------------- errors

# A line of MindSpore's error text that holds one of our errors (from a worker process, where the
# source object's ``error`` is not shared): "  ms_clip.data.captions.DataError: <message>".
_OUR_ERROR_LINE = re.compile(r"^\s*(?:[\w.]+\.)?(?:DataError|ImageLoadError): (.+)$", re.MULTILINE)


class _ErrorSurfacingIterator:
    """A MindSpore dataset iterator whose failures caused by our source re-raise the source's own error.

    MindSpore turns an exception raised in a GeneratorDataset source into a RuntimeError whose first line
    is "Exception thrown from user defined Python function in dataset." with the real message 25 lines
    down; the user needs the one line that names the bad file.
    """

    def __init__(self, iterator: Any, source: Any):
        self._iterator = iterator
        self._source = source

    def __iter__(self) -> "_ErrorSurfacingIterator":
        return self

    def __next__(self) -> Any:
        try:
            return next(self._iterator)
        except RuntimeError as err:
            ours = getattr(self._source, "error", None)
            if ours is None:
                match = _OUR_ERROR_LINE.search(str(err))
                if match is None:
                    raise
                ours = DataError(match.group(1).strip())
            raise ours from None

    def __getattr__(self, name: str) -> Any:  # stop(), get_col_names(), ... of the wrapped iterator
        return getattr(self._iterator, name)


def surface_source_errors(dataset: ds.Dataset, source: Any) -> ds.Dataset:
    """Make ``dataset``'s iterators (``create_tuple_iterator``, ``create_dict_iterator``, ``iter()``) raise
    ``source``'s own error (DataError/ImageLoadError naming the file) instead of MindSpore's wrapper."""
    for name in ("create_tuple_iterator", "create_dict_iterator"):
        create = getattr(dataset, name)

        def wrapped(*args: Any, _create: Callable = create, **kwargs: Any) -> _ErrorSurfacingIterator:
            return _ErrorSurfacingIterator(_create(*args, **kwargs), source)

        setattr(dataset, name, wrapped)
    return dataset


# --------------------------------------------------------------------------- pipelines


def build_caption_dataset(records: CaptionRecords, batch_size: int, transform: ImageTransform, *, seed: int = 0,
                          epoch: int = 0, start_batch: int = 0, shuffle: bool = True, random_caption: bool = True,
                          num_shards: int = 1, shard_id: int = 0, drop_remainder: bool = True,
                          num_parallel_workers: int = 2, python_multiprocessing: bool = False,
                          context_length: int = 77, on_bad_image: str = "skip",
                          with_index: bool = False, prefetch_size: Optional[int] = None, numa_enable: bool = False,
                          tokenizer: Optional[Callable[..., np.ndarray]] = None) -> Tuple[ds.Dataset, CaptionSource]:
    """One epoch of (image [B,3,S,S] float32, text [B,L] int32) batches for this shard, from ``start_batch`` on;
    ``with_index`` adds a third column, the samples' indices into ``records`` [B] int64.

    ``prefetch_size`` / ``numa_enable`` are MindSpore's (process-wide) dataset settings; ``tokenizer``
    is ``tokenize``-like (``caption_tokenizer``), default CLIP's. Returns the dataset and its source
    (whose ``bad.files`` lists the images skipped so far).
    """
    apply_dataset_settings(prefetch_size, numa_enable)
    order = shard_order(epoch_order(len(records), seed, epoch, shuffle), batch_size, num_shards, shard_id,
                        drop_remainder)
    order = order[start_batch * batch_size:]
    if len(order) == 0:
        raise DataError(f"{records.source}: no batch of {batch_size} x {num_shards} shard(s) from {len(records)} "
                        f"images (start batch {start_batch}); lower the batch size")
    source = CaptionSource(records, transform, epoch, seed, random_caption, context_length, on_bad_image, tokenizer)
    columns = ["image", "text", "index"] if with_index else ["image", "text"]
    dataset = ds.GeneratorDataset(_WithIndex(source) if with_index else source, column_names=columns,
                                  sampler=ds.SubsetSampler(order.tolist()),
                                  num_parallel_workers=max(1, num_parallel_workers),
                                  python_multiprocessing=python_multiprocessing)
    return surface_source_errors(dataset.batch(batch_size, drop_remainder=drop_remainder), source), source


def build_image_dataset(records: CaptionRecords, batch_size: int, transform: ImageTransform, *,
                        num_parallel_workers: int = 2, on_bad_image: str = "skip",
                        indices: Optional[Sequence[int]] = None) -> Tuple[ds.Dataset, ImageSource]:
    """(image, ok) batches of ``records`` in order (or of ``indices``), for feature extraction."""
    source = ImageSource(records, transform, on_bad_image)
    order = list(range(len(records))) if indices is None else [int(i) for i in indices]
    dataset = ds.GeneratorDataset(source, column_names=["image", "ok"], sampler=ds.SubsetSampler(order),
                                  num_parallel_workers=max(1, num_parallel_workers), python_multiprocessing=False)
    return surface_source_errors(dataset.batch(batch_size, drop_remainder=False), source), source


def apply_dataset_settings(prefetch_size: Optional[int] = None, numa_enable: bool = False) -> None:
    """MindSpore's process-wide dataset settings a run config's dataset section names (as zero-shot's
    ``build_classification_dataset`` applies them)."""
    if prefetch_size:
        ds.config.set_prefetch_size(int(prefetch_size))
    if numa_enable:
        ds.config.set_numa_enable(True)


def caption_tokenizer(tokenizer_section: Optional[Mapping[str, Any]]) -> Optional[Callable[..., np.ndarray]]:
    """A ``tokenize``-like function for a dataset's ``tokenizer`` section, or None for CLIP's own.

    Only ``vocab_file`` changes the token ids: captions are padded with 0 ('!'), OpenAI's padding.
    """
    vocab_file = (tokenizer_section or {}).get("vocab_file")
    if not vocab_file:
        return None
    import functools

    from ms_clip.tokenizer import CLIPTokenizer, tokenize

    return functools.partial(tokenize, tokenizer=CLIPTokenizer(vocab_file=vocab_file))


def dataset_options(section: Mapping[str, Any]) -> Dict[str, Any]:
    """The ``build_caption_dataset`` keyword arguments a run config's dataset section sets."""
    loader = section["data_loader"]
    text_transforms = section.get("text_transforms") or {}
    return {
        "num_parallel_workers": section.get("num_parallel_workers", 2),
        "python_multiprocessing": section.get("python_multiprocessing", False),
        "drop_remainder": section.get("drop_remainder", True),
        "on_bad_image": loader.get("on_bad_image", "skip"),
        "random_caption": text_transforms.get("type") != "TokenizerForward",
        "context_length": text_transforms.get("max_length", 77),
        "prefetch_size": section.get("prefetch_size"),
        "numa_enable": bool(section.get("numa_enable", False)),
        "tokenizer": caption_tokenizer(section.get("tokenizer")),
    }
