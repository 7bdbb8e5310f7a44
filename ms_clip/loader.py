"""The one loader: any model spec -> (config, weights) -> a model. Everything that loads weights comes here.

Used by the Python API (``CLIPModel.from_pretrained``, a config's ``checkpoint_name_or_path``,
``create_model``), by ``Trainer`` / ``run_mindformer.py`` (``model_for_run``) and by ``pipeline``.

What a spec can be (``resolve``):

==============================  ==========================================  ==============================
spec                            architecture from                           weights from
==============================  ==========================================  ==============================
registry name (``clip_vit_b_32``, ``model_configs/<name>.yaml``         the bundled file, the cache, or
MindFormers' ``clip_vit_l_14@336``)                                         a verified download + conversion
``.ckpt`` with a ``.yaml`` beside  that YAML (``<stem>.yaml`` or ``config.yaml``)  the ``.ckpt``
``.ckpt`` without a YAML        inferred from tensor shapes (MindFormers'   the ``.ckpt`` (MindFormers' names
                                ``.ckpt`` files have no config)             renamed by ``ms_clip.convert``)
``save_pretrained`` directory   its ``config.yaml``                         its ``.ckpt``
HF ``CLIPModel`` folder,        ``config.json`` / tensor shapes             converted in memory
PyTorch ``.pt/.bin/.safetensors``
model or run ``.yaml``          the YAML                                    none (``create_model`` only)
==============================  ==========================================  ==============================

Precedence in a run (``model_for_run``; Trainer, CLI and pipeline all use it). **Weights**, first that
applies: (1) the explicit argument (``Trainer.finetune(finetune_checkpoint=...)``, ``evaluate(eval_checkpoint=...)``,
``predict(predict_checkpoint=...)``); (2) the run config's ``load_checkpoint`` (``--load_checkpoint``); (3)
``model.model_config.checkpoint_name_or_path`` -- except in ``train`` mode, which starts from scratch as
MindFormers' did (``Trainer.train`` logs that it skips it); (4) for fine-tuning, evaluation and prediction only: the
pretrained weights of the model *name* (``Trainer(model="clip_vit_b_32")`` or ``trainer.model_name``); (5)
none: random initialisation, which only ``train`` accepts. **Architecture**: a model *object* is used as it
is; otherwise weights that carry their own architecture (every spec above) bring it, and what the run
config says about the model (``Trainer(model=...)``, ``model.model_config``'s tower keys,
``trainer.model_name``) must agree with it -- a disagreement is a one-line error naming both
architectures, never a wall of shape mismatches. Without weights the architecture comes from
``Trainer(model=...)``, then ``model.model_config``, then ``trainer.model_name``. Fields that do not change
the network (``dtype``, dropouts, init ranges; ``ms_clip.models.base.ARCH_FREE_FIELDS``) in
``model.model_config`` apply on top in every case.
"""
from __future__ import annotations

import functools
import logging
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

import numpy as np

from ms_clip import hub, registry
from ms_clip.convert import ConvertError, infer_config, read_source
# The files of an HF text tokenizer folder; whichever exist travel with a dual encoder.
from ms_clip.hf_tokenizer import TOKENIZER_FILES
from ms_clip.models import family_config_from_dict, model_class_for
from ms_clip.models.base import ARCH_FREE_FIELDS, ConfigError, PreTrainedModel, StrictConfig, register_loader
from ms_clip.run_config import RunConfigError
from ms_clip.weights import assign_weights, read_checkpoint, save_weights

logger = logging.getLogger(__name__)

__all__ = ["Resolved", "resolve", "load_config", "save_config", "create_model", "from_pretrained", "save_pretrained",
           "load_named_weights", "model_for_run", "describe_architecture", "list_models", "show_support_list",
           "WEIGHT_SUFFIXES", "get_tokenizer", "from_vision_text_pretrained", "TOKENIZER_FILES", "tokenizer_dir_of",
           "copy_tokenizer_files"]

WEIGHT_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".safetensors")

Weights = Union[str, Dict[str, np.ndarray]]  # a .ckpt path, or tensors already in our names


@dataclass
class Resolved:
    """What a spec resolved to: an architecture, weights (or None) and a description for messages."""

    config: StrictConfig
    weights: Optional[Weights]
    source: str

    def tensors(self) -> Dict[str, np.ndarray]:
        if isinstance(self.weights, str):
            return read_checkpoint(self.weights)
        return dict(self.weights or {})


