"""CLIP image preprocessing, pixel-identical to OpenAI's / open_clip's, plus MindFormers' processors.

Evaluation transform (``preprocess``, ``CLIPImageProcessor``), as in OpenAI's ``clip._transform``
and open_clip's ``image_transform(n, is_train=False)`` (``open_clip/transform.py``):

1. resize with PIL bicubic so the short side is ``n`` and the long side ``int(n * long / short)``
   (torchvision's rule); PIL antialiases and rounds to uint8, which tensor resizes do not;
2. center crop ``n x n`` at torchvision's offsets ``int(round((size - n) / 2))``;
3. convert to RGB *after* resize and crop (the order changes the result for RGBA, palette, ...);
4. ``/255`` then ``(x - mean) / std`` in float32.

One deliberate difference: 16-bit and float greyscale images (PIL modes I;16, I, F) are scaled to
8 bits when loaded (``load_image``), where the references' ``convert("RGB")`` clamps their values at
255 and turns a 16-bit image white; from that 8-bit image on, the pipeline is identical.

Training transform (``CLIPTrainTransform``): open_clip's ``RandomResizedCrop(n, scale=(0.9, 1.0),
ratio=(3/4, 4/3), bicubic)`` done with PIL and a numpy random generator, then steps 3-4.

No torch here, and mindspore only when ``return_tensors="ms"`` is asked for: the functions run in
data-pipeline worker processes (``mindspore.dataset`` ``map``).
"""

from __future__ import annotations

import http.client
import io
import logging
import math
import os
import urllib.error
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ms_clip.constants import CLIP_MEAN, CLIP_STD
from ms_clip.errors import MsClipError

logger = logging.getLogger(__name__)

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "ImageLoadError",
    "load_image",
    "to_pil_image",
    "preprocess",
    "CLIPImageProcessor",
    "image_processor_for",
    "CLIPTrainTransform",
    "random_resized_crop_params",
    "train_transform",
    "CLIPProcessor",
    "VisionTextDualEncoderProcessor",
]

DEFAULT_URL_TIMEOUT = 10.0
_EXIF_ORIENTATION = 0x0112

ImageInput = Union[str, os.PathLike, bytes, bytearray, memoryview, Image.Image, np.ndarray]
RandomGen = Union[np.random.Generator, np.random.RandomState]


class ImageLoadError(MsClipError, ValueError):
    """An image could not be read: missing, unreadable, corrupt, truncated, not an image, bad URL."""


