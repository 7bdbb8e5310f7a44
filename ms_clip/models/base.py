"""What every model family shares: strict dataclass configs and the pretrained-model surface.

Models are leaves of the package: nothing here imports from above ``ms_clip.models`` (except the
``ms_clip.errors`` base class). Loading weights is the job of ``ms_clip.loader``, which sits above
the models; the public model classes still offer MindFormers' surface (``from_pretrained``,
``save_pretrained``, ``show_support_list`` and a config whose ``checkpoint_name_or_path`` loads
weights at construction) by *delegating* to the loader that ``ms_clip.loader`` registers here with
``register_loader`` when the package is imported. That keeps the import graph one-way.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import os
import types
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Tuple

import mindspore as ms
from mindspore import Tensor, nn, ops

from ms_clip.errors import MsClipError

__all__ = ["ConfigError", "UnknownConfigKey", "StrictConfig", "PreTrainedModel", "register_loader", "suggest",
           "ARCH_FREE_FIELDS", "compiled_method", "EAGER_ENV"]

# YAML bookkeeping keys that MindFormers writes into configs. ``type`` names the config class; it is
# checked by the loader (family dispatch) and ignored by the dataclass itself.
_IGNORED_KEYS = ("type",)

# Config fields that do not change the parameter shapes or what the network computes at inference: a
# run config may set them on top of an architecture that comes with weights (see ms_clip.loader).
ARCH_FREE_FIELDS = ("compute_dtype", "checkpoint_name_or_path", "dropout", "attention_dropout",
                    "hidden_dropout_prob", "attention_probs_dropout_prob", "initializer_range",
                    "initializer_factor", "logit_scale_init_value", "preprocessing")


# ``MS_CLIP_EAGER=1`` turns the compiled direct calls below back into op-by-op PyNative (for debugging with prints
# and pdb inside the towers); read at import.
EAGER_ENV = "MS_CLIP_EAGER"


class compiled_method:
    """A model method compiled behind the call with ``mindspore.jit`` (the feature methods of every family).

    MindSpore's default is PyNative, where ``model.get_image_features(x)`` called from Python runs op by op:
    measured 0.23-0.37x the speed of the same tower compiled (ViT-B/32, batch 32; issue #16). ``mindspore.jit``
    on the method compiles it once per input shape and training flag, in either mode, and is differentiable
    in PyNative. Inside a compiled graph (``construct`` of an outer Cell in GRAPH_MODE, or another jit) the
    call is inlined like any method, so ``features.ImageEncoder`` and the training cells are unchanged.

    A descriptor rather than ``@ms.jit`` so that ``MS_CLIP_EAGER=1`` can switch it off at import.
    """

    def __init__(self, method: Callable):
        functools.update_wrapper(self, method)
        self.method = method
        self.compiled = method if os.environ.get(EAGER_ENV) == "1" else ms.jit(method)

    def __get__(self, obj: Any, owner: Any = None) -> Callable:
        if obj is None:
            return self.method
        return types.MethodType(self.compiled, obj)


class ConfigError(MsClipError, ValueError):
    """A config value or key is invalid; the message names it and what was expected."""


def suggest(key: str, valid) -> str:
    """`` Did you mean 'x'?`` for the closest valid key, or ``''``."""
    close = difflib.get_close_matches(str(key), [str(v) for v in valid], n=1)
    return f" Did you mean '{close[0]}'?" if close else ""


class UnknownConfigKey(ConfigError, TypeError):
    """An unknown keyword or attribute on a config (a TypeError too, as a dataclass would raise)."""


def _field_names(cls) -> List[str]:
    return [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else []


class _StrictMeta(type):
    """Maps MindFormers' keyword spellings (``_aliases``, e.g. ``CLIPConfig(dtype=...)``) and names unknown
    keywords with a suggestion, for direct construction as well as ``from_dict``."""

    def __call__(cls, *args, **kwargs):
        if kwargs and dataclasses.is_dataclass(cls):
            valid = _field_names(cls)
            aliases = getattr(cls, "_aliases", {})
            mapped = {}
            for key, value in kwargs.items():
                name = aliases.get(key, key)
                if name not in valid:
                    raise UnknownConfigKey(f"{cls.__name__}: unknown key '{key}'.{suggest(key, valid + list(aliases))} "
                                           f"Valid keys: {sorted(valid + list(aliases))}")
                mapped[name] = value
            kwargs = mapped
        return super().__call__(*args, **kwargs)


class SupportList:
    """MindFormers' ``show_support_list()`` / ``get_support_list()`` (the registered names), for configs and models."""

    @classmethod
    def show_support_list(cls) -> None:
        _loader().show_support_list(cls.__name__)

    @classmethod
    def get_support_list(cls) -> List[str]:
        return _loader().list_models()


class StrictConfig(SupportList, metaclass=_StrictMeta):
    """Mixin for config dataclasses: construction from dicts or keywords (unknown keys are errors, MindFormers'
    spellings accepted), export to dicts, and no silent new attributes.

    Subclasses may declare ``_aliases`` (a plain class attribute: old key -> field name) for
    MindFormers' spellings.
    """

    _aliases: Dict[str, str] = {}

    def __setattr__(self, name: str, value: Any) -> None:
        # ``config.hiden_size = 64`` would otherwise add an attribute the model never reads.
        valid = _field_names(type(self))
        name = self._aliases.get(name, name)
        if valid and name not in valid and not name.startswith("_"):
            raise UnknownConfigKey(f"{type(self).__name__} has no field '{name}'.{suggest(name, valid)} "
                                   f"Valid fields: {sorted(valid)}")
        object.__setattr__(self, name, value)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: Optional[str] = None):
        where = where or cls.__name__
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a mapping of config keys, got {type(data).__name__}: {data!r}")
        valid = [f.name for f in dataclasses.fields(cls)] + list(cls._aliases)
        kwargs = {}
        for key, value in data.items():
            if key in _IGNORED_KEYS:
                continue
            if key not in valid:
                raise UnknownConfigKey(f"{where}: unknown key '{key}'.{suggest(key, valid)} "
                                       f"Valid keys: {sorted(valid)}")
            kwargs[cls._aliases.get(key, key)] = value
        return cls(**kwargs)

    def to_dict(self) -> Dict[str, Any]:
        """Plain nested dict; the first key, ``type``, names the config class (as MindFormers' YAMLs do)."""
        out: Dict[str, Any] = {"type": type(self).__name__}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.to_dict() if isinstance(value, StrictConfig) else value
        return out

    def architecture(self) -> Dict[str, Any]:
        """The fields that define the network (shapes and function), for comparing two configs."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name in ARCH_FREE_FIELDS:
                continue
            value = getattr(self, f.name)
            out[f.name] = value.architecture() if isinstance(value, StrictConfig) else value
        return out

    # ------------------------------------------------------------------ value checks with named errors
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

    def _check_heads(self, width: str = "hidden_size", heads: str = "num_attention_heads") -> None:
        if getattr(self, width) % getattr(self, heads):
            raise ConfigError(
                f"{type(self).__name__}: {width} must be divisible by {heads} "
                f"(got {getattr(self, width)} and {getattr(self, heads)})"
            )

    def _sub_config(self, name: str, cls) -> None:
        """Turn a dict field into ``cls`` (strictly) and check the type."""
        value = getattr(self, name)
        if isinstance(value, Mapping):
            value = cls.from_dict(value, f"{type(self).__name__}.{name}")
            setattr(self, name, value)
        if not isinstance(value, cls):
            raise ConfigError(f"{type(self).__name__}.{name} must be a {cls.__name__} or dict, "
                              f"got {type(value).__name__}")

    # ------------------------------------------------------------------ loader-backed (see module docstring)
    @classmethod
    def from_pretrained(cls, name_or_path: str):
        """The config of a registry name (``clip_vit_b_32``), a model/run YAML, a checkpoint or a directory."""
        return _loader().load_config(name_or_path, expected=cls)

    def save_pretrained(self, save_directory: Optional[str] = None, name: str = "config.yaml") -> str:
        """Write this config as YAML (atomically) into ``save_directory``; returns the path.

        As MindFormers: ``save_directory`` defaults to ``./checkpoint_save``, and a ``name`` without a YAML
        suffix (MindFormers' ``save_name``, e.g. ``clip_vit_b_32``) gets ``.yaml``.
        """
        import os

        directory = save_directory if save_directory is not None else os.path.join(os.getcwd(), "checkpoint_save")
        if not name.endswith((".yaml", ".yml")):
            name += ".yaml"
        return _loader().save_config(self, directory, name)



class _Loader(Protocol):  # what ms_clip.loader provides (structural type, for readers and type checkers)
    def load_config(self, name_or_path: str, expected: Any = None) -> Any: ...
    def save_config(self, config: Any, directory: str, name: str) -> str: ...
    def from_pretrained(self, name_or_path: str, model_class: Any = None, **overrides: Any) -> Any: ...
    def save_pretrained(self, model: Any, directory: str, save_name: str) -> str: ...
    def load_named_weights(self, model: Any, spec: str) -> None: ...
    def from_vision_text_pretrained(self, vision: Any, text: Any, projection_dim: int = 512, **kw: Any) -> Any: ...
    def list_models(self) -> List[str]: ...
    def show_support_list(self, owner: str) -> None: ...


_LOADER: Optional[_Loader] = None


def register_loader(loader: _Loader) -> None:
    """Called once by ``ms_clip.loader`` at import; the models call back into it for weights."""
    global _LOADER
    _LOADER = loader


def _loader() -> _Loader:
    if _LOADER is None:  # only reachable if ms_clip.models is imported without the ms_clip package
        raise MsClipError("no weight loader registered: import ms_clip (which registers ms_clip.loader) first")
    return _LOADER


class PreTrainedModel(nn.Cell, SupportList):
    """Base of the public model classes: MindFormers' pretrained surface, delegated to the loader.

    Subclasses set ``config_class`` and call ``self.load_named_weights()`` at the end of ``__init__``;
    the Cells themselves never read files.
    """

    config_class: Any = None
    base_model_prefix = "clip"  # MindFormers 1.2's ClipPreTrainedModel attribute

    def __init__(self) -> None:
        super().__init__()
        self.l2_normalize = ops.L2Normalize(axis=-1, epsilon=1e-12)

    # ------------------------------------------------------------------ what every family computes
    # An image tower ``self.visual`` (ViT or ResNet, with its projection), a text tower behind
    # ``get_text_features`` (each family's own) and ``logit_scale``.
    @compiled_method
    def get_image_features(self, pixel_values: Tensor) -> Tensor:
        """[B, 3, H, W] normalised pixels -> [B, projection_dim] (float32, not normalised)."""
        return self.visual(pixel_values)

    def get_text_features(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} defines no text tower")

    def construct(self, image: Tensor, text: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """``(image_embeds, text_embeds, exp(logit_scale))`` with L2-normalised embeddings (open_clip's output)."""
        image_embeds = self.l2_normalize(self.get_image_features(image))
        text_embeds = self.l2_normalize(self.get_text_features(text))
        return image_embeds, text_embeds, ops.exp(self.logit_scale)

    # ------------------------------------------------------------------ MindFormers' / HF's calling forms
    # construct(image, text) -> (image_embeds, text_embeds, exp(logit_scale)) in every mode; it is what graphs
    # compile. The keyword spellings MindFormers and HF used are mapped here, in Python, before the Cell call,
    # so the compiled signature never changes.
    _CALL_KEYWORDS = {"pixel_values": "image", "input_ids": "text"}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs:
            if "label" in kwargs:
                raise ConfigError(f"{type(self).__name__}(..., label=...): the model returns embeddings in every "
                                  f"mode; for MindFormers' (logits, label) use model.get_logits(image, text, label) "
                                  f"and for its training loss ms_clip.CLIPWithLoss(model)(image, text)")
            for given, name in self._CALL_KEYWORDS.items():
                if given in kwargs:
                    if name in kwargs:
                        raise ConfigError(f"{type(self).__name__}: got both {given}= and {name}=; pass one")
                    kwargs[name] = kwargs.pop(given)
            if args or set(kwargs) - {"image", "text"}:
                unknown = sorted(set(kwargs) - {"image", "text"})
                if unknown:
                    raise UnknownConfigKey(f"{type(self).__name__}(): unknown arguments {unknown}; call it as "
                                           f"model(image, text) (or pixel_values=..., input_ids=...)")
                args = args + tuple(kwargs.pop(n) for n in ("image", "text")[len(args):] if n in kwargs)
            else:
                args = (kwargs.pop("image", None), kwargs.pop("text", None))
        return super().__call__(*args, **kwargs)

    def get_logits(self, image: Any = None, text: Any = None, label: Any = None, *, pixel_values: Any = None,
                   input_ids: Any = None) -> Any:
        """MindFormers' evaluation output: ``(logits_per_image [B_img, B_txt], logits_per_text)``, or
        ``(logits_per_image, label)`` when ``label`` is given (what ``Model.eval`` with Accuracy consumed).

        ``pixel_values`` / ``input_ids`` are HF's names for ``image`` / ``text``. A 3-D ``text`` [B, N, L]
        (MindFormers' zero-shot batches repeat the class prompts per image) uses ``text[0]``, as MindFormers did.
        """
        from mindspore import ops

        image = pixel_values if pixel_values is not None else image
        text = input_ids if input_ids is not None else text
        if image is None or text is None:
            raise ConfigError("get_logits needs images (image= / pixel_values=) and texts (text= / input_ids=)")
        if len(text.shape) == 3:
            text = text[0]
        image_embeds, text_embeds, logit_scale = self(image, text)
        logits_per_image = logit_scale * ops.matmul(image_embeds, text_embeds.T)
        if label is not None:
            return logits_per_image, label
        return logits_per_image, logits_per_image.T

    def load_named_weights(self) -> None:
        """MindFormers' behaviour: a config whose ``checkpoint_name_or_path`` names weights loads them now,
        strictly (a mismatch raises); never silently random."""
        spec = getattr(self.config, "checkpoint_name_or_path", "")
        if spec:
            _loader().load_named_weights(self, spec)

    @classmethod
    def from_pretrained(cls, name_or_path: str, **overrides: Any):
        """A model with weights: a registry name (downloads and caches), a directory or a checkpoint.

        ``overrides`` replace top-level config fields (e.g. ``compute_dtype="float16"``).
        """
        return _loader().from_pretrained(name_or_path, model_class=cls, **overrides)

    def save_pretrained(self, save_directory: str, save_name: str = "model") -> str:
        """Write ``config.yaml`` and ``<save_name>.ckpt`` (atomically) into ``save_directory``."""
        return _loader().save_pretrained(self, save_directory, save_name)