# ----------------------------------------------------------------------------- resolving specs


def _convert_in_memory(path: str) -> Resolved:
    source = read_source(path)  # ConvertError names the file and the problem
    return Resolved(infer_config(source, path), source.tensors, path)


def _is_mindformers_checkpoint(path: str) -> bool:
    """MindFormers names LayerNorms ``gamma``/``beta`` and the token table ``embedding_table``; we never do."""
    names = read_checkpoint(path).keys()
    return any(n.endswith((".gamma", ".beta", ".embedding_table")) for n in names)


def resolve(spec: Union[str, os.PathLike]) -> Resolved:
    """(config, weights) for a spec (see the module docstring's table). Raises a one-line MsClipError."""
    path = os.fspath(spec)
    if not path:
        raise ConfigError("empty model spec: expected a model name, a checkpoint file or a directory")
    if path.endswith((".yaml", ".yml")):
        return Resolved(registry.load_config(path), None, path)
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "config.json")) and not os.path.isfile(
                os.path.join(path, registry.CONFIG_FILE)):
            return _convert_in_memory(path)  # an HF folder
        ckpt = registry._find_one(path, "*.ckpt", "checkpoint")
        if ckpt is None:
            raise ConfigError(f"{path}: no .ckpt file in this directory (expected what save_pretrained writes: "
                              f"{registry.CONFIG_FILE} + model.ckpt, or an HF folder with config.json)")
        return Resolved(registry.load_config(path), ckpt, path)
    if path.endswith(".ckpt"):
        if not os.path.isfile(path):
            raise ConfigError(f"checkpoint file not found: {path}")
        cfg_path = registry.config_path_for_checkpoint(path)
        if cfg_path is not None:
            return Resolved(registry.load_config(cfg_path), path, path)
        if _is_mindformers_checkpoint(path):
            # MindFormers' .ckpt files carry no config; they are OpenAI's architectures, which the tensor
            # shapes determine exactly (heads = width / 64, QuickGELU), so converting in memory is safe.
            return _convert_in_memory(path)
        # One of ours without its YAML: head counts and activations are not in the tensors, so any
        # architecture we inferred would be a guess.
        raise ConfigError(f"no model config beside {path}: expected {os.path.splitext(path)[0]}.yaml or "
                          f"{os.path.join(os.path.dirname(path) or '.', registry.CONFIG_FILE)} (save_pretrained and "
                          f"convert_weight.py write one)")
    if path.endswith(WEIGHT_SUFFIXES):
        if not os.path.isfile(path):
            raise ConfigError(f"weights file not found: {path}")
        return _convert_in_memory(path)
    if path.startswith(HF_HUB_PREFIX):  # open_clip's form: hf-hub:<org>/<repo> with open_clip_config.json
        return _resolve_cached(hub.get_open_clip_hub_checkpoint(path[len(HF_HUB_PREFIX):]), path)
    name, tag = split_tag(path)
    if tag is not None:
        return _resolve_cached(hub.get_zoo_checkpoint(name, tag), path)
    if _is_hf_repo_id(path):
        return _resolve_cached(hub.get_hf_repo_checkpoint(path), path)  # a plain HF CLIPModel repository id
    name = registry.canonical_name(path)  # ConfigError with the valid names
    if name not in hub.PRETRAINED and hub.default_tag(name):
        return _resolve_cached(hub.get_zoo_checkpoint(name, hub.default_tag(name)), name)
    return Resolved(registry.load_config(name), hub.get_pretrained_checkpoint(name), name)


HF_HUB_PREFIX = "hf-hub:"
_HF_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def _is_hf_repo_id(spec: str) -> bool:
    """``org/name`` that is neither a registry name (``mindspore/clip_vit_b_32``) nor a local path or file name."""
    return (bool(_HF_REPO_ID.fullmatch(spec)) and not registry.is_model_name(spec) and not os.path.exists(spec)
            and not spec.endswith((".yaml", ".yml") + WEIGHT_SUFFIXES))


def split_tag(spec: str) -> tuple:
    """``"clip_vit_h_14.laion2b_s32b_b79k"`` -> (``"clip_vit_h_14"``, ``"laion2b_s32b_b79k"``); (spec, None) when
    the part before the first dot is not a registry name (file names, plain names)."""
    name, dot, tag = spec.partition(".")
    if dot and tag and registry.is_model_name(name) and not os.path.exists(spec):
        return registry.canonical_name(name), tag
    return spec, None


