"""Convert PyTorch CLIP checkpoints into ms_clip ``.ckpt`` files (+ the config YAML beside them).

Accepted sources (the format is detected from the file, not trusted from the name):

* OpenAI's released ``.pt`` files (TorchScript zip archives, e.g. ``ViT-B-32.pt``);
* open_clip / OpenAI-style state dicts: ``.pt`` / ``.bin`` (read by ``ms_clip.torchfile`` without torch and
  without running any code in the file; torch only for the legacy non-zip format) or ``.safetensors``; ``module.`` prefixes and ``{"state_dict": ...}`` wrappers
  from training checkpoints are removed;
* Hugging Face ``CLIPModel`` folders (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``);
* Chinese-CLIP: ``cn_clip``'s released ``.pt`` files (``{"epoch", "step", "name", "state_dict":
  {"module.<name>": fp16 tensor}}``; ``bert.pooler.*`` is dropped as ``cn_clip`` drops it) and HF
  ``ChineseCLIPModel`` folders;
* HF ``VisionTextDualEncoderModel`` folders (``model_type`` "vision-text-dual-encoder": a CLIP vision tower +
  a BERT/RoBERTa text tower; transformers 4.x's ``vision_model.vision_model.*`` and 5.x's ``vision_model.*``);
* MindSpore ``.ckpt`` files with MindFormers' names (``gamma``/``beta``/``embedding_table``/``in_proj.weight``)
  or ms_clip's own names.

Our model's parameter names are the reference's state-dict keys (OpenAI's for CLIP, ``cn_clip``'s for
Chinese-CLIP), so every source is first brought to those names (one rename table per source family); the architecture is inferred from tensor shapes (as OpenAI's ``build_model`` does)
and the result is loaded *strictly* into a freshly built model, which raises on unused keys,
unfilled parameters and shape mismatches before anything is written.

Example:
    >>> from ms_clip.convert import convert_weight
    >>> result = convert_weight("ViT-B-32.pt", "clip_vit_b_32.ckpt")
    >>> result.sha256
"""
from __future__ import annotations

import collections
import json
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np

from ms_clip.errors import MsClipError
from ms_clip.fileio import sha256_file
from ms_clip.models import (BertConfig, ChineseCLIPConfig, CLIPConfig, CLIPTextConfig, CLIPVisionConfig,
                             VisionTextDualEncoderConfig, model_class_for)
from ms_clip.models.resnet import CLIPResNetVisionConfig
from ms_clip.models.base import StrictConfig
from ms_clip.models.dual_encoder import DUAL_ENCODER_CONTEXT_LENGTH
from ms_clip.registry import load_config, save_config
from ms_clip.safe_pickle import UnsafePickleError
from ms_clip.torchfile import TorchFileError, read_torch_checkpoint
from ms_clip.weights import WeightsError, assign_weights, read_checkpoint, save_weights

logger = logging.getLogger(__name__)

__all__ = ["ConvertError", "ConvertResult", "convert_weight", "read_source", "infer_config",
           "infer_chinese_clip_config", "infer_dual_encoder_config", "bert_config_from_hf", "config_from_open_clip",
           "sha256_file", "HF_DUAL_ENCODER_TYPE"]

# Entries in OpenAI's JIT archives that are not weights (build_model deletes them too).
_OPENAI_NON_WEIGHTS = ("input_resolution", "context_length", "vocab_size")
_HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class ConvertError(MsClipError, ValueError):
    """A source cannot be converted; the message names the file, the keys and what was expected."""


@dataclass
class SourceWeights:
    """A checkpoint read into memory: float32 numpy arrays under OpenAI names, plus provenance."""

    tensors: Dict[str, np.ndarray]
    dtypes: Dict[str, str]  # name -> source dtype ("float16", "bfloat16", ...)
    # "openai-torchscript" | "state-dict" | "hf" | "mindspore" | "cn-clip" | "hf-chinese-clip" | "hf-dual-encoder"
    fmt: str
    hf_config: Optional[Dict[str, Any]] = None
    dropped: List[str] = field(default_factory=list)


@dataclass
class ConvertResult:
    path: str  # the written .ckpt
    config_path: str  # the YAML beside it
    config: StrictConfig  # CLIPConfig or ChineseCLIPConfig
    sha256: str  # of the .ckpt
    source_format: str
    source_dtypes: Dict[str, int]  # source dtype -> number of tensors
    saved_dtypes: Dict[str, int]
    num_tensors: int
    dropped_keys: List[str]


# ----------------------------------------------------------------------------- readers


def _read_torch_file(path: str) -> Tuple[Dict[str, np.ndarray], Dict[str, str], str]:
    # OpenAI's TorchScript archives and torch.save zip files are read by ms_clip.torchfile: data.pkl
    # through a restricted unpickler (tensor storages from the zip, __torch__ modules as inert holders),
    # so no torch is needed and nothing in the file runs: no torch.jit.load (it runs an archive's
    # __setstate__ code), no unrestricted pickle. Only the legacy non-zip format still uses torch.load
    # (weights_only=True).
    try:
        return read_torch_checkpoint(path)
    except (TorchFileError, UnsafePickleError) as err:
        raise ConvertError(str(err)) from None


