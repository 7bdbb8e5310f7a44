"""Feature encoding: a model's image and text towers run over many inputs, in batches, compiled once.

This is the one place that turns pixels and token ids into features. Zero-shot classification
(``ms_clip.eval.zero_shot``), image<->text retrieval (``ms_clip.tasks.pretrain``) and the
``pipeline`` all encode through it. It sits above the models and below eval, tasks and pipelines.

Model surface. Only ``model.get_image_features(pixel_values)`` and
``model.get_text_features(input_ids)`` are called: the two methods every model family shares
(CLIP today; Chinese-CLIP and dual encoders with other text towers have the same ones), so any
of them can be encoded, evaluated and served without changes here.

Return types. ``encode_images`` and ``encode_token_ids`` / ``encode_texts`` return float32
numpy arrays ``[N, E]``: the raw projections by default, unit rows with ``normalize=True``
(normalised in float64, then cast). Callers that compute cosine scores in float64 (the
zero-shot classifier, retrieval metrics) take the raw features and use ``l2_normalize``.

Batching. A short batch is padded to the batch size (its last row repeated) and the padding rows
are dropped from the output, so GRAPH_MODE compiles one graph per tower and batch size instead
of another one for the last batch. CPU kernels may round a row differently in batches of
different sizes (by a float32 ulp), so padding is part of what defines the numbers; retrieval
keeps its unpadded image batches (``pad_last_batch=False``) to report exactly what it always did.

Compiled once per model. The encoder Cells are created on first use and kept on the model itself
(``image_encoder`` / ``text_encoder``); a module-level cache keyed by the model leaked models
through its values (each cell holds its model), while an attribute on the model is freed with it.

Input wait. Encoding loops measure the share of their wall time spent waiting for the next batch
(``ms_clip.data.timing.InputWaitMeter``) and log it: near 0 the model is the bottleneck, near 1
the data pipeline is.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Optional, Sequence, Union

import numpy as np
from mindspore import Tensor, nn

from ms_clip.data.timing import InputWaitMeter

logger = logging.getLogger(__name__)

__all__ = ["Tokenizer", "ImageEncoder", "TextEncoder", "image_encoder", "text_encoder", "clip_tokenizer",
           "as_tokenizer", "encode_images", "encode_token_ids", "encode_texts", "l2_normalize", "is_chinese_clip",
           "is_dual_encoder", "model_context_length", "tokenizer_for_model", "caption_tokenizer_for_model"]

# texts -> token ids, an int array [N, L]. L is fixed by the tokenizer (CLIP: its context length).
Tokenizer = Callable[[Sequence[str]], np.ndarray]
# One pixel batch [b, 3, H, W] (numpy or a mindspore Tensor).
PixelBatch = Any

_CELLS_ATTR = "_feature_encoders"


class ImageEncoder(nn.Cell):
    """``model.get_image_features`` as a Cell of its own, so GRAPH_MODE compiles the image tower alone.

    ``auto_prefix=False`` keeps the wrapped model's parameter names unchanged.
    """

    def __init__(self, model: nn.Cell):
        super().__init__(auto_prefix=False)
        self.model = model

    def construct(self, pixel_values):
        return self.model.get_image_features(pixel_values)


class TextEncoder(nn.Cell):
    """``model.get_text_features`` as a Cell of its own (see ``ImageEncoder``)."""

    def __init__(self, model: nn.Cell):
        super().__init__(auto_prefix=False)
        self.model = model

    def construct(self, input_ids):
        return self.model.get_text_features(input_ids)


def _cell(model: nn.Cell, kind: str) -> nn.Cell:
    """The model's encoder Cell of ``kind``, created once and kept on the model.

    ``object.__setattr__`` stores the dict without registering the encoders as sub-cells of the
    model (which would rename and duplicate its parameters); the cycle model -> encoder -> model
    is ordinary garbage for the collector once the model is dropped.
    """
    cells = model.__dict__.get(_CELLS_ATTR)
    if cells is None:
        cells = {}
        object.__setattr__(model, _CELLS_ATTR, cells)
    if kind not in cells:
        cells[kind] = ImageEncoder(model) if kind == "image" else TextEncoder(model)
    return cells[kind]


def image_encoder(model: nn.Cell) -> ImageEncoder:
    """The model's compiled image encoder (one per model, reused by every call)."""
    return _cell(model, "image")