def _resolve_cached(ckpt: str, source: str) -> Resolved:
    """A converted cache entry: its YAML (with the weights' preprocessing) and its .ckpt."""
    return Resolved(registry.load_config(os.path.splitext(ckpt)[0] + ".yaml"), ckpt, source)


def load_config(name_or_path: Union[str, os.PathLike], expected: Optional[type] = None) -> StrictConfig:
    """The config of any spec (a name, YAML, directory or checkpoint); no weights are read for names/YAMLs."""
    path = os.fspath(name_or_path)
    if split_tag(path)[1] is not None:  # name.tag: the architecture, with the tag's preprocessing; no download
        name, tag = split_tag(path)
        if tag not in hub.zoo_tags(name):
            hub.get_zoo_checkpoint(name, tag)  # raises HubError naming the valid tags (nothing is downloaded)
        config = registry.load_config(name)
        config.preprocessing = dict(hub.zoo_tags(name)[tag]["preprocess"])
        config.checkpoint_name_or_path = path
        if expected is not None and not isinstance(config, expected):
            raise ConfigError(f"{path} is a {type(config).__name__}, not a {expected.__name__}")
        return config
    if path.startswith(HF_HUB_PREFIX) or _is_hf_repo_id(path):
        config = resolve(path).config
    elif path.endswith(WEIGHT_SUFFIXES) or (os.path.isdir(path) and os.path.isfile(os.path.join(path, "config.json"))
                                            and not os.path.isfile(os.path.join(path, registry.CONFIG_FILE))):
        config = resolve(path).config
    else:
        config = registry.load_config(path)
        if registry.is_model_name(path) and hub.has_pretrained(path):
            # MindFormers: the named config carries its weights, so CLIPModel(CLIPConfig.from_pretrained(name))
            # is the pretrained model (downloaded on first use), never a silently random one.
            config.checkpoint_name_or_path = registry.canonical_name(path)
    if expected is not None and not isinstance(config, expected):
        raise ConfigError(f"{path} is a {type(config).__name__}, not a {expected.__name__}; use "
                          f"{type(config).__name__}.from_pretrained or ms_clip.loader.load_config (any family)")
    return config


def save_config(config: StrictConfig, directory: str, name: str = registry.CONFIG_FILE) -> str:
    return registry.save_config(config, directory, name)


def list_models() -> List[str]:
    return registry.list_models()


def show_support_list(owner: str = "CLIPModel") -> None:
    """MindFormers' support list (the registry names), then each architecture's pretrained tags (default first)."""
    registry.show_support_list(owner)
    lines = []
    for name in registry.list_models():
        if name in registry.ALIASES:
            continue
        tags = list(hub.zoo_tags(name))
        default = hub.default_tag(name)
        if name in hub.PRETRAINED and not tags:
            tags, default = ["(bundled)" if "package_file" in hub.PRETRAINED[name] else "(default)"], None
        if tags:
            ordered = ([default] if default in tags else []) + [t for t in tags if t != default]
            lines.append(f"   {name}: " + ", ".join(f"{t} (default)" if t == default else t for t in ordered))
    print("pretrained weights (name.tag, or from_pretrained(name, pretrained=tag)):\n" + "\n".join(lines))


