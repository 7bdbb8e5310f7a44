"""Chinese-CLIP's retrieval datasets (Flickr30k-CN, MUGE, COCO-CN as its downloads ship them) -> caption records.

Two layouts, both as Chinese-CLIP (github.com/OFA-Sys/Chinese-CLIP) writes and reads them:

* **TSV + JSONL** (the downloads)::

      <dataset_dir>/{split}_imgs.tsv       image_id<TAB>base64 of the encoded image      (one image per line)
      <dataset_dir>/{split}_texts.jsonl    {"text_id": int, "text": str, "image_ids": [int, ...]}   (one text per line)

* **LMDB** (what ``cn_clip/preprocess/build_lmdb_dataset.py`` writes from the above, under
  ``<dataset_dir>/lmdb/{split}/``; ``dataset_dir`` may also be that split folder itself, as Chinese-CLIP's
  training scripts pass it)::

      imgs/    key b"<image_id>" -> the base64 text (utf-8); key b"num_images" -> the count
      pairs/   key b"<i>" (i = 0 .. n-1) -> pickle of the tuple (image_id, text_id, text), one per
               (text, image) pair in JSONL order; key b"num_samples" -> n

  The pair values are pickles; they are read with ``ms_clip.safe_pickle``'s restricted unpickler
  (tuples of numbers and strings only), never with ``pickle.loads``.

Splits are ``train``, ``valid`` and ``test`` (``val``/``dev`` mean ``valid``). A text may name several
images (text -> image retrieval then has several correct answers); all of them are kept.

What the pipelines get (``load_chinese_clip_records``):

* for **training**, one record per (text, image) pair, in the pairs' order -- an epoch visits every
  pair once, as Chinese-CLIP's ``LMDBDataset`` does (an image with five texts appears five times);
* for **evaluation**, one record per image of the split (every image is a retrieval candidate, as
  in Chinese-CLIP's ``extract_features.py``), with the texts and each text's correct images
  (``ChineseCLIPRecords.texts`` / ``text_images``), for ``ms_clip.eval.retrieval.multi_positive_metrics``.

Images are decoded from the TSV (read lazily at recorded byte offsets) or the LMDB when a pipeline
asks for them; nothing is written out. Malformed rows (no tab, a non-integer id, a duplicate id,
bad JSON, missing or mistyped keys) fail naming the file and the line. An image that does not
decode (bad base64 or bad image bytes), or an id a text names that the image file lacks, follows
``data_loader.on_bad_image``: skipped and counted, or an error naming the file, line and image id.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import math
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from PIL import Image

from ms_clip.data.captions import ON_BAD_IMAGE, CaptionRecords, DataError

logger = logging.getLogger(__name__)

__all__ = ["CN_LAYOUT", "SPLITS", "CnText", "TsvImageStore", "LmdbImageStore", "ChineseCLIPSplit",
           "ChineseCLIPRecords", "read_texts_jsonl", "read_lmdb_pairs", "read_chinese_clip_split",
           "load_chinese_clip_records", "detect_format", "decode_base64_image", "encode_image_base64",
           "write_chinese_clip_split", "preprocess_text"]

SPLITS = ("train", "valid", "test")
_SPLIT_ALIASES = {"val": "valid", "dev": "valid", "validation": "valid"}
FORMATS = ("auto", "tsv", "lmdb")
CN_LAYOUT = ("expected Chinese-CLIP's layout: <dataset_dir>/{split}_imgs.tsv (lines 'image_id<TAB>base64 image') + "
             "<dataset_dir>/{split}_texts.jsonl (lines {\"text_id\": int, \"text\": str, \"image_ids\": [int]}), "
             "or the LMDB folders of cn_clip's build_lmdb_dataset.py: <dataset_dir>/lmdb/{split}/{imgs,pairs}")

# Byte translation from base64's URL-safe alphabet to the standard one. Chinese-CLIP writes standard
# base64 and reads with urlsafe_b64decode, which accepts both; so do we.
_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")


def preprocess_text(text: str) -> str:
    """Chinese-CLIP's text normalisation before tokenizing (its ``_preprocess_text``, applied to captions in
    training and evaluation and to zero-shot prompts): lower case, curly double quotes to '"'."""
    return text.lower().replace("\u201c", '"').replace("\u201d", '"')


def _normal_split(split: str) -> str:
    split = _SPLIT_ALIASES.get(split, split)
    if split not in SPLITS:
        raise DataError(f"Chinese-CLIP stage must be one of {list(SPLITS)} (or val/dev), got {split!r}")
    return split


def _check_policy(on_bad_image: str) -> None:
    if on_bad_image not in ON_BAD_IMAGE:
        raise DataError(f"on_bad_image must be one of {list(ON_BAD_IMAGE)}, got {on_bad_image!r}")


# --------------------------------------------------------------------------- images


def decode_base64_image(payload: bytes, where: str) -> Image.Image:
    """base64 text of an encoded image (standard or URL-safe alphabet) -> a decoded PIL image.

    Raises DataError starting with ``where`` (file, line, image id) when the text is not base64 or
    the bytes are not a readable image.
    """
    from ms_clip.processor import ImageLoadError, load_image

    text = bytes(payload).strip()
    if not text:
        raise DataError(f"{where}: empty image (no base64 text)")
    try:
        data = base64.b64decode(text.translate(_URLSAFE_TO_STANDARD), validate=True)
    except (binascii.Error, ValueError) as err:
        raise DataError(f"{where}: not valid base64 ({err})") from None
    try:
        return load_image(data)
    except ImageLoadError as err:
        raise DataError(f"{where}: {err}") from None


def encode_image_base64(image: Image.Image, fmt: str = "PNG") -> str:
    """An image as Chinese-CLIP stores it: the encoded file's bytes in standard base64 (utf-8 text)."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


