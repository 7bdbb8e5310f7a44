"""Architecture names -> model configs (``model_configs/*.yaml``; the file stem is the name).

The first of the two registry axes, as in open_clip; the second (which weights exist for a name)
is ``ms_clip.hub.PRETRAINED``. This module reads and writes configs only; weights are the loader's.
"""
from __future__ import annotations

import glob
import logging
import os
from typing import Any, Dict, List, Mapping, Optional

from ms_clip.fileio import YamlError, read_yaml, write_yaml
from ms_clip.models import family_config_from_dict
from ms_clip.models.base import ConfigError, StrictConfig, suggest
from ms_clip.pretrained_table import ALIASES as ZOO_ALIASES

logger = logging.getLogger(__name__)

__all__ = ["list_models", "canonical_name", "is_model_name", "load_config", "save_config", "config_from_dict",
           "config_path_for_checkpoint", "show_support_list", "MODEL_CONFIG_DIR", "CONFIG_FILE", "ALIASES"]

MODEL_CONFIG_DIR = os.path.join(os.path.dirname(__file__), "model_configs")
# MindFormers' names that are not filename-safe (or legacy spellings) -> canonical names.
ALIASES = {"clip_vit_l_14@336": "clip_vit_l_14_336", "mindspore/clip_vit_b_32": "clip_vit_b_32"}
# open_clip's activation-suffixed spellings of OpenAI's architectures (clip_vit_b_32_quickgelu -> clip_vit_b_32).
ALIASES.update(ZOO_ALIASES)
CONFIG_FILE = "config.yaml"

def list_models() -> List[str]:
    """Registered architecture names (canonical) plus MindFormers' aliases."""
    names = sorted(os.path.splitext(os.path.basename(p))[0]
                   for p in glob.glob(os.path.join(MODEL_CONFIG_DIR, "*.yaml")))
    return names + sorted(a for a in ALIASES if ALIASES[a] in names)

def canonical_name(name: str) -> str:
    """The canonical registry name; ConfigError with the closest valid name for an unknown one."""
    name = ALIASES.get(name, name)
    if not os.path.isfile(os.path.join(MODEL_CONFIG_DIR, name + ".yaml")):
        valid = list_models()
        raise ConfigError(f"unknown model name '{name}'.{suggest(name, valid)} Valid names: {valid}")
    return name

def is_model_name(name: Any) -> bool:
    if not isinstance(name, str) or not name:
        return False
    try:
        canonical_name(name)
        return True
    except ConfigError:
        return False

def show_support_list(owner: str = "CLIPModel") -> None:
    """MindFormers' ``show_support_list()``: prints (and logs) the registered names."""
    logger.info("support list of %s is:", owner)
    logger.info("   %s", list_models())
    print(f"support list of {owner} is:\n   {list_models()}")

def config_from_dict(data: Mapping[str, Any], where: str) -> StrictConfig:
    """A model config from a model YAML dict or a MindFormers run YAML (``model.model_config``)."""
    if "model" in data and isinstance(data["model"], Mapping):
        model = data["model"]
        if "model_config" not in model:
            raise ConfigError(f"{where}: run config has 'model' but no 'model.model_config'")
        data = model["model_config"]
        where = f"{where}: model.model_config"
    return family_config_from_dict(data, where)

def _read(path: str) -> Dict[str, Any]:
    try:
        return read_yaml(path, "model config")
    except YamlError as err:
        raise ConfigError(str(err)) from None

def _find_one(directory: str, pattern: str, what: str) -> Optional[str]:
    found = sorted(glob.glob(os.path.join(directory, pattern)))
    if len(found) > 1:
        preferred = os.path.join(directory, CONFIG_FILE)
        if what == "config" and preferred in found:
            return preferred
        raise ConfigError(f"{directory}: expected one {what} file ({pattern}), found {len(found)}: "
                          f"{[os.path.basename(p) for p in found]}")
    return found[0] if found else None

def load_config(name_or_path: str) -> StrictConfig:
    """Config from a registry name, a YAML file (model or run config) or a directory holding one."""
    name_or_path = os.fspath(name_or_path)
    if os.path.isdir(name_or_path):
        path = _find_one(name_or_path, "*.yaml", "config")
        if path is None:
            raise ConfigError(f"{name_or_path}: no *.yaml model config in this directory "
                              f"(expected {CONFIG_FILE} as written by save_pretrained)")
        return config_from_dict(_read(path), path)
    if name_or_path.endswith((".yaml", ".yml")):
        if not os.path.isfile(name_or_path):
            raise ConfigError(f"config file not found: {name_or_path}")
        return config_from_dict(_read(name_or_path), name_or_path)
    name = canonical_name(name_or_path)
    path = os.path.join(MODEL_CONFIG_DIR, name + ".yaml")
    return config_from_dict(_read(path), path)

def save_config(config: StrictConfig, directory: str, name: str = CONFIG_FILE) -> str:
    """Write ``config`` (with its ``type``) as YAML, atomically; returns the path."""
    return write_yaml(os.path.join(directory, name), config.to_dict())

def config_path_for_checkpoint(ckpt_path: str) -> Optional[str]:
    """The config saved beside a checkpoint: ``<stem>.yaml``, else ``config.yaml`` in its directory."""
    stem = os.path.splitext(ckpt_path)[0]
    for candidate in (stem + ".yaml", os.path.join(os.path.dirname(ckpt_path) or ".", CONFIG_FILE)):
        if os.path.isfile(candidate):
            return candidate
    return None