def _read_safetensors(path: str) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """Read a .safetensors file with numpy only (no torch); bf16 is widened to float32 by bit shifting."""
    from safetensors import safe_open

    tensors, dtypes = {}, {}
    try:
        with safe_open(path, framework="numpy") as f:
            names = list(f.keys())
            for name in names:
                dtype = f.get_slice(name).get_dtype()
                dtypes[name] = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}.get(
                    dtype, dtype.lower())
                if dtype != "BF16":
                    tensors[name] = f.get_tensor(name)
    except Exception as err:  # safetensors raises SafetensorError / OSError for bad headers
        raise ConvertError(f"{path}: not a valid .safetensors file ({err})") from None
    bf16 = [n for n, d in dtypes.items() if d == "bfloat16"]
    if bf16:
        tensors.update(_read_safetensors_bf16(path, bf16))
    return tensors, dtypes


def _read_safetensors_bf16(path: str, names: List[str]) -> Dict[str, np.ndarray]:
    # numpy has no bfloat16, so safetensors' numpy backend cannot return these tensors. The format is
    # an 8-byte little-endian header length, a JSON header with byte offsets, then raw data; a bf16
    # value is the upper half of a float32.
    with open(path, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(header_len))
        base = 8 + header_len
        out = {}
        for name in names:
            info = header[name]
            start, end = info["data_offsets"]
            f.seek(base + start)
            raw = np.frombuffer(f.read(end - start), dtype="<u2").astype(np.uint32) << 16
            out[name] = raw.view(np.float32).reshape(info["shape"])
    return out


def _read_mindspore(path: str) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    try:
        raw = read_checkpoint(path)
    except WeightsError as err:
        raise ConvertError(str(err)) from None
    tensors, dtypes = {}, {}
    for name, arr in raw.items():
        dtypes[name] = "bfloat16" if "bfloat16" in str(arr.dtype).lower() else str(arr.dtype)
        tensors[name] = arr.astype(np.float32) if dtypes[name] == "bfloat16" else arr
    return tensors, dtypes


def _hf_folder_files(path: str) -> Tuple[str, str]:
    config_path = os.path.join(path, "config.json")
    weights = [os.path.join(path, f) for f in _HF_WEIGHT_FILES if os.path.isfile(os.path.join(path, f))]
    if not os.path.isfile(config_path) or not weights:
        raise ConvertError(f"{path}: a directory source must be a Hugging Face CLIPModel or ChineseCLIPModel folder "
                           f"(or VisionTextDualEncoderModel) with config.json "
                           f"and one of {list(_HF_WEIGHT_FILES)}; found {sorted(os.listdir(path))}")
    return config_path, weights[0]