def get_tokenizer(name_or_path: Union[str, os.PathLike, StrictConfig, PreTrainedModel]) -> Callable[..., Any]:
    """The tokenizer of a model.

    ``name_or_path`` is anything ``load_config`` accepts (a registry name, a YAML, a checkpoint, a
    save_pretrained or HF folder), a model config or a model. CLIPConfig -> CLIP's BPE ``tokenize`` at
    the text tower's context length (77); ChineseCLIPConfig -> Chinese-CLIP's WordPiece tokenizer
    (``ms_clip.bert_tokenizer``, identical to ``cn_clip.clip.tokenize``) at its context length (52); both
    are ``texts -> int32 array [N, context_length]`` taking a string or a sequence of strings.

    VisionTextDualEncoderConfig -> the text tower's own tokenizer read from the model's folder
    (``ms_clip.hf_tokenizer.HFTokenizer``: HF's call surface, ``tok(texts)`` -> ``{"input_ids",
    "attention_mask"}`` int32 ``[N, context_length]``; ``tok.batch_ids(texts)`` -> the ids alone) at the
    model's context length (run_clip.py's 128 by default). The folder is the HF VisionTextDualEncoder folder,
    the save_pretrained directory or the ``.ckpt``'s directory, or a model's ``tokenizer_dir``. A bare HF
    BERT/RoBERTa folder (a text tower) gives its tokenizer at 128.

    Example:
        >>> ms_clip.get_tokenizer("chinese_clip_vit_b_16")(["一只猫", "一只狗"]).shape
        (2, 52)
    """
    from ms_clip.hf_tokenizer import DEFAULT_MAX_LENGTH, HFTokenizer, has_tokenizer_files, tokenizer_folder

    spec = getattr(name_or_path, "config", name_or_path)
    folder: Optional[str] = getattr(name_or_path, "tokenizer_dir", None)  # a dual encoder model knows its folder
    if not isinstance(spec, StrictConfig):
        candidate = tokenizer_folder(spec) if os.path.exists(os.fspath(spec)) else ""
        if candidate and has_tokenizer_files(candidate):
            folder = folder or candidate
            if _is_text_tower_folder(candidate):  # an HF BERT/RoBERTa folder: no image-text config to read
                return HFTokenizer.from_pretrained(candidate, model_max_length=DEFAULT_MAX_LENGTH)
    config = spec if isinstance(spec, StrictConfig) else load_config(spec)
    length = getattr(config, "context_length", None)
    if type(config).__name__ == "ChineseCLIPConfig":
        from ms_clip.bert_tokenizer import tokenize as wordpiece_tokenize

        return functools.partial(wordpiece_tokenize, context_length=length)
    if type(config).__name__ == "CLIPConfig":
        from ms_clip.tokenizer import tokenize as bpe_tokenize

        return functools.partial(bpe_tokenize, context_length=length)
    if type(config).__name__ == "VisionTextDualEncoderConfig":
        if not folder:
            raise ConfigError("a VisionTextDualEncoderConfig alone does not say where its text tokenizer is: pass the "
                              "model, its save_pretrained / HF folder or its .ckpt (the tokenizer files lie beside it)")
        if not has_tokenizer_files(folder):
            raise ConfigError(f"{folder}: the dual encoder's tokenizer files are missing (expected tokenizer.json, or "
                              f"vocab.json + merges.txt, or vocab.txt beside the weights)")
        return HFTokenizer.from_pretrained(folder, model_max_length=length or DEFAULT_MAX_LENGTH)
    raise ConfigError(f"no tokenizer for model config type {type(config).__name__}; known: CLIPConfig (BPE), "
                      f"ChineseCLIPConfig (WordPiece), VisionTextDualEncoderConfig (the text tower's own)")


def _is_text_tower_folder(folder: str) -> bool:
    """An HF folder of a text model alone (config.json of BERT/RoBERTa/...), or tokenizer files without any model
    config: not something ``load_config`` reads as an image-text model."""
    import json

    hf_config = os.path.join(folder, "config.json")
    if not os.path.isfile(hf_config):
        return not os.path.isfile(os.path.join(folder, registry.CONFIG_FILE))
    try:
        with open(hf_config, "r", encoding="utf-8") as f:
            model_type = str(json.load(f).get("model_type", ""))
    except (OSError, ValueError, AttributeError):
        return False  # let load_config report the broken file
    return bool(model_type) and "clip" not in model_type and "dual" not in model_type


# ----------------------------------------------------------------------------- architectures


def describe_architecture(config: StrictConfig) -> str:
    """A registry name whose architecture equals ``config``'s, else a short summary of the towers."""
    arch = config.architecture()
    for name in registry.list_models():
        if name in registry.ALIASES:
            continue
        try:
            if registry.load_config(name).architecture() == arch:
                return name
        except ConfigError:
            continue
    v, t = getattr(config, "vision_config", None), getattr(config, "text_config", None)
    parts = [type(config).__name__]
    if v is not None:
        parts.append(f"vision {getattr(v, 'hidden_size', '?')}w x {getattr(v, 'num_hidden_layers', '?')} layers, "
                     f"{getattr(v, 'image_size', '?')}px/{getattr(v, 'patch_size', '?')}")
    if t is not None:
        parts.append(f"text {getattr(t, 'hidden_size', '?')}w x {getattr(t, 'num_hidden_layers', '?')} layers")
    parts.append(f"projection {getattr(config, 'projection_dim', '?')}")
    return "(" + ", ".join(parts) + ")"