# ---------------------------------------------------------------------------------------- loading
def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def _fetch_url(url: str, timeout: float) -> bytes:
    # Bounded: at most MS_CLIP_IMAGE_URL_MAX_BYTES (64 MiB) and MS_CLIP_IMAGE_URL_DEADLINE_S (60 s) in
    # total; ``timeout`` alone bounds each read, so a server dripping bytes or sending forever would hang
    # or fill memory (ms_clip.net).
    from ms_clip.net import (IMAGE_DEADLINE_S, IMAGE_MAX_BYTES, DownloadLimitError, fetch,
                             limit_from_env)

    try:
        max_bytes = int(limit_from_env("MS_CLIP_IMAGE_URL_MAX_BYTES", IMAGE_MAX_BYTES))
        deadline_s = limit_from_env("MS_CLIP_IMAGE_URL_DEADLINE_S", IMAGE_DEADLINE_S)
        return fetch(url, max_bytes=max_bytes, deadline_s=deadline_s, timeout_s=timeout, what="image URL",
                     hint="download the image and pass its path, or raise MS_CLIP_IMAGE_URL_MAX_BYTES / "
                          "MS_CLIP_IMAGE_URL_DEADLINE_S")
    except DownloadLimitError as exc:
        raise ImageLoadError(str(exc)) from None
    except urllib.error.HTTPError as exc:
        raise ImageLoadError(f"Could not download image {url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        # refused, DNS, per-read timeout, malformed URL, connection cut short (IncompleteRead)
        reason = getattr(exc, "reason", exc)
        raise ImageLoadError(f"Could not download image {url}: {reason}") from exc


def _decode(data: bytes, source: str) -> Image.Image:
    """Decode fully (so truncation shows now, not later in a worker) and apply EXIF orientation."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except UnidentifiedImageError as exc:
        raise ImageLoadError(f"{source} is not an image file that PIL can read ({len(data)} bytes)") from exc
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(f"{source} is too large to decode safely: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # PIL reports truncated or corrupt data as OSError ("image file is truncated", "broken data stream").
        raise ImageLoadError(f"{source} is a corrupt or truncated image: {exc}") from exc
    return _apply_exif_orientation(image, source)


def _apply_exif_orientation(image: Image.Image, source: str) -> Image.Image:
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception as exc:  # malformed EXIF must not make a decodable photo unusable
        logger.warning("Ignoring unreadable EXIF data of %s: %s", source, exc)
        return image
    if orientation in (None, 1):
        return image  # nothing to do; avoids exif_transpose's full copy
    return ImageOps.exif_transpose(image)


def _to_8_bit(image: Image.Image) -> Image.Image:
    """High-bit-depth greyscale (PIL modes I;16*, I, F) -> 8-bit "L" on the scale a user expects.

    PIL's ``convert("L"/"RGB")`` copies integer values and clamps them at 255 instead of rescaling the
    bit depth, so a 16-bit PNG (mode I;16, 0..65535) came out nearly all white. Here:

    * I;16 / I;16B / I;16L / I;16N (16-bit) and I (32-bit ints: what 16-bit PNG/TIFF/PGM files give in
      older Pillow versions): the 16-bit range maps onto 0..255, ``round(v / 257)`` (exact at 0 and
      65535; values outside 0..65535 are clipped first);
    * F (32-bit float): [0, 1] images (the usual float convention) are scaled by 255; images with
      values above 1 are taken to be on the 0..255 scale already; both are rounded and clipped, NaN -> 0.

    Other modes (8-bit L/RGB/RGBA/P/CMYK/...) are returned unchanged.
    """
    if not (image.mode.startswith("I") or image.mode == "F"):
        return image
    values = np.asarray(image)
    if image.mode == "F":
        values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        if values.size and float(values.max()) <= 1.0:
            values = values * 255.0
        eight = np.clip(np.rint(values), 0, 255)
    else:
        wide = np.clip(values.astype(np.int64), 0, 65535)
        eight = (wide * 255 + 32767) // 65535  # = round(v / 257) in integers
    return Image.fromarray(eight.astype(np.uint8), "L")


def load_image(image: ImageInput, timeout: float = DEFAULT_URL_TIMEOUT) -> Image.Image:
    """Load an image from a path, an http(s) URL, encoded bytes or a PIL image.

    The pixels are fully decoded and the EXIF orientation is applied; 16-bit and float greyscale
    images become 8-bit "L" on the scale their bit depth implies (see ``_to_8_bit``); any other mode is
    kept (RGB conversion happens later, after resize and crop, as in the reference preprocessing).

    Raises:
        ImageLoadError: naming the file or URL, if it is missing, not an image, corrupt or truncated,
            or if the download fails (HTTP error, unreachable host, ``timeout`` seconds per read
            exceeded, or the size/total-time limits of ``_fetch_url``).
        TypeError: for any other input type.
    """
    return _to_8_bit(_load_image(image, timeout))


def _load_image(image: ImageInput, timeout: float) -> Image.Image:
    if isinstance(image, Image.Image):
        return _apply_exif_orientation(image, "PIL image")
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        return _decode(data, f"<{len(data)} bytes of image data>")
    if isinstance(image, np.ndarray) and image.ndim == 1 and image.dtype == np.uint8:
        # mindspore.dataset hands undecoded files to `map` as 1-D uint8 arrays.
        return _decode(image.tobytes(), f"<{image.size} bytes of image data>")
    if isinstance(image, (str, os.PathLike)):
        text = os.fspath(image)
        if isinstance(text, str) and _is_url(text):
            return _decode(_fetch_url(text, timeout), text)
        path = Path(text)
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise ImageLoadError(f"Image file not found: {path}") from exc
        except IsADirectoryError as exc:
            raise ImageLoadError(f"Expected an image file but {path} is a directory") from exc
        except OSError as exc:
            raise ImageLoadError(f"Could not read image file {path}: {exc}") from exc
        return _decode(data, f"Image file {path}")
    raise TypeError(
        f"Expected an image path, URL, bytes, PIL.Image or numpy array, got {type(image).__name__}"
    )


def _array_to_pil(array: np.ndarray) -> Image.Image:
    """Numpy HWC / CHW / HW image -> PIL image, without changing the pixel values."""
    if array.ndim == 3:
        if array.shape[-1] in (1, 2, 3, 4):
            pass  # HWC; preferred when both readings fit (e.g. a 3x5x3 array is 3 rows of RGB)
        elif array.shape[0] in (1, 2, 3, 4):
            array = np.moveaxis(array, 0, -1)
        else:
            raise ValueError(
                f"Expected an HWC or CHW image array with 1-4 channels, got shape {tuple(array.shape)}"
            )
        if array.shape[-1] == 1:
            array = array[..., 0]
    elif array.ndim != 2:
        raise ValueError(f"Expected a 2-D (HW) or 3-D (HWC/CHW) image array, got shape {tuple(array.shape)}")

    if np.issubdtype(array.dtype, np.floating):
        if array.size and not (0.0 <= float(array.min()) and float(array.max()) <= 1.0):  # NaN fails too
            raise ValueError(
                f"Float image arrays must hold values in [0, 1], got range [{array.min()}, {array.max()}]"
            )
        # Rounding (not torchvision's truncation) makes uint8/255 floats round-trip exactly.
        array = np.rint(array * 255.0).astype(np.uint8)
    elif array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.integer) or array.size and (array.min() < 0 or array.max() > 255):
            raise ValueError(
                f"Image arrays must be uint8, or integers in 0..255, or floats in [0, 1]; got dtype {array.dtype}"
            )
        array = array.astype(np.uint8)
    # PIL infers L / LA / RGB / RGBA from a uint8 HW or HWC array.
    return Image.fromarray(np.ascontiguousarray(array))


def to_pil_image(image: Any, timeout: float = DEFAULT_URL_TIMEOUT) -> Image.Image:
    """Any single-image input (path, URL, bytes, PIL, numpy HWC/CHW, mindspore Tensor) -> PIL."""
    if hasattr(image, "asnumpy"):  # a mindspore Tensor, recognised without importing mindspore
        image = image.asnumpy()
    if isinstance(image, np.ndarray) and not (image.ndim == 1 and image.dtype == np.uint8):
        return _array_to_pil(image)
    return load_image(image, timeout=timeout)


# ---------------------------------------------------------------------------------- pixel math
def _resize_shorter_side(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    # torchvision: the long side is truncated, computed exactly as int(size * long / short).
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
    if (new_w, new_h) == (width, height):
        return image
    return image.resize((new_w, new_h), Image.BICUBIC)


def _center_crop(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    # Python's round() (half to even) is what torchvision uses; after a shorter-side resize to
    # `size` the image is never smaller than the crop, so no padding is needed.
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


class _Normalizer:
    """uint8 RGB HWC -> float32 CHW ``(x / 255 - mean) / std`` via a per-channel lookup table.

    The table is computed with the reference's float32 operations (divide by 255, subtract,
    divide), so the result is bit-identical to ToTensor + Normalize, and a gather is cheaper than
    three passes of float arithmetic over the image.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std need 3 values (RGB), got mean={mean!r}, std={std!r}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std values must be positive, got {std!r}")
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        levels = np.arange(256, dtype=np.float32) / np.float32(255)
        self.table = (levels[None, :] - np.asarray(self.mean, np.float32)[:, None]) / np.asarray(
            self.std, np.float32
        )[:, None]

    def __call__(self, rgb: Image.Image) -> np.ndarray:
        pixels = np.asarray(rgb, dtype=np.uint8)
        return np.stack([self.table[c][pixels[..., c]] for c in range(3)])