def text_encoder(model: nn.Cell) -> TextEncoder:
    """The model's compiled text encoder (one per model, reused by every call)."""
    return _cell(model, "text")


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Unit rows in float64 (rows of norm 0 stay 0: the norm is floored at 1e-12)."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


def _width(model: nn.Cell) -> int:
    # Only needed to shape an empty result; every ms_clip model config has projection_dim.
    return int(getattr(getattr(model, "config", None), "projection_dim", 0) or 0)


def _run(encoder: nn.Cell, batches: Iterable[Any], batch_size: int, kind: str, width: int,
         pad: bool = True) -> np.ndarray:
    """Encode batches of at most ``batch_size`` rows; float32 [N, E]. Pads short batches if ``pad``
    (see the module docstring) and logs the share of the time spent waiting for input."""
    outs = []
    meter = InputWaitMeter(batches)
    for batch in meter:
        batch = batch.asnumpy() if hasattr(batch, "asnumpy") else np.asarray(batch)
        n = len(batch)
        if n > batch_size:
            raise ValueError(f"a {kind} batch has {n} rows, more than batch_size {batch_size}")
        if n == 0:
            continue
        if pad and n < batch_size:
            batch = np.concatenate([batch, np.repeat(batch[-1:], batch_size - n, axis=0)])
        outs.append(encoder(Tensor(batch)).asnumpy()[:n])
    if meter.items:
        # The arguments stay (batches, wall seconds, percent waiting): benchmarks/bench_input_pipeline.py reads them.
        logger.info("encoded %d batches in %.1f s; %.1f%% of it waiting for input data (" + kind + " tower)",
                    meter.items, meter.wall_seconds, 100 * meter.share)
    if not outs:
        return np.zeros((0, width), np.float32)
    return np.concatenate(outs).astype(np.float32)


def _finish(features: np.ndarray, normalize: bool) -> np.ndarray:
    return l2_normalize(features).astype(np.float32) if normalize else features


def encode_images(model: nn.Cell, pixels: Union[np.ndarray, Iterable[PixelBatch]], batch_size: int = 32, *,
                  normalize: bool = False, pad_last_batch: bool = True) -> np.ndarray:
    """Image features float32 [N, E] of ``model.get_image_features``.

    Args:
        model: any model with ``get_image_features(pixel_values)``.
        pixels: preprocessed images, either one float32 array [N, 3, H, W] (split into batches here)
            or an iterable of batches [b, 3, H, W] with b <= batch_size (numpy or Tensors, e.g. a
            generator over a ``mindspore.dataset`` iterator), in order.
        batch_size: rows per forward pass; shorter batches are padded to it. For an array input it
            is capped at N, so a few images do not pay for a large padded batch.
        normalize: return unit rows instead of the raw projections.
        pad_last_batch: pad short batches to ``batch_size`` (one compiled graph; see the module
            docstring for why this is a choice).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(pixels, np.ndarray):
        if pixels.ndim != 4:
            raise ValueError(f"pixels: expected an array [N, 3, H, W] or an iterable of such batches, got shape "
                             f"{list(pixels.shape)}")
        batch_size = max(1, min(batch_size, len(pixels)))
        pixels = [pixels[i:i + batch_size] for i in range(0, len(pixels), batch_size)]
    return _finish(_run(image_encoder(model), pixels, batch_size, "image", _width(model), pad_last_batch), normalize)


def encode_token_ids(model: nn.Cell, token_ids: np.ndarray, batch_size: int = 256, *, normalize: bool = False,
                     progress: Optional[str] = None) -> np.ndarray:
    """Text features float32 [N, E] of ``model.get_text_features`` for token ids int [N, L].

    ``batch_size`` is capped at N (one graph for a handful of prompts); ``progress``: a tqdm
    description to show a progress bar over the batches, or None for none.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    token_ids = np.asarray(token_ids)
    if token_ids.ndim != 2 or not np.issubdtype(token_ids.dtype, np.integer):
        raise ValueError(f"token_ids: expected an integer array [N, L], got {token_ids.dtype} "
                         f"{list(token_ids.shape)}")
    # Token ids enter the graph as int32 whatever the tokenizer returned (open_clip gives int64).
    token_ids = token_ids.astype(np.int32, copy=False)
    batch_size = max(1, min(batch_size, len(token_ids)))
    chunks: Iterable[np.ndarray] = [token_ids[i:i + batch_size] for i in range(0, len(token_ids), batch_size)]
    if progress is not None:
        from tqdm import tqdm

        chunks = tqdm(chunks, desc=progress, unit="batch")
    return _finish(_run(text_encoder(model), chunks, batch_size, "text", _width(model)), normalize)


