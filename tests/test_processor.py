"""ms_clip.processor against the reference preprocessing, pixel for pixel.

References: open_clip's ``image_transform(224, is_train=False)`` and OpenAI's ``clip._transform``
rebuilt from torchvision (Resize(n, BICUBIC) -> CenterCrop(n) -> RGB -> ToTensor -> Normalize),
applied to the same PIL image (with EXIF orientation applied, as ``load_image`` does).
Images: every photo/PNG shipped with the installed packages plus generated images of many sizes,
aspect ratios and modes. URLs are served by a real ``http.server`` on 127.0.0.1.
"""

from __future__ import annotations

import io
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from ms_clip.processor import (
    CLIP_MEAN,
    CLIP_STD,
    CLIPImageProcessor,
    CLIPProcessor,
    CLIPTrainTransform,
    ImageLoadError,
    load_image,
    preprocess,
    random_resized_crop_params,
    train_transform,
)
from ms_clip.tokenizer import tokenize

from _helpers_http import serve_directory

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")
T = pytest.importorskip("torchvision.transforms")
TF = pytest.importorskip("torchvision.transforms.functional")

TOLERANCE = 1e-6
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp"}
_max_error = {"value": 0.0, "images": 0}


def _openai_transform(n: int):
    return T.Compose([
        T.Resize(n, interpolation=T.InterpolationMode.BICUBIC),
        T.CenterCrop(n),
        lambda image: image.convert("RGB"),
        T.ToTensor(),
        T.Normalize(CLIP_MEAN, CLIP_STD),
    ])


REFERENCES = {"open_clip": open_clip.image_transform(224, is_train=False), "openai": _openai_transform(224)}


def assert_matches_reference(ours: np.ndarray, pil: Image.Image, size: int = 224) -> None:
    references = REFERENCES if size == 224 else {"openai": _openai_transform(size)}
    assert ours.dtype == np.float32 and ours.shape == (3, size, size)
    for name, transform in references.items():
        expected = transform(pil).numpy()
        error = float(np.abs(ours - expected).max())
        _max_error["value"] = max(_max_error["value"], error)
        assert error <= TOLERANCE, f"{name}: max abs error {error} for mode {pil.mode} size {pil.size}"
    _max_error["images"] += 1


@pytest.fixture(scope="module", autouse=True)
def report_max_error(pytestconfig):
    yield
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    message = f"[processor] max abs error vs reference over {_max_error['images']} images: {_max_error['value']:.3g}"
    with capture.global_and_fixture_disabled():  # shown even without -s
        print("\n" + message)


def _shipped_images():
    root = Path(sysconfig.get_paths()["purelib"])
    found = []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file() and path.stat().st_size < 8_000_000:
            try:
                with Image.open(path) as probe:
                    probe.load()
            except Exception:
                continue  # packages ship some deliberately broken files for their own tests
            found.append(path)
    return found


SHIPPED = _shipped_images()