def _finish(image: Image.Image, normalizer: _Normalizer) -> np.ndarray:
    # RGB conversion after resize/crop, as in OpenAI's and open_clip's pipelines.
    return normalizer(image.convert("RGB"))


RESIZE_MODES = ("crop", "squash")


def _squash(image: Image.Image, size: int) -> Image.Image:
    # Chinese-CLIP's Resize((R, R), BICUBIC): torchvision calls PIL's resize with the two-value size, which
    # returns a copy when the size already matches; the aspect ratio is not kept and nothing is cropped.
    return image.resize((size, size), Image.BICUBIC)


# ------------------------------------------------------------- torchvision's tensor resize (HF's example)
# HF's contrastive-image-text example (run_clip.py ``Transform``) decodes to an RGB uint8 tensor, then
# ``Resize([n], bicubic)`` on the tensor: torch's antialiased bicubic (Keys a = -0.5, support widened by the
# downscale factor, weights normalised) in float32, width then height, clamped and rounded half-to-even to uint8.
# PIL's bicubic (fixed-point, rounded to uint8 between its two passes) differs from it by up to ~9 levels, so
# this is a numpy re-statement of torch's kernel, with its float32/float64 evaluation order.
BACKENDS = ("pil", "torchvision")


def _fma(a: np.ndarray, b: Any, c: Any) -> np.ndarray:
    """float32 ``a * b + c`` rounded once, as a fused multiply-add: torch's CPU kernels are compiled with FMA
    contraction (AVX2/AVX-512 builds), which moves ~1 in 10^5 output pixels by one level when left out. The float32
    product is exact in float64, so one float64 addition and the float32 cast round (almost always) as FMA does."""
    return (np.asarray(a, np.float64) * np.asarray(b, np.float64) + np.asarray(c, np.float64)).astype(np.float32)


def _cubic_aa_filter(x: np.ndarray) -> np.ndarray:
    # torch's aa_filter for bicubic (Keys, a = -0.5): ((a+2)x - (a+3))x*x + 1 for |x| < 1,
    # ((ax - 5a)x + 8a)x - 4a for |x| < 2, evaluated in float32 with the compiler's fused multiply-adds.
    a = np.float32(-0.5)
    x = np.abs(x).astype(np.float32)
    near = _fma((_fma(x, a + np.float32(2), -(a + np.float32(3))) * x).astype(np.float32), x, np.float32(1))
    far = _fma(_fma(_fma(x, a, -(np.float32(5) * a)), x, np.float32(8) * a), x, -(np.float32(4) * a))
    return np.where(x < 1, near, np.where(x < 2, far, np.float32(0))).astype(np.float32)


def _aa_weights(in_size: int, out_size: int) -> Tuple[np.ndarray, np.ndarray]:
    """(source indices [out, K], float32 weights [out, K]) of torch's antialiased bicubic along one axis."""
    scale = np.float32(in_size) / np.float32(out_size)  # float32, as torch's area_pixel_compute_scale<float>
    support = np.float32(2.0 * np.float64(scale)) if scale >= 1 else np.float32(2.0)
    invscale = np.float32(1.0 / np.float64(scale)) if scale >= 1 else np.float32(1.0)
    width = int(np.ceil(np.float64(support))) * 2 + 1
    center = (np.float64(scale) * (np.arange(out_size, dtype=np.float64) + 0.5)).astype(np.float32)
    # C++ promotes 'float +- float + 0.5' to double after the float subtraction; the cast truncates.
    xmin = np.maximum(np.trunc((center - support).astype(np.float64) + 0.5), 0).astype(np.int64)
    xmax = np.minimum(np.trunc((center + support).astype(np.float64) + 0.5).astype(np.int64), in_size)
    xsize = np.clip(xmax - xmin, 0, width)
    taps = np.arange(width)
    offset = (taps[None, :] + xmin[:, None]).astype(np.float32) - center[:, None]
    weights = _cubic_aa_filter(((offset.astype(np.float64) + 0.5) * np.float64(invscale)).astype(np.float32))
    weights = np.where(taps[None, :] < xsize[:, None], weights, np.float32(0))
    total = np.zeros(out_size, np.float32)
    for k in range(width):  # torch sums the taps one by one in float32
        total = (total + weights[:, k]).astype(np.float32)
    weights = (weights / np.where(total == 0, np.float32(1), total)[:, None]).astype(np.float32)
    return np.minimum(xmin[:, None] + taps[None, :], in_size - 1), weights


