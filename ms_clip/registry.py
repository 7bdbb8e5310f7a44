"""Names -> architectures (``model_configs/*.yaml``) and names -> pretrained weights.

Two axes, as in open_clip: an architecture is a YAML file whose stem is its name; weights for
a name are resolved by ``ms_clip.hub`` (local cache, then verified download + conversion).
"""
from __future__ import annotations

import difflib
import glob
import logging
import os
from typing import Any, Dict, List, Mapping, Optional

import yaml

from ms_clip.models.config import CLIPConfig, ConfigError

logger = logging.getLogger(__name__)

__all__ = ["list_models", "canonical_name", "load_config", "save_config", "create_model",
           "load_pretrained_model", "save_pretrained_model", "show_support_list", "resolve_weights", "MODEL_CONFIG_DIR"]

MODEL_CONFIG_DIR = os.path.join(os.path.dirname(__file__), "model_configs")
# MindFormers' names that are not filename-safe (or legacy spellings) -> canonical names.
ALIASES = {"clip_vit_l_14@336": "clip_vit_l_14_336", "mindspore/clip_vit_b_32": "clip_vit_b_32"}
CONFIG_FILE = "config.yaml"


def list_models() -> List[str]:
    """Registered architecture names (canonical) plus MindFormers' aliases."""
    names = sorted(os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(MODEL_CONFIG_DIR, "*.yaml")))
    return names + sorted(a for a in ALIASES if ALIASES[a] in names)


def canonical_name(name: str) -> str:
    name = ALIASES.get(name, name)
    if not os.path.isfile(os.path.join(MODEL_CONFIG_DIR, name + ".yaml")):
        valid = list_models()
        close = difflib.get_close_matches(name, valid, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown model name '{name}'.{hint} Valid names: {valid}")
    return name


def is_model_name(name: str) -> bool:
    try:
        canonical_name(name)
        return True
    except ConfigError:
        return False


def show_support_list(owner: str = "CLIPModel") -> None:
    logger.info("support list of %s is:", owner)
    logger.info("   %s", list_models())
    print(f"support list of {owner} is:\n   {list_models()}")


def _read_yaml(path: str) -> Dict[str, Any]:
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return dict(data)


def config_from_dict(data: Mapping[str, Any], where: str) -> CLIPConfig:
    """A model config from either a model YAML dict or a MindFormers run YAML (``model.model_config``)."""
    if "model" in data and isinstance(data["model"], Mapping):
        model = data["model"]
        if "model_config" not in model:
            raise ConfigError(f"{where}: run config has 'model' but no 'model.model_config'")
        data = model["model_config"]
        where = f"{where}: model.model_config"
    return CLIPConfig.from_dict(data, where)


def _find_one(directory: str, pattern: str, what: str) -> Optional[str]:
    found = sorted(glob.glob(os.path.join(directory, pattern)))
    if len(found) > 1:
        preferred = os.path.join(directory, CONFIG_FILE)
        if what == "config" and preferred in found:
            return preferred
        raise ConfigError(f"{directory}: expected one {what} file ({pattern}), found {len(found)}: "
                          f"{[os.path.basename(p) for p in found]}")
    return found[0] if found else None


def load_config(name_or_path: str) -> CLIPConfig:
    """Config from a registry name, a YAML file (model or run config) or a directory holding one."""
    name_or_path = os.fspath(name_or_path)
    if os.path.isdir(name_or_path):
        path = _find_one(name_or_path, "*.yaml", "config")
        if path is None:
            raise ConfigError(f"{name_or_path}: no *.yaml model config in this directory "
                              f"(expected {CONFIG_FILE} as written by save_pretrained)")
        return config_from_dict(_read_yaml(path), path)
    if name_or_path.endswith((".yaml", ".yml")):
        if not os.path.isfile(name_or_path):
            raise ConfigError(f"config file not found: {name_or_path}")
        return config_from_dict(_read_yaml(name_or_path), name_or_path)
    name = canonical_name(name_or_path)
    path = os.path.join(MODEL_CONFIG_DIR, name + ".yaml")
    return config_from_dict(_read_yaml(path), path)


def save_config(config: CLIPConfig, directory: str, name: str = CONFIG_FILE) -> str:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        yaml.safe_dump(config.to_dict(), f, sort_keys=False)
    os.replace(tmp, path)
    return path


def config_path_for_checkpoint(ckpt_path: str) -> Optional[str]:
    """The config saved beside a checkpoint: ``<stem>.yaml``, else ``config.yaml`` in its directory."""
    stem = os.path.splitext(ckpt_path)[0]
    for candidate in (stem + ".yaml", os.path.join(os.path.dirname(ckpt_path) or ".", CONFIG_FILE)):
        if os.path.isfile(candidate):
            return candidate
    return None


def create_model(name_or_config, **overrides):
    """A randomly initialised model from a name, YAML path, directory or CLIPConfig (no weights)."""
    from ms_clip.models.clip import CLIPModel

    config = name_or_config if isinstance(name_or_config, CLIPConfig) else load_config(name_or_config)
    if overrides:
        config = CLIPConfig.from_dict({**config.to_dict(), **overrides}, "overrides")
    return CLIPModel(config)


def resolve_weights(name_or_path: str):
    """(config, checkpoint path) for a name, directory or .ckpt file."""
    path = os.fspath(name_or_path)
    if path.endswith(".ckpt"):
        if not os.path.isfile(path):
            raise ConfigError(f"checkpoint file not found: {path}")
        cfg_path = config_path_for_checkpoint(path)
        if cfg_path is None:
            raise ConfigError(f"no model config beside {path}: expected {os.path.splitext(path)[0]}.yaml or "
                              f"{os.path.join(os.path.dirname(path) or '.', CONFIG_FILE)} (save_pretrained and "
                              f"convert_weight.py write one)")
        return config_from_dict(_read_yaml(cfg_path), cfg_path), path
    if os.path.isdir(path):
        ckpt = _find_one(path, "*.ckpt", "checkpoint")
        if ckpt is None:
            raise ConfigError(f"{path}: no .ckpt file in this directory (expected what save_pretrained writes: "
                              f"{CONFIG_FILE} + model.ckpt)")
        return load_config(path), ckpt
    from ms_clip import hub  # a registry name: local cache, else verified download + conversion

    name = canonical_name(path)
    return load_config(name), hub.get_pretrained_checkpoint(name)


def load_pretrained_model(name_or_path: str, **overrides):
    """CLIPModel with weights. Never returns random weights: any problem raises with what to do."""
    from ms_clip.weights import load_weights

    config, ckpt = resolve_weights(name_or_path)
    # The weights are loaded here; a checkpoint_name_or_path saved in the config must not load others.
    overrides = {**overrides, "checkpoint_name_or_path": ""}
    config = CLIPConfig.from_dict({**config.to_dict(), **overrides}, "from_pretrained overrides")
    model = create_model(config)
    load_weights(model, ckpt)
    logger.info("loaded %s from %s", name_or_path, ckpt)
    return model


def save_pretrained_model(model, directory: str, save_name: str = "model") -> str:
    from ms_clip.weights import save_weights

    save_config(model.config, directory)
    return save_weights(model, os.path.join(directory, save_name + ".ckpt"))
