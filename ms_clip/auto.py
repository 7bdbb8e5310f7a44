"""MindFormers' discovery API over ms_clip's one loader: the Auto classes, ``MindFormerBook`` and ``MindFormerConfig``.

    AutoConfig.from_pretrained("clip_vit_b_32")       # the family's config class (CLIPConfig, ChineseCLIPConfig)
    AutoModel.from_pretrained("chinese_clip_tiny")    # the family's model class, with weights (ms_clip.loader)
    AutoTokenizer.from_pretrained("clip_vit_b_32")    # CLIP's BPE; Chinese-CLIP's WordPiece for its models
    AutoProcessor.from_pretrained("clip_vit_l_14@336")  # image processor at the model's size + its tokenizer
    MindFormerBook.get_model_support_list()           # {'clip': [...], 'chinese_clip': [...]}
    MindFormerConfig("configs/clip/run_clip_vit_b_32_pretrain_flickr8k.yaml").runner_config.batch_size

Every Auto class picks the class from the model config's *family* (the ``type`` of its model config,
``ms_clip.models.FAMILIES``), so a new family is picked up by adding its entry there (and its tokenizer
to ``TOKENIZERS``). Importing this module registers the model catalog with the tokenizer and processor
modules, which sit below the loader and reach model configs only through it
(``ms_clip.tokenizer.register_model_catalog``).
"""
from __future__ import annotations

import glob
import logging
import os
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Union

from ms_clip import loader, registry
from ms_clip.bert_tokenizer import BertTokenizer
from ms_clip.errors import MsClipError
from ms_clip.fileio import YamlError, read_yaml
from ms_clip.models import model_class_for
from ms_clip.models.base import PreTrainedModel, StrictConfig
from ms_clip.processor import CLIPImageProcessor, CLIPProcessor
from ms_clip.tokenizer import TOKENIZER_CONFIG_FILE, CLIPTokenizer, register_model_catalog

logger = logging.getLogger(__name__)

__all__ = ["AutoConfig", "AutoModel", "AutoTokenizer", "AutoProcessor", "AutoImageProcessor", "MindFormerBook",
           "MindFormerConfig", "AutoError", "TOKENIZERS", "family_name"]

Spec = Union[str, os.PathLike]

# Model config class name -> its tokenizer class (the model class comes from ms_clip.models.FAMILIES).
TOKENIZERS: Dict[str, type] = {"CLIPConfig": CLIPTokenizer, "ChineseCLIPConfig": BertTokenizer}
# Model config class name -> MindFormerBook's family key (MindFormers grouped its support lists by model family).
_FAMILY_KEYS: Dict[str, str] = {"CLIPConfig": "clip", "ChineseCLIPConfig": "chinese_clip",
                                "VisionTextDualEncoderConfig": "vision_text_dual_encoder"}


class AutoError(MsClipError, ValueError):
    """An Auto class cannot serve a spec (unknown family, no tokenizer for it, ...)."""


def family_name(config: StrictConfig) -> str:
    """MindFormerBook's family key of a model config ('clip', 'chinese_clip', or the config class name)."""
    return _FAMILY_KEYS.get(type(config).__name__, type(config).__name__)


def _log_support_list(owner: str) -> None:
    logger.info("support list of %s is:\n%s", owner, loader.list_models())


# ============================================================================= Auto classes


class _SupportList:
    """MindFormers' support-list class methods of the Auto classes: every registered model name."""

    @classmethod
    def get_support_list(cls) -> List[str]:
        return loader.list_models()

    @classmethod
    def show_support_list(cls) -> None:
        _log_support_list(cls.__name__)


class AutoConfig(_SupportList):
    """``AutoConfig.from_pretrained(spec)``: the config of any registered model (its family's class)."""

    @classmethod
    def from_pretrained(cls, name_or_path: Spec, **overrides: Any) -> StrictConfig:
        """A registry name (the named config carries its weights' name, as in MindFormers), a model or run
        YAML, a checkpoint or a folder. ``overrides`` replace top-level fields (e.g. ``dtype="float16"``)."""
        config = loader.load_config(name_or_path)
        if overrides:
            config = type(config).from_dict({**config.to_dict(), **overrides}, f"AutoConfig({os.fspath(name_or_path)})")
        return config


class AutoModel(_SupportList):
    """``AutoModel.from_pretrained(spec)`` (with weights) / ``AutoModel.from_config(config)`` (as configured)."""

    @classmethod
    def from_pretrained(cls, name_or_path: Spec, **overrides: Any) -> PreTrainedModel:
        """A model with weights, of whatever family the spec is; never random (``ms_clip.loader.from_pretrained``)."""
        return loader.from_pretrained(name_or_path, **overrides)

    @classmethod
    def from_config(cls, config: Union[StrictConfig, Spec], download_checkpoint: bool = True,
                    **overrides: Any) -> PreTrainedModel:
        """The model a config (or a model/run YAML) describes. As in MindFormers, a config whose
        ``checkpoint_name_or_path`` names weights loads them; ``download_checkpoint=False`` builds it randomly
        initialised instead (``ms_clip.create_model`` does the same)."""
        if not isinstance(config, StrictConfig):
            config = loader.load_config(config)
        if overrides:
            config = type(config).from_dict({**config.to_dict(), **overrides}, "AutoModel.from_config overrides")
        if not download_checkpoint and config.checkpoint_name_or_path:
            config = type(config).from_dict({**config.to_dict(), "checkpoint_name_or_path": ""}, "AutoModel")
        return model_class_for(config)(config)