def _resize_axis(values: np.ndarray, out_size: int, axis: int) -> np.ndarray:
    if values.shape[axis] == out_size:  # torch skips an axis whose size does not change
        return values
    index, weights = _aa_weights(values.shape[axis], out_size)
    moved = np.ascontiguousarray(np.moveaxis(values, axis, 0))
    wide = moved.astype(np.float64)  # float32 values are exact in float64: one conversion, not one per tap
    shape = (-1,) + (1,) * (moved.ndim - 1)
    out = (moved[index[:, 0]] * weights[:, 0].reshape(shape)).astype(np.float32)
    nonzero = np.nonzero((weights != 0).any(axis=0))[0]
    taps = int(nonzero[-1]) + 1 if nonzero.size else 1  # trailing all-zero taps change nothing
    for k in range(1, taps):  # torch: output += t * w tap by tap, fused (zero-weight taps add nothing)
        out = (wide[index[:, k]] * weights[:, k].astype(np.float64).reshape(shape) + out).astype(np.float32)
    return np.moveaxis(out, 0, axis)


def _resize_shorter_side_torchvision(rgb: np.ndarray, size: int) -> np.ndarray:
    """uint8 HWC -> uint8 HWC with the short side ``size`` (torchvision's output size rule, as ``_resize_shorter_side``)."""
    height, width = rgb.shape[:2]
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
    values = _resize_axis(_resize_axis(rgb.astype(np.float32), new_w, 1), new_h, 0)  # width first, as torch
    return np.rint(np.clip(values, 0, 255)).astype(np.uint8)


def _torchvision_transform(image: Any, size: int, normalizer: _Normalizer) -> np.ndarray:
    # RGB first (read_image(..., ImageReadMode.RGB) decodes to RGB), then resize, center crop, normalize.
    rgb = np.asarray(to_pil_image(image).convert("RGB"), dtype=np.uint8)
    resized = _resize_shorter_side_torchvision(rgb, size)
    top = int(round((resized.shape[0] - size) / 2.0))
    left = int(round((resized.shape[1] - size) / 2.0))
    return normalizer(resized[top: top + size, left: left + size])


def _eval_transform(image: Any, size: int, normalizer: _Normalizer, resize_mode: str = "crop",
                    backend: str = "pil") -> np.ndarray:
    if backend == "torchvision":
        return _torchvision_transform(image, size, normalizer)
    if resize_mode == "squash":
        return _finish(_squash(to_pil_image(image), size), normalizer)
    return _finish(_center_crop(_resize_shorter_side(to_pil_image(image), size), size), normalizer)


def _check_resize_mode(resize_mode: str) -> str:
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f"resize_mode must be one of {list(RESIZE_MODES)} ('crop': shorter side then center crop, "
                         f"OpenAI; 'squash': resize to R x R, Chinese-CLIP), got {resize_mode!r}")
    return resize_mode


_DEFAULT_NORMALIZER = _Normalizer(CLIP_MEAN, CLIP_STD)


def preprocess(
    image: Any,
    image_resolution: int = 224,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
    resize_mode: str = "crop",
) -> np.ndarray:
    """One image -> float32 ``[3, image_resolution, image_resolution]``, identical to the reference.

    ``resize_mode="crop"`` is OpenAI's / open_clip's transform; ``"squash"`` is Chinese-CLIP's
    (``cn_clip.clip.image_transform``: bicubic resize to R x R, no crop, then the same RGB/normalize).

    Accepts a path, URL, encoded bytes (also as a 1-D uint8 array, as ``mindspore.dataset``
    yields undecoded files), a PIL image, or a numpy HW / HWC / CHW array (uint8, or float in
    [0, 1]). Picklable and torch-free, so it can be used directly in ``dataset.map``.

    Example:
        >>> preprocess(np.zeros((480, 640, 3), np.uint8)).shape
        (3, 224, 224)
    """
    normalizer = _DEFAULT_NORMALIZER if (tuple(mean), tuple(std)) == (CLIP_MEAN, CLIP_STD) else _Normalizer(mean, std)
    return _eval_transform(image, image_resolution, normalizer, _check_resize_mode(resize_mode))


def _split_batch(images: Any) -> List[Any]:
    """A single image or a batch (list/tuple, 4-D array BHWC/BCHW, mindspore Tensor) -> list."""
    if hasattr(images, "asnumpy"):
        images = images.asnumpy()
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images)
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError("Expected at least one image, got an empty list")
        return list(images)
    return [images]