def _check_same_architecture(have: StrictConfig, want: StrictConfig, have_what: str, want_what: str) -> None:
    if type(have) is not type(want) or have.architecture() != want.architecture():
        raise ConfigError(f"architecture mismatch: {have_what} is {describe_architecture(have)} but {want_what} is "
                          f"{describe_architecture(want)}; make them name the same model")


def _with_overrides(config: StrictConfig, overrides: Mapping[str, Any], where: str) -> StrictConfig:
    if not overrides:
        return config
    return type(config).from_dict({**config.to_dict(), **overrides}, where)


# ----------------------------------------------------------------------------- building models


def _build(config: StrictConfig, model_class: Optional[type] = None):
    """A randomly initialised model of ``config``'s family (construction never loads weights here)."""
    cls = model_class_for(config)
    if model_class is not None and not issubclass(cls, model_class):
        raise ConfigError(f"the weights are a {cls.__name__} ({type(config).__name__}), not a {model_class.__name__}; "
                          f"use {cls.__name__}.from_pretrained or ms_clip.from_pretrained (any family)")
    if config.checkpoint_name_or_path:
        config = _with_overrides(config, {"checkpoint_name_or_path": ""}, "model config")
    return cls(config)


def create_model(name_or_config: Union[str, StrictConfig], **overrides: Any):
    """A randomly initialised model from a name, a YAML path, a directory or a config (no weights)."""
    config = name_or_config if isinstance(name_or_config, StrictConfig) else load_config(name_or_config)
    config = _with_overrides(config, {**overrides, "checkpoint_name_or_path": ""}, "create_model overrides")
    return _build(config)


def _load(model, resolved: Resolved) -> None:
    assign_weights(model, resolved.tensors(), source=f"weights {resolved.source}")
    logger.info("loaded weights from %s", resolved.source)
    if hasattr(model, "tokenizer_dir"):  # a dual encoder: its text tokenizer's files travel beside its weights
        model.tokenizer_dir = tokenizer_dir_of(resolved.source) or model.tokenizer_dir


def from_pretrained(name_or_path: Union[str, os.PathLike], model_class: Optional[type] = None, **overrides: Any):
    """A model with weights. Never returns random weights: any problem raises with what to do.

    ``pretrained="<tag>"`` (open_clip's keyword) picks the weights of a registry name:
    ``from_pretrained("clip_vit_h_14", pretrained="laion2b_s32b_b79k")`` = ``"clip_vit_h_14.laion2b_s32b_b79k"``.
    """
    tag = overrides.pop("pretrained", None)
    if tag:
        name = os.fspath(name_or_path)
        if not registry.is_model_name(name):
            raise ConfigError(f"pretrained={tag!r} needs a registry name (e.g. clip_vit_h_14), got {name!r}")
        name_or_path = f"{registry.canonical_name(name)}.{tag}"
    resolved = resolve(name_or_path)
    if resolved.weights is None:
        raise ConfigError(f"{os.fspath(name_or_path)} is a config without weights; use ms_clip.create_model for a "
                          f"randomly initialised model, or pass a checkpoint, a save_pretrained folder or a name")
    config = _with_overrides(resolved.config, {**overrides, "checkpoint_name_or_path": ""},
                             "from_pretrained overrides")
    model = _build(config, model_class)
    _load(model, resolved)
    return model


def save_pretrained(model, directory: str, save_name: str = "model") -> str:
    """``config.yaml`` + ``<save_name>.ckpt`` (both atomic); returns the checkpoint path.

    A model with a text tokenizer folder (``model.tokenizer_dir``: the dual encoder) also gets that tokenizer's
    files (``TOKENIZER_FILES``) copied beside them, so the directory is complete for ``get_tokenizer``.
    """
    registry.save_config(model.config, directory)
    path = save_weights(model, os.path.join(directory, save_name + ".ckpt"))
    copy_tokenizer_files(getattr(model, "tokenizer_dir", None), directory)
    return path


# ----------------------------------------------------------------------------- dual encoder