class AutoTokenizer(_SupportList):
    """``AutoTokenizer.from_pretrained(spec)``: CLIP's BPE tokenizer, or Chinese-CLIP's WordPiece one."""

    @classmethod
    def from_pretrained(cls, name_or_path: Spec, **kwargs: Any) -> Union[CLIPTokenizer, BertTokenizer]:
        """A ``save_pretrained`` tokenizer folder, or a model spec (name, YAML, checkpoint, model folder)."""
        path = os.fspath(name_or_path)
        if os.path.isdir(path) and os.path.isfile(os.path.join(path, TOKENIZER_CONFIG_FILE)):
            return CLIPTokenizer.from_pretrained(path, **kwargs)
        if os.path.isdir(path) and os.path.isfile(os.path.join(path, "vocab.txt")):
            return BertTokenizer.from_pretrained(path, **kwargs)
        config = loader.load_config(path)
        kind = type(config).__name__
        if kind not in TOKENIZERS:
            raise AutoError(f"no tokenizer for {path} (a {kind} model); known families: {sorted(TOKENIZERS)}")
        if TOKENIZERS[kind] is BertTokenizer:
            return BertTokenizer(**{"model_max_length": config.context_length, **kwargs})
        return CLIPTokenizer(**{"pad_token": "!", "model_max_length": config.context_length, **kwargs})


class AutoProcessor(_SupportList):
    """``AutoProcessor.from_pretrained(spec)``: a ``CLIPProcessor`` with the model's image size and tokenizer."""

    @classmethod
    def from_pretrained(cls, name_or_path: Spec, **kwargs: Any) -> CLIPProcessor:
        return CLIPProcessor.from_pretrained(name_or_path, **kwargs)


class AutoImageProcessor(AutoProcessor):
    """``AutoImageProcessor.from_pretrained(spec)``: the model's ``CLIPImageProcessor`` (its image size)."""

    @classmethod
    def from_pretrained(cls, name_or_path: Spec, **kwargs: Any) -> CLIPImageProcessor:  # type: ignore[override]
        return CLIPImageProcessor.from_pretrained(name_or_path, **kwargs)


# ============================================================================= MindFormerConfig