def _to_tensor_kind(batch: np.ndarray, return_tensors: Optional[str]) -> Any:
    if return_tensors == "np" or return_tensors is None:
        return batch
    if return_tensors == "ms":
        import mindspore as ms  # lazy: keep worker processes free of mindspore unless asked for

        return ms.Tensor(batch)
    raise ValueError(f"return_tensors must be 'ms' or 'np', got {return_tensors!r}")


IMAGE_PROCESSOR_CONFIG_FILE = "image_processor_config.json"
PROCESSOR_CONFIG_FILE = "processor_config.json"


def _read_saved(name_or_path: Union[str, os.PathLike], file_name: str) -> Optional[Dict[str, Any]]:
    """The JSON record ``save_pretrained`` wrote into a folder, or None when ``name_or_path`` is no such folder."""
    import json

    path = os.path.join(os.fspath(name_or_path), file_name)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return dict(json.load(f))


def _write_saved(directory: Union[str, os.PathLike], file_name: str, record: Dict[str, Any]) -> str:
    import json

    from ms_clip.fileio import atomic_write

    os.makedirs(os.fspath(directory), exist_ok=True)
    path = os.path.join(os.fspath(directory), file_name)
    with atomic_write(path) as f:
        f.write(json.dumps(record, indent=2) + "\n")
    return path


def _image_settings(spec: Any) -> Dict[str, Any]:
    """CLIPImageProcessor arguments for a model (a config, or a spec the registered catalog resolves)."""
    from ms_clip.tokenizer import resolve_model_config

    config = spec if hasattr(spec, "vision_config") else resolve_model_config(os.fspath(spec))
    squash = type(config).__name__ == "ChineseCLIPConfig"  # Chinese-CLIP resizes to R x R without a crop
    return {"image_resolution": int(config.vision_config.image_size), "resize_mode": "squash" if squash else "crop"}


def _saved_tokenizer(folder: str, kind: str) -> Any:
    if kind == "BertTokenizer":
        from ms_clip.bert_tokenizer import BertTokenizer

        return BertTokenizer.from_pretrained(folder)
    from ms_clip.tokenizer import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(folder)


class CLIPImageProcessor:
    """MindFormers' ``CLIPImageProcessor``: images -> float32 batch ``[B, 3, R, R]``.

    Args:
        image_resolution: output side R (224; 336 for ViT-L/14@336).
        mean / std: normalization constants (CLIP's by default).
        resize_mode: "crop" (shorter side to R, center crop: OpenAI) or "squash" (resize to R x R without
            cropping: Chinese-CLIP).
        backend: "pil" (OpenAI's / open_clip's PIL bicubic, RGB after the crop) or "torchvision" (HF's
            contrastive-image-text example, run_clip.py: RGB first, torch's antialiased bicubic on the tensor;
            the dual encoder's processor).

    Example:
        >>> proc = CLIPImageProcessor(224)
        >>> proc([np.zeros((32, 48, 3), np.uint8)] * 2, return_tensors="np").shape
        (2, 3, 224, 224)
    """

    def __init__(
        self,
        image_resolution: int = 224,
        mean: Sequence[float] = CLIP_MEAN,
        std: Sequence[float] = CLIP_STD,
        resize_mode: str = "crop",
        backend: str = "pil",
        **kwargs: Any,
    ) -> None:
        if backend not in BACKENDS or (backend == "torchvision" and resize_mode != "crop"):
            raise ValueError(f"backend must be 'pil' (OpenAI's PIL pipeline) or 'torchvision' (HF run_clip.py's tensor "
                             f"resize, with resize_mode 'crop'), got backend={backend!r}, resize_mode={resize_mode!r}")
        self.backend = backend
        if int(image_resolution) != image_resolution or image_resolution <= 0:
            raise ValueError(f"image_resolution must be a positive integer, got {image_resolution!r}")
        if kwargs:
            logger.debug("CLIPImageProcessor ignores unused arguments %s", sorted(kwargs))
        self.image_resolution = int(image_resolution)
        self._normalizer = _Normalizer(mean, std)
        self.mean, self.std = self._normalizer.mean, self._normalizer.std
        self.resize_mode = _check_resize_mode(resize_mode)

    def preprocess_one(self, image: Any) -> np.ndarray:
        """One image -> float32 ``[3, R, R]``."""
        return _eval_transform(image, self.image_resolution, self._normalizer, self.resize_mode, self.backend)

    # ------------------------------------------------------------------ MindFormers' pretrained surface
    def to_dict(self) -> Dict[str, Any]:
        return {"type": type(self).__name__, "image_resolution": self.image_resolution, "mean": list(self.mean),
                "std": list(self.std), "resize_mode": self.resize_mode, "backend": self.backend}

    @classmethod
    def from_pretrained(cls, name_or_path: Union[str, os.PathLike], **kwargs: Any) -> "CLIPImageProcessor":
        """From a ``save_pretrained`` folder, or the preprocessing of a model spec (registry name such as
        ``clip_vit_l_14@336``, model/run YAML, checkpoint): its image size, and Chinese-CLIP's square resize."""
        saved = _read_saved(name_or_path, IMAGE_PROCESSOR_CONFIG_FILE)
        if saved is not None:
            saved.pop("type", None)
            return cls(**{**saved, **kwargs})
        return cls(**{**_image_settings(name_or_path), **kwargs})

    def save_pretrained(self, save_directory: Union[str, os.PathLike], save_name: str = "") -> str:
        """Write ``image_processor_config.json`` into ``save_directory``; returns the folder. ``save_name`` is
        accepted for MindFormers' signature (the file name is fixed)."""
        _write_saved(save_directory, IMAGE_PROCESSOR_CONFIG_FILE, self.to_dict())
        return os.fspath(save_directory)

    @classmethod
    def get_support_list(cls) -> List[str]:
        from ms_clip.tokenizer import supported_models

        return supported_models()

    @classmethod
    def show_support_list(cls) -> None:
        logger.info("support list of %s is:\n%s", cls.__name__, cls.get_support_list())

    def __call__(self, images: Any, return_tensors: Optional[str] = "ms", **kwargs: Any) -> Any:
        """Preprocess one image or a batch (list, BHWC/BCHW array) into a 4-D float32 batch."""
        batch = np.stack([self.preprocess_one(image) for image in _split_batch(images)])
        return _to_tensor_kind(batch, return_tensors)

    preprocess = __call__