# What HF's AutoModel drops when it loads a BERT/RoBERTa base model from a *ForMaskedLM / *ForPreTraining folder.
_TEXT_HEADS = ("lm_head.", "cls.")
_TEXT_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")


def tokenizer_dir_of(spec: Union[str, os.PathLike, None]) -> Optional[str]:
    """The folder of ``spec`` (a directory, or a file's directory) if it holds tokenizer files, else None."""
    if not spec:
        return None
    path = os.fspath(spec)
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path)) if os.path.isfile(path) else ""
    if folder and any(os.path.isfile(os.path.join(folder, name)) for name in TOKENIZER_FILES):
        return os.path.abspath(folder)
    return None


def copy_tokenizer_files(source_dir: Optional[str], directory: str) -> List[str]:
    """Copy the tokenizer files of ``source_dir`` into ``directory`` (atomically each); returns the copied paths."""
    import shutil

    from ms_clip.fileio import atomic_path

    if not source_dir or os.path.abspath(source_dir) == os.path.abspath(directory):
        return []
    copied = []
    for name in TOKENIZER_FILES:
        src = os.path.join(source_dir, name)
        if os.path.isfile(src):
            with atomic_path(os.path.join(directory, name)) as tmp:
                shutil.copyfile(src, tmp)
            copied.append(os.path.join(directory, name))
    if not copied:
        logger.warning("tokenizer folder %s holds none of %s; nothing copied", source_dir, list(TOKENIZER_FILES))
    return copied


def _read_hf_text_tower(folder: str):
    """(BertConfig, tensors under ``text_model.*``, names HF would initialise) of an HF BERT/RoBERTa folder.

    Accepts what ``AutoModel.from_pretrained`` accepts for these towers: a base-model folder (``embeddings.*``) or a
    task-model folder (``roberta.*`` / ``bert.*`` + a ``lm_head.*`` / ``cls.*`` head, which is dropped). Any other
    key is an error naming it. A folder without the pooler (e.g. one saved from *ForMaskedLM) gets a new one, as
    HF does; the returned list names it (a warning is logged).
    """
    import json

    from ms_clip.convert import _HF_DUAL_TEXT_KEY, _read_safetensors, _read_torch_file, bert_config_from_hf

    config_path = os.path.join(folder, "config.json")
    weights = [os.path.join(folder, f) for f in ("model.safetensors", "pytorch_model.bin")
               if os.path.isfile(os.path.join(folder, f))]
    if not os.path.isdir(folder) or not os.path.isfile(config_path) or not weights:
        found = sorted(os.listdir(folder)) if os.path.isdir(folder) else "no such directory"
        raise ConvertError(f"{folder}: the text tower must be a Hugging Face BERT/RoBERTa folder with config.json and "
                           f"model.safetensors or pytorch_model.bin; found {found}")
    try:
        with open(config_path, "r", encoding="utf-8") as f:
            hf_text = json.load(f)
    except (OSError, ValueError) as err:
        raise ConvertError(f"{config_path}: not a readable JSON config ({err})") from None
    if weights[0].endswith(".safetensors"):
        raw, _ = _read_safetensors(weights[0])
    else:
        raw, _, _ = _read_torch_file(weights[0])
    base = f"{hf_text.get('model_type')}."  # base_model_prefix of BertFor* / RobertaFor* checkpoints
    has_base = any(k.startswith(base) for k in raw)
    tensors, unknown, dropped = {}, [], []
    for name, arr in raw.items():
        key = name[len(base):] if has_base and name.startswith(base) else name
        if (has_base and key == name and name.startswith(_TEXT_HEADS)) or key in _TEXT_BUFFERS:
            dropped.append(name)
        elif _HF_DUAL_TEXT_KEY.match("text_model." + key):
            tensors["text_model." + key] = arr
        else:
            unknown.append(name)
    if unknown:
        raise ConvertError(f"{weights[0]}: {len(unknown)} keys are not part of a BERT/RoBERTa model: "
                           f"{sorted(unknown)[:10]}")
    if dropped:
        logger.info("%s: not used by the text tower (task head / index buffers): %s", weights[0], sorted(dropped))
    pooler = ["text_model.pooler.dense.weight", "text_model.pooler.dense.bias"]
    new = [k for k in pooler if k not in tensors]
    if len(new) == 1:
        raise ConvertError(f"{weights[0]}: has {sorted(set(pooler) - set(new))[0][len('text_model.'):]} but not "
                           f"{new[0][len('text_model.'):]}")
    if new:
        logger.warning("%s has no pooler (text_model.pooler.dense.*): it is initialised as HF does "
                       "(N(0, initializer_range), zero bias) and must be trained", folder)
    return bert_config_from_hf(hf_text, tensors, "text_model.", folder), tensors, new