def read_source(path: str) -> SourceWeights:
    """Read any supported source into float32 numpy arrays under OpenAI/ms_clip parameter names."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ConvertError(f"source not found: {path}")
    hf_config = None
    if os.path.isdir(path):
        config_path, weights_path = _hf_folder_files(path)
        with open(config_path, "r", encoding="utf-8") as f:
            hf_config = json.load(f)
        if weights_path.endswith(".safetensors"):
            tensors, dtypes = _read_safetensors(weights_path)
        else:
            tensors, dtypes, _ = _read_torch_file(weights_path)
        fmt = "hf"
    elif path.endswith(".safetensors"):
        tensors, dtypes = _read_safetensors(path)
        fmt = "state-dict"
    elif path.endswith(".ckpt"):
        tensors, dtypes = _read_mindspore(path)
        fmt = "mindspore"
    elif path.endswith((".pt", ".pth", ".bin")):
        tensors, dtypes, fmt = _read_torch_file(path)
    else:
        raise ConvertError(f"{path}: unknown source format; expected an OpenAI/open_clip/Chinese-CLIP .pt/.pth/.bin, "
                           f"a .safetensors file, a MindSpore .ckpt or a Hugging Face CLIPModel/ChineseCLIPModel folder")
    if (fmt == "hf" and (hf_config or {}).get("model_type") == HF_DUAL_ENCODER_TYPE) or (
            fmt == "state-dict" and any(k.startswith(_HF_DUAL_VISION_PREFIX) for k in tensors)):
        fmt = "hf-dual-encoder"  # HF VisionTextDualEncoderModel (a bare state dict needs its config.json later)
    elif fmt in ("state-dict", "hf") and any(k.startswith(_HF_BERT_PREFIX) for k in tensors):
        fmt = "hf-chinese-clip"  # an HF ChineseCLIPModel (folder or bare state dict): a BERT text_model
    elif fmt == "state-dict" and any(k.startswith(("text_model.", "vision_model.")) for k in tensors):
        fmt = "hf"  # an HF state dict saved as a bare file; shapes still give the architecture
    elif fmt == "state-dict" and any(k.startswith("bert.") for k in tensors):
        fmt = "cn-clip"  # Chinese-CLIP's own checkpoint (module. prefix already removed by the reader)
    return _to_openai_names(tensors, dtypes, fmt, hf_config, path)


# ----------------------------------------------------------------------------- renaming

# HF CLIPModel -> OpenAI names, applied in order, first match wins (convert_clip_original_pytorch_to_hf.py
# in transformers is the inverse). q/k/v and the two projections need more than a rename; see _from_hf.
_HF_RENAMES: List[Tuple[str, str]] = [
    (r"^text_model\.embeddings\.token_embedding\.weight$", "token_embedding.weight"),
    (r"^text_model\.embeddings\.position_embedding\.weight$", "positional_embedding"),
    (r"^text_model\.encoder\.layers\.(\d+)\.", r"transformer.resblocks.\1."),
    (r"^text_model\.final_layer_norm\.", "ln_final."),
    (r"^vision_model\.embeddings\.class_embedding$", "visual.class_embedding"),
    (r"^vision_model\.embeddings\.patch_embedding\.weight$", "visual.conv1.weight"),
    (r"^vision_model\.embeddings\.position_embedding\.weight$", "visual.positional_embedding"),
    (r"^vision_model\.pre_layrnorm\.", "visual.ln_pre."),  # sic: HF's parameter name has this typo
    (r"^vision_model\.post_layernorm\.", "visual.ln_post."),
    (r"^vision_model\.encoder\.layers\.(\d+)\.", r"visual.transformer.resblocks.\1."),
    (r"^visual_projection\.weight$", "visual.proj"),  # nn.Linear [E, W] -> OpenAI Parameter [W, E]
    (r"^text_projection\.weight$", "text_projection"),
    (r"^logit_scale$", "logit_scale"),
]
_HF_BLOCK_RENAMES: List[Tuple[str, str]] = [
    (".self_attn.out_proj.", ".attn.out_proj."),
    (".layer_norm1.", ".ln_1."),
    (".layer_norm2.", ".ln_2."),
    (".mlp.fc1.", ".mlp.c_fc."),
    (".mlp.fc2.", ".mlp.c_proj."),
]
_HF_TRANSPOSED = ("visual.proj", "text_projection")
_HF_QKV = re.compile(r"^(.*)\.self_attn\.([qkv])_proj\.(weight|bias)$")

# MindFormers' MindSpore names -> OpenAI names (their convert_weight.py renamed the other way).
_MINDFORMERS_RENAMES: List[Tuple[str, str]] = [
    (r"\.gamma$", ".weight"),
    (r"\.beta$", ".bias"),
    (r"^token_embedding\.embedding_table$", "token_embedding.weight"),
    (r"\.in_proj\.(weight|bias)$", r".in_proj_\1"),
]


# Chinese-CLIP. cn_clip's own names are ours; its released files still carry the BERT pooler, which
# cn_clip drops on load (create_model: `if "bert.pooler" not in k`) because the CLS hidden state, not
# the pooler, is projected.
_CN_CLIP_DROPPED = re.compile(r"^bert\.pooler\.")
# HF ChineseCLIPModel -> cn_clip names. The vision side is HF CLIP's (_HF_RENAMES + q/k/v packing).
_HF_BERT_PREFIX = "text_model.embeddings.word_embeddings."
_HF_CHINESE_TEXT_RENAMES: List[Tuple[str, str]] = [
    (r"^text_model\.(embeddings|encoder)\.", r"bert.\1."),
]
# Index buffers some HF versions save (position_ids, token_type_ids) and the text pooler, which HF's
# ChineseCLIPModel does not have (add_pooling_layer=False) but older exports may carry.
_HF_CHINESE_DROPPED = re.compile(r"^text_model\.(embeddings\.(position_ids|token_type_ids)$|pooler\.)")


def _rename(name: str, rules: List[Tuple[str, str]]) -> Optional[str]:
    for pattern, repl in rules:
        new, n = re.subn(pattern, repl, name)
        if n:
            return new
    return None


def _from_hf(tensors: Dict[str, np.ndarray], dtypes: Dict[str, str], path: str):
    out, out_dtypes, dropped, unknown = {}, {}, [], []
    qkv: Dict[Tuple[str, str], Dict[str, np.ndarray]] = collections.defaultdict(dict)
    for name, arr in tensors.items():
        if name.endswith("position_ids"):  # a non-persistent index buffer in newer HF, saved by older versions
            dropped.append(name)
            continue
        new = _rename(name, _HF_RENAMES)
        if new is None:
            unknown.append(name)
            continue
        match = _HF_QKV.match(new)
        if match:
            prefix, which, kind = match.groups()
            qkv[(prefix, kind)][which] = arr
            out_dtypes[f"{prefix}.attn.in_proj_{kind}"] = dtypes[name]
            continue
        for old, repl in _HF_BLOCK_RENAMES:
            new = new.replace(old, repl)
        out[new] = arr.T if new in _HF_TRANSPOSED else arr
        out_dtypes[new] = dtypes[name]
    if unknown:
        raise ConvertError(f"{path}: {len(unknown)} keys are not part of an HF CLIPModel: {sorted(unknown)[:10]}")
    for (prefix, kind), parts in qkv.items():
        if sorted(parts) != ["k", "q", "v"]:
            raise ConvertError(f"{path}: {prefix}.self_attn has only {sorted(parts)} of q/k/v_proj.{kind}")
        # torch.nn.MultiheadAttention packs q, k, v along the output axis, in that order.
        out[f"{prefix}.attn.in_proj_{kind}"] = np.concatenate([parts["q"], parts["k"], parts["v"]], axis=0)
    return out, out_dtypes, dropped


def _from_hf_chinese_clip(tensors: Dict[str, np.ndarray], dtypes: Dict[str, str], path: str):
    """HF ChineseCLIPModel -> cn_clip names: text_model.* by its own table, the rest as HF CLIP."""
    out, out_dtypes, dropped, rest, rest_dtypes = {}, {}, [], {}, {}
    for name, arr in tensors.items():
        if _HF_CHINESE_DROPPED.match(name):
            dropped.append(name)
        elif name.startswith("text_model."):
            new = _rename(name, _HF_CHINESE_TEXT_RENAMES)
            if new is None:
                raise ConvertError(f"{path}: '{name}' is not part of an HF ChineseCLIPModel text model "
                                   f"(expected text_model.embeddings.* / text_model.encoder.*)")
            out[new], out_dtypes[new] = arr, dtypes[name]
        else:
            rest[name], rest_dtypes[name] = arr, dtypes[name]
    vision, vision_dtypes, vision_dropped = _from_hf(rest, rest_dtypes, path)
    out.update(vision)
    out_dtypes.update(vision_dtypes)
    return out, out_dtypes, dropped + vision_dropped


# HF VisionTextDualEncoderModel. Its text_model.* keys are HF BertModel/RobertaModel names, which are ours as
# they are (models/bert.py); the vision tower is HF's CLIPVisionModel: `vision_model.*` in transformers 5,
# `vision_model.vision_model.*` (the CLIPVisionModel wrapper's own prefix) in 4.x; the projections and
# logit_scale are HF CLIP's (_HF_RENAMES).
HF_DUAL_ENCODER_TYPE = "vision-text-dual-encoder"
_HF_DUAL_VISION_PREFIX = "vision_model.vision_model."
_HF_DUAL_TEXT_KEY = re.compile(
    r"^text_model\.(embeddings\.(word|position|token_type)_embeddings\.weight"
    r"|embeddings\.LayerNorm\.(weight|bias)"
    r"|encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense|attention\.output\.LayerNorm"
    r"|intermediate\.dense|output\.dense|output\.LayerNorm)\.(weight|bias)"
    r"|pooler\.dense\.(weight|bias))$")
# Index buffers that some HF versions save (transformers 4.x RoBERTa/BERT position_ids, token_type_ids).
_HF_DUAL_DROPPED = re.compile(r"^text_model\.embeddings\.(position_ids|token_type_ids)$"
                              r"|^vision_model\.(vision_model\.)?embeddings\.position_ids$")


def _from_hf_dual_encoder(tensors: Dict[str, np.ndarray], dtypes: Dict[str, str], path: str):
    """HF VisionTextDualEncoderModel -> ours: text_model.* unchanged, the vision side as HF CLIP's (strict)."""
    out, out_dtypes, dropped, rest, rest_dtypes, unknown = {}, {}, [], {}, {}, []
    for name, arr in tensors.items():
        if _HF_DUAL_DROPPED.match(name):
            dropped.append(name)
        elif name.startswith("text_model."):
            if not _HF_DUAL_TEXT_KEY.match(name):
                unknown.append(name)
            else:
                out[name], out_dtypes[name] = arr, dtypes[name]
        else:
            key = "vision_model." + name[len(_HF_DUAL_VISION_PREFIX):] if name.startswith(_HF_DUAL_VISION_PREFIX) \
                else name
            if _rename(key, _HF_RENAMES) is None:  # vision_model.*, the two projections, logit_scale
                unknown.append(name)
            else:
                rest[key], rest_dtypes[key] = arr, dtypes[name]
    if unknown:
        raise ConvertError(f"{path}: {len(unknown)} keys are not part of an HF VisionTextDualEncoderModel (CLIP vision "
                           f"tower + BERT/RoBERTa text tower): {sorted(unknown)[:10]}")
    vision, vision_dtypes, vision_dropped = _from_hf(rest, rest_dtypes, path)
    out.update(vision)
    out_dtypes.update(vision_dtypes)
    return out, out_dtypes, dropped + vision_dropped


