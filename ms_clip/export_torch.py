"""The way back: an ms_clip model as PyTorch files that open_clip / Hugging Face load without edits.

Targets (``fmt``):

* ``"open_clip"`` (CLIP): our parameter names *are* OpenAI's / open_clip's state-dict keys, so the
  tensors are written as they are. To a file (``.safetensors``, or ``.pt``/``.bin`` with torch), with
  ``<stem>.json`` beside it, an open_clip model config::

      open_clip.add_model_config("out/model.json")                 # registers the name "model"
      model = open_clip.create_model("model", pretrained="out/model.safetensors")

  (for a released architecture the standard name works too, e.g. ``ViT-B-32-quickgelu``); or to a
  folder (``open_clip_config.json`` + ``open_clip_model.safetensors``):
  ``open_clip.create_model("local-dir:out")``.
* ``"state_dict"``: the tensors under our names in any family (for Chinese-CLIP these are
  ``cn_clip``'s names; a ``.pt`` is wrapped as ``{"state_dict": ...}`` as ``cn_clip`` saves them).
* ``"hf"``: a Hugging Face folder (``config.json`` + ``model.safetensors``) of the family's HF class:
  ``CLIPModel`` for CLIP, ``ChineseCLIPModel`` for Chinese-CLIP, ``VisionTextDualEncoderModel`` for the dual
  encoder (with its text tokenizer's files when the model has them); ``transformers.AutoModel.from_pretrained``.

Renaming is not written twice: the HF names come from *inverting* the import tables of
``ms_clip.convert`` (``_HF_RENAMES``, ``_HF_BLOCK_RENAMES``, ``_HF_CHINESE_TEXT_RENAMES``) with
``invert_rules``; the packed q/k/v projection is split and the two projections transposed, the
inverse of what the importer does. Every export then runs the importer on its own output and
requires it to give back exactly the tensors it started from (names, shapes and bits), so an
export that could not be read back is never written.

A new family (e.g. ``VisionTextDualEncoderModel``) is one ``HFFamily`` entry in ``HF_FAMILIES``.

Example:
    >>> from ms_clip.export_torch import export_torch
    >>> export_torch("clip_vit_b_32.ckpt", "clip_vit_b_32_hf", fmt="hf").files
    ['clip_vit_b_32_hf/config.json', 'clip_vit_b_32_hf/model.safetensors']
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np

from ms_clip import convert
from ms_clip.constants import CLIP_MEAN, CLIP_STD
from ms_clip.convert import ConvertError
from ms_clip.fileio import atomic_path, write_json
from ms_clip.loader import copy_tokenizer_files, describe_architecture, resolve, tokenizer_dir_of
from ms_clip.models import ChineseCLIPConfig, CLIPConfig, VisionTextDualEncoderConfig
from ms_clip.models.base import StrictConfig

logger = logging.getLogger(__name__)

__all__ = ["TorchExportError", "TorchExportResult", "export_torch", "invert_rules", "to_hf_state_dict",
           "hf_config_dict", "open_clip_model_config", "HF_FAMILIES", "TORCH_FORMATS", "OPEN_CLIP_NAMES"]

TORCH_FORMATS = ("open_clip", "state_dict", "hf")
Rules = List[Tuple[str, str]]
Tensors = Dict[str, np.ndarray]

# Registry architectures whose open_clip model config ships with open_clip under this name.
OPEN_CLIP_NAMES = {"clip_vit_b_32": "ViT-B-32-quickgelu", "clip_vit_b_16": "ViT-B-16-quickgelu",
                   "clip_vit_l_14": "ViT-L-14-quickgelu", "clip_vit_l_14_336": "ViT-L-14-336-quickgelu"}
# Our activation names -> HF's ACT2FN names (the importer reads config.json's hidden_act as it is).
_HF_ACTS = {"quick_gelu": "quick_gelu", "gelu": "gelu", "relu": "relu", "gelu_tanh": "gelu_pytorch_tanh"}


class TorchExportError(ConvertError):
    """A model cannot be written in the requested PyTorch format; the message says why and what works."""


@dataclass
class TorchExportResult:
    path: str  # the file or folder written
    fmt: str  # "open_clip" | "state_dict" | "hf"
    files: List[str]  # every file written
    num_tensors: int
    hf_class: str = ""  # "CLIPModel" | "ChineseCLIPModel" for fmt == "hf"
    load_hint: str = ""  # one line of Python that loads the result
    dropped: List[str] = field(default_factory=list)  # our tensors the target has no place for


# ----------------------------------------------------------------------------- inverting rename tables

_GROUP = re.compile(r"\((?!\?)([^()]*)\)")  # a capture group without nested groups


def _unescape(literal: str, rule: str) -> str:
    out, i = [], 0
    while i < len(literal):
        ch = literal[i]
        if ch == "\\":
            if i + 1 >= len(literal) or literal[i + 1].isalnum():
                raise ValueError(f"rename rule {rule!r}: cannot invert the escape at {literal[i:]!r}")
            out.append(literal[i + 1])
            i += 2
        elif ch in ".^$*+?{}[]|":
            raise ValueError(f"rename rule {rule!r}: cannot invert the regex syntax {ch!r} outside a group")
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _invert_rule(pattern: str, repl: str) -> Tuple[str, str]:
    """(pattern, replacement) -> its inverse, for rules of the importer's form.

    The form: ``^`` + literals (``\\.`` escapes) and capture groups + optional ``$``; the replacement
    is literals and ``\\N`` back-references. Groups become back-references and back-references
    become the groups' own regexes, so ``^a\\.(\\d+)\\.`` -> ``b.\\1.`` inverts to ``^b\\.(\\d+)\\.`` -> ``a.\\1.``.
    """
    if not pattern.startswith("^"):
        raise ValueError(f"rename rule {pattern!r}: only rules anchored with ^ can be inverted")
    body, anchored_end = pattern[1:], pattern.endswith("$") and not pattern.endswith("\\$")
    if anchored_end:
        body = body[:-1]
    groups: List[str] = []
    inverse_repl, pos = [], 0
    for match in _GROUP.finditer(body):
        inverse_repl.append(_unescape(body[pos:match.start()], pattern))
        groups.append(match.group(1))
        inverse_repl.append(f"\\{len(groups)}")
        pos = match.end()
    inverse_repl.append(_unescape(body[pos:], pattern))
    inverse_pattern, pos = ["^"], 0
    for ref in re.finditer(r"\\(\d)", repl):
        inverse_pattern.append(re.escape(repl[pos:ref.start()]))
        index = int(ref.group(1))
        if not 1 <= index <= len(groups):
            raise ValueError(f"rename rule {pattern!r} -> {repl!r}: back-reference \\{index} has no group")
        inverse_pattern.append(f"({groups[index - 1]})")
        pos = ref.end()
    inverse_pattern.append(re.escape(repl[pos:]))
    if anchored_end:
        inverse_pattern.append("$")
    return "".join(inverse_pattern), "".join(inverse_repl)


def invert_rules(rules: Rules) -> Rules:
    """The inverse of an importer rename table (``ms_clip.convert``'s ``(pattern, replacement)`` lists)."""
    return [_invert_rule(pattern, repl) for pattern, repl in rules]


def _rename_one(name: str, rules: Rules) -> Optional[str]:
    """The rename of ``name`` by the one rule that matches it (two matching rules are a table bug)."""
    hits = {re.sub(pattern, repl, name, count=1) for pattern, repl in rules if re.match(pattern, name)}
    if len(hits) > 1:
        raise RuntimeError(f"inverted rename table is ambiguous for {name!r}: {sorted(hits)}")
    return hits.pop() if hits else None


# ----------------------------------------------------------------------------- HF families

_INV_HF = invert_rules(convert._HF_RENAMES)
_INV_HF_BLOCK = [(new, old) for old, new in convert._HF_BLOCK_RENAMES]  # plain substring replacements
_INV_HF_CHINESE_TEXT = invert_rules(convert._HF_CHINESE_TEXT_RENAMES)
_PACKED_QKV = re.compile(r"^(.*)\.attn\.in_proj_(weight|bias)$")


def _clip_like_to_hf(tensors: Mapping[str, np.ndarray]) -> Tuple[Tensors, List[str]]:
    """OpenAI names -> HF CLIP names (both towers of CLIP, the vision tower of Chinese-CLIP)."""
    out: Tensors = {}
    unknown = []
    for name, arr in tensors.items():
        packed = _PACKED_QKV.match(name)
        if packed:
            prefix, kind = packed.groups()
            # torch.nn.MultiheadAttention packs q, k, v along the output axis, in that order.
            for which, part in zip("qkv", np.split(arr, 3, axis=0)):
                new = _rename_one(f"{prefix}.self_attn.{which}_proj.{kind}", _INV_HF)
                if new is None:
                    unknown.append(name)
                    break
                out[new] = _contiguous(part)
            continue
        renamed = name
        for ours, theirs in _INV_HF_BLOCK:
            renamed = renamed.replace(ours, theirs)
        new = _rename_one(renamed, _INV_HF)
        if new is None:
            unknown.append(name)
            continue
        # visual.proj / text_projection are [in, out] Parameters here and nn.Linear weights [out, in] in HF.
        out[new] = _contiguous(arr.T) if name in convert._HF_TRANSPOSED else arr
    return out, unknown


def _clip_to_hf(tensors: Mapping[str, np.ndarray]) -> Tuple[Tensors, List[str]]:
    out, unknown = _clip_like_to_hf(tensors)
    if unknown:
        raise TorchExportError(f"{len(unknown)} tensors have no HF CLIPModel name: {sorted(unknown)[:10]}")
    return out, []


def _chinese_clip_to_hf(tensors: Mapping[str, np.ndarray]) -> Tuple[Tensors, List[str]]:
    text = {k: v for k, v in tensors.items() if k.startswith("bert.")}
    # HF's ChineseCLIPModel builds its text model without the pooler (the [CLS] state is projected).
    dropped = sorted(k for k in text if k.startswith("bert.pooler."))
    out, unknown = _clip_like_to_hf({k: v for k, v in tensors.items() if k not in text})
    for name in sorted(set(text) - set(dropped)):
        new = _rename_one(name, _INV_HF_CHINESE_TEXT)
        if new is None:
            unknown.append(name)
        else:
            out[new] = text[name]
    if unknown:
        raise TorchExportError(f"{len(unknown)} tensors have no HF ChineseCLIPModel name: {sorted(unknown)[:10]}")
    return out, dropped


def _vision_json(vc: Any, projection_dim: int, model_type: str) -> Dict[str, Any]:
    _require_vit(vc, "Hugging Face's CLIP vision model")
    return {"model_type": model_type, "hidden_size": vc.hidden_size, "intermediate_size": vc.intermediate_size,
            "num_hidden_layers": vc.num_hidden_layers, "num_attention_heads": vc.num_attention_heads,
            "image_size": vc.image_size, "patch_size": vc.patch_size, "num_channels": vc.num_channels,
            "hidden_act": _hf_act(vc.hidden_act), "layer_norm_eps": vc.layer_norm_eps,
            "attention_dropout": vc.attention_dropout, "projection_dim": projection_dim}


def _require_vit(vision: Any, target: str) -> None:
    # The ResNet tower (CLIPResNetVisionConfig) keeps OpenAI's names but has no HF CLIPModel counterpart and
    # another open_clip config layout; fmt='state_dict' writes it for open_clip / OpenAI code.
    if type(vision).__name__ != "CLIPVisionConfig":
        raise TorchExportError(f"{target} needs a ViT vision tower, this model has {type(vision).__name__}; use "
                               f"fmt='state_dict' (OpenAI / open_clip names)")


def _hf_act(name: str) -> str:
    if name not in _HF_ACTS:
        raise TorchExportError(f"activation {name!r} has no Hugging Face name; known: {sorted(_HF_ACTS)}")
    return _HF_ACTS[name]


def _clip_config_json(config: CLIPConfig) -> Dict[str, Any]:
    tc = config.text_config
    return {
        "architectures": ["CLIPModel"], "model_type": "clip", "dtype": "float32",
        "projection_dim": config.projection_dim, "logit_scale_init_value": config.logit_scale_init_value,
        "text_config": {
            "model_type": "clip_text_model", "vocab_size": tc.vocab_size, "hidden_size": tc.hidden_size,
            "intermediate_size": tc.intermediate_size, "num_hidden_layers": tc.num_hidden_layers,
            "num_attention_heads": tc.num_attention_heads, "max_position_embeddings": tc.max_position_embeddings,
            "hidden_act": _hf_act(tc.hidden_act), "layer_norm_eps": tc.layer_norm_eps,
            "attention_dropout": tc.attention_dropout, "projection_dim": config.projection_dim,
            # We pool at the largest token id (OpenAI's text.argmax(-1)); HF pools at the first eos_token_id,
            # which is the same position when EOT is the vocabulary's last id, as in CLIP's BPE.
            "eos_token_id": tc.vocab_size - 1, "bos_token_id": tc.vocab_size - 2, "pad_token_id": 0,
        },
        "vision_config": _vision_json(config.vision_config, config.projection_dim, "clip_vision_model"),
    }


def _chinese_clip_config_json(config: ChineseCLIPConfig) -> Dict[str, Any]:
    tc = config.text_config
    if tc.position_ids_from_padding:
        raise TorchExportError("HF ChineseCLIPModel numbers positions as BERT does; this model's text tower uses "
                               "RoBERTa's padding-based position ids, which it cannot express")
    return {
        "architectures": ["ChineseCLIPModel"], "model_type": "chinese_clip", "dtype": "float32",
        "projection_dim": config.projection_dim, "logit_scale_init_value": config.logit_scale_init_value,
        "text_config": {
            "model_type": "chinese_clip_text_model", "vocab_size": tc.vocab_size, "hidden_size": tc.hidden_size,
            "num_hidden_layers": tc.num_hidden_layers, "num_attention_heads": tc.num_attention_heads,
            "intermediate_size": tc.intermediate_size, "hidden_act": tc.hidden_act,
            "hidden_dropout_prob": tc.hidden_dropout_prob, "attention_probs_dropout_prob": tc.attention_probs_dropout_prob,
            "max_position_embeddings": tc.max_position_embeddings, "type_vocab_size": tc.type_vocab_size,
            "initializer_range": tc.initializer_range, "layer_norm_eps": tc.layer_norm_eps,
            "pad_token_id": tc.pad_token_id,
        },
        "vision_config": _vision_json(config.vision_config, config.projection_dim, "chinese_clip_vision_model"),
    }


def _dual_encoder_to_hf(tensors: Mapping[str, np.ndarray]) -> Tuple[Tensors, List[str]]:
    # text_model.* are HF's BERT/RoBERTa names already; the vision side, projections and logit_scale are HF CLIP's.
    text = {k: v for k, v in tensors.items() if k.startswith("text_model.")}
    out, unknown = _clip_like_to_hf({k: v for k, v in tensors.items() if k not in text})
    for name, arr in text.items():
        if convert._HF_DUAL_TEXT_KEY.match(name):
            out[name] = arr
        else:
            unknown.append(name)
    if unknown:
        raise TorchExportError(f"{len(unknown)} tensors have no HF VisionTextDualEncoderModel name: "
                               f"{sorted(unknown)[:10]}")
    return out, []


def _dual_encoder_config_json(config: VisionTextDualEncoderConfig) -> Dict[str, Any]:
    tc = config.text_config
    # RoBERTa's modeling code is what numbers positions from the pad id; BERT's counts from 0.
    kind = "roberta" if tc.position_ids_from_padding else "bert"
    text = {"model_type": kind, "architectures": ["RobertaModel" if kind == "roberta" else "BertModel"],
            "vocab_size": tc.vocab_size, "hidden_size": tc.hidden_size, "num_hidden_layers": tc.num_hidden_layers,
            "num_attention_heads": tc.num_attention_heads, "intermediate_size": tc.intermediate_size,
            "hidden_act": tc.hidden_act, "hidden_dropout_prob": tc.hidden_dropout_prob,
            "attention_probs_dropout_prob": tc.attention_probs_dropout_prob,
            "max_position_embeddings": tc.max_position_embeddings, "type_vocab_size": tc.type_vocab_size,
            "initializer_range": tc.initializer_range, "layer_norm_eps": tc.layer_norm_eps,
            "pad_token_id": tc.pad_token_id, "position_embedding_type": "absolute"}
    return {"architectures": ["VisionTextDualEncoderModel"], "model_type": convert.HF_DUAL_ENCODER_TYPE,
            "dtype": "float32", "projection_dim": config.projection_dim,
            "logit_scale_init_value": config.logit_scale_init_value, "text_config": text,
            "vision_config": _vision_json(config.vision_config, config.projection_dim, "clip_vision_model")}


@dataclass(frozen=True)
class HFFamily:
    """How one model family becomes an HF folder, and how the importer reads it back (for the self-check)."""

    hf_class: str  # transformers class that loads the folder
    config_json: Callable[[Any], Dict[str, Any]]
    to_hf: Callable[[Mapping[str, np.ndarray]], Tuple[Tensors, List[str]]]  # -> (tensors, dropped names)
    from_hf: Callable[..., Any]  # the importer: (tensors, dtypes, path) -> (tensors, dtypes, dropped)


HF_FAMILIES: Dict[str, HFFamily] = {
    "CLIPConfig": HFFamily("CLIPModel", _clip_config_json, _clip_to_hf, convert._from_hf),
    "ChineseCLIPConfig": HFFamily("ChineseCLIPModel", _chinese_clip_config_json, _chinese_clip_to_hf,
                                  convert._from_hf_chinese_clip),
    "VisionTextDualEncoderConfig": HFFamily("VisionTextDualEncoderModel", _dual_encoder_config_json,
                                            _dual_encoder_to_hf, convert._from_hf_dual_encoder),
}


def _family(config: StrictConfig) -> HFFamily:
    family = HF_FAMILIES.get(type(config).__name__)
    if family is None:
        raise TorchExportError(f"no Hugging Face export for {type(config).__name__}; known: {sorted(HF_FAMILIES)}")
    return family


def hf_config_dict(config: StrictConfig) -> Dict[str, Any]:
    """The ``config.json`` of the family's HF class for ``config``."""
    return _family(config).config_json(config)


def to_hf_state_dict(config: StrictConfig, tensors: Mapping[str, np.ndarray]) -> Tuple[Tensors, List[str]]:
    """Our tensors -> the family's HF state dict, checked by reading it back with the importer.

    Returns ``(hf_tensors, dropped)``: ``dropped`` are our tensors the HF class has no place for
    (Chinese-CLIP's optional BERT pooler).
    """
    family = _family(config)
    hf, dropped = family.to_hf(tensors)
    back, _, _ = family.from_hf(hf, {k: str(v.dtype) for k, v in hf.items()}, "the exported state dict")
    _check_identical(back, {k: v for k, v in tensors.items() if k not in dropped}, "HF")
    return hf, dropped


def _check_identical(back: Mapping[str, np.ndarray], ours: Mapping[str, np.ndarray], what: str) -> None:
    """The importer's reading of an export must be our tensors, bit for bit (a bug otherwise, not a user error)."""
    if set(back) != set(ours):
        raise RuntimeError(f"{what} export does not read back: missing {sorted(set(ours) - set(back))[:5]}, "
                           f"extra {sorted(set(back) - set(ours))[:5]}")
    for name, arr in ours.items():
        other = back[name]
        if other.shape != arr.shape or other.dtype != arr.dtype or other.tobytes() != arr.tobytes():
            raise RuntimeError(f"{what} export does not read back: tensor {name!r} differs")


# ----------------------------------------------------------------------------- open_clip


def open_clip_model_config(config: StrictConfig) -> Dict[str, Any]:
    """open_clip's model config (``model_configs/*.json`` layout) for a CLIP ``config``.

    open_clip has one activation flag for both towers (QuickGELU or exact GELU), LayerNorm eps
    1e-5 and RGB input; anything else cannot be expressed and is an error naming the field.
    """
    if not isinstance(config, CLIPConfig):
        raise TorchExportError(f"open_clip has no {type(config).__name__}; use fmt='hf' or fmt='state_dict'")
    tc, vc = config.text_config, config.vision_config
    _require_vit(vc, "this open_clip model config")
    acts = {tc.hidden_act, vc.hidden_act}
    if len(acts) != 1 or not acts <= {"quick_gelu", "gelu"}:
        raise TorchExportError(f"open_clip needs the same activation in both towers, quick_gelu or gelu; this model "
                               f"has text {tc.hidden_act!r}, vision {vc.hidden_act!r} (use fmt='hf')")
    if tc.layer_norm_eps != 1e-5 or vc.layer_norm_eps != 1e-5 or vc.num_channels != 3:
        raise TorchExportError(f"open_clip's CLIP uses LayerNorm eps 1e-5 and 3 input channels; this model has eps "
                               f"{tc.layer_norm_eps}/{vc.layer_norm_eps} and {vc.num_channels} channels (use fmt='hf')")
    return {
        "embed_dim": config.projection_dim,
        "quick_gelu": tc.hidden_act == "quick_gelu",
        "vision_cfg": {"image_size": vc.image_size, "layers": vc.num_hidden_layers, "width": vc.hidden_size,
                       "patch_size": vc.patch_size, "head_width": vc.hidden_size // vc.num_attention_heads,
                       "mlp_ratio": vc.intermediate_size / vc.hidden_size},
        "text_cfg": {"context_length": tc.max_position_embeddings, "vocab_size": tc.vocab_size,
                     "width": tc.hidden_size, "heads": tc.num_attention_heads, "layers": tc.num_hidden_layers,
                     "mlp_ratio": tc.intermediate_size / tc.hidden_size},
    }


def _open_clip_preprocess(config: StrictConfig) -> Dict[str, Any]:
    # ms_clip's CLIPImageProcessor: shortest side to image_size (bicubic), centre crop, CLIP mean/std.
    return {"size": config.vision_config.image_size, "mean": list(CLIP_MEAN), "std": list(CLIP_STD),
            "interpolation": "bicubic", "resize_mode": "shortest"}


# ----------------------------------------------------------------------------- writing


def _write_json(data: Mapping[str, Any], path: str) -> str:
    return write_json(path, data)


def _contiguous(arr: np.ndarray) -> np.ndarray:
    # Not np.ascontiguousarray: it turns the 0-d logit_scale into shape [1], which torch then refuses.
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


def _write_safetensors(tensors: Mapping[str, np.ndarray], path: str, metadata: Dict[str, str]) -> str:
    from safetensors.numpy import save_file

    with atomic_path(path) as tmp:
        save_file({k: _contiguous(v) for k, v in tensors.items()}, tmp, metadata=metadata)
    return path


def _write_torch(obj: Any, path: str) -> str:
    try:
        import torch
    except ImportError:
        raise TorchExportError(f"{path}: writing a .pt/.bin file needs torch (pip install 'ms_clip[convert]'); "
                               f"a .safetensors file or fmt='hf' does not") from None
    def as_torch(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            return torch.from_numpy(value.copy())
        if isinstance(value, Mapping):
            return {k: as_torch(v) for k, v in value.items()}
        return value

    with atomic_path(path) as tmp:
        torch.save(as_torch(obj), tmp)
    return path


def _weights_file(tensors: Tensors, path: str, wrap_state_dict: bool = False) -> str:
    if path.endswith(".safetensors"):
        return _write_safetensors(tensors, path, {"format": "pt", "written_by": "ms_clip"})
    if path.endswith((".pt", ".pth", ".bin")):
        return _write_torch({"state_dict": tensors} if wrap_state_dict else tensors, path)
    raise TorchExportError(f"{path}: a weights file must end with .safetensors, .pt, .pth or .bin")


# ----------------------------------------------------------------------------- the entry point


def _config_and_tensors(model: Any) -> Tuple[StrictConfig, Tensors]:
    """(config, float tensors by our names) of a model object or any model spec the loader resolves."""
    if hasattr(model, "parameters_dict") and hasattr(model, "config"):
        return model.config, {p.name: p.asnumpy() for p in model.get_parameters()}
    resolved = resolve(os.fspath(model))
    if resolved.weights is None:
        raise TorchExportError(f"{os.fspath(model)} is a config without weights; export a checkpoint, a "
                               f"save_pretrained folder or a model name")
    tensors = resolved.tensors()
    bad = sorted(k for k, v in tensors.items() if not isinstance(v, np.ndarray) or v.dtype.kind != "f")
    if bad:
        raise TorchExportError(f"{os.fspath(model)}: tensors {bad[:5]} are not float16/32/64 arrays "
                               f"(bfloat16 checkpoints: convert them to float32 first)")
    return resolved.config, tensors


def _default_format(output_path: str) -> str:
    return "open_clip" if output_path.endswith((".safetensors", ".pt", ".pth", ".bin")) else "hf"


def export_torch(model: Any, output_path: Union[str, os.PathLike], fmt: Optional[str] = None) -> TorchExportResult:
    """Write an ms_clip model for PyTorch: an open_clip state dict / folder, our state dict, or an HF folder.

    Args:
        model: a model object, or any spec ``CLIPModel.from_pretrained`` takes (a ``.ckpt`` with its YAML,
            a ``save_pretrained`` folder, a registry name, ...).
        output_path: a ``.safetensors`` / ``.pt`` / ``.bin`` file, or a folder.
        fmt: ``"open_clip"`` (default for a file), ``"hf"`` (default for a folder) or ``"state_dict"``;
            ``"open_clip"`` with a folder writes open_clip's ``local-dir:`` layout.

    Returns:
        TorchExportResult naming the files and a line of Python that loads them.
    """
    output_path = os.fspath(output_path)
    fmt = fmt or _default_format(output_path)
    if fmt not in TORCH_FORMATS:
        raise TorchExportError(f"unknown export format {fmt!r}; expected one of {list(TORCH_FORMATS)}")
    config, tensors = _config_and_tensors(model)
    is_file = output_path.endswith((".safetensors", ".pt", ".pth", ".bin"))
    if output_path.endswith((".ckpt", ".yaml", ".yml", ".json", ".mindir", ".onnx")):
        raise TorchExportError(f"{output_path}: the output must be a .safetensors/.pt/.pth/.bin file or a folder "
                               f"(is the ms_clip model given as the output?)")
    if fmt == "hf":
        if is_file:
            raise TorchExportError(f"{output_path}: fmt='hf' writes a folder (config.json + model.safetensors); "
                                   f"give a directory path")
        family = _family(config)
        config_json = hf_config_dict(config)  # first: it names an architecture HF cannot express
        hf_tensors, dropped = to_hf_state_dict(config, tensors)
        os.makedirs(output_path, exist_ok=True)
        files = [_write_json(config_json, os.path.join(output_path, "config.json")),
                 _write_safetensors(hf_tensors, os.path.join(output_path, "model.safetensors"), {"format": "pt"})]
        # A dual encoder's text tokenizer travels with it (HF's example saves the processor into the same folder).
        tokenizer_dir = getattr(model, "tokenizer_dir", None) if hasattr(model, "config") else \
            tokenizer_dir_of(os.fspath(model))
        files += copy_tokenizer_files(tokenizer_dir, output_path) if isinstance(config, VisionTextDualEncoderConfig) \
            else []
        hint = f"transformers.{family.hf_class}.from_pretrained({output_path!r})"
        result = TorchExportResult(output_path, fmt, files, len(hf_tensors), family.hf_class, hint, dropped)
    elif fmt == "open_clip":
        oc_config = open_clip_model_config(config)
        if is_file:
            stem = os.path.splitext(output_path)[0]
            os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
            files = [_weights_file(tensors, output_path), _write_json(oc_config, stem + ".json")]
            name = _open_clip_name(config) or os.path.basename(stem)
            register = "" if _open_clip_name(config) else f"open_clip.add_model_config({stem + '.json'!r}); "
            hint = f"{register}open_clip.create_model({name!r}, pretrained={output_path!r})"
        else:
            os.makedirs(output_path, exist_ok=True)
            files = [_write_json({"model_cfg": oc_config, "preprocess_cfg": _open_clip_preprocess(config)},
                                 os.path.join(output_path, "open_clip_config.json")),
                     _weights_file(tensors, os.path.join(output_path, "open_clip_model.safetensors"))]
            hint = f"open_clip.create_model('local-dir:{output_path}')"
        result = TorchExportResult(output_path, fmt, files, len(tensors), "", hint)
    else:
        if not is_file:
            raise TorchExportError(f"{output_path}: fmt='state_dict' writes one .safetensors/.pt file")
        # cn_clip saves {"state_dict": ...} and reads only that key; open_clip reads both layouts.
        wrap = isinstance(config, ChineseCLIPConfig)
        files = [_weights_file(tensors, output_path, wrap_state_dict=wrap)]
        result = TorchExportResult(output_path, fmt, files, len(tensors), "",
                                   f"state_dict = safetensors.torch.load_file({output_path!r})"
                                   if output_path.endswith(".safetensors") else
                                   f"torch.load({output_path!r}, weights_only=True)")
    logger.info("exported %d tensors (%s) -> %s", result.num_tensors, fmt, ", ".join(result.files))
    return result


def _open_clip_name(config: StrictConfig) -> str:
    return OPEN_CLIP_NAMES.get(describe_architecture(config), "")