def clip_tokenizer(context_length: int = 77) -> Tokenizer:
    """CLIP's BPE tokenizer (``ms_clip.tokenizer.tokenize``) as a ``Tokenizer``: int32 [N, context_length]."""
    from ms_clip.tokenizer import tokenize

    def tokenizer(texts: Sequence[str]) -> np.ndarray:
        return tokenize(list(texts), context_length=context_length)

    return tokenizer


def as_tokenizer(tokenizer: Any = None, context_length: int = 77) -> Tokenizer:
    """Any supported tokenizer as a ``Tokenizer`` (texts -> int32 [N, L]).

    Accepted: None (CLIP's tokenizer at ``context_length``); a MindFormers-style tokenizer object
    such as ``ms_clip.CLIPTokenizer`` (called with ``max_length=context_length``, padded and
    truncated, its ``input_ids`` taken); or any callable ``texts -> ids`` returning a numpy array,
    a torch or mindspore tensor, or a dict with ``input_ids`` (e.g. open_clip's tokenizer).
    """
    if tokenizer is None:
        return clip_tokenizer(context_length)
    if not callable(tokenizer):
        raise TypeError(f"tokenizer must be callable (texts -> token ids), got {type(tokenizer).__name__}")

    def call(texts: Sequence[str]) -> np.ndarray:
        if hasattr(tokenizer, "encode_text"):  # ms_clip.CLIPTokenizer: MindFormers' keyword interface
            ids = tokenizer(list(texts), max_length=context_length, padding="max_length", truncation=True,
                            return_tensors="np")["input_ids"]
        else:
            ids = tokenizer(list(texts))
            if isinstance(ids, dict):
                ids = ids["input_ids"]
        if hasattr(ids, "asnumpy"):  # mindspore.Tensor
            ids = ids.asnumpy()
        elif hasattr(ids, "numpy") and not isinstance(ids, np.ndarray):  # torch.Tensor
            ids = ids.numpy()
        return np.asarray(ids, dtype=np.int32)

    return call


def encode_texts(model: nn.Cell, texts: Sequence[str], tokenizer: Optional[Tokenizer] = None, batch_size: int = 256,
                 *, normalize: bool = False, progress: Optional[str] = None) -> np.ndarray:
    """Text features float32 [N, E] of ``texts``: ``encode_token_ids(model, tokenizer(texts), ...)``.

    ``tokenizer``: texts -> int array [N, L]; default the model's own (``tokenizer_for_model``: CLIP's
    BPE at the model's context length, Chinese-CLIP's WordPiece). Wrap other tokenizers with ``as_tokenizer``.
    """
    texts = list(texts)
    if not texts:
        return np.zeros((0, _width(model)), np.float32)
    tokenizer = tokenizer or tokenizer_for_model(model)
    return encode_token_ids(model, tokenizer(texts), batch_size, normalize=normalize, progress=progress)