class TsvImageStore:
    """``{split}_imgs.tsv`` indexed once by byte offset; an image's base64 is read only when asked for.

    The index is built by one pass over the file that checks every row's structure (a tab, an
    integer id, no duplicate id, a non-empty payload). Reads use ``os.pread`` on a descriptor opened
    per process, so threads and forked workers never share a file position; the store pickles
    without its descriptor (``python_multiprocessing`` workers reopen the file).
    """

    def __init__(self, path: str):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise DataError(f"image file not found: {self.path}; {CN_LAYOUT}")
        self._rows: Dict[int, Tuple[int, int, int]] = {}  # image id -> (offset, length, line number)
        self.ids: List[int] = []
        offset = 0
        with open(self.path, "rb") as f:
            for number, raw in enumerate(f, 1):
                start, offset = offset, offset + len(raw)
                line = raw.rstrip(b"\r\n")
                if not line.strip():
                    continue
                tab = line.find(b"\t")
                if tab < 0:
                    raise DataError(f"{self.path}:{number}: malformed row {line[:60]!r}...; expected "
                                    f"'image_id<TAB>base64 image'")
                image_id = _parse_id(line[:tab], f"{self.path}:{number}", "image id")
                if image_id in self._rows:
                    first = self._rows[image_id][2]
                    raise DataError(f"{self.path}:{number}: duplicate image id {image_id} (first on line {first})")
                if not line[tab + 1:].strip():
                    raise DataError(f"{self.path}:{number}: image {image_id} has no base64 data after the tab")
                self._rows[image_id] = (start + tab + 1, len(line) - tab - 1, number)
                self.ids.append(image_id)
        if not self.ids:
            raise DataError(f"{self.path}: no images in the file; expected lines 'image_id<TAB>base64 image'")
        self._fd: Optional[int] = None
        self._fd_pid: Optional[int] = None
        self._lock = threading.Lock()

    def __contains__(self, image_id: int) -> bool:
        return image_id in self._rows

    def where(self, image_id: int) -> str:
        return f"{self.path}:{self._rows[image_id][2]} (image_id {image_id})"

    def _descriptor(self) -> int:
        with self._lock:
            if self._fd is None or self._fd_pid != os.getpid():
                self._fd, self._fd_pid = os.open(self.path, os.O_RDONLY), os.getpid()
            return self._fd

    def payload(self, image_id: int) -> bytes:
        offset, length, _ = self._rows[image_id]
        return os.pread(self._descriptor(), length, offset)

    def load(self, image_id: int) -> Image.Image:
        return decode_base64_image(self.payload(image_id), self.where(image_id))

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_fd=None, _fd_pid=None, _lock=None)
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None and getattr(self, "_fd_pid", None) == os.getpid():
            try:
                os.close(fd)
            except OSError:
                pass


