"""Deployment: the image and text encoders as MindIR (or ONNX) graphs, with what a server needs beside them.

``export_mindir(model, output_dir, batch_size)`` writes::

    output_dir/
      image_encoder.mindir     pixels float32 [B, 3, R, R] -> image features float32 [B, E] (not normalised)
      text_encoder.mindir      token ids int32 [B, L]      -> text features float32 [B, E] (not normalised)
      preprocessor_config.json resize rule, R, mean/std, layout (what ms_clip's processor does)
      tokenizer_config.json    tokenizer kind, context length L, special ids, the vocabulary file's name
      bpe_simple_vocab_16e6.txt.gz | vocab.txt   the tokenizer's vocabulary (CLIP BPE / Chinese-CLIP WordPiece)
      deploy_config.json       batch size (null = dynamic), shapes, dtypes, logit scale, model config, sha256s

The features are ``get_image_features`` / ``get_text_features`` (the raw projections; cosine
similarity needs L2 normalisation, and logits ``exp(logit_scale) * cos``). ``DeployedModel`` loads
the folder back (``mindspore.load`` + ``nn.GraphCell``, or onnxruntime for ``.onnx``) and encodes.

Batch. ``batch_size`` fixes B in the graph; ``dynamic_batch=True`` exports B as a dynamic axis
(MindIR only: MindSpore 2.10's ONNX exporter refuses dynamic shapes, "Export ONNX format model not
support dynamic shape mode"). ``DeployedModel`` pads a short batch to a static B and drops the rows.

Resolution. ``image_size`` other than the model's re-samples the vision positional embedding
(bicubic over the patch grid, as open_clip's ``resize_pos_embed``): the graph then takes that
resolution, with features that are no longer the original model's.

Example:
    >>> from ms_clip.export import export_mindir, DeployedModel
    >>> export_mindir(CLIPModel.from_pretrained("clip_vit_b_32"), "deploy/b32", batch_size=8)
    >>> deployed = DeployedModel("deploy/b32")
    >>> deployed.encode_texts(["a photo of a cat"]).shape
    (1, 512)
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ms_clip.constants import CLIP_MEAN, CLIP_STD
from ms_clip.errors import MsClipError
from ms_clip.features import ImageEncoder, TextEncoder, is_chinese_clip, model_context_length
from ms_clip.fileio import sha256_file, write_json
from ms_clip.models import model_class_for
from ms_clip.weights import assign_weights

logger = logging.getLogger(__name__)

__all__ = ["ExportError", "ExportResult", "export_mindir", "export_model", "export_onnx_via_torch", "DeployedModel",
           "FILE_FORMATS", "DEPLOY_CONFIG"]

FILE_FORMATS = {"MINDIR": ".mindir", "ONNX": ".onnx"}
DEPLOY_CONFIG = "deploy_config.json"
_ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")


class ExportError(MsClipError, ValueError):
    """A model cannot be exported as asked (or an export folder cannot be loaded); the message says why."""


@dataclass
class ExportResult:
    output_dir: str
    file_format: str  # "MINDIR" | "ONNX"
    batch_size: Optional[int]  # None: dynamic
    image_size: int
    context_length: int
    files: List[str] = field(default_factory=list)
    seconds: float = 0.0  # export wall time (both graphs)


def _require_onnx_runtime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ExportError("running an ONNX export needs onnxruntime (pip install 'ms_clip[deploy]')") from None
    return onnxruntime


# ----------------------------------------------------------------------------- resolution


def _resize_grid(pos: np.ndarray, new_grid: int) -> np.ndarray:
    """[1 + g*g, W] positional embedding -> [1 + n*n, W]: the class row kept, the grid re-sampled bicubically."""
    from PIL import Image

    old_grid = int(round((pos.shape[0] - 1) ** 0.5))
    grid = pos[1:].reshape(old_grid, old_grid, -1).astype(np.float32)
    # PIL's "F" images resample one float32 channel at a time, exactly in float32.
    channels = [np.asarray(Image.fromarray(grid[:, :, c], mode="F").resize((new_grid, new_grid), Image.BICUBIC))
                for c in range(grid.shape[-1])]
    resized = np.stack(channels, axis=-1).reshape(new_grid * new_grid, -1)
    return np.concatenate([pos[:1], resized.astype(pos.dtype)], axis=0)


def _at_resolution(model: Any, image_size: int) -> Any:
    """``model`` itself, or a copy whose vision tower takes ``image_size`` pixels (positional embedding re-sampled)."""
    config = model.config
    vision = config.vision_config
    if image_size == vision.image_size:
        return model
    if not hasattr(vision, "patch_size"):
        raise ExportError(f"image_size {image_size}: only a ViT tower's position table can be re-sampled; this model's "
                          f"{type(vision).__name__} takes {vision.image_size} px")
    if image_size <= 0 or image_size % vision.patch_size:
        raise ExportError(f"image_size {image_size} must be a positive multiple of the patch size {vision.patch_size}")
    new_vision = type(vision).from_dict({**vision.to_dict(), "image_size": image_size}, "vision_config")
    new_config = type(config).from_dict({**config.to_dict(), "vision_config": new_vision.to_dict(),
                                         "checkpoint_name_or_path": ""}, "model config")
    tensors = {p.name: p.asnumpy() for p in model.get_parameters()}
    tensors["visual.positional_embedding"] = _resize_grid(tensors["visual.positional_embedding"],
                                                          image_size // vision.patch_size)
    resized = model_class_for(new_config)(new_config)
    assign_weights(resized, tensors, source="the re-sampled model")
    resized.set_train(False)
    logger.info("vision positional embedding re-sampled from %d to %d px", vision.image_size, image_size)
    return resized


# ----------------------------------------------------------------------------- side files


def _preprocessor_config(model: Any, image_size: int) -> Dict[str, Any]:
    chinese = is_chinese_clip(model)
    return {
        "image_size": image_size,
        # CLIP: shorter side to image_size (bicubic), centre crop (OpenAI). Chinese-CLIP: bicubic resize of
        # the whole image to image_size x image_size (cn_clip's transform).
        "resize": "squash" if chinese else "shortest_side_then_center_crop",
        "interpolation": "bicubic",
        "convert": "RGB",
        "rescale_factor": 1 / 255,
        "mean": list(CLIP_MEAN),
        "std": list(CLIP_STD),
        "layout": "NCHW",
        "dtype": "float32",
    }


def _tokenizer_files(model: Any, output_dir: str) -> Dict[str, Any]:
    length = model_context_length(model)
    if is_chinese_clip(model):
        vocab = "vocab.txt"
        shutil.copyfile(os.path.join(_ASSETS, "chinese_clip_vocab.txt"), os.path.join(output_dir, vocab))
        tc = model.config.text_config
        return {"type": "bert_wordpiece", "vocab_file": vocab, "context_length": length, "lower_case": True,
                "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token_id": tc.pad_token_id,
                "note": "Chinese-CLIP: [CLS] + WordPieces + [SEP], zero padded; texts lower-cased and curly quotes "
                        "replaced first (ms_clip.data.chinese_clip.preprocess_text)"}
    vocab = "bpe_simple_vocab_16e6.txt.gz"
    shutil.copyfile(os.path.join(_ASSETS, vocab), os.path.join(output_dir, vocab))
    return {"type": "clip_bpe", "vocab_file": vocab, "context_length": length,
            "sot_token": "<|startoftext|>", "eot_token": "<|endoftext|>", "sot_token_id": 49406,
            "eot_token_id": 49407, "pad_token_id": 0,
            "note": "OpenAI's simple_tokenizer: ftfy + whitespace clean + lower case, BPE, SOT + ids + EOT, zero "
                    "padded, truncated keeping EOT last (ms_clip.tokenizer.tokenize)"}


# ----------------------------------------------------------------------------- export


def export_mindir(model: Any, output_dir: str, batch_size: int, image_size: Optional[int] = None,
                  dynamic_batch: bool = False, file_format: str = "MINDIR") -> ExportResult:
    """Write the image and text encoders of ``model`` as MindIR (or ONNX) graphs plus their side files.

    Args:
        model: an ms_clip model (``CLIPModel`` / ``ChineseCLIPModel``) with its weights.
        output_dir: the folder to write (created; existing files of the same names are replaced).
        batch_size: B of both graphs (with ``dynamic_batch``: only the example shape traced).
        image_size: input resolution R; default the model's. Another value re-samples the positional embedding.
        dynamic_batch: export B as a dynamic axis (MindIR only).
        file_format: "MINDIR" or "ONNX".

    Returns:
        ExportResult with the written files and the export wall time.
    """
    import mindspore as ms

    file_format = file_format.upper()
    if file_format not in FILE_FORMATS:
        raise ExportError(f"file_format must be one of {list(FILE_FORMATS)}, got {file_format!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ExportError(f"batch_size must be a positive integer, got {batch_size!r}")
    if dynamic_batch and file_format == "ONNX":
        raise ExportError("MindSpore's ONNX exporter does not support dynamic shapes (\"Export ONNX format model not "
                          "support dynamic shape mode\"): export ONNX with a fixed batch_size, use MINDIR for a "
                          "dynamic batch, or export_onnx_via_torch (through the HF model, dynamic batch)")
    config = getattr(model, "config", None)
    if config is None or not hasattr(model, "get_image_features"):
        raise ExportError(f"expected an ms_clip model with a config, got {type(model).__name__}")
    image_size = int(image_size or config.vision_config.image_size)
    model.set_train(False)
    model = _at_resolution(model, image_size)
    length = model_context_length(model)
    os.makedirs(output_dir, exist_ok=True)

    batch = None if dynamic_batch else batch_size
    pixels = ms.Tensor(shape=[batch, 3, image_size, image_size], dtype=ms.float32) if dynamic_batch else \
        ms.Tensor(np.zeros((batch_size, 3, image_size, image_size), np.float32))
    ids = ms.Tensor(shape=[batch, length], dtype=ms.int32) if dynamic_batch else \
        ms.Tensor(_example_ids(batch_size, length, model))
    suffix = FILE_FORMATS[file_format]
    start = time.perf_counter()
    files = []
    for name, cell, example in (("image_encoder", ImageEncoder(model), pixels),
                                ("text_encoder", TextEncoder(model), ids)):
        path = os.path.join(output_dir, name)
        try:
            ms.export(cell, example, file_name=path, file_format=file_format)
        except (RuntimeError, ValueError, TypeError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ExportError(f"mindspore.export of the {name} as {file_format} failed: {first[:300]}") from None
        files.append(path + suffix)
    seconds = time.perf_counter() - start

    files += _side_files(model, output_dir, file_format, batch, image_size, files, exporter="mindspore.export")
    logger.info("exported %s encoders (batch %s, %d px, %d tokens) to %s in %.1f s", file_format,
                "dynamic" if batch is None else batch, image_size, length, output_dir, seconds)
    return ExportResult(output_dir, file_format, batch, image_size, length, files, seconds)


def _side_files(model: Any, output_dir: str, file_format: str, batch: Optional[int], image_size: int,
                graphs: List[str], exporter: str) -> List[str]:
    """preprocessor_config.json, tokenizer_config.json + vocabulary, deploy_config.json; returns their paths."""
    import mindspore

    config = model.config
    length = model_context_length(model)
    files = [write_json(os.path.join(output_dir, "preprocessor_config.json"), _preprocessor_config(model, image_size))]
    tokenizer = _tokenizer_files(model, output_dir)
    files.append(write_json(os.path.join(output_dir, "tokenizer_config.json"), tokenizer))
    files.append(os.path.join(output_dir, tokenizer["vocab_file"]))
    suffix = FILE_FORMATS[file_format]
    projection = int(config.projection_dim)
    deploy = {
        "format": file_format, "exporter": exporter, "batch_size": batch, "image_size": image_size,
        "context_length": length, "projection_dim": projection,
        "logit_scale": float(np.exp(model.logit_scale.asnumpy())),
        "image_encoder": {"file": "image_encoder" + suffix, "input": [batch, 3, image_size, image_size],
                          "input_dtype": "float32", "output": [batch, projection]},
        "text_encoder": {"file": "text_encoder" + suffix, "input": [batch, length], "input_dtype": "int32",
                         "output": [batch, projection]},
        "outputs": "unnormalised features (get_image_features / get_text_features); cosine = dot of L2-normalised rows",
        "model_type": type(config).__name__,
        "model_config": config.to_dict(),
        "mindspore_version": mindspore.__version__,
        "sha256": {os.path.basename(f): sha256_file(f) for f in graphs + files},
    }
    files.append(write_json(os.path.join(output_dir, DEPLOY_CONFIG), deploy))
    return files


def _example_ids(batch: int, length: int, model: Any) -> np.ndarray:
    # A well-formed row (start token, one word, end token), so tracing sees what inference sees.
    ids = np.zeros((batch, length), np.int32)
    if is_chinese_clip(model):
        ids[:, 0], ids[:, 1], ids[:, 2] = 101, 1000, 102  # [CLS] x [SEP] in BERT's Chinese vocabulary
    else:
        vocab = model.config.text_config.vocab_size
        ids[:, 0], ids[:, 1], ids[:, 2] = min(49406, vocab - 2), 1, min(49407, vocab - 1)
    return ids


def export_model(model: Any, output_dir: str, batch_size: int, image_size: Optional[int] = None,
                 dynamic_batch: bool = False, file_formats: Sequence[str] = ("MINDIR",)) -> List[ExportResult]:
    """``export_mindir`` once per format; ONNX graphs go to ``output_dir/onnx`` so each folder is self-contained."""
    results = []
    for fmt in file_formats:
        fmt = fmt.upper()
        target = output_dir if fmt == "MINDIR" or list(file_formats) == [fmt] else os.path.join(output_dir, fmt.lower())
        results.append(export_mindir(model, target, batch_size, image_size, dynamic_batch and fmt == "MINDIR", fmt))
    return results


def export_onnx_via_torch(model: Any, output_dir: str, opset_version: int = 17) -> ExportResult:
    """ONNX encoders with a dynamic batch axis, through the way back: ms_clip -> HF folder -> torch.onnx.export.

    MindSpore's ONNX exporter takes only fixed shapes; PyTorch's (TorchScript-based) exporter writes the
    batch axis as a symbol. The HF model is the one ``ms_clip.export_torch`` writes (the same weights,
    features ≤ 1e-4 from ours); its text input is int32 like ours, its outputs the same unnormalised
    features. Needs torch and transformers (``pip install 'ms_clip[torch-onnx]'``). The folder has the
    layout of ``export_mindir``'s, so ``DeployedModel`` loads it.
    """
    try:
        import torch
        import transformers
    except ImportError:
        raise ExportError("ONNX export through PyTorch needs torch and transformers "
                          "(pip install 'ms_clip[torch-onnx]')") from None
    import tempfile
    import warnings

    from ms_clip.export_torch import export_torch

    config = model.config
    image_size = int(config.vision_config.image_size)
    length = model_context_length(model)
    chinese = is_chinese_clip(model)
    os.makedirs(output_dir, exist_ok=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = export_torch(model, os.path.join(tmp, "hf"), fmt="hf")
        hf = getattr(transformers, result.hf_class).from_pretrained(os.path.join(tmp, "hf")).eval()

    class _Image(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, pixel_values):
            out = self.inner.get_image_features(pixel_values=pixel_values)
            return getattr(out, "pooler_output", out)  # transformers 5 returns an output object

    class _Text(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids):
            ids = input_ids.long()
            # Chinese-CLIP attends to the non-padding tokens only (cn_clip's text.ne(0)); HF's default is all.
            mask = (ids != 0).long() if chinese else None
            out = self.inner.get_text_features(input_ids=ids, attention_mask=mask)
            return getattr(out, "pooler_output", out)

    pixels = torch.zeros(2, 3, image_size, image_size)
    ids = torch.from_numpy(_example_ids(2, length, model))
    graphs = []
    for name, module, example, input_name in (("image_encoder", _Image(hf), pixels, "pixel_values"),
                                              ("text_encoder", _Text(hf), ids, "input_ids")):
        path = os.path.join(output_dir, name + ".onnx")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
            torch.onnx.export(module, (example,), path, input_names=[input_name], output_names=["features"],
                              dynamic_axes={input_name: {0: "batch"}, "features": {0: "batch"}},
                              opset_version=opset_version, dynamo=False)
        graphs.append(path)
    seconds = time.perf_counter() - start
    files = graphs + _side_files(model, output_dir, "ONNX", None, image_size, graphs,
                                 exporter=f"torch.onnx.export (torch {torch.__version__}) of HF {result.hf_class}")
    logger.info("exported ONNX encoders through PyTorch (dynamic batch) to %s in %.1f s", output_dir, seconds)
    return ExportResult(output_dir, "ONNX", None, image_size, length, files, seconds)


# ----------------------------------------------------------------------------- loading back


class DeployedModel:
    """An export folder loaded for inference: ``encode_images`` / ``encode_token_ids`` / ``encode_texts``.

    MindIR graphs run through ``mindspore.load`` + ``nn.GraphCell``; ONNX graphs through onnxruntime
    (``pip install 'ms_clip[deploy]'``). Inputs of any length are split into graph-sized batches;
    a short batch is padded (static graphs) and the padding rows dropped.
    """

    def __init__(self, output_dir: str):
        path = os.path.join(output_dir, DEPLOY_CONFIG)
        if not os.path.isfile(path):
            raise ExportError(f"{output_dir}: not an ms_clip export folder (no {DEPLOY_CONFIG})")
        self.output_dir = output_dir
        with open(path, "r", encoding="utf-8") as f:
            self.config: Dict[str, Any] = json.load(f)
        self.batch_size: Optional[int] = self.config["batch_size"]
        self.image_size: int = self.config["image_size"]
        self.context_length: int = self.config["context_length"]
        self.logit_scale: float = self.config["logit_scale"]
        self._run_image = self._runner(self.config["image_encoder"]["file"])
        self._run_text = self._runner(self.config["text_encoder"]["file"])
        self._tokenizer: Any = None

    def _runner(self, name: str):
        path = os.path.join(self.output_dir, name)
        if not os.path.isfile(path):
            raise ExportError(f"{path}: missing graph file of this export")
        if path.endswith(".onnx"):
            session = _require_onnx_runtime().InferenceSession(path, providers=["CPUExecutionProvider"])
            input_name = session.get_inputs()[0].name
            return lambda x: session.run(None, {input_name: x})[0]
        import mindspore as ms
        from mindspore import nn

        cell = nn.GraphCell(ms.load(path))
        return lambda x: cell(ms.Tensor(x)).asnumpy()

    def _batched(self, run, data: np.ndarray) -> np.ndarray:
        step = self.batch_size or max(len(data), 1)
        out = []
        for i in range(0, len(data), step):
            chunk = data[i:i + step]
            n = len(chunk)
            if self.batch_size and n < self.batch_size:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.batch_size - n, axis=0)])
            out.append(np.asarray(run(np.ascontiguousarray(chunk)))[:n])
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.config["projection_dim"]),
                                                                          np.float32)

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        """Preprocessed pixels float32 [N, 3, R, R] -> image features float32 [N, E]."""
        pixels = np.asarray(pixels, np.float32)
        if pixels.ndim != 4 or pixels.shape[1:] != (3, self.image_size, self.image_size):
            raise ExportError(f"pixels: expected [N, 3, {self.image_size}, {self.image_size}], got {list(pixels.shape)}")
        return self._batched(self._run_image, pixels)

    def encode_token_ids(self, ids: np.ndarray) -> np.ndarray:
        """Token ids int [N, L] -> text features float32 [N, E]."""
        ids = np.asarray(ids)
        if ids.ndim != 2 or ids.shape[1] != self.context_length:
            raise ExportError(f"token ids: expected [N, {self.context_length}], got {list(ids.shape)}")
        return self._batched(self._run_text, ids.astype(np.int32))

    def tokenize(self, texts: Sequence[str]) -> np.ndarray:
        """ms_clip's tokenizer for this export (CLIP BPE / Chinese-CLIP WordPiece) at its context length."""
        if self._tokenizer is None:
            from ms_clip.features import tokenizer_for_model
            from ms_clip.models import family_config_from_dict

            config = family_config_from_dict(self.config["model_config"], DEPLOY_CONFIG)
            holder = type("_ConfigOnly", (), {"config": config})()  # the tokenizer needs only the config
            self._tokenizer = tokenizer_for_model(holder, self.context_length)
        return self._tokenizer(list(texts))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode_token_ids(self.tokenize(texts))

    def preprocess(self, images: Sequence[Any]) -> np.ndarray:
        """Images (paths, PIL images, arrays) -> pixels [N, 3, R, R] by ms_clip's processor for this model."""
        if self.config["model_type"] == "ChineseCLIPConfig":
            from ms_clip.data.pipeline import ImageTransform
            from ms_clip.processor import load_image

            transform = ImageTransform(self.image_size, resize="squash")
            return np.stack([transform(load_image(image)) for image in images])
        from ms_clip.processor import CLIPImageProcessor

        return CLIPImageProcessor(self.image_size)(list(images), return_tensors="np")