def is_chinese_clip(model_or_config: Any) -> bool:
    """Whether a model (or its config) is a Chinese-CLIP (BERT text tower, WordPiece tokenizer, squash resize)."""
    config = getattr(model_or_config, "config", model_or_config)
    try:
        from ms_clip.models.chinese_clip import ChineseCLIPConfig
    except ImportError:  # a build without the Chinese-CLIP family
        return False
    return isinstance(config, ChineseCLIPConfig)


def is_dual_encoder(model_or_config: Any) -> bool:
    """Whether a model (or its config) is a vision-text dual encoder (its text tower's own HF tokenizer)."""
    config = getattr(model_or_config, "config", model_or_config)
    return type(config).__name__ == "VisionTextDualEncoderConfig"


def model_context_length(model: nn.Cell, default: int = 77) -> int:
    """Token ids per text the model takes: ``config.context_length`` (Chinese-CLIP), else the text tower's
    ``max_position_embeddings`` (CLIP), else ``model.context_length``, else ``default``."""
    config = getattr(model, "config", None)
    for value in (getattr(config, "context_length", None),
                  getattr(getattr(config, "text_config", None), "max_position_embeddings", None),
                  getattr(model, "context_length", None)):
        if isinstance(value, int) and value > 0:
            return value
    return default


def tokenizer_for_model(model: nn.Cell, context_length: Optional[int] = None) -> Tokenizer:
    """The model's own tokenizer as a ``Tokenizer`` (texts -> int32 [N, L]).

    CLIP: OpenAI's BPE at ``context_length`` (default: the model's). Dual encoder: its text tower's tokenizer
    from the model's folder (``ms_clip.get_tokenizer``; RoBERTa BPE / BERT WordPiece). Chinese-CLIP: its WordPiece
    tokenizer (``ms_clip.get_tokenizer`` on the model's config) after Chinese-CLIP's text normalisation
    (lower case, curly quotes to '"': ``ms_clip.data.chinese_clip.preprocess_text``), which its
    training, retrieval and zero-shot code all apply before tokenizing.
    """
    length = int(context_length or model_context_length(model))
    if is_dual_encoder(model):
        from ms_clip.loader import get_tokenizer

        # The text tower's tokenizer from the model's folder, padded and truncated to ``length`` as run_clip.py
        # tokenizes (its attention mask is ids != pad id, which the model derives itself).
        folder_tokenizer = get_tokenizer(model)

        def dual_tokenizer(texts: Sequence[str]) -> np.ndarray:
            return folder_tokenizer.batch_ids(list(texts), length)

        return dual_tokenizer
    if not is_chinese_clip(model):
        return clip_tokenizer(length)
    from ms_clip.data.chinese_clip import preprocess_text
    from ms_clip.loader import get_tokenizer

    base = get_tokenizer(model.config)
    if length != model_context_length(model):
        raise ValueError(f"context length {length} differs from the model's {model_context_length(model)}; "
                         f"Chinese-CLIP's position embeddings and tokenizer fix it")

    def tokenizer(texts: Sequence[str]) -> np.ndarray:
        return np.asarray(base([preprocess_text(str(t)) for t in texts]), dtype=np.int32)

    return tokenizer


def caption_tokenizer_for_model(model: nn.Cell, context_length: Optional[int] = None) -> Callable[..., np.ndarray]:
    """``tokenizer_for_model`` with ``tokenize``'s signature (``texts, context_length=...``), as the caption
    pipeline (``ms_clip.data.pipeline.CaptionSource``) calls it."""
    tokenizer = tokenizer_for_model(model, context_length)

    def tokenize(texts: Sequence[str], context_length: Optional[int] = None) -> np.ndarray:
        return tokenizer(list(texts))

    return tokenize