def from_vision_text_pretrained(vision: Union[str, os.PathLike], text: Union[str, os.PathLike],
                                projection_dim: int = 512, **overrides: Any):
    """HF ``VisionTextDualEncoderModel.from_vision_text_pretrained`` for ms_clip.

    ``vision``: any spec ``resolve`` takes that has a ViT vision tower and weights (a registered CLIP name, an
    ms_clip checkpoint or save_pretrained folder, an HF CLIPModel folder); its ``visual.*`` weights are used and
    its projection dropped. ``text``: an HF BERT/RoBERTa folder. ``visual_projection`` / ``text_projection`` are
    new, ``N(0, text initializer_range)`` (HF's _init_weights), ``logit_scale`` = ``logit_scale_init_value``.
    ``overrides``: other config fields (``context_length``, ``logit_scale_init_value``, ``compute_dtype``).
    """
    from ms_clip.models import VisionTextDualEncoderConfig
    from ms_clip.models.dual_encoder import DUAL_ENCODER_CONTEXT_LENGTH
    from ms_clip.models.vit import CLIPVisionConfig

    text = os.fspath(text)
    resolved = resolve(vision)
    if resolved.weights is None:
        raise ConfigError(f"vision tower {os.fspath(vision)!r} names a config without weights; give a model with "
                          f"weights (a registered name with pretrained weights, a checkpoint or a folder)")
    vision_config = getattr(resolved.config, "vision_config", None)
    if not isinstance(vision_config, CLIPVisionConfig):
        raise ConfigError(f"vision tower {os.fspath(vision)!r}: a dual encoder takes a CLIP ViT vision tower, this is "
                          f"{type(vision_config).__name__} (HF's dual encoder projects the ViT's pooled CLS token)")
    text_config, text_tensors, new_text = _read_hf_text_tower(text)
    fields = {"vision_config": vision_config, "text_config": text_config, "projection_dim": projection_dim,
              "context_length": min(DUAL_ENCODER_CONTEXT_LENGTH, text_config.max_text_length), **overrides}
    config = VisionTextDualEncoderConfig.from_dict(fields, "from_vision_text_pretrained")
    model = _build(config)
    own = {p.name: p for p in model.get_parameters()}
    tensors = {k: v for k, v in resolved.tensors().items() if k.startswith("visual.") and k != "visual.proj"}
    tensors.update(text_tensors)
    # New parameters keep the values the model was just initialised with (HF's distributions, see the model).
    fresh = ["visual.proj", "text_projection", "logit_scale"] + new_text
    tensors.update({name: own[name].asnumpy() for name in fresh})
    assign_weights(model, tensors, source=f"vision tower {os.fspath(vision)} + text tower {text}")
    model.tokenizer_dir = tokenizer_dir_of(text)
    logger.warning("%s are newly initialised: train the model before using its features",
                   ", ".join(fresh))
    return model


def load_named_weights(model, spec: str) -> None:
    """Load ``spec``'s weights into an already built ``model`` (a config's ``checkpoint_name_or_path``)."""
    resolved = resolve(spec)
    if resolved.weights is None:
        raise ConfigError(f"checkpoint_name_or_path {spec!r} names a config without weights")
    _check_same_architecture(resolved.config, model.config, f"checkpoint_name_or_path {spec!r}",
                             "the model's config")
    _load(model, resolved)


# ----------------------------------------------------------------------------- runs


def _get(config: Mapping[str, Any], path: str, default: Any = None) -> Any:
    node: Any = config
    for part in path.split("."):
        try:
            node = node[part]
        except (KeyError, TypeError, IndexError):
            return default
        if node is None:
            return default
    return node


def _explicitly_set(run_config: Mapping[str, Any], path: str) -> bool:
    """Whether the user set ``path`` (typed run configs record it); otherwise: set if not the default."""
    is_set = getattr(run_config, "is_set", None)
    if callable(is_set):
        return bool(is_set(path))
    return path != "trainer.model_name" or _get(run_config, path) not in (None, "", "clip_vit_b_32")


