"""ms_clip.features: the one feature-encoding module (batched, compiled once per model, float32 arrays).

The model-surface tests use a small stand-in dual encoder that has nothing of CLIP but
``get_image_features`` / ``get_text_features``: encoding must work for any family that has them.
"""
import gc
import logging
import weakref

import numpy as np
import pytest

import mindspore as ms
from mindspore import nn, ops

from ms_clip import create_model
from ms_clip.features import (as_tokenizer, clip_tokenizer, encode_images, encode_texts, encode_token_ids,
                              image_encoder, l2_normalize, text_encoder)
from ms_clip.tokenizer import tokenize


class DualEncoder(nn.Cell):
    """Not a CLIP: a linear image tower on flattened pixels and a mean-of-embeddings text tower."""

    def __init__(self, width: int = 6):
        super().__init__()
        self.image_proj = nn.Dense(3 * 4 * 4, width)
        self.embedding = nn.Embedding(50, width)
        self.calls = {"image": 0, "text": 0}

    def get_image_features(self, pixel_values):
        return self.image_proj(pixel_values.reshape(pixel_values.shape[0], -1))

    def get_text_features(self, input_ids):
        return ops.mean(self.embedding(input_ids), 1)


@pytest.fixture(scope="module")
def dual():
    ms.set_seed(0)
    return DualEncoder()


@pytest.fixture(scope="module")
def clip():
    ms.set_seed(3)
    return create_model("clip_tiny")


def _pixels(n, seed=0, size=4):
    return np.random.default_rng(seed).standard_normal((n, 3, size, size)).astype(np.float32)


def test_any_model_with_the_two_methods_is_encoded(dual):
    pixels = _pixels(7)
    feats = encode_images(dual, pixels, batch_size=3)
    assert feats.dtype == np.float32 and feats.shape == (7, 6)
    expected = dual.get_image_features(ms.Tensor(pixels)).asnumpy()
    np.testing.assert_allclose(feats, expected, rtol=1e-5, atol=1e-6)

    ids = np.random.default_rng(1).integers(0, 50, (5, 9)).astype(np.int32)
    text = encode_token_ids(dual, ids, batch_size=2)
    assert text.dtype == np.float32 and text.shape == (5, 6)
    np.testing.assert_allclose(text, dual.get_text_features(ms.Tensor(ids)).asnumpy(), rtol=1e-5, atol=1e-6)


def test_array_and_batch_iterable_give_the_same_features(dual):
    pixels = _pixels(10, seed=2)
    batches = (pixels[i:i + 4] for i in range(0, 10, 4))  # a generator, as from a dataset iterator
    np.testing.assert_array_equal(encode_images(dual, pixels, batch_size=4), encode_images(dual, batches, 4))
    tensors = [ms.Tensor(pixels[i:i + 4]) for i in range(0, 10, 4)]  # mindspore Tensors are accepted too
    np.testing.assert_array_equal(encode_images(dual, pixels, batch_size=4), encode_images(dual, tensors, 4))


def test_normalize_gives_unit_rows_of_the_raw_features(dual):
    pixels = _pixels(5, seed=3)
    raw = encode_images(dual, pixels, 8)
    unit = encode_images(dual, pixels, 8, normalize=True)
    assert unit.dtype == np.float32
    np.testing.assert_array_equal(unit, l2_normalize(raw).astype(np.float32))
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-6)


def test_empty_inputs_give_empty_arrays(clip):
    width = clip.config.projection_dim
    assert encode_images(clip, [], 8).shape == (0, width)
    assert encode_texts(clip, []).shape == (0, width)


def test_bad_inputs_are_named(dual):
    with pytest.raises(ValueError, match="more than batch_size 2"):
        encode_images(dual, [_pixels(3)], 2)
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        encode_images(dual, _pixels(2)[0], 2)
    with pytest.raises(ValueError, match="integer array"):
        encode_token_ids(dual, np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="batch_size"):
        encode_token_ids(dual, np.zeros((2, 3), np.int32), batch_size=0)


def test_encoders_are_compiled_once_per_model_and_do_not_touch_its_parameters(clip):
    names = [p.name for p in clip.get_parameters()]
    assert image_encoder(clip) is image_encoder(clip) and text_encoder(clip) is text_encoder(clip)
    encode_texts(clip, ["a cat", "a dog"])
    assert [p.name for p in clip.get_parameters()] == names  # not registered as sub-cells of the model
    assert text_encoder(create_model("clip_tiny")) is not text_encoder(clip)


def test_a_dropped_model_is_freed_with_its_encoders():
    """The encoders live on the model: a module-level cache keyed by the model used to keep it alive."""
    model = DualEncoder()
    encode_images(model, _pixels(2), 2)
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


def test_text_encoding_uses_the_given_tokenizer(clip):
    texts = ["a photo of a cat.", "a diagram", "a dog"]
    default = encode_texts(clip, texts)
    np.testing.assert_array_equal(default, encode_token_ids(clip, tokenize(texts)))
    np.testing.assert_array_equal(default, encode_texts(clip, texts, clip_tokenizer(77)))
    seen = []

    def reversing(batch):
        seen.extend(batch)
        return tokenize([text[::-1] for text in batch])

    other = encode_texts(clip, texts, reversing)
    assert seen == texts and other.shape == default.shape
    np.testing.assert_array_equal(other, encode_token_ids(clip, tokenize([t[::-1] for t in texts])))


def test_as_tokenizer_accepts_objects_dicts_and_tensors():
    from ms_clip import CLIPTokenizer

    texts = ["a cat", "a photo of a dog."]
    expected = tokenize(texts)
    assert as_tokenizer(None)(texts).tolist() == expected.tolist()
    # MindFormers' YAMLs pad with "!" (id 0), as tokenize does.
    assert as_tokenizer(CLIPTokenizer(pad_token="!"), 77)(texts).tolist() == expected.tolist()
    assert as_tokenizer(CLIPTokenizer(pad_token="!"), 16)(texts).shape == (2, 16)
    assert as_tokenizer(lambda t: {"input_ids": tokenize(t).astype(np.int64)})(texts).dtype == np.int32
    assert as_tokenizer(lambda t: ms.Tensor(tokenize(t)))(texts).tolist() == expected.tolist()
    with pytest.raises(TypeError, match="callable"):
        as_tokenizer("clip")


def test_input_wait_is_measured_and_logged(dual, caplog):
    with caplog.at_level(logging.INFO, logger="ms_clip.features"):
        encode_images(dual, (b for b in [_pixels(2), _pixels(1)]), 2)
    records = [r for r in caplog.records if "waiting for input data" in r.msg]
    assert len(records) == 1 and "image tower" in records[0].getMessage()
    batches, wall, percent = records[0].args  # benchmarks/bench_input_pipeline.py reads these three
    assert batches == 2 and wall >= 0 and 0 <= percent <= 100