def _to_openai_names(tensors, dtypes, fmt: str, hf_config, path: str) -> SourceWeights:
    dropped: List[str] = []
    if fmt == "hf-dual-encoder":
        tensors, dtypes, dropped = _from_hf_dual_encoder(tensors, dtypes, path)
    elif fmt == "hf":
        tensors, dtypes, dropped = _from_hf(tensors, dtypes, path)
    elif fmt == "hf-chinese-clip":
        tensors, dtypes, dropped = _from_hf_chinese_clip(tensors, dtypes, path)
    elif fmt == "cn-clip":
        dropped = sorted(k for k in tensors if _CN_CLIP_DROPPED.match(k))
        tensors = {k: v for k, v in tensors.items() if k not in dropped}
        dtypes = {k: v for k, v in dtypes.items() if k not in dropped}
    elif fmt == "mindspore":
        renamed = {(_rename(k, _MINDFORMERS_RENAMES) or k): k for k in tensors}
        tensors = {new: tensors[old] for new, old in renamed.items()}
        dtypes = {new: dtypes[old] for new, old in renamed.items()}
    # OpenAI/open_clip extras: JIT metadata scalars and open_clip's non-persistent causal mask, if saved;
    # the ResNet tower's BatchNorm step counters (torch uses them only for momentum=None, which CLIP never sets).
    for name in list(tensors):
        if name in _OPENAI_NON_WEIGHTS or name == "attn_mask" or name.endswith(".num_batches_tracked"):
            dropped.append(name)
            del tensors[name], dtypes[name]
    return SourceWeights(tensors, dtypes, fmt, hf_config, dropped)


# ----------------------------------------------------------------------------- config inference


def _require(tensors: Mapping[str, np.ndarray], name: str, path: str) -> np.ndarray:
    if name not in tensors:
        kind = "ResNet" if "visual.attnpool.positional_embedding" in tensors else "ViT"
        raise ConvertError(f"{path}: not a CLIP {kind} checkpoint: missing '{name}'; "
                           f"found keys like {sorted(tensors)[:5]}")
    return tensors[name]


# Sanity bound on inferred depth: the deepest released CLIP tower has 48 blocks (ViT-bigG/14). A file
# with a key like `transformer.resblocks.99999999.*` must not make us build a 1e8-layer model.
MAX_LAYERS = 256


