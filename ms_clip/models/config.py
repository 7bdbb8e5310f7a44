"""Typed, strict configs for CLIP (MindFormers' field names and defaults).

Every field is read by ``ms_clip.models.clip``; unknown keys are rejected with the list of
valid ones, so a typo in a YAML never silently does nothing.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from ms_clip.errors import MsClipError

__all__ = ["CLIPTextConfig", "CLIPVisionConfig", "CLIPConfig", "ConfigError", "COMPUTE_DTYPES", "HIDDEN_ACTS"]

COMPUTE_DTYPES = ("float32", "float16", "bfloat16")
HIDDEN_ACTS = ("quick_gelu", "gelu", "gelu_tanh", "relu")
# YAML bookkeeping keys that MindFormers writes into configs; accepted and ignored.
_IGNORED_KEYS = ("type",)


class ConfigError(MsClipError, ValueError):
    """A config value or key is invalid; the message names it and what was expected."""


def _suggest(key: str, valid) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1)
    return f" Did you mean '{close[0]}'?" if close else ""


def _strict_kwargs(cls, data: Mapping[str, Any], where: str) -> Dict[str, Any]:
    """Return ``data`` minus ignored keys; raise ConfigError naming any unknown key."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of config keys, got {type(data).__name__}: {data!r}")
    valid = [f.name for f in dataclasses.fields(cls)] + list(getattr(cls, "_aliases", {}))
    out = {}
    for key, value in data.items():
        if key in _IGNORED_KEYS:
            continue
        if key not in valid:
            raise ConfigError(
                f"{where}: unknown key '{key}'.{_suggest(key, valid)} Valid keys: {sorted(valid)}"
            )
        out[getattr(cls, "_aliases", {}).get(key, key)] = value
    return out


class SupportList:
    """MindFormers' ``show_support_list()`` / ``get_support_list()`` for CLIPConfig and CLIPModel."""

    @classmethod
    def show_support_list(cls) -> None:
        from ms_clip.registry import show_support_list

        show_support_list(cls.__name__)

    @classmethod
    def get_support_list(cls) -> List[str]:
        from ms_clip.registry import list_models

        return list_models()


class _Strict:
    """Mixin: construction from dicts, export to dicts."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: Optional[str] = None):
        return cls(**_strict_kwargs(cls, data, where or cls.__name__))

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def _check_positive(self, *names: str) -> None:
        for name in names:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{type(self).__name__}.{name} must be a positive integer, got {value!r}")

    def _check_choice(self, name: str, choices) -> None:
        value = getattr(self, name)
        if value not in choices:
            raise ConfigError(f"{type(self).__name__}.{name} must be one of {list(choices)}, got {value!r}")

    def _check_prob(self, *names: str) -> None:
        for name in names:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ConfigError(f"{type(self).__name__}.{name} must be a probability in [0, 1), got {value!r}")

    def _check_heads(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"{type(self).__name__}: hidden_size must be divisible by num_attention_heads "
                f"(got {self.hidden_size} and {self.num_attention_heads})"
            )


@dataclass
class CLIPTextConfig(_Strict):
    """Text transformer. Defaults are ViT-B/32's (MindFormers/OpenAI)."""

    vocab_size: int = 49408
    hidden_size: int = 512
    intermediate_size: int = 2048  # MLP width (OpenAI: 4 * hidden_size)
    num_hidden_layers: int = 12
    num_attention_heads: int = 8
    max_position_embeddings: int = 77  # context length
    hidden_act: str = "quick_gelu"
    dropout: float = 0.0  # residual dropout after attention and MLP
    attention_dropout: float = 0.0
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02  # std of token embedding init (OpenAI)
    initializer_factor: float = 1.0  # multiplies every init std (HF convention)
    # MindFormers spelled the dropout argument `drop_out`; accept it as an alias.
    _aliases = {"drop_out": "dropout"}

    def __post_init__(self):
        self._check_positive("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                             "num_attention_heads", "max_position_embeddings")
        self._check_heads()
        self._check_choice("hidden_act", HIDDEN_ACTS)
        self._check_prob("dropout", "attention_dropout")


@dataclass
class CLIPVisionConfig(_Strict):
    """Vision transformer. Defaults are ViT-B/32's."""

    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    image_size: int = 224
    patch_size: int = 32
    num_channels: int = 3
    hidden_act: str = "quick_gelu"
    dropout: float = 0.0
    attention_dropout: float = 0.0
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    initializer_factor: float = 1.0
    _aliases = {}  # plain class attribute, not a field

    def __post_init__(self):
        self._check_positive("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                             "image_size", "patch_size", "num_channels")
        self._check_heads()
        if self.image_size % self.patch_size:
            raise ConfigError(
                f"CLIPVisionConfig: image_size must be divisible by patch_size "
                f"(got {self.image_size} and {self.patch_size})"
            )
        self._check_choice("hidden_act", HIDDEN_ACTS)
        self._check_prob("dropout", "attention_dropout")

    @property
    def grid_size(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_positions(self) -> int:
        return self.grid_size ** 2 + 1


@dataclass
class CLIPConfig(_Strict, SupportList):
    """The whole model: two towers, the shared embedding size and the temperature."""

    text_config: CLIPTextConfig = field(default_factory=CLIPTextConfig)
    vision_config: CLIPVisionConfig = field(default_factory=CLIPVisionConfig)
    projection_dim: int = 512
    logit_scale_init_value: float = math.log(1 / 0.07)  # 2.6592..., OpenAI's init
    # Computation dtype of Dense/matmul layers; LayerNorm, softmax and the loss stay float32.
    compute_dtype: str = "float32"
    # Weights to load after construction: a registry name, a directory or a .ckpt ('' = random init).
    checkpoint_name_or_path: str = ""
    # MindFormers called compute_dtype `dtype`.
    _aliases = {"dtype": "compute_dtype"}

    def __post_init__(self):
        if isinstance(self.text_config, Mapping):
            self.text_config = CLIPTextConfig.from_dict(self.text_config, "CLIPConfig.text_config")
        if isinstance(self.vision_config, Mapping):
            self.vision_config = CLIPVisionConfig.from_dict(self.vision_config, "CLIPConfig.vision_config")
        if not isinstance(self.text_config, CLIPTextConfig):
            raise ConfigError(f"CLIPConfig.text_config must be a CLIPTextConfig or dict, got {type(self.text_config).__name__}")
        if not isinstance(self.vision_config, CLIPVisionConfig):
            raise ConfigError(
                f"CLIPConfig.vision_config must be a CLIPVisionConfig or dict, got {type(self.vision_config).__name__}"
            )
        self._check_positive("projection_dim")
        self._check_choice("compute_dtype", COMPUTE_DTYPES)
        if self.checkpoint_name_or_path is None:
            self.checkpoint_name_or_path = ""

    # Registry-backed constructors live in ms_clip.registry; imported lazily to keep this file standalone.
    @classmethod
    def from_pretrained(cls, name_or_path: str) -> "CLIPConfig":
        """Config from a registry name (``clip_vit_b_32``), a model/run YAML, or a directory holding one."""
        from ms_clip.registry import load_config

        return load_config(name_or_path)

    def save_pretrained(self, save_directory: str, name: str = "config.yaml") -> str:
        from ms_clip.registry import save_config

        return save_config(self, save_directory, name)