def image_processor_for(config: Any) -> CLIPImageProcessor:
    """The eval processor a model config asks for: its image size and its weights' ``preprocessing`` (mean/std
    and resize mode of the pretrained tag, e.g. 0.5/0.5 for ViT-L/14 laion2b_s32b_b82k or squash for DFN's
    ViT-H/14), OpenAI's when the config has none; a dual encoder's is HF run_clip.py's (``backend="torchvision"``)."""
    size = config.vision_config.image_size
    if type(config).__name__ == "VisionTextDualEncoderConfig":  # HF's example: run_clip.py's torchvision Transform
        return CLIPImageProcessor(image_resolution=size, backend="torchvision")
    pre = getattr(config, "preprocessing", None)
    if not pre:
        return CLIPImageProcessor(image_resolution=size)
    return CLIPImageProcessor(image_resolution=size, mean=pre["mean"], std=pre["std"], resize_mode=pre["resize_mode"])


# ------------------------------------------------------------------------------ train transform
def _uniform(rng: RandomGen, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def _randint(rng: RandomGen, low: int, high: int) -> int:
    """Integer in [low, high) from either numpy generator API."""
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(low, high))
    return int(rng.randint(low, high))


def random_resized_crop_params(
    width: int,
    height: int,
    rng: RandomGen,
    scale: Tuple[float, float] = (0.9, 1.0),
    ratio: Tuple[float, float] = (3 / 4, 4 / 3),
) -> Tuple[int, int, int, int]:
    """(top, left, height, width) of a random crop, by torchvision's RandomResizedCrop algorithm.

    Area fraction uniform in ``scale``, log aspect ratio uniform in ``log(ratio)``, up to 10
    tries, then a center crop clamped to ``ratio``.
    """
    area = width * height
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target_area = area * _uniform(rng, scale[0], scale[1])
        aspect = math.exp(_uniform(rng, log_low, log_high))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return _randint(rng, 0, height - h + 1), _randint(rng, 0, width - w + 1), h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


class CLIPTrainTransform:
    """open_clip's training transform: RandomResizedCrop (bicubic) -> RGB -> /255 -> normalize.

    Args:
        image_resolution: output side.
        scale / ratio: RandomResizedCrop ranges (open_clip: scale 0.9-1.0, ratio 3/4-4/3).
        seed: an int for a reproducible stream, a numpy ``Generator``/``RandomState`` to share one,
            or None for fresh entropy. With None the generator is created lazily in each process,
            so forked data-loader workers do not all replay the same crops; with an int, every
            worker that receives a copy replays the same stream (give each shard its own seed).
    """

    def __init__(
        self,
        image_resolution: int = 224,
        scale: Tuple[float, float] = (0.9, 1.0),
        ratio: Tuple[float, float] = (3 / 4, 4 / 3),
        mean: Sequence[float] = CLIP_MEAN,
        std: Sequence[float] = CLIP_STD,
        seed: Union[None, int, RandomGen] = None,
    ) -> None:
        if not (0 < scale[0] <= scale[1] <= 1.0):
            raise ValueError(f"scale must satisfy 0 < low <= high <= 1, got {scale!r}")
        if not (0 < ratio[0] <= ratio[1]):
            raise ValueError(f"ratio must satisfy 0 < low <= high, got {ratio!r}")
        self.image_resolution = int(image_resolution)
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        self._normalizer = _Normalizer(mean, std)
        self._seed = seed
        self._rng: Optional[RandomGen] = seed if isinstance(seed, (np.random.Generator, np.random.RandomState)) else None
        self._rng_pid: Optional[int] = os.getpid() if self._rng is not None else None

    @property
    def rng(self) -> RandomGen:
        if self._rng is None or (self._seed is None and self._rng_pid != os.getpid()):
            self._rng = np.random.default_rng(self._seed if isinstance(self._seed, int) else None)
            self._rng_pid = os.getpid()
        return self._rng

    def crop(self, image: Image.Image) -> Image.Image:
        """The random resized crop alone (PIL in, PIL out, mode kept)."""
        top, left, h, w = random_resized_crop_params(image.width, image.height, self.rng, self.scale, self.ratio)
        size = self.image_resolution
        # Crop first, then resize: PIL's resize(box=...) would read pixels outside the box for the
        # filter support and differ from torchvision's crop-then-resize.
        return image.crop((left, top, left + w, top + h)).resize((size, size), Image.BICUBIC)

    def __call__(self, image: Any) -> np.ndarray:
        return _finish(self.crop(to_pil_image(image)), self._normalizer)