def _parse_id(raw: Any, where: str, what: str) -> int:
    """An integer id from TSV bytes / an LMDB key / a JSON value; DataError naming ``where`` otherwise."""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        text = bytes(raw).decode("utf-8", "replace").strip()
        if text.lstrip("-").isdigit():
            return int(text)
        raise DataError(f"{where}: {what} {text[:40]!r} is not an integer (Chinese-CLIP's ids are integers)")
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    raise DataError(f"{where}: {what} {raw!r} is not an integer (Chinese-CLIP's ids are integers)")


# lmdb refuses to open one environment twice in a process, so environments opened for reading images
# are kept here per (folder, process) and shared by every store on that folder.
_ENVIRONMENTS: Dict[Tuple[str, int], Any] = {}
_ENVIRONMENTS_LOCK = threading.Lock()


def _shared_lmdb(path: str) -> Any:
    """This process's long-lived environment for ``path`` (opened on first use)."""
    key = (os.path.realpath(path), os.getpid())
    with _ENVIRONMENTS_LOCK:
        if key not in _ENVIRONMENTS:
            _ENVIRONMENTS[key] = _open_lmdb(path)
        return _ENVIRONMENTS[key]


class _ReadOnce:
    """An environment for one pass at open time: the shared one if this process has it, else a fresh
    one closed afterwards (so a later writer, e.g. cn_clip's build script, can open the folder)."""

    def __init__(self, path: str):
        self.path = path
        self.env: Any = None
        self.owned = False

    def __enter__(self) -> Any:
        shared = _ENVIRONMENTS.get((os.path.realpath(self.path), os.getpid()))
        self.env, self.owned = (shared, False) if shared is not None else (_open_lmdb(self.path), True)
        return self.env

    def __exit__(self, *exc: Any) -> None:
        if self.owned:
            self.env.close()


def _open_lmdb(path: str) -> Any:
    try:
        import lmdb
    except ImportError:
        raise DataError(f"reading {path} needs the 'lmdb' package (pip install lmdb)") from None
    if not os.path.isdir(path):
        raise DataError(f"LMDB folder not found: {path}; {CN_LAYOUT}")
    try:
        # Read-only and lock-free, as Chinese-CLIP opens them: the files may sit on a read-only mount.
        return lmdb.open(path, readonly=True, create=False, lock=False, readahead=False, meminit=False,
                         subdir=True)
    except lmdb.Error as err:
        raise DataError(f"{path}: not an LMDB database ({err}); {CN_LAYOUT}") from None


def _lmdb_count(env: Any, key: bytes, path: str) -> int:
    with env.begin() as txn:
        raw = txn.get(key)
    if raw is None:
        raise DataError(f"{path}: no '{key.decode()}' key (cn_clip's build_lmdb_dataset.py writes it last; was the "
                        f"build interrupted?)")
    return _parse_id(raw, f"{path} key '{key.decode()}'", "count")


class LmdbImageStore:
    """The ``imgs`` database of a Chinese-CLIP LMDB split: image id -> base64 text.

    Image order is the database's key order (bytes order), which is the order Chinese-CLIP's
    ``extract_features.py`` encodes the images in. The environment is opened per process (lmdb
    environments do not survive a fork) and shared by the stores on one folder; each read is its own
    short read transaction.
    """

    def __init__(self, path: str):
        self.path = os.fspath(path)
        with _ReadOnce(self.path) as env:
            expected = _lmdb_count(env, b"num_images", self.path)
            ids: List[int] = []
            with env.begin() as txn:
                for key in txn.cursor().iternext(keys=True, values=False):
                    if key == b"num_images":
                        continue
                    ids.append(_parse_id(key, f"{self.path} key {bytes(key)[:40]!r}", "image id"))
        if len(ids) != expected:
            raise DataError(f"{self.path}: 'num_images' says {expected} images but the database holds {len(ids)}")
        if not ids:
            raise DataError(f"{self.path}: no images in the database")
        self.ids = ids
        self._id_set = set(ids)

    def __contains__(self, image_id: int) -> bool:
        return image_id in self._id_set

    def where(self, image_id: int) -> str:
        return f"{self.path} key '{image_id}' (image_id {image_id})"

    def payload(self, image_id: int) -> bytes:
        with _shared_lmdb(self.path).begin() as txn:
            raw = txn.get(str(image_id).encode("utf-8"))
        if raw is None:  # listed at open time: the database changed underneath us
            raise DataError(f"{self.where(image_id)}: the key disappeared from the database")
        return bytes(raw)

    def load(self, image_id: int) -> Image.Image:
        return decode_base64_image(self.payload(image_id), self.where(image_id))