def _num_layers(tensors: Mapping[str, np.ndarray], prefix: str, path: str = "source") -> int:
    """Number of blocks under ``prefix``; the indices must be exactly 0..n-1 and n <= MAX_LAYERS."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    indices = sorted({int(m.group(1)) for m in (pattern.match(k) for k in tensors) if m})
    if not indices:
        return 0
    if indices[-1] >= MAX_LAYERS or indices != list(range(len(indices))):
        gaps = sorted(set(range(min(indices[-1] + 1, MAX_LAYERS))) - set(indices))[:5]
        raise ConvertError(f"{path}: block indices under '{prefix}' are not 0..n-1 with n <= {MAX_LAYERS} "
                           f"(found {len(indices)} blocks, largest index {indices[-1]}"
                           f"{', missing ' + str(gaps) if gaps else ''}); the file is corrupt or not a CLIP checkpoint")
    return len(indices)


# Vision head widths that differ from OpenAI's 64, by tower width: open_clip's ViT-H/14 (80), ViT-g/14 (88) and
# ViT-bigG/14 (104) (model_configs/*.json "head_width"; Chinese-CLIP's ViT-H/14 uses 80 as well). Tensors do
# not show the head count; these widths are unique to those towers.
_VISION_HEAD_WIDTH = {1280: 80, 1408: 88, 1664: 104}


def _infer_resnet(t: Mapping[str, np.ndarray], path: str) -> CLIPResNetVisionConfig:
    """OpenAI's ModifiedResNet from shapes, as OpenAI's build_model: blocks per stage from the keys, width from
    the first bottleneck's conv1, resolution from the attention pool's positions, heads = width * 32 // 64."""
    layers = [_num_layers(t, f"visual.layer{stage}.", path) for stage in (1, 2, 3, 4)]
    if min(layers) == 0:
        raise ConvertError(f"{path}: a ResNet CLIP needs visual.layer1..layer4 blocks, found {layers} blocks per stage")
    width = _require(t, "visual.layer1.0.conv1.weight", path).shape[0]
    positions = _require(t, "visual.attnpool.positional_embedding", path).shape[0]
    grid = int(round((positions - 1) ** 0.5))
    if grid * grid + 1 != positions:
        raise ConvertError(f"{path}: visual.attnpool.positional_embedding has {positions} rows, expected a square "
                           f"grid + 1 mean token")
    return CLIPResNetVisionConfig(layers=layers, width=width, num_attention_heads=max(width * 32 // 64, 1),
                                  image_size=grid * 32,
                                  num_channels=_require(t, "visual.conv1.weight", path).shape[1])


def _infer_vision(t: Mapping[str, np.ndarray], hf_vision: Mapping[str, Any], path: str,
                  head_width: int = 64) -> CLIPVisionConfig:
    """OpenAI's ViT (``visual.*``) from shapes; an HF config.json's vision_config adds heads, activation, eps."""
    conv = _require(t, "visual.conv1.weight", path)
    vis_pos = _require(t, "visual.positional_embedding", path)
    vis_width, channels, patch = conv.shape[0], conv.shape[1], conv.shape[-1]
    grid = int(round((vis_pos.shape[0] - 1) ** 0.5))
    if grid * grid + 1 != vis_pos.shape[0]:
        raise ConvertError(f"{path}: visual.positional_embedding has {vis_pos.shape[0]} rows, expected a square "
                           f"grid + 1 class token")
    vis_mlp = _require(t, "visual.transformer.resblocks.0.mlp.c_fc.weight", path).shape[0]
    return CLIPVisionConfig(
        hidden_size=vis_width, intermediate_size=vis_mlp,
        num_hidden_layers=_num_layers(t, "visual.transformer.resblocks.", path),
        num_attention_heads=hf_vision.get("num_attention_heads", max(vis_width // head_width, 1)),
        image_size=grid * patch, patch_size=patch, num_channels=channels,
        hidden_act=hf_vision.get("hidden_act", "quick_gelu"),
        layer_norm_eps=hf_vision.get("layer_norm_eps", 1e-5),
    )


def infer_config(source: SourceWeights, path: str = "source") -> StrictConfig:
    """The architecture from tensor shapes (OpenAI's build_model rules); HF folders add config.json values.

    OpenAI/open_clip files do not store head counts or the activation: heads = width // 64 (vision
    towers of width 1280/1408/1664 use open_clip's 80/88/104-wide heads) and QuickGELU, which is what
    every OpenAI checkpoint uses. A ResNet tower (``visual.attnpool.*``) is read as OpenAI's
    build_model does. Pass an explicit config to ``convert_weight`` for other models (e.g. open_clip
    GELU models: the registry names and ``config_from_open_clip`` know them). A source with a BERT
    text tower (``bert.*``) is Chinese-CLIP (``infer_chinese_clip_config``).
    """
    t = source.tensors
    if source.fmt == "hf-dual-encoder" or "text_model.embeddings.word_embeddings.weight" in t:
        return infer_dual_encoder_config(source, path)
    if "bert.embeddings.word_embeddings.weight" in t:
        return infer_chinese_clip_config(source, path)
    hf = source.hf_config or {}
    hf_text, hf_vision = hf.get("text_config") or {}, hf.get("vision_config") or {}
    if "visual.attnpool.positional_embedding" in t:  # OpenAI's ModifiedResNet (RN50 ... RN50x64)
        vision = _infer_resnet(t, path)
        proj_dim = _require(t, "visual.attnpool.c_proj.weight", path).shape[0]
    else:
        width = _require(t, "visual.conv1.weight", path).shape[0]
        vision = _infer_vision(t, hf_vision, path, head_width=_VISION_HEAD_WIDTH.get(width, 64))
        proj_dim = _require(t, "visual.proj", path).shape[1]
    text_width = _require(t, "ln_final.weight", path).shape[0]
    vocab, _ = _require(t, "token_embedding.weight", path).shape
    context = _require(t, "positional_embedding", path).shape[0]
    text_mlp = _require(t, "transformer.resblocks.0.mlp.c_fc.weight", path).shape[0]
    text = CLIPTextConfig(
        vocab_size=vocab, hidden_size=text_width, intermediate_size=text_mlp,
        num_hidden_layers=_num_layers(t, "transformer.resblocks.", path),
        num_attention_heads=hf_text.get("num_attention_heads", max(text_width // 64, 1)),
        max_position_embeddings=context,
        hidden_act=hf_text.get("hidden_act", "quick_gelu"),
        layer_norm_eps=hf_text.get("layer_norm_eps", 1e-5),
    )
    kwargs = {}
    if "logit_scale_init_value" in hf:
        kwargs["logit_scale_init_value"] = float(hf["logit_scale_init_value"])
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=proj_dim, **kwargs)


# open_clip's model config (model_configs/<arch>.json, or "model_cfg" of a Hub repository's open_clip_config.json)
# -> ours. Only the keys our towers compute exactly are accepted (the plain ViT / ModifiedResNet and the causal
# text transformer); anything else (timm towers, attentional pooling, no ln_pre, ...) is refused by name.
_OPEN_CLIP_KEYS = {"": {"embed_dim", "vision_cfg", "text_cfg", "quick_gelu"},
                   "vision_cfg": {"image_size", "layers", "width", "patch_size", "head_width", "mlp_ratio"},
                   "text_cfg": {"context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio"}}


def config_from_open_clip(model_cfg: Mapping[str, Any], quick_gelu: Optional[bool] = None,
                          where: str = "open_clip model config") -> CLIPConfig:
    """A CLIPConfig equal to open_clip's ``CLIP(**model_cfg)``; ``quick_gelu`` overrides the cfg's flag (open_clip's
    pretrained cfg sets it for OpenAI/MetaCLIP/DFN weights). ConvertError names any option we cannot compute."""
    unknown = sorted((set(model_cfg) - _OPEN_CLIP_KEYS[""])
                     | {f"vision_cfg.{k}" for k in set(model_cfg.get("vision_cfg") or {}) - _OPEN_CLIP_KEYS["vision_cfg"]}
                     | {f"text_cfg.{k}" for k in set(model_cfg.get("text_cfg") or {}) - _OPEN_CLIP_KEYS["text_cfg"]})
    if unknown:
        raise ConvertError(f"{where}: open_clip options {unknown} are not supported by ms_clip's towers (supported: "
                           f"the standard ViT or ModifiedResNet vision tower with the causal CLIP text tower)")
    act = "quick_gelu" if (model_cfg.get("quick_gelu", False) if quick_gelu is None else quick_gelu) else "gelu"
    v, t = model_cfg["vision_cfg"], model_cfg["text_cfg"]
    text = CLIPTextConfig(vocab_size=t.get("vocab_size", 49408), hidden_size=t.get("width", 512),
                          intermediate_size=int(t.get("width", 512) * t.get("mlp_ratio", 4.0)),
                          num_hidden_layers=t.get("layers", 12), num_attention_heads=t.get("heads", 8),
                          max_position_embeddings=t.get("context_length", 77), hidden_act=act)
    if isinstance(v.get("layers"), (list, tuple)):
        width = v.get("width", 64)
        vision: StrictConfig = CLIPResNetVisionConfig(layers=list(v["layers"]), width=width,
                                                      num_attention_heads=width * 32 // v.get("head_width", 64),
                                                      image_size=v.get("image_size", 224))
    else:
        width = v.get("width", 768)
        vision = CLIPVisionConfig(hidden_size=width, intermediate_size=int(width * v.get("mlp_ratio", 4.0)),
                                  num_hidden_layers=v.get("layers", 12),
                                  num_attention_heads=width // v.get("head_width", 64),
                                  image_size=v.get("image_size", 224), patch_size=v.get("patch_size", 16),
                                  hidden_act=act)
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=model_cfg["embed_dim"])


# cn_clip's ViT-H/14 uses 80-wide heads (model_configs/ViT-H-14.json "vision_head_width": 80, 16 heads of
# 1280); every other released Chinese-CLIP ViT has OpenAI's 64.
_CN_CLIP_VISION_HEAD_WIDTH = {1280: 80}
# Text-config fields HF's ChineseCLIPTextConfig shares with our BertConfig (taken from config.json).
_HF_BERT_FIELDS = ("num_attention_heads", "hidden_act", "layer_norm_eps", "pad_token_id", "hidden_dropout_prob",
                   "attention_probs_dropout_prob", "initializer_range")


def infer_chinese_clip_config(source: SourceWeights, path: str = "source") -> ChineseCLIPConfig:
    """A ChineseCLIPConfig from tensor shapes; HF folders' config.json adds head counts, activations, eps.

    cn_clip files store no head counts: BERT heads = hidden / 64 (RBT3, RoBERTa-wwm-ext-base: 12;
    -large: 16, as cn_clip's model_configs/*.json say) and the vision head width is cn_clip's (64,
    80 for ViT-H). Activations and eps are cn_clip's: exact GELU and 1e-12 in BERT, QuickGELU and
    1e-5 in the ViT.
    """
    t = source.tensors
    hf = source.hf_config or {}
    hf_text, hf_vision = hf.get("text_config") or {}, hf.get("vision_config") or {}
    conv = _require(t, "visual.conv1.weight", path)
    vision = _infer_vision(t, hf_vision, path, head_width=_CN_CLIP_VISION_HEAD_WIDTH.get(conv.shape[0], 64))
    vocab, width = _require(t, "bert.embeddings.word_embeddings.weight", path).shape
    positions = _require(t, "bert.embeddings.position_embeddings.weight", path).shape[0]
    types = _require(t, "bert.embeddings.token_type_embeddings.weight", path).shape[0]
    mlp = _require(t, "bert.encoder.layer.0.intermediate.dense.weight", path).shape[0]
    proj = _require(t, "text_projection", path)
    if proj.ndim != 2 or proj.shape[0] != width:
        raise ConvertError(f"{path}: text_projection has shape {tuple(proj.shape)}, expected [{width}, projection_dim] "
                           f"(BERT hidden size {width})")
    text_kwargs = {k: hf_text[k] for k in _HF_BERT_FIELDS if k in hf_text}
    text_kwargs.setdefault("num_attention_heads", max(width // 64, 1))
    text = BertConfig(vocab_size=vocab, hidden_size=width, intermediate_size=mlp,
                      num_hidden_layers=_num_layers(t, "bert.encoder.layer.", path),
                      max_position_embeddings=positions, type_vocab_size=types,
                      add_pooling_layer="bert.pooler.dense.weight" in t, **text_kwargs)
    kwargs = {}
    if "logit_scale_init_value" in hf:
        kwargs["logit_scale_init_value"] = float(hf["logit_scale_init_value"])
    return ChineseCLIPConfig(vision_config=vision, text_config=text, projection_dim=proj.shape[1], **kwargs)


# HF text towers a dual encoder takes (their modeling code is BertModel's; RoBERTa numbers positions from the pad
# id and has one token type), and the config.json sizes that must agree with the tensors.
HF_TEXT_TOWER_TYPES = ("bert", "roberta")
_HF_BERT_SIZES = ("vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size", "max_position_embeddings",
                  "type_vocab_size")


def _require_text(tensors: Mapping[str, np.ndarray], name: str, path: str) -> np.ndarray:
    if name not in tensors:
        raise ConvertError(f"{path}: not a BERT/RoBERTa text tower: missing '{name}'")
    return tensors[name]


def bert_config_from_hf(hf_text: Mapping[str, Any], tensors: Mapping[str, np.ndarray], prefix: str,
                        path: str) -> BertConfig:
    """Our BertConfig (with the pooler) for an HF BERT/RoBERTa ``config.json`` dict and its tensors (keys under
    ``prefix``, e.g. ``text_model.``). Sizes come from the shapes and must agree with config.json; heads,
    activation, eps, pad id and dropouts from config.json; ``model_type`` roberta -> padding-based position ids."""
    kind = hf_text.get("model_type")
    if kind not in HF_TEXT_TOWER_TYPES:
        raise ConvertError(f"{path}: text model_type {kind!r} is not supported; expected one of "
                           f"{list(HF_TEXT_TOWER_TYPES)} (BERT / RoBERTa)")
    if hf_text.get("position_embedding_type", "absolute") != "absolute":
        raise ConvertError(f"{path}: text config position_embedding_type={hf_text['position_embedding_type']!r}; "
                           f"only 'absolute' position embeddings are supported")
    if hf_text.get("is_decoder") or hf_text.get("add_cross_attention"):
        raise ConvertError(f"{path}: the text config is a decoder (is_decoder / add_cross_attention); a dual "
                           f"encoder's text tower is a bidirectional encoder")
    vocab, width = _require_text(tensors, prefix + "embeddings.word_embeddings.weight", path).shape
    inferred = {
        "vocab_size": vocab, "hidden_size": width,
        "num_hidden_layers": _num_layers(tensors, prefix + "encoder.layer.", path),
        "intermediate_size": _require_text(tensors, prefix + "encoder.layer.0.intermediate.dense.weight",
                                           path).shape[0],
        "max_position_embeddings": _require_text(tensors, prefix + "embeddings.position_embeddings.weight",
                                                 path).shape[0],
        "type_vocab_size": _require_text(tensors, prefix + "embeddings.token_type_embeddings.weight", path).shape[0],
    }
    for key in _HF_BERT_SIZES:
        if key in hf_text and hf_text[key] != inferred[key]:
            raise ConvertError(f"{path}: config.json text {key}={hf_text[key]} but the weights have {inferred[key]}")
    kwargs = {k: hf_text[k] for k in _HF_BERT_FIELDS if hf_text.get(k) is not None}
    kwargs.setdefault("num_attention_heads", max(width // 64, 1))
    return BertConfig(**inferred, position_ids_from_padding=kind == "roberta", add_pooling_layer=True, **kwargs)


def infer_dual_encoder_config(source: SourceWeights, path: str = "source") -> VisionTextDualEncoderConfig:
    """A VisionTextDualEncoderConfig from an HF folder's config.json (tower types, heads, activations, eps, pad id)
    and the tensor shapes (sizes). The context length is the example's 128, capped by the text tower's positions."""
    t, hf = source.tensors, source.hf_config
    if not hf:
        raise ConvertError(f"{path}: an HF VisionTextDualEncoderModel state dict needs its folder's config.json (the "
                           f"text tower's model_type and head counts are not in the tensors); convert the folder")
    hf_text, hf_vision = hf.get("text_config") or {}, hf.get("vision_config") or {}
    if hf_vision.get("model_type") == "clip":  # a whole CLIPConfig given as the vision config
        hf_vision = hf_vision.get("vision_config") or {}
    elif hf_vision.get("model_type") != "clip_vision_model":
        raise ConvertError(f"{path}: config.json vision_config.model_type is {hf_vision.get('model_type')!r}; "
                           f"ms_clip's dual encoder takes CLIP vision towers ('clip_vision_model')")
    for name in ("visual.proj", "text_projection", "logit_scale", "text_model.pooler.dense.weight"):
        if name not in t:
            hf_name = {"visual.proj": "visual_projection.weight", "text_projection": "text_projection.weight"}.get(
                name, name)
            raise ConvertError(f"{path}: not an HF VisionTextDualEncoderModel: missing '{hf_name}'")
    vision = _infer_vision(t, hf_vision, path)
    text = bert_config_from_hf(hf_text, t, "text_model.", path)
    proj_dim = t["visual.proj"].shape[1]
    if t["text_projection"].shape != (text.hidden_size, proj_dim):
        raise ConvertError(f"{path}: text_projection.weight has shape {tuple(t['text_projection'].T.shape)}, expected "
                           f"[{proj_dim}, {text.hidden_size}] (projection_dim x text hidden size)")
    kwargs = {}
    if "logit_scale_init_value" in hf:
        kwargs["logit_scale_init_value"] = float(hf["logit_scale_init_value"])
    return VisionTextDualEncoderConfig(vision_config=vision, text_config=text, projection_dim=proj_dim,
                                       context_length=min(DUAL_ENCODER_CONTEXT_LENGTH, text.max_text_length),
                                       **kwargs)


# ----------------------------------------------------------------------------- conversion


def _coerce_config(config: Union[StrictConfig, str, None]) -> Optional[StrictConfig]:
    if config is None or isinstance(config, StrictConfig):
        return config
    return load_config(config)


def _saved_tensor(arr: np.ndarray, dtype: str):
    """The value to store: float32, or the source dtype with ``keep_dtype`` (bf16 needs a MindSpore Tensor)."""
    import mindspore as ms

    if dtype == "bfloat16":
        return ms.Tensor(arr.astype(np.float32), ms.bfloat16)
    return arr.astype(dtype, copy=False)


def convert_weight(source_path: str, output_path: str, keep_dtype: bool = False,
                   config: Union[StrictConfig, str, None] = None) -> ConvertResult:
    """Convert a PyTorch CLIP checkpoint to ``<output>.ckpt`` plus ``<output>.yaml`` beside it.

    Args:
        source_path: OpenAI ``.pt`` (TorchScript), open_clip ``.pt``/``.bin``/``.safetensors``, an HF
            ``CLIPModel`` folder, or a MindFormers/ms_clip ``.ckpt``.
        output_path: the ``.ckpt`` to write (the suffix is added if missing).
        keep_dtype: keep fp16/bf16 source tensors in their dtype; by default everything is stored as
            float32 (the model's parameter dtype; compute precision is ``config.compute_dtype``).
        config: architecture to use instead of inferring it from shapes (a CLIPConfig, registry name or
            YAML path); needed for models whose head count or activation differ from OpenAI's.

    Returns:
        ConvertResult with the written paths, the config and the sha256 of the .ckpt.

    Example:
        >>> convert_weight("ViT-B-32.pt", "clip_vit_b_32.ckpt").sha256
    """
    source_path, output_path = os.fspath(source_path), os.fspath(output_path)
    if not output_path.endswith(".ckpt"):
        output_path += ".ckpt"
    source = read_source(source_path)
    cfg = _coerce_config(config) or infer_config(source, source_path)
    # Strict fit against a real model: unused keys, unfilled parameters and shapes are all checked here,
    # before anything is written, so a wrong file can never become a checkpoint with random holes.
    model = model_class_for(cfg)(cfg)
    try:
        assign_weights(model, source.tensors, source=source_path)
    except WeightsError as err:
        raise ConvertError(str(err)) from None
    del model

    saved = {}
    for name, arr in source.tensors.items():
        src = source.dtypes[name]
        target = src if keep_dtype and src in ("float16", "bfloat16") else "float32"
        saved[name] = _saved_tensor(arr, target)
    saved_dtypes = collections.Counter(str(v.dtype) if isinstance(v, np.ndarray) else "bfloat16"
                                       for v in saved.values())

    stem = os.path.splitext(output_path)[0]
    config_path = save_config(cfg, os.path.dirname(os.path.abspath(output_path)), os.path.basename(stem) + ".yaml")
    save_weights(saved, output_path)
    digest = sha256_file(output_path)
    result = ConvertResult(
        path=output_path, config_path=config_path, config=cfg, sha256=digest, source_format=source.fmt,
        source_dtypes=dict(collections.Counter(source.dtypes.values())), saved_dtypes=dict(saved_dtypes),
        num_tensors=len(saved), dropped_keys=sorted(source.dropped),
    )
    logger.info("converted %s (%s, %d tensors, dtypes %s) -> %s (%s), sha256 %s", source_path, source.fmt,
                len(saved), result.source_dtypes, output_path, result.saved_dtypes, digest)
    return result