def train_transform(image_resolution: int = 224, seed: Union[None, int, RandomGen] = None) -> CLIPTrainTransform:
    """open_clip's default training augmentation (scale 0.9-1.0) as a picklable callable."""
    return CLIPTrainTransform(image_resolution, seed=seed)


# ------------------------------------------------------------------------------ CLIPProcessor
class CLIPProcessor:
    """MindFormers' ``CLIPProcessor``: ``(image_input, text_input) -> {"image": ..., "text": ids}``.

    Example:
        >>> proc = CLIPProcessor(return_tensors="np")
        >>> out = proc(np.zeros((64, 64, 3), np.uint8), ["a cat", "a dog"])
        >>> out["image"].shape, out["text"].shape
        ((1, 3, 224, 224), (2, 77))
    """

    def __init__(
        self,
        image_processor: Optional[CLIPImageProcessor] = None,
        tokenizer: Any = None,
        max_length: Optional[int] = None,
        padding: Union[bool, str] = "max_length",
        return_tensors: Optional[str] = "ms",
    ) -> None:
        if tokenizer is None:
            from ms_clip.tokenizer import CLIPTokenizer  # lazy: processor.py stays importable alone

            tokenizer = CLIPTokenizer(pad_token="!")  # the YAMLs' pad: zeros, as OpenAI pads
        self.image_processor = image_processor if image_processor is not None else CLIPImageProcessor()
        self.tokenizer = tokenizer
        # None: the tokenizer's context length (77 for CLIP, 52 for Chinese-CLIP).
        if max_length is None:
            max_length = int(getattr(tokenizer, "model_max_length", 77) or 77)
        self.max_length, self.padding, self.return_tensors = max_length, padding, return_tensors

    # MindFormers' ProcessorMixin names for the parts.
    @property
    def feature_extractor(self) -> CLIPImageProcessor:
        return self.image_processor

    @classmethod
    def from_pretrained(cls, name_or_path: Union[str, os.PathLike], **kwargs: Any) -> "CLIPProcessor":
        """From a ``save_pretrained`` folder, or a model spec (registry name, model/run YAML, checkpoint): the
        model's image processor and tokenizer (CLIP's BPE, or Chinese-CLIP's WordPiece) at its context length."""
        saved = _read_saved(name_or_path, PROCESSOR_CONFIG_FILE)
        folder = os.fspath(name_or_path)
        if saved is not None:
            image_processor = CLIPImageProcessor.from_pretrained(folder)
            tokenizer = _saved_tokenizer(folder, saved.get("tokenizer", "CLIPTokenizer"))
            settings = {k: saved[k] for k in ("max_length", "padding", "return_tensors") if k in saved}
            return cls(image_processor, tokenizer, **{**settings, **kwargs})
        from ms_clip.tokenizer import CLIPTokenizer, resolve_model_config

        config = resolve_model_config(folder)
        image_processor = CLIPImageProcessor(**_image_settings(config))
        if type(config).__name__ == "ChineseCLIPConfig":
            from ms_clip.bert_tokenizer import BertTokenizer

            tokenizer: Any = BertTokenizer()
        else:
            tokenizer = CLIPTokenizer(pad_token="!", model_max_length=getattr(config, "context_length", 77))
        return cls(image_processor, tokenizer, **{"max_length": getattr(config, "context_length", None), **kwargs})

    def save_pretrained(self, save_directory: Union[str, os.PathLike], save_name: str = "") -> str:
        """Write ``processor_config.json``, the image processor's and the tokenizer's files into
        ``save_directory``; returns the folder. ``save_name`` is accepted for MindFormers' signature."""
        folder = os.fspath(save_directory)
        self.image_processor.save_pretrained(folder)
        if not hasattr(self.tokenizer, "save_pretrained"):
            raise MsClipError(f"CLIPProcessor.save_pretrained: the tokenizer {type(self.tokenizer).__name__} "
                              f"has no save_pretrained")
        self.tokenizer.save_pretrained(folder)
        _write_saved(folder, PROCESSOR_CONFIG_FILE, {"type": type(self).__name__,
                                                     "tokenizer": type(self.tokenizer).__name__,
                                                     "max_length": self.max_length, "padding": self.padding,
                                                     "return_tensors": self.return_tensors})
        return folder

    get_support_list = CLIPImageProcessor.get_support_list
    show_support_list = CLIPImageProcessor.show_support_list

    def __call__(self, image_input: Any = None, text_input: Any = None) -> Dict[str, Any]:
        if image_input is None and text_input is None:
            raise ValueError("CLIPProcessor needs image_input, text_input or both; got neither")
        output: Dict[str, Any] = {}
        if image_input is not None:
            output["image"] = self.image_processor(image_input, return_tensors=self.return_tensors)
        if text_input is not None:
            output["text"] = self.tokenizer(
                text_input, max_length=self.max_length, padding=self.padding, return_tensors=self.return_tensors
            )["input_ids"]
        return output