# --------------------------------------------------------------------------- texts


@dataclass(frozen=True)
class CnText:
    """One text of a split: its id, the text, the images it describes, and where it was read."""

    text_id: int
    text: str
    image_ids: Tuple[int, ...]
    where: str


def read_texts_jsonl(path: str) -> List[CnText]:
    """``{split}_texts.jsonl`` -> texts in file order; a malformed line fails naming the file and line."""
    from ms_clip.data.captions import _read_lines

    if not os.path.isfile(path):
        raise DataError(f"text file not found: {path}; {CN_LAYOUT}")
    texts: List[CnText] = []
    seen: Dict[int, int] = {}
    for number, line in enumerate(_read_lines(path), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{where}: not a JSON object ({err})") from None
        if not isinstance(obj, Mapping):
            raise DataError(f"{where}: expected a JSON object per line, got {line[:80]!r}")
        missing = [k for k in ("text_id", "text", "image_ids") if k not in obj]
        if missing:
            raise DataError(f"{where}: missing key(s) {missing}; expected {{\"text_id\": int, \"text\": str, "
                            f"\"image_ids\": [int, ...]}}")
        text_id = _parse_id(obj["text_id"], where, "text_id")
        if not isinstance(obj["text"], str) or not obj["text"].strip():
            raise DataError(f"{where}: 'text' must be a non-empty string, got {obj['text']!r}")
        image_ids = obj["image_ids"]
        if not isinstance(image_ids, list) or not image_ids:
            raise DataError(f"{where}: 'image_ids' must be a non-empty list of integers, got {image_ids!r}")
        ids = tuple(_parse_id(i, where, "image id in 'image_ids'") for i in image_ids)
        if text_id in seen:
            raise DataError(f"{where}: duplicate text_id {text_id} (first on line {seen[text_id]})")
        seen[text_id] = number
        texts.append(CnText(text_id, obj["text"], ids, where))
    if not texts:
        raise DataError(f"{path}: no texts in the file; {CN_LAYOUT}")
    return texts


def _pair_unpickler_table() -> Dict[Tuple[str, str], Any]:
    # A pair is a plain tuple (int, int, str): no global is needed at all. Admitting none means any
    # pickle that imports something is refused with the global's name.
    return {}


def read_lmdb_pairs(path: str) -> List[CnText]:
    """The ``pairs`` database -> texts (pairs grouped by text_id in first-seen order, image ids in pair order)."""
    from ms_clip.safe_pickle import RestrictedUnpickler, UnsafePickleError

    grouped: Dict[int, List[Any]] = {}
    with _ReadOnce(path) as env:
        count = _lmdb_count(env, b"num_samples", path)
        with env.begin() as txn:
            for i in range(count):
                where = f"{path} key '{i}'"
                raw = txn.get(str(i).encode("utf-8"))
                if raw is None:
                    raise DataError(f"{where}: missing (num_samples is {count}; pairs are keyed 0..{count - 1})")
                try:
                    value = RestrictedUnpickler(io.BytesIO(bytes(raw)), source=where, allowed=_pair_unpickler_table(),
                                                what="a Chinese-CLIP pair is a tuple (image_id, text_id, text)",
                                                encoding="utf-8").load()
                except UnsafePickleError as err:
                    raise DataError(str(err)) from None
                except Exception as err:  # truncated or garbage bytes: pickle raises many kinds
                    raise DataError(f"{where}: not a readable pickle ({type(err).__name__}: {err})") from None
                if not (isinstance(value, tuple) and len(value) == 3 and isinstance(value[2], str)):
                    raise DataError(f"{where}: expected a tuple (image_id, text_id, text), got {str(value)[:80]}")
                image_id = _parse_id(value[0], where, "image_id")
                text_id = _parse_id(value[1], where, "text_id")
                entry = grouped.get(text_id)
                if entry is None:
                    grouped[text_id] = [value[2], [image_id], where]
                elif entry[0] != value[2]:
                    raise DataError(f"{where}: text_id {text_id} has a different text than at {entry[2]}")
                else:
                    entry[1].append(image_id)
    if not grouped:
        raise DataError(f"{path}: no pairs in the database")
    return [CnText(tid, text, tuple(ids), where) for tid, (text, ids, where) in grouped.items()]


# --------------------------------------------------------------------------- splits and records


@dataclass
class ChineseCLIPRecords(CaptionRecords):
    """Caption records whose images live in a TSV or LMDB store (``load_image``), not in files.

    ``image_paths`` holds a readable location per record ("file:line (image_id N)") for messages.
    For evaluation records, ``texts`` lists every text of the split and ``text_images`` the record
    indices of each text's correct images (several per text where the data says so).
    """

    store: Any = None
    image_ids: List[int] = field(default_factory=list)
    texts: Optional[List[str]] = None
    text_images: Optional[List[List[int]]] = None
    text_ids: Optional[List[int]] = None

    def load_image(self, index: int) -> Image.Image:
        return self.store.load(self.image_ids[index])


@dataclass
class ChineseCLIPSplit:
    """One split as read: its texts (with their correct image ids) and its image store."""

    source: str
    split: str
    texts: List[CnText]
    store: Any

    def _usable(self, on_bad_image: str) -> List[CnText]:
        """Texts with the image ids the store lacks removed (or an error under ``fail``)."""
        _check_policy(on_bad_image)
        kept, missing = [], []
        for text in self.texts:
            present = tuple(i for i in text.image_ids if i in self.store)
            if len(present) != len(text.image_ids):
                absent = [i for i in text.image_ids if i not in self.store]
                if on_bad_image == "fail":
                    raise DataError(f"{text.where}: text {text.text_id} names image id {absent[0]}, which is not in "
                                    f"{self.store.path} (set on_bad_image: skip to skip such pairs)")
                missing.extend(absent)
            if present:
                kept.append(CnText(text.text_id, text.text, present, text.where))
        if missing:
            logger.warning("%s: skipped %d (text, image) pairs whose image is not in %s (first ids: %s)", self.source,
                           len(missing), self.store.path, missing[:3])
        if not kept:
            raise DataError(f"{self.source}: no text names an image of {self.store.path}")
        return kept

    def training_records(self, on_bad_image: str = "skip") -> ChineseCLIPRecords:
        """One record per (text, image) pair, texts in order and each text's images in order."""
        ids, captions, where = [], [], []
        for text in self._usable(on_bad_image):
            for image_id in text.image_ids:
                ids.append(image_id)
                captions.append([text.text])
                where.append(self.store.where(image_id))
        return ChineseCLIPRecords(where, captions, self.source, store=self.store, image_ids=ids)

    def eval_records(self, on_bad_image: str = "skip") -> ChineseCLIPRecords:
        """One record per image of the store (all are candidates), plus every text and its correct images."""
        texts = self._usable(on_bad_image)
        position = {image_id: i for i, image_id in enumerate(self.store.ids)}
        captions: List[List[str]] = [[] for _ in self.store.ids]
        for text in texts:
            for image_id in text.image_ids:
                captions[position[image_id]].append(text.text)
        return ChineseCLIPRecords([self.store.where(i) for i in self.store.ids], captions, self.source,
                                  store=self.store, image_ids=list(self.store.ids),
                                  texts=[t.text for t in texts],
                                  text_images=[[position[i] for i in t.image_ids] for t in texts],
                                  text_ids=[t.text_id for t in texts])

    @property
    def num_pairs(self) -> int:
        return sum(len(t.image_ids) for t in self.texts)


def _lmdb_split_dir(dataset_dir: str, split: str) -> Optional[str]:
    for candidate in (os.path.join(dataset_dir, "lmdb", split), os.path.join(dataset_dir, split), dataset_dir):
        if os.path.isdir(os.path.join(candidate, "imgs")) and os.path.isdir(os.path.join(candidate, "pairs")):
            return candidate
    return None


def detect_format(dataset_dir: str, split: str) -> str:
    """``tsv`` when ``{split}_imgs.tsv`` + ``{split}_texts.jsonl`` are there, else ``lmdb`` when the LMDB folders are."""
    dataset_dir = os.fspath(dataset_dir)
    if not os.path.isdir(dataset_dir):
        raise DataError(f"Chinese-CLIP dataset_dir not found: {dataset_dir}; {CN_LAYOUT}")
    if os.path.isfile(os.path.join(dataset_dir, f"{split}_imgs.tsv")) and \
            os.path.isfile(os.path.join(dataset_dir, f"{split}_texts.jsonl")):
        return "tsv"
    if _lmdb_split_dir(dataset_dir, split) is not None:
        return "lmdb"
    raise DataError(f"{dataset_dir}: no '{split}' split found; {CN_LAYOUT}")


def read_chinese_clip_split(dataset_dir: str, split: str = "train", fmt: str = "auto") -> ChineseCLIPSplit:
    """Read one split (``fmt``: auto | tsv | lmdb); rows are checked now, images decoded when used."""
    split = _normal_split(split)
    if fmt not in FORMATS:
        raise DataError(f"data_loader.format must be one of {list(FORMATS)}, got {fmt!r}")
    dataset_dir = os.fspath(dataset_dir)
    if fmt == "auto":
        fmt = detect_format(dataset_dir, split)
    if fmt == "tsv":
        texts_path = os.path.join(dataset_dir, f"{split}_texts.jsonl")
        store = TsvImageStore(os.path.join(dataset_dir, f"{split}_imgs.tsv"))
        texts = read_texts_jsonl(texts_path)
        source = f"Chinese-CLIP {split} split ({texts_path})"
    else:
        root = _lmdb_split_dir(dataset_dir, split) if os.path.isdir(dataset_dir) else None
        if root is None:
            raise DataError(f"{dataset_dir}: no LMDB folders for split '{split}'; {CN_LAYOUT}")
        store = LmdbImageStore(os.path.join(root, "imgs"))
        texts = read_lmdb_pairs(os.path.join(root, "pairs"))
        source = f"Chinese-CLIP {split} split ({root})"
    return ChineseCLIPSplit(source, split, texts, store)


def load_chinese_clip_records(loader: Mapping[str, Any], purpose: str = "train") -> ChineseCLIPRecords:
    """Records for a run config's ``ChineseCLIPDataLoader`` section: pairs for training, images + texts for
    evaluation (``purpose`` train | eval)."""
    policy = loader.get("on_bad_image", "skip")
    split = read_chinese_clip_split(loader.get("dataset_dir") or "", loader.get("stage") or "train",
                                    loader.get("format") or "auto")
    if purpose == "train":
        return split.training_records(policy)
    return split.eval_records(policy)


# --------------------------------------------------------------------------- writing (tests, demo worlds)


def write_chinese_clip_split(dataset_dir: str, split: str, images: Mapping[int, Image.Image],
                             texts: Sequence[Tuple[int, str, Sequence[int]]], fmt: str = "PNG") -> Dict[str, str]:
    """Write ``{split}_imgs.tsv`` and ``{split}_texts.jsonl`` as Chinese-CLIP ships them.

    ``texts``: (text_id, text, image_ids). JSON is written with ``ensure_ascii=False`` (UTF-8 Chinese,
    as the downloads have it). Returns the two paths.
    """
    from ms_clip.fileio import atomic_write

    split = _normal_split(split)
    os.makedirs(dataset_dir, exist_ok=True)
    imgs_path = os.path.join(dataset_dir, f"{split}_imgs.tsv")
    texts_path = os.path.join(dataset_dir, f"{split}_texts.jsonl")
    with atomic_write(imgs_path, "wb") as f:
        for image_id, image in images.items():
            f.write(f"{int(image_id)}\t{encode_image_base64(image, fmt)}\n".encode("ascii"))
    with atomic_write(texts_path, "wb") as f:
        for text_id, text, image_ids in texts:
            row = {"text_id": int(text_id), "text": text, "image_ids": [int(i) for i in image_ids]}
            f.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
    return {"imgs": imgs_path, "texts": texts_path}


def iter_pairs(texts: Sequence[CnText]) -> Iterator[Tuple[int, int, str]]:
    """(image_id, text_id, text) per pair, in the order cn_clip's build_lmdb_dataset.py numbers them."""
    for text in texts:
        for image_id in text.image_ids:
            yield image_id, text.text_id, text.text


def chance_level(num: int, positives: int, k: int) -> float:
    """Probability that a random top-``k`` of ``num`` candidates holds one of ``positives`` correct ones."""
    if k >= num:
        return 1.0
    return 1.0 - math.comb(num - positives, k) / math.comb(num, k)