def test_enough_real_photos_are_shipped():
    names = {p.name for p in SHIPPED}
    assert len(SHIPPED) >= 20, SHIPPED
    assert {"astronaut.png", "coffee.png", "grace_hopper.jpg"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_images_match_reference(path):
    pil = ImageOps.exif_transpose(Image.open(path))
    assert_matches_reference(preprocess(str(path)), pil)


def _generated(mode: str, width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth gradient plus noise (so resampling is non-trivial) in the given mode."""
    rng = np.random.default_rng(seed + width * 7 + height * 13)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255.0 / max(width - 1, 1), y * 255.0 / max(height - 1, 1), (x + y) % 256], -1)
    rgb = np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)
    image = Image.fromarray(rgb)
    if mode == "RGBA":
        alpha = rng.integers(0, 256, (height, width), dtype=np.uint8)
        image.putalpha(Image.fromarray(alpha))
        return image
    if mode == "LA":
        image = image.convert("L")
        image.putalpha(Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8)))
        return image
    if mode == "P":
        image = image.quantize(colors=64)
        image.info["transparency"] = 3
        return image
    if mode == "I;16":
        return Image.fromarray((rgb[..., 0].astype(np.uint16) * 257) // (1 + (seed % 3)))
    if mode == "I":
        return Image.fromarray(rgb[..., 1].astype(np.int32) - 20)
    if mode == "F":
        return Image.fromarray(rgb[..., 2].astype(np.float32) * 1.1 - 10.5)
    return image.convert(mode)


def _expected_8_bit(pil: Image.Image) -> Image.Image:
    """What a user expects from a high-bit-depth greyscale image, in 8 bits: 16-bit (I;16, and I holding
    16-bit values) maps 0..65535 onto 0..255 (v / 257); float maps [0, 1] onto 0..255, or is already on
    that scale if it exceeds 1 (clipped; NaN -> 0)."""
    values = np.asarray(pil).astype(np.float64)
    if pil.mode == "F":
        values = np.nan_to_num(values, nan=0.0)
        values = values * 255.0 if values.max() <= 1.0 else values
    else:
        values = np.clip(values, 0, 65535) / 257.0
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")


# (227, 224) and (224, 231): crop offsets 1.5 and 3.5, where torchvision's round-half-to-even
# differs from floor division.
SIZES = [(1, 1), (2, 3), (3, 2), (7, 300), (300, 7), (224, 224), (225, 224), (224, 225), (227, 224),
         (224, 231), (223, 223), (226, 226), (640, 480), (480, 640), (333, 1000), (1000, 333), (1920, 1080),
         (5000, 60)]
MODES = ["RGB", "RGBA", "P", "L", "LA", "I;16", "I", "F", "CMYK", "1", "YCbCr"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_generated_images_match_reference(mode, size):
    pil = _generated(mode, *size)
    assert pil.mode == mode
    # 16-bit and float images: the references' convert("RGB") clamps values at 255 (a 16-bit image turns
    # white); ours first scales the bit depth to 8 bits (issue 12, item 14) and is then bit-exact with the
    # references given that 8-bit image.
    assert_matches_reference(preprocess(pil), _expected_8_bit(pil) if mode in ("I;16", "I", "F") else pil)


def test_huge_image_matches_reference():
    pil = _generated("RGB", 6000, 4000)
    assert_matches_reference(preprocess(pil), pil)


@pytest.mark.parametrize("resolution", [336, 32])
def test_other_resolutions(resolution):
    pil = _generated("RGBA", 500, 281)
    assert_matches_reference(CLIPImageProcessor(resolution)(pil, return_tensors="np")[0], pil, size=resolution)


def _jpeg_with_orientation(path: Path, orientation: int) -> Image.Image:
    pil = _generated("RGB", 300, 180)
    exif = Image.Exif()
    exif[0x0112] = orientation
    pil.save(path, quality=95, exif=exif)
    return pil


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied(tmp_path, orientation):
    path = tmp_path / f"rotated_{orientation}.jpg"
    _jpeg_with_orientation(path, orientation)
    loaded = load_image(path)
    expected_size = (180, 300) if orientation in (6, 8) else (300, 180)
    assert loaded.size == expected_size
    transposed = ImageOps.exif_transpose(Image.open(path))
    ours = preprocess(path)
    assert_matches_reference(ours, transposed)
    raw = REFERENCES["openai"](Image.open(path)).numpy()
    assert np.abs(ours - raw).max() > 0.1  # orientation really changed the pixels


# ---------------------------------------------------------------------------------- input kinds
@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("served")
    _generated("RGB", 320, 200).save(folder / "photo.png")
    _generated("RGBA", 150, 260).save(folder / "alpha.png")
    _jpeg_with_orientation(folder / "rotated.jpg", 6)
    (folder / "notes.txt").write_text("this is not an image\n")
    return folder


@pytest.fixture(scope="module")
def http_base(image_dir):
    with serve_directory(str(image_dir)) as base:
        yield base


def test_all_input_kinds_agree(image_dir, http_base):
    path = image_dir / "photo.png"
    pil = Image.open(path)
    expected = REFERENCES["open_clip"](pil).numpy()
    hwc = np.asarray(pil)
    inputs = {
        "str path": str(path),
        "Path": path,
        "PIL": pil,
        "bytes": path.read_bytes(),
        "encoded uint8 1-D array": np.frombuffer(path.read_bytes(), np.uint8),
        "HWC uint8": hwc,
        "CHW uint8": hwc.transpose(2, 0, 1),
        "HWC float in [0,1]": hwc.astype(np.float32) / 255,
        "CHW float64": hwc.transpose(2, 0, 1) / 255.0,
        "HWC int64": hwc.astype(np.int64),
        "URL": f"{http_base}/photo.png",
    }
    for name, value in inputs.items():
        got = preprocess(value)
        assert np.abs(got - expected).max() <= TOLERANCE, name


def test_grayscale_arrays_agree():
    gray = np.asarray(_generated("L", 90, 130))
    expected = REFERENCES["open_clip"](Image.fromarray(gray)).numpy()
    for value in (gray, gray[..., None], gray[None], gray.astype(np.float32) / 255):
        assert np.abs(preprocess(value) - expected).max() <= TOLERANCE, value.shape


def test_batches_lists_and_return_tensors(image_dir, http_base):
    processor = CLIPImageProcessor()
    pils = [_generated("RGB", 200, 120, seed=s) for s in range(3)]
    expected = np.stack([REFERENCES["open_clip"](p).numpy() for p in pils])
    bhwc = np.stack([np.asarray(p) for p in pils])
    for batch in (pils, tuple(pils), bhwc, bhwc.transpose(0, 3, 1, 2), list(bhwc)):
        out = processor(batch, return_tensors="np")
        assert out.shape == (3, 3, 224, 224) and out.dtype == np.float32
        assert np.abs(out - expected).max() <= TOLERANCE

    import mindspore as ms

    as_ms = processor(pils, return_tensors="ms")
    assert isinstance(as_ms, ms.Tensor) and as_ms.dtype == ms.float32 and as_ms.shape == (3, 3, 224, 224)
    np.testing.assert_array_equal(as_ms.asnumpy(), processor(pils, return_tensors="np"))
    from_tensor = processor(ms.Tensor(bhwc), return_tensors="np")  # MindFormers accepts ms arrays
    assert np.abs(from_tensor - expected).max() <= TOLERANCE

    mixed = [str(image_dir / "alpha.png"), f"{http_base}/rotated.jpg", pils[0]]
    out = processor(mixed, return_tensors="np")
    assert out.shape == (3, 3, 224, 224)
    assert_matches_reference(out[0], Image.open(image_dir / "alpha.png"))
    assert_matches_reference(out[1], ImageOps.exif_transpose(Image.open(image_dir / "rotated.jpg")))
    single = processor(pils[0], return_tensors="np")
    assert single.shape == (1, 3, 224, 224)


def test_bad_array_inputs_are_explained():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        preprocess(np.full((10, 10, 3), 2.0, np.float32))
    with pytest.raises(ValueError, match="0, 1"):
        preprocess(np.full((10, 10, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"shape \(10, 10, 7\)"):
        preprocess(np.zeros((10, 10, 7), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        preprocess(np.full((10, 10), 300, np.int32))
    with pytest.raises(TypeError, match="int"):
        preprocess(12345)
    with pytest.raises(ValueError, match="empty"):
        CLIPImageProcessor()([])
    with pytest.raises(ValueError, match="return_tensors"):
        CLIPImageProcessor()(np.zeros((8, 8, 3), np.uint8), return_tensors="pt")


# ---------------------------------------------------------------------------------- load errors
def test_load_image_errors_name_the_file(tmp_path, image_dir, http_base):
    missing = tmp_path / "does_not_exist.jpg"
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    jpeg = io.BytesIO()
    _generated("RGB", 640, 480).save(jpeg, format="JPEG", quality=90)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    png = io.BytesIO()
    _generated("RGB", 64, 64).save(png, format="PNG")
    broken_png = tmp_path / "broken.png"  # valid header, damaged pixel stream
    data = bytearray(png.getvalue())
    data[100:140] = b"\x00" * 40
    broken_png.write_bytes(bytes(data))
    cases = {
        missing: "not found",
        corrupt: "not an image",
        truncated: "truncated",
        broken_png: "corrupt",
        image_dir / "notes.txt": "not an image",
        tmp_path: "directory",
        f"{http_base}/missing.png": "HTTP 404",
        f"{http_base}/notes.txt": "not an image",
        "http://127.0.0.1:9/unreachable.png": "Could not download",
    }
    for source, reason in cases.items():
        with pytest.raises(ImageLoadError) as info:
            load_image(source, timeout=5)
        message = str(info.value)
        assert str(source) in message and reason in message, message
        assert isinstance(info.value, ValueError)
    with pytest.raises(ImageLoadError, match="bytes of image data"):
        load_image(b"GIF89a-not-really")
    with pytest.raises(ImageLoadError, match=str(truncated)):
        preprocess(str(truncated))  # the processors surface the same error


# ---------------------------------------------------------------------------------- train transform
def _reference_train(pil: Image.Image, params, size: int = 224) -> np.ndarray:
    top, left, h, w = params
    cropped = TF.resized_crop(pil, top, left, h, w, [size, size], interpolation=T.InterpolationMode.BICUBIC)
    return T.Normalize(CLIP_MEAN, CLIP_STD)(TF.to_tensor(cropped.convert("RGB"))).numpy()


@pytest.mark.parametrize("mode,size", [("RGB", (640, 480)), ("RGBA", (300, 500)), ("P", (224, 224)), ("L", (97, 1203))])
def test_train_transform_matches_torchvision_crop(mode, size):
    pil = _generated(mode, *size)
    for seed in range(4):
        params = random_resized_crop_params(pil.width, pil.height, np.random.default_rng(seed))
        ours = CLIPTrainTransform(seed=np.random.default_rng(seed))(pil)
        expected = _reference_train(pil, params)
        assert np.abs(ours - expected).max() <= TOLERANCE


def test_train_transform_is_reproducible_and_random():
    pil = _generated("RGB", 400, 300)
    a = [train_transform(224, seed=7)(pil) for _ in range(2)]
    np.testing.assert_array_equal(a[0], a[1])
    stream = train_transform(224, seed=7)
    first, second = stream(pil), stream(pil)
    np.testing.assert_array_equal(first, a[0])
    assert np.abs(first - second).max() > 0  # the stream moves on
    legacy = CLIPTrainTransform(seed=np.random.RandomState(3))(pil)  # RandomState works too
    assert legacy.shape == (3, 224, 224) and legacy.dtype == np.float32
    assert CLIPTrainTransform(336, seed=1)(np.asarray(pil)).shape == (3, 336, 336)


def test_random_resized_crop_params_respect_scale_and_ratio():
    rng = np.random.default_rng(0)
    width, height = 1000, 800
    tops, lefts = set(), set()
    for _ in range(3000):
        top, left, h, w = random_resized_crop_params(width, height, rng)
        assert 0 <= top <= height - h and 0 <= left <= width - w
        # rounding each side to an integer moves the area by at most ~(w + h) / 2 pixels
        assert 0.9 * width * height - (w + h) <= w * h <= width * height
        assert 3 / 4 - 0.01 <= w / h <= 4 / 3 + 0.01
        tops.add(top)
        lefts.add(left)
    assert len(tops) > 20 and len(lefts) > 20
    # a very wide image can never fit the ratio: center-crop fallback clamped to 4/3
    assert random_resized_crop_params(2000, 100, np.random.default_rng(0)) == (0, 933, 100, 133)
    with pytest.raises(ValueError, match="scale"):
        CLIPTrainTransform(scale=(0.5, 1.5))


# ---------------------------------------------------------------------------------- CLIPProcessor
def test_clip_processor_outputs():
    pil = _generated("RGB", 256, 256)
    texts = ["a photo of a cat.", "a diagram"]
    processor = CLIPProcessor(return_tensors="np")
    out = processor(pil, texts)
    assert set(out) == {"image", "text"}
    np.testing.assert_array_equal(out["text"], tokenize(texts))
    assert np.abs(out["image"][0] - REFERENCES["open_clip"](pil).numpy()).max() <= TOLERANCE
    assert set(processor(text_input="a dog")) == {"text"}
    assert set(processor(image_input=[pil, pil])) == {"image"}

    import mindspore as ms

    as_ms = CLIPProcessor()(pil, texts)
    assert isinstance(as_ms["image"], ms.Tensor) and isinstance(as_ms["text"], ms.Tensor)
    assert as_ms["text"].shape == (2, 77)
    with pytest.raises(ValueError, match="neither"):
        processor()


def test_preprocess_inside_mindspore_dataset_map(image_dir):
    import mindspore.dataset as ds

    paths = [image_dir / "photo.png", image_dir / "alpha.png"]
    encoded = [np.frombuffer(p.read_bytes(), np.uint8) for p in paths]
    dataset = ds.GeneratorDataset(lambda: ((e,) for e in encoded), column_names=["image"], shuffle=False)
    dataset = dataset.map(operations=preprocess, input_columns=["image"])
    rows = [row["image"] for row in dataset.create_dict_iterator(output_numpy=True, num_epochs=1)]
    assert len(rows) == 2
    for row, path in zip(rows, paths):
        assert_matches_reference(row, Image.open(path))


# ------------------------------------------------------------------ high bit depth (issue 12, item 14)

# 16-bit values and what a user expects in 8 bits: the full range maps to the full range, v / 257
# rounded (PIL's own convert() clamps at 255 instead, so anything above 255 of 65535 became white).
_GREY16 = np.array([[0, 128, 129, 257, 1000], [32767, 32896, 40000, 65278, 65535]], np.uint16)
_GREY16_AS_8 = np.array([[0, 0, 1, 1, 4], [127, 128, 156, 254, 255]], np.uint8)


def test_16_bit_greyscale_png_is_scaled_not_white(tmp_path):
    assert np.array_equal(np.rint(_GREY16 / 257.0).astype(np.uint8), _GREY16_AS_8)
    path = tmp_path / "grey16.png"
    Image.fromarray(_GREY16).save(path)  # a real 16-bit PNG (PIL mode I;16)
    with Image.open(path) as raw:
        assert raw.mode == "I;16"
    image = load_image(str(path))
    rgb = np.asarray(image.convert("RGB"))
    np.testing.assert_array_equal(rgb, np.repeat(_GREY16_AS_8[..., None], 3, axis=-1))
    # the whole pipeline sees the scaled image, exactly as if the 8-bit version had been given
    expected = preprocess(Image.fromarray(_GREY16_AS_8, "L"), image_resolution=4)
    np.testing.assert_array_equal(preprocess(str(path), image_resolution=4), expected)
    np.testing.assert_array_equal(preprocess(path.read_bytes(), image_resolution=4), expected)


def test_32_bit_integer_images_are_read_as_16_bit():
    # PIL mode "I" is what 16-bit PNG/TIFF/PGM files gave in older Pillow versions
    image = load_image(Image.fromarray(_GREY16.astype(np.int32)))
    np.testing.assert_array_equal(np.asarray(image.convert("RGB"))[..., 0], _GREY16_AS_8)
    clipped = load_image(Image.fromarray(np.array([[-5, 70000]], np.int32)))
    np.testing.assert_array_equal(np.asarray(clipped), [[0, 255]])


def test_float_images_are_scaled():
    unit = np.array([[0.0, 0.25, 0.5, 1.0, 0.999]], np.float32)  # mode F holding [0, 1]: x 255
    image = load_image(Image.fromarray(unit))
    np.testing.assert_array_equal(np.asarray(image.convert("RGB"))[..., 0], [[0, 64, 128, 255, 255]])
    # mode F holding 0..255 (and out-of-range or NaN values): kept on that scale, clipped
    wide = np.array([[0.0, 12.4, 254.6, 300.0, -3.0, np.nan]], np.float32)
    np.testing.assert_array_equal(np.asarray(load_image(Image.fromarray(wide))), [[0, 12, 255, 255, 0, 0]])