# ------------------------------------------------------------------------------ dual encoder
HF_PREPROCESSOR_CONFIG_FILE = "preprocessor_config.json"  # HF's image processor settings (image_mean, image_std)


class VisionTextDualEncoderProcessor:
    """HF's ``VisionTextDualEncoderProcessor``: the text tower's tokenizer + the vision tower's preprocessing.

    Images are preprocessed as HF's contrastive-image-text example does (``run_clip.py``'s ``Transform``: RGB,
    torchvision bicubic resize of the short side to the vision tower's image size, center crop, CLIP mean/std):
    ``CLIPImageProcessor(backend="torchvision")``. Texts go through the text tower's own tokenizer
    (``ms_clip.hf_tokenizer.HFTokenizer``) padded/truncated to ``max_length`` (the model's context length).

    Example:
        >>> proc = VisionTextDualEncoderProcessor.from_pretrained("clip-roberta")  # doctest: +SKIP
        >>> out = proc(text=["a cat"], images=[image])                            # doctest: +SKIP
        >>> sorted(out)                                                            # doctest: +SKIP
        ['attention_mask', 'input_ids', 'pixel_values']
    """

    def __init__(self, image_processor: Optional[CLIPImageProcessor] = None, tokenizer: Any = None,
                 max_length: Optional[int] = None) -> None:
        if tokenizer is None:
            raise ValueError("VisionTextDualEncoderProcessor needs the text tower's tokenizer "
                             "(ms_clip.hf_tokenizer.HFTokenizer.from_pretrained(folder))")
        self.image_processor = image_processor if image_processor is not None else \
            CLIPImageProcessor(224, backend="torchvision")
        self.tokenizer = tokenizer
        self.max_length = int(max_length or getattr(tokenizer, "model_max_length", 0) or 128)

    @classmethod
    def from_pretrained(cls, name_or_path: Union[str, os.PathLike], **kwargs: Any) -> "VisionTextDualEncoderProcessor":
        """From a dual encoder's folder (HF VisionTextDualEncoder folder, save_pretrained directory or ``.ckpt``):
        the tokenizer files there; the image size and context length of its model config; HF's
        ``preprocessor_config.json`` mean/std when present (run_clip.py normalises with them), else CLIP's."""
        import json

        from ms_clip.hf_tokenizer import HFTokenizer, tokenizer_folder

        folder = tokenizer_folder(name_or_path)
        try:
            from ms_clip.tokenizer import resolve_model_config

            config: Any = resolve_model_config(os.fspath(name_or_path))
        except MsClipError:
            config = None  # e.g. a folder with tokenizer and preprocessor files only
        context_length = getattr(config, "context_length", None)
        saved = _read_saved(folder, IMAGE_PROCESSOR_CONFIG_FILE)
        if saved is not None:
            image_processor = CLIPImageProcessor.from_pretrained(folder)
        else:
            settings: Dict[str, Any] = {"backend": "torchvision"}
            hf_path = os.path.join(folder, HF_PREPROCESSOR_CONFIG_FILE)
            hf: Dict[str, Any] = {}
            if os.path.isfile(hf_path):
                try:
                    with open(hf_path, encoding="utf-8") as f:
                        hf = dict(json.load(f))
                except (OSError, ValueError, TypeError) as exc:
                    raise MsClipError(f"{hf_path}: not a JSON object of image processor settings ({exc})") from None
            if "image_mean" in hf and "image_std" in hf:
                settings.update(mean=hf["image_mean"], std=hf["image_std"])
            if config is not None and hasattr(config, "vision_config"):
                settings["image_resolution"] = int(config.vision_config.image_size)  # run_clip.py's choice
            elif isinstance(hf.get("crop_size"), dict) and "height" in hf["crop_size"]:
                settings["image_resolution"] = int(hf["crop_size"]["height"])
            image_processor = CLIPImageProcessor(**settings)
        tokenizer = HFTokenizer.from_pretrained(folder, model_max_length=context_length)
        return cls(image_processor, tokenizer, **{"max_length": context_length, **kwargs})

    def save_pretrained(self, save_directory: Union[str, os.PathLike]) -> str:
        """The image processor's settings, the tokenizer's files and ``processor_config.json``; returns the folder."""
        folder = os.fspath(save_directory)
        self.image_processor.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        _write_saved(folder, PROCESSOR_CONFIG_FILE, {"type": type(self).__name__, "max_length": self.max_length})
        return folder

    def __call__(self, text: Any = None, images: Any = None, return_tensors: Optional[str] = "np",
                 padding: Union[bool, str] = "max_length", truncation: Union[bool, str] = True,
                 max_length: Optional[int] = None) -> Dict[str, Any]:
        """``{"input_ids", "attention_mask"}`` for ``text`` and/or ``{"pixel_values"}`` for ``images`` (HF's keys)."""
        if text is None and images is None:
            raise ValueError("VisionTextDualEncoderProcessor needs text, images or both; got neither")
        output: Dict[str, Any] = {}
        if text is not None:
            output.update(self.tokenizer(text, max_length=max_length or self.max_length, padding=padding,
                                         truncation=truncation, return_tensors=return_tensors))
        if images is not None:
            output["pixel_values"] = self.image_processor(images, return_tensors=return_tensors or "np")
        return output