class MindFormerConfig(dict):
    """MindFormers' config object: a dict with attribute access, loaded from a run YAML or built from keys.

    ``MindFormerConfig(path)`` reads a YAML (a missing or malformed file is a one-line error);
    ``MindFormerConfig(**keys)`` / ``MindFormerConfig(mapping)`` wrap a mapping. Nested mappings become
    MindFormerConfigs, and a YAML anchor stays one object (``train_dataset_task.dataset_config:
    *train_dataset`` is the same section, so setting one sets both). As in MindFormers, reading a missing
    key gives None. Pass it where a run config is expected (``Trainer(args=config)``): there it is
    validated strictly (unknown keys are errors with suggestions).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        source: Dict[str, Any] = {}
        if len(args) > 1:
            raise AutoError(f"MindFormerConfig takes one YAML path or one mapping, got {len(args)} arguments")
        if args:
            first = args[0]
            if isinstance(first, (str, os.PathLike)):
                try:
                    source = read_yaml(os.fspath(first), "run config file")
                except YamlError as err:
                    raise AutoError(str(err)) from None
            elif isinstance(first, Mapping):
                source = dict(first)
            elif first is not None:
                raise AutoError(f"MindFormerConfig: expected a YAML path or a mapping, got {type(first).__name__}")
        source.update(kwargs)
        memo: Dict[int, MindFormerConfig] = {}
        for key, value in source.items():
            self[key] = _wrap(value, memo)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):  # copy/pickle probe dunders: behave like a plain object
            raise AttributeError(key)
        return self.get(key)

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = _wrap(value, {})

    def __delattr__(self, key: str) -> None:
        self.pop(key, None)

    def merge_from_dict(self, options: Mapping[str, Any]) -> None:
        """Set dotted keys (``{"runner_config.epochs": 3}``), creating sections on the way."""
        for dotted, value in options.items():
            node: MindFormerConfig = self
            *parents, last = str(dotted).split(".")
            for part in parents:
                if not isinstance(node.get(part), MindFormerConfig):
                    node[part] = MindFormerConfig()
                node = node[part]
            node[last] = _wrap(value, {})

    def to_dict(self) -> Dict[str, Any]:
        """Plain nested dicts and lists."""
        return {k: _unwrap(v) for k, v in self.items()}


def _wrap(value: Any, memo: Dict[int, "MindFormerConfig"]) -> Any:
    if isinstance(value, MindFormerConfig):
        return value
    if isinstance(value, Mapping):
        if id(value) not in memo:  # the same YAML node (an anchor and its aliases) -> the same section
            wrapped = MindFormerConfig()
            memo[id(value)] = wrapped
            for k, v in value.items():
                wrapped[k] = _wrap(v, memo)
        return memo[id(value)]
    if isinstance(value, list):
        return [_wrap(v, memo) for v in value]
    return value


def _unwrap(value: Any) -> Any:
    if isinstance(value, MindFormerConfig):
        return value.to_dict()
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


# ============================================================================= MindFormerBook


class MindFormerBook:
    """MindFormers' support tables: which models, configs, tokenizers, processors, trainer tasks and
    pipelines exist, and where the project's run YAMLs and checkpoint folders are (all static)."""

    @staticmethod
    def get_project_path() -> str:
        """The folder holding ``configs/`` (the repository checkout; MindFormers' project root)."""
        return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    @staticmethod
    def get_default_checkpoint_download_folder() -> str:
        """Where pretrained weights are cached (``MS_CLIP_HOME``, default ``~/.cache/ms_clip``)."""
        from ms_clip.hub import cache_home

        return cache_home()

    @staticmethod
    def get_default_checkpoint_save_folder() -> str:
        """MindFormers' ``./checkpoint_save`` (relative to the working directory)."""
        return os.path.join(os.getcwd(), "checkpoint_save")

    # ---------------------------------------------------------------- models
    @staticmethod
    def get_model_support_list() -> "OrderedDict[str, List[str]]":
        """``{family: [model names]}``, e.g. ``{'clip': ['clip_tiny', 'clip_vit_b_32', ...], 'chinese_clip': [...]}``."""
        out: "OrderedDict[str, List[str]]" = OrderedDict()
        for name in loader.list_models():
            try:
                family = family_name(registry.load_config(name))
            except MsClipError:  # a zoo entry whose config cannot be read here is simply not listed
                continue
            out.setdefault(family, []).append(name)
        return out

    @staticmethod
    def get_model_name_support_list() -> List[str]:
        return loader.list_models()

    get_config_support_list = get_model_support_list
    get_tokenizer_support_list = get_model_support_list
    get_processor_support_list = get_model_support_list

    # ---------------------------------------------------------------- tasks
    @staticmethod
    def get_trainer_support_task_list() -> "OrderedDict[str, OrderedDict[str, str]]":
        """``{task: {model name: run YAML path}}`` from the project's ``configs/clip`` run YAMLs (their
        ``trainer.type`` and ``trainer.model_name``), plus MindFormers' ``common`` entry (ViT-B/32's YAML)."""
        from ms_clip.run_config import TASKS

        out: "OrderedDict[str, OrderedDict[str, str]]" = OrderedDict((task, OrderedDict()) for task in TASKS)
        pattern = os.path.join(MindFormerBook.get_project_path(), "configs", "clip", "run_*.yaml")
        for path in sorted(glob.glob(pattern)):
            try:
                trainer = read_yaml(path, "run config file").get("trainer") or {}
            except YamlError:
                continue
            for task, info in TASKS.items():
                if trainer.get("type") in info["trainer_types"] and trainer.get("model_name"):
                    out[task].setdefault(str(trainer["model_name"]), path)
        for task, models in out.items():
            if "clip_vit_b_32" in models:
                models.setdefault("common", models["clip_vit_b_32"])
        return out

    @staticmethod
    def get_pipeline_support_task_list() -> "OrderedDict[str, OrderedDict[str, str]]":
        from ms_clip.pipelines import SUPPORTED_TASKS

        tasks = MindFormerBook.get_trainer_support_task_list()
        return OrderedDict((task, tasks.get(task, OrderedDict())) for task in SUPPORTED_TASKS)

    # ---------------------------------------------------------------- show_* (logged, as MindFormers did)
    @staticmethod
    def show_model_support_list() -> None:
        logger.info("MODEL SUPPORT LIST:\n%s", dict(MindFormerBook.get_model_support_list()))

    show_config_support_list = show_model_support_list
    show_tokenizer_support_list = show_model_support_list
    show_processor_support_list = show_model_support_list

    @staticmethod
    def show_trainer_support_model_list(task: Optional[str] = None) -> None:
        tasks = MindFormerBook.get_trainer_support_task_list()
        if task is not None and task not in tasks:
            raise AutoError(f"unknown trainer task {task!r}; known: {list(tasks)}")
        shown = {task: dict(tasks[task])} if task else {k: dict(v) for k, v in tasks.items()}
        logger.info("TRAINER SUPPORT TASK LIST:\n%s", shown)

    @staticmethod
    def show_pipeline_support_model_list(task: Optional[str] = None) -> None:
        tasks = MindFormerBook.get_pipeline_support_task_list()
        if task is not None and task not in tasks:
            raise AutoError(f"unknown pipeline task {task!r}; known: {list(tasks)}")
        shown = {task: dict(tasks[task])} if task else {k: dict(v) for k, v in tasks.items()}
        logger.info("PIPELINE SUPPORT TASK LIST:\n%s", shown)


# The tokenizer and processors find model configs (from_pretrained) and support lists through this.
register_model_catalog(loader.load_config, loader.list_models)