_ARCH_KEYS = ("text_config", "vision_config", "projection_dim")


def weights_spec_for_run(run_config: Mapping[str, Any], explicit: Any = None) -> str:
    """Steps (1)-(3) of the precedence table: the weights a run names, or ''."""
    if isinstance(explicit, (str, os.PathLike)) and os.fspath(explicit):
        return os.fspath(explicit)
    if _get(run_config, "load_checkpoint"):
        return str(_get(run_config, "load_checkpoint"))
    return str(_get(run_config, "model.model_config.checkpoint_name_or_path") or "")


def model_for_run(run_config: Mapping[str, Any], model: Any = None, weights: Any = None,
                  require_weights: bool = False):
    """The model a run uses, by the precedence table in the module docstring.

    Args:
        run_config: the validated run config (mapping access).
        model: ``Trainer(model=...)``: a model object, a config, a model/run YAML, a directory or a name.
        weights: the explicit weights argument (step 1), a spec string.
        require_weights: True for finetune / eval / predict: step (4) applies and (5) is an error.
    """
    model_config = dict(_get(run_config, "model.model_config") or {})
    overrides = {k: v for k, v in model_config.items()
                 if k in ARCH_FREE_FIELDS + ("dtype",) and k != "checkpoint_name_or_path"}
    spec = weights_spec_for_run(run_config, weights)
    model_name = _get(run_config, "trainer.model_name")
    if isinstance(model, PreTrainedModel):  # a model object: used as it is
        if spec:
            load_named_weights(model, spec)
        return model
    model_is_spec = isinstance(model, (str, os.PathLike)) and bool(os.fspath(model))
    if not spec and require_weights:
        if model_is_spec and not os.fspath(model).endswith((".yaml", ".yml")):
            spec = os.fspath(model)  # Trainer(model="clip_vit_b_32").evaluate(): that model's weights (4)
        elif model is None and registry.is_model_name(model_name) and \
                registry.canonical_name(model_name) in hub.PRETRAINED:
            spec = model_name  # (4) trainer.model_name's pretrained weights
        else:
            raise RunConfigError("no model weights given: set load_checkpoint (--load_checkpoint) to a .ckpt, a "
                              "save_pretrained folder or a model name (e.g. clip_vit_b_32), or "
                              "model.model_config.checkpoint_name_or_path; evaluation, prediction and fine-tuning "
                              "never use random weights")

    # What the run config says the architecture is, strongest first, with a description for messages.
    declared: List[tuple] = []
    if isinstance(model, StrictConfig):
        declared.append((model, "the model config passed to Trainer"))
    elif model_is_spec and os.fspath(model) != spec:
        declared.append((load_config(model), f"Trainer(model={os.fspath(model)!r})"))
    if any(k in model_config for k in _ARCH_KEYS):
        declared.append((family_config_from_dict(model_config, "model.model_config"), "the run config's "
                         "model.model_config"))
    if registry.is_model_name(model_name) and model_name != spec and _explicitly_set(run_config, "trainer.model_name"):
        declared.append((registry.load_config(model_name), f"trainer.model_name {model_name!r}"))

    if spec:
        resolved = resolve(spec)
        if resolved.weights is None:
            raise ConfigError(f"{spec!r} names a config without weights; load_checkpoint needs a .ckpt, a "
                              f"save_pretrained folder or a model name")
        arch = resolved.config
        # Only the strongest declaration is checked: trainer.model_name is often just the YAML's default
        # name while model.model_config or Trainer(model=...) says what is meant.
        if declared:
            _check_same_architecture(arch, declared[0][0], f"the weights {spec!r}", declared[0][1])
            # Same network: build the declared config, so its training-only fields (dropouts, init) apply.
            arch = declared[0][0]
    elif declared:
        arch, resolved = declared[0][0], None
    else:
        raise ConfigError(f"trainer.model_name: {model_name!r} is not a registered model; set it to one of "
                          f"{registry.list_models()} or give model.model_config")
    arch = _with_overrides(arch, overrides, "model.model_config")
    built = _build(arch)
    if resolved is not None:
        _load(built, resolved)
    else:
        logger.info("model initialised randomly (no load_checkpoint / checkpoint_name_or_path): training from "
                    "scratch")
    return built


register_loader(sys.modules[__name__])
