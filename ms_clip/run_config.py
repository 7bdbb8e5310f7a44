"""Run configs: MindFormers' run-YAML schema as typed sections, validated strictly.

A run config is the YAML that ``run_mindformer.py --config`` and ``Trainer(args=...)`` take. Its
schema is a tree of dataclasses (``Section`` subclasses): every field is a key, its annotation is
the kind of value it accepts and its default is MindFormers' default (ms_clip's own keys say "Ours").
Loading a run config (``load_run_config``):

* an unknown key is an error naming the key path and the closest valid key (difflib);
* a value of the wrong kind is an error naming the path, the value and the expected kind. PyYAML
  reads ``1e-5`` (no dot) as a string, so numeric strings are accepted where a number is expected;
* values are checked (positive batch sizes and learning rates, choices, an ``output_dir`` that is a
  file, ...) and keys that contradict each other or the model are errors naming both values.
  The model is only known once its weights are resolved, so ``Trainer`` calls
  ``check_against_model`` then; the image size and context length come from the model unless the
  run config sets them explicitly, in which case they must agree with it;
* MindFormers keys that are accepted (so MindFormers' YAMLs load) but not implemented are listed,
  each with its reason, in ``NOT_IMPLEMENTED``, and log a warning naming the key when set to a
  value other than their default. Every other key is read by code (tests/test_run_config_typed.py
  checks this).

A loaded config supports attribute access (``config.runner_config.batch_size``) and item access
(``config["runner_config"]["batch_size"]``, ``.get``, ``in``), like MindFormers' MindFormerConfig,
and remembers which keys the YAML and the overrides set (``config.is_set("runner_config.image_size")``).
``config.to_dict()`` gives plain dicts and lists (e.g. to write it as YAML).

The sections both tasks share are defined here (``RunConfig``); each task module subclasses it with
its own sections (``ms_clip.tasks.pretrain.PretrainRunConfig``, ``ms_clip.tasks.zero_shot.ZeroShotRunConfig``)
and exports the subclass as ``RUN_CONFIG_CLASS``. ``TASKS`` names the modules; they are imported only
when a config is built, so task modules import this one at top level without a cycle.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import importlib
import logging
import math
import os
import typing
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import (Any, Callable, Dict, FrozenSet, Iterator, List, Mapping, Optional, Sequence, Tuple,
                    Type, TypeVar, Union)

import yaml

from ms_clip.constants import CLIP_MEAN, CLIP_STD
from ms_clip.fileio import YamlError
from ms_clip.fileio import read_yaml as _read_yaml_file
from ms_clip.models import FAMILIES, family_config_from_dict
from ms_clip.models.config import CLIPConfig, ConfigError

logger = logging.getLogger(__name__)

__all__ = ["RunConfigError", "Section", "section", "optional_section", "parsed_field", "build_section", "RunConfig",
           "TASKS", "NOT_IMPLEMENTED", "NotImplementedKey", "load_run_config", "apply_overrides", "resolve_task",
           "read_yaml", "task_names", "get_path", "check_against_model", "config_class", "schema_leaves",
           "TokenizerSection", "TextTransformsSection", "DatasetSection", "CheckpointMonitorCallback",
           "warn_not_implemented"]


class RunConfigError(ConfigError):
    """A run config key or value is invalid; the message names the key path and what was expected."""


# Task name (Trainer's ``task``) -> trainer types (YAML ``trainer.type``) and the module exporting its
# RUN_CONFIG_CLASS and its train / evaluate / predict functions.
TASKS: Dict[str, Dict[str, Any]] = {
    "contrastive_language_image_pretrain": {
        "trainer_types": ("ContrastiveLanguageImagePretrainTrainer",
                          # MindFormers' own (misspelt) class name, accepted for copied YAMLs.
                          "ConstrastiveLanguageImagePretrainTrainer"),
        "module": "ms_clip.tasks.pretrain",
    },
    "zero_shot_image_classification": {
        "trainer_types": ("ZeroShotImageClassificationTrainer",),
        "module": "ms_clip.tasks.zero_shot",
    },
}


def _hint(key: Any, valid: Sequence[Any]) -> str:
    close = difflib.get_close_matches(str(key), [str(v) for v in valid], n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


# =========================================================================== typed sections


S = TypeVar("S", bound="Section")


@functools.lru_cache(maxsize=None)
def _field_types(cls: type) -> Dict[str, Any]:
    """Field name -> resolved annotation, in declaration order (the keys of a section)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


class Section(MutableMapping):
    """One section of a run config: a dataclass whose fields are the section's keys.

    Attribute access (``section.batch_size``) and MindFormerConfig-style item access
    (``section["batch_size"]``, ``.get``, ``in``, ``.items()``) both work, so code written against
    the old plain-dict configs keeps working. Keys cannot be added or removed: setting an unknown
    key is an error with the closest valid key. Declare subclasses with ``@section``.
    """

    # ------------------------------------------------------------------ mapping protocol
    def __getitem__(self, key: str) -> Any:
        if key not in _field_types(type(self)):
            raise KeyError(key)
        return getattr(self, key)

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, key, value)

    def __delitem__(self, key: str) -> None:
        raise TypeError(f"run config keys cannot be removed ({key!r}); set the value instead")

    def __iter__(self) -> Iterator[str]:
        return iter(_field_types(type(self)))

    def __len__(self) -> int:
        return len(_field_types(type(self)))

    def __setattr__(self, name: str, value: Any) -> None:
        # A misspelt attribute would otherwise silently become a new, never-read key.
        if not name.startswith("_") and name not in _field_types(type(self)):
            valid = list(_field_types(type(self)))
            raise RunConfigError(f"{type(self).__name__}: unknown key '{name}'.{_hint(name, valid)} "
                                 f"Valid keys: {valid}")
        object.__setattr__(self, name, value)

    # ------------------------------------------------------------------ conversions
    def to_dict(self) -> Dict[str, Any]:
        """The section as plain dicts and lists (sections inside lists too)."""
        return {key: _plain(getattr(self, key)) for key in self}

    @classmethod
    def from_dict(cls: Type[S], data: Optional[Mapping[str, Any]], path: str = "") -> S:
        """The section's defaults with ``data``'s keys set, validated (see ``build_section``)."""
        return build_section(cls(), data, path)


def section(cls: type) -> type:
    """Class decorator for run-config sections: a dataclass compared like a mapping (so a section
    equals a dict with the same keys and values, as the old plain-dict configs did)."""
    return dataclass(eq=False)(cls)


def _plain(value: Any) -> Any:
    if isinstance(value, Section):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------- kinds of values

_KIND_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
               dict: "a mapping"}


def _describe(kind: Any) -> str:
    """'an integer', 'a list of integers', 'a string or a list of strings', ..."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is Union:
        names = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" (or null)" if type(None) in args else "")
    if origin in (list, tuple):
        if args and args[0] is not Any:
            inner = _describe(args[0])
            plural = inner.split(" ", 1)[1] + ("" if inner.endswith("s") else "s")
            return f"a list of {plural}"
        return "a list"
    if origin is dict:
        return "a mapping"
    return _KIND_NAMES.get(kind, getattr(kind, "__name__", str(kind)))


def _coerce(path: str, value: Any, kind: Any) -> Any:
    """``value`` if it is of ``kind`` (numbers coerced to float where a float is expected), else
    RunConfigError naming ``path``, the value and the expected kind."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return value
    if origin is Union:
        if value is None:
            if type(None) in args:
                return None
        else:
            for option in args:
                if option is type(None):
                    continue
                try:
                    return _coerce(path, value, option)
                except RunConfigError:
                    continue
        raise RunConfigError(f"{path}: expected {_describe(kind)}, got {value!r}")
    ok = False
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        if isinstance(value, str):  # PyYAML: 1e-5 is a string, 1.0e-5 a float
            try:
                value = float(value)
            except ValueError:
                pass
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            value = float(value)
    elif kind is str:
        ok = isinstance(value, str)
    elif kind is list or origin in (list, tuple):
        if isinstance(value, (list, tuple)):
            item = args[0] if args else Any
            return [_coerce(f"{path}[{i}]", v, item) for i, v in enumerate(value)]
    elif kind is dict or origin is dict:
        if isinstance(value, Mapping):
            return dict(value)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise RunConfigError(f"{path}: expected {_describe(kind)}, got {value!r}")
    return value


def _section_type(kind: Any) -> Optional[Type[Section]]:
    """The Section class of ``Section`` / ``Optional[Section]`` annotations, else None."""
    for option in (kind, *typing.get_args(kind)):
        if isinstance(option, type) and issubclass(option, Section):
            return option
    return None


def optional_section(base: Callable[[], Section]) -> Any:
    """A field that is ``None`` by default, or a section built on ``base()``'s values when given
    (MindFormers' ``*_dataset_task.dataset_config``)."""
    return field(default=None, metadata={"base": base})


def parsed_field(parse: Callable[[str, Any], Any]) -> Any:
    """A field (default None) whose YAML value is checked and converted by ``parse(path, value)``."""
    return field(default=None, metadata={"parse": parse})


def build_section(base: S, data: Optional[Mapping[str, Any]], path: str = "") -> S:
    """A copy of ``base`` with ``data``'s keys set, each checked against its field's annotation.

    Nested sections are built on ``base``'s own sub-sections (so per-field defaults, e.g. the train
    split's ``stage: train``, are kept); ``None`` for a section means "all defaults", as an empty
    YAML section does.
    """
    if data is None:
        return copy.deepcopy(base)
    if not isinstance(data, Mapping):
        raise RunConfigError(f"{path or 'run config'}: expected a mapping of keys, got {type(data).__name__}: "
                             f"{data!r}")
    out = copy.deepcopy(base)
    types = _field_types(type(base))
    fields = {f.name: f for f in dataclasses.fields(base)}
    for key, value in data.items():
        where = _join(path, key)
        if key not in types:
            raise RunConfigError(f"unknown key '{where}'.{_hint(key, list(types))} "
                                 f"Valid keys{' in ' + path if path else ''}: {sorted(types)}")
        current = getattr(out, key)
        meta = fields[key].metadata
        if "parse" in meta:
            value = meta["parse"](where, value)
        elif isinstance(current, Section):
            value = build_section(current, value, where)
        elif _section_type(types[key]) is not None and value is not None:
            start = meta["base"]() if "base" in meta else _section_type(types[key])()
            value = build_section(start, value, where)
        else:
            value = copy.deepcopy(_coerce(where, value, types[key]))
        object.__setattr__(out, key, value)
    return out


def schema_leaves(cls: Type[Section], path: str = "") -> List[str]:
    """Every leaf key of a section class as a dotted path; ``callbacks[].x`` are the keys of its
    CheckpointMonitor entries. Optional sections (``*_task.dataset_config``) are leaves."""
    out: List[str] = []
    instance = cls()
    for key in _field_types(cls):
        where = _join(path, key)
        sub = getattr(instance, key)
        if isinstance(sub, Section):
            out.extend(schema_leaves(type(sub), where))
        else:
            out.append(where)
        if key == "callbacks":
            out.extend(schema_leaves(CheckpointMonitorCallback, "callbacks[]"))
    return out


# =========================================================================== the common sections


@section
class ContextSection(Section):
    mode: int = 0  # 0 = GRAPH_MODE, 1 = PYNATIVE_MODE; training always compiles its step (GRAPH)
    device_target: Optional[str] = None  # Ascend | GPU | CPU; None keeps MindSpore's default device
    device_id: int = 0
    enable_graph_kernel: bool = False
    graph_kernel_flags: str = "--opt_level=0"  # passed to MindSpore when enable_graph_kernel is True
    max_call_depth: int = 10000
    save_graphs: Union[bool, int] = False
    save_graphs_path: str = "./graph"
    max_device_memory: Optional[str] = None  # e.g. "30GB"
    jit_config: Optional[Dict[str, Any]] = None  # e.g. {jit_level: O0}
    runtime_num_threads: Optional[int] = None


@section
class ParallelSection(Section):
    parallel_mode: int = 0  # 0 = DATA_PARALLEL (the only mode CLIP uses)
    gradients_mean: bool = True
    enable_alltoall: bool = False
    full_batch: bool = False
    search_mode: str = "sharding_propagation"
    enable_parallel_optimizer: bool = False
    strategy_ckpt_save_file: str = "./ckpt_strategy.ckpt"
    strategy_ckpt_config: Optional[Dict[str, Any]] = None
    parallel_optimizer_config: Optional[Dict[str, Any]] = None


@section
class ParallelConfigSection(Section):
    data_parallel: int = 1
    model_parallel: int = 1
    expert_parallel: int = 1
    pipeline_stage: int = 1
    micro_batch_num: int = 1
    gradient_aggregation_group: int = 4
    vocab_emb_dp: bool = True
    use_seq_parallel: bool = False


@section
class RecomputeSection(Section):
    recompute: bool = False
    select_recompute: Union[bool, List[Any], Dict[str, Any]] = False
    parallel_optimizer_comm_recompute: bool = False
    mp_comm_recompute: bool = True
    recompute_slice_activation: bool = False


@section
class RunnerConfigSection(Section):
    epochs: int = 5
    batch_size: int = 32
    # The model's vision_config.image_size unless set explicitly (then it must equal it).
    image_size: int = 224
    sink_mode: bool = False
    sink_size: int = 2
    # Ours: one optimizer step trains on this many micro-batches of batch_size as ONE contrastive batch
    # (batch_size x this x workers samples, every one a negative for every other; open_clip --accum-freq's
    # result, computed as GradCache: features of all micro-batches first, then one micro-batch's activations
    # at a time). Exact unless dropout is active (a warning names the layers). Costs one extra forward pass.
    gradient_accumulation_steps: int = 1
    # Ours: freeze a tower (open_clip --lock-image / --lock-text): its parameters get no updates.
    lock_image: bool = False
    lock_text: bool = False
    # Ours: log a line (and a metrics.jsonl record) every this many optimizer steps.
    log_interval: int = 10
    # Ours: stop after this many optimizer steps in total (-1: run all epochs). For smoke runs.
    max_steps: int = -1
    # Ours: write each rank's sample indices of every optimizer step to output_dir/log/samples_rank<r>.jsonl
    # (to check the data sharding: every sample once per epoch across ranks).
    record_samples: bool = False


@section
class ScaleSenseSection(Section):
    # Loss scaling, used when the model computes in float16 (model_config.dtype). type: none |
    # DynamicLossScaleUpdateCell (skip the step on overflow, halve the scale) | FixedLossScaleUpdateCell.
    type: str = "DynamicLossScaleUpdateCell"
    loss_scale_value: float = 65536.0
    scale_factor: float = 2.0
    scale_window: int = 1000


@section
class RunnerWrapperSection(Section):
    # How each optimizer step is wrapped (MindFormers' runner_wrapper keys); every type means ms_clip's
    # own step (ms_clip.train.loop.StepRunner), configured by the keys below.
    type: str = "MFTrainOneStepCell"
    scale_sense: ScaleSenseSection = field(default_factory=ScaleSenseSection)
    use_clip_grad: bool = True  # clip gradients by their global norm
    max_grad_norm: float = 1.0


@section
class TrainerSection(Section):
    type: Optional[str] = None  # ContrastiveLanguageImagePretrainTrainer | ZeroShotImageClassificationTrainer
    model_name: str = "clip_vit_b_32"  # registry name of the architecture (and default weights)


@section
class ArchSection(Section):
    type: str = "CLIPModel"


@section
class ModelSection(Section):
    arch: ArchSection = field(default_factory=ArchSection)
    # A CLIPConfig as a dict (text_config, vision_config, projection_dim, dtype, checkpoint_name_or_path,
    # ...). Checked against CLIPConfig's fields (unknown keys are errors) but left as written: missing
    # architecture keys come from the weights or trainer.model_name (ms_clip.loader), not from defaults here.
    model_config: Optional[Dict[str, Any]] = None


@section
class OptimizerSection(Section):
    type: str = "adamw"  # adamw | AdamWeightDecay | AdamW
    learning_rate: float = 1.0e-5
    weight_decay: float = 0.001
    # open_clip / CLIP paper values (MindFormers used MindSpore's 0.9/0.999/1e-8 defaults).
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1.0e-6


@section
class LrScheduleSection(Section):
    # Ours (MindFormers had none for CLIP, i.e. a constant lr): cosine or linear decay with linear warmup, or
    # constant. linear is HF Trainer's default (get_linear_schedule_with_warmup: to 0 at total_steps).
    type: str = "constant"  # cosine | constant | linear (aliases: CosineWithWarmUpLR, ConstantWarmUpLR,
    #                         LinearWithWarmUpLR)
    learning_rate: Optional[float] = None  # None: optimizer.learning_rate
    lr_end: float = 0.0  # cosine/linear floor
    warmup_steps: int = 0
    warmup_ratio: float = 0.0  # used when warmup_steps is 0: fraction of total steps
    total_steps: int = -1  # -1: epochs * optimizer steps per epoch


@section
class ImageProcessorSection(Section):
    type: str = "CLIPImageProcessor"
    # The model's vision_config.image_size unless set explicitly (then it must equal it).
    image_resolution: int = 224


@section
class TokenizerSection(Section):
    type: str = "CLIPTokenizer"
    # Captions are padded with id 0, which is '!' (OpenAI's padding); see NOT_IMPLEMENTED.
    pad_token: str = "!"
    vocab_file: Optional[str] = None  # a gzipped BPE merges file; None: CLIP's, shipped with ms_clip


@section
class ProcessorSection(Section):
    type: str = "CLIPProcessor"
    image_processor: ImageProcessorSection = field(default_factory=ImageProcessorSection)
    tokenizer: TokenizerSection = field(default_factory=TokenizerSection)
    return_tensors: str = "ms"
    # The model's text_config.max_position_embeddings unless set explicitly (then it must equal it).
    max_length: int = 77
    padding: str = "max_length"


@section
class ExportSection(Section):
    # run_mode export (ms_clip.export): the encoders as graphs for deployment. The batch size is
    # runner_config.batch_size (--batch_size), the folder output_dir (--output_dir).
    file_format: str = "MINDIR"  # MINDIR | ONNX | BOTH (ONNX then goes to output_dir/onnx)
    dynamic_batch: bool = False  # a dynamic batch axis (MINDIR only; MindSpore's ONNX export refuses it)
    image_size: Optional[int] = None  # input resolution; None: the model's (another re-samples the position table)


@section
class TextTransformsSection(Section):
    type: str = "TokenizerForward"
    # The model's text_config.max_position_embeddings unless set explicitly (then it must equal it).
    max_length: int = 77
    padding: str = "max_length"


@section
class DatasetSection(Section):
    """Keys every dataset section has (the tasks add ``data_loader`` and their own defaults).

    ``transforms`` lists MindFormers' image transforms: Resize{size} + CenterCrop{size} (evaluation
    preprocessing) or RandomResizedCrop{size, scale, ratio} (training augmentation), then ToTensor +
    Normalize{mean, std}. None: Resize + CenterCrop to the model's image size with CLIP's mean/std.
    """
    tokenizer: TokenizerSection = field(default_factory=TokenizerSection)
    text_transforms: TextTransformsSection = field(default_factory=TextTransformsSection)
    transforms: Optional[List[Any]] = None
    num_parallel_workers: int = 8
    python_multiprocessing: bool = False
    drop_remainder: bool = False
    batch_size: int = 32
    repeat: int = 1
    numa_enable: bool = False
    prefetch_size: int = 30
    seed: Optional[int] = 2022


# --------------------------------------------------------------------------- callbacks

# Callback types a run YAML may list (MindFormers' names). MFLossMonitor is ms_clip's loss log,
# CheckpointMonitor its checkpoints; the others are accepted (see NOT_IMPLEMENTED).
CALLBACK_TYPES = ("MFLossMonitor", "CheckpointMonitor", "CheckpointMointor", "ObsMonitor", "SummaryMonitor",
                  "ProfileMonitor", "EvalCallBack")
CHECKPOINT_CALLBACKS = ("CheckpointMonitor", "CheckpointMointor")  # MindFormers <1.2 spelt it "Mointor"
# Callbacks that do nothing in ms_clip. ObsMonitor is not among them: MindFormers' ObsMonitor only uploads
# output on ModelArts and is a no-op elsewhere, which is what ms_clip does (its YAMLs list it by default).
INERT_CALLBACKS = ("SummaryMonitor", "ProfileMonitor", "EvalCallBack")


@section
class CheckpointMonitorCallback(Section):
    """A ``{type: CheckpointMonitor, ...}`` entry of ``callbacks`` (defaults: ms_clip's / MindFormers')."""
    type: str = "CheckpointMonitor"
    prefix: str = "clip"
    directory: Optional[str] = None  # None: output_dir/checkpoint
    save_checkpoint_steps: int = 0  # 0: at every epoch end only
    keep_checkpoint_max: int = 3
    save_checkpoint_epochs: int = 0
    integrated_save: bool = True
    async_save: bool = False
    save_network_params: bool = True
    save_trainable_params: bool = False


def _parse_callbacks(path: str, value: Any, typed_checkpoints: bool = True) -> Optional[List[Any]]:
    """Callback names stay strings; CheckpointMonitor mappings become typed sections (strict keys,
    ``keep_checkpoint_max: abc`` is an error naming ``callbacks[i].keep_checkpoint_max``); other
    mappings stay as written (their options are reported by NOT_IMPLEMENTED)."""
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        raise RunConfigError(f"{path}: expected a list of callback names or {{type: ...}} mappings, got {value!r}")
    out: List[Any] = []
    for i, item in enumerate(value):
        where = f"{path}[{i}]"
        name = item if isinstance(item, str) else (item.get("type") if isinstance(item, Mapping) else None)
        if name not in CALLBACK_TYPES:
            raise RunConfigError(f"{where}: unknown callback {name!r}.{_hint(name, CALLBACK_TYPES)} "
                                 f"Valid types: {list(CALLBACK_TYPES)}")
        if isinstance(item, Mapping) and name in CHECKPOINT_CALLBACKS and typed_checkpoints:
            item = build_section(CheckpointMonitorCallback(), item, where)
            _check_positive(f"{where}.keep_checkpoint_max", item.keep_checkpoint_max)
            _check_at_least(f"{where}.save_checkpoint_steps", item.save_checkpoint_steps, 0)
        out.append(copy.deepcopy(item))
    return out


def _default_callbacks() -> List[Any]:
    return ["MFLossMonitor", CheckpointMonitorCallback(save_checkpoint_steps=100)]


# =========================================================================== the root


@section
class RunConfig(Section):
    """The keys both tasks share. Task modules subclass it with their dataset, metric and output keys."""

    seed: int = 0
    run_mode: str = "train"  # train | finetune | eval | predict (read by run_mindformer.py)
    output_dir: str = "./output"
    # Weights to start from: a .ckpt (with its config .yaml beside it), a save_pretrained directory or
    # a registry name. Empty: model.model_config.checkpoint_name_or_path, else random init (train only).
    load_checkpoint: Optional[str] = ""
    src_strategy_path_or_dir: Optional[str] = ""
    auto_trans_ckpt: bool = False
    only_save_strategy: bool = False
    # True: continue from the newest checkpoint under output_dir/checkpoint; or a checkpoint path.
    resume_training: Union[bool, str] = False
    remote_save_url: Optional[str] = None
    use_parallel: bool = False
    context: ContextSection = field(default_factory=ContextSection)
    parallel: ParallelSection = field(default_factory=ParallelSection)
    parallel_config: ParallelConfigSection = field(default_factory=ParallelConfigSection)
    micro_batch_interleave_num: int = 1
    recompute_config: RecomputeSection = field(default_factory=RecomputeSection)
    auto_tune: bool = False
    filepath_prefix: str = "./autotune"
    autotune_per_step: int = 10
    profile: bool = False
    profile_start_step: int = 1
    profile_stop_step: int = 10
    init_start_profile: bool = False
    profile_communication: bool = False
    profile_memory: bool = True
    runner_config: RunnerConfigSection = field(default_factory=RunnerConfigSection)
    runner_wrapper: RunnerWrapperSection = field(default_factory=RunnerWrapperSection)
    trainer: TrainerSection = field(default_factory=TrainerSection)
    model: ModelSection = field(default_factory=ModelSection)
    layer_scale: bool = False
    layer_decay: float = 0.65
    optimizer: OptimizerSection = field(default_factory=OptimizerSection)
    lr_scale: bool = False
    lr_scale_factor: int = 256
    lr_schedule: LrScheduleSection = field(default_factory=LrScheduleSection)
    callbacks: Optional[List[Any]] = parsed_field(_parse_callbacks)
    eval_callbacks: Optional[List[Any]] = parsed_field(lambda path, value: _parse_callbacks(path, value, False))
    processor: ProcessorSection = field(default_factory=ProcessorSection)
    export: ExportSection = field(default_factory=ExportSection)
    # MindFormers' Trainer.evaluate during training (names from MindFormers' later run YAMLs).
    do_eval: bool = False
    eval_step_interval: int = -1
    eval_epoch_interval: int = 1

    def __post_init__(self) -> None:
        if self.callbacks is None:
            object.__setattr__(self, "callbacks", _default_callbacks())
        self._explicit: FrozenSet[str] = frozenset()

    # ------------------------------------------------------------------ what the user set
    def is_set(self, path: str) -> bool:
        """Whether the YAML, the dict or an override set ``path`` (a dotted key) or a key inside it."""
        return path in self._explicit or any(p.startswith(path + ".") for p in self._explicit)

    def explicit_keys(self) -> FrozenSet[str]:
        """The dotted keys the YAML, the dict and the overrides set."""
        return self._explicit

    def dataset_sections(self) -> Dict[str, DatasetSection]:
        """``{"train_dataset": ..., "eval_dataset": ...}``: this task's dataset sections."""
        return {key: getattr(self, key) for key in self if isinstance(getattr(self, key), DatasetSection)}

    # ------------------------------------------------------------------ checks at load time
    def check(self) -> None:
        """Checks beyond the kinds of values; task subclasses extend it (call ``super().check()``)."""
        _check_model_section(self)
        _check_choices(self)
        _check_numbers(self)
        _check_output_dir(self)
        _check_vocab_files(self)
        _check_normalize(self)
        _check_against_yaml_model(self)


# =========================================================================== not implemented keys


@dataclass(frozen=True)
class NotImplementedKey:
    """A MindFormers key ms_clip accepts (so MindFormers' YAMLs load) but does not act on.

    ``find(config, default)`` returns the ``(key path, value)`` pairs to warn about; by default the
    key's value when it differs from the task's default. ``task`` limits the entry to one task.
    """
    path: str
    reason: str
    task: Optional[str] = None
    find: Optional[Callable[[RunConfig, RunConfig], List[Tuple[str, Any]]]] = None


def _inert_callbacks(name: str) -> Callable[[RunConfig, RunConfig], List[Tuple[str, Any]]]:
    """Entries of ``callbacks`` / ``eval_callbacks`` that do nothing in ms_clip, and options of callbacks
    other than CheckpointMonitor (evaluation has no callbacks but ObsMonitor, itself a no-op)."""
    def find(config: RunConfig, default: RunConfig) -> List[Tuple[str, Any]]:
        found: List[Tuple[str, Any]] = []
        for i, item in enumerate(config[name] or []):
            kind = item if isinstance(item, str) else item.get("type")
            if kind in INERT_CALLBACKS or (name == "eval_callbacks" and kind != "ObsMonitor"):
                found.append((f"{name}[{i}]", kind))
            elif isinstance(item, Mapping) and not isinstance(item, Section):
                found.extend((f"{name}[{i}].{key}", item[key]) for key in item if key != "type")
        return found
    return find


def _checkpoint_option(key: str) -> Callable[[RunConfig, RunConfig], List[Tuple[str, Any]]]:
    def find(config: RunConfig, default: RunConfig) -> List[Tuple[str, Any]]:
        reference = getattr(CheckpointMonitorCallback(), key)
        return [(f"callbacks[{i}].{key}", item[key]) for i, item in enumerate(config.callbacks or [])
                if isinstance(item, CheckpointMonitorCallback) and item[key] != reference]
    return find


def _mirrored_dataset_copies(config: RunConfig) -> List[str]:
    """The splits whose ``<split>_dataset_task.dataset_config`` repeats ``<split>_dataset`` exactly."""
    return [split for split in ("train", "eval")
            if get_path(config, f"{split}_dataset_task.dataset_config") is not None
            and config[f"{split}_dataset_task"].dataset_config == config[f"{split}_dataset"]]


def _dataset_copy(split: str) -> Callable[[RunConfig, RunConfig], List[Tuple[str, Any]]]:
    """MindFormers' YAMLs repeat ``<split>_dataset`` as ``<split>_dataset_task.dataset_config`` (a YAML
    anchor); only a copy that differs from ``<split>_dataset`` is worth a warning."""
    def find(config: RunConfig, default: RunConfig) -> List[Tuple[str, Any]]:
        copy_ = get_path(config, f"{split}_dataset_task.dataset_config")
        if copy_ is None or copy_ == config[f"{split}_dataset"]:
            return []
        return [(f"{split}_dataset_task.dataset_config", "a section different from " + f"{split}_dataset")]
    return find


def _resize_interpolation(split: str) -> Callable[[RunConfig, RunConfig], List[Tuple[str, Any]]]:
    """Resize entries of ``<split>_dataset.transforms`` naming an interpolation other than bicubic (MindFormers'
    zero-shot YAMLs say 'linear'): ms_clip always resizes with PIL bicubic, OpenAI's preprocessing."""
    def find(config: RunConfig, default: RunConfig) -> List[Tuple[str, Any]]:
        section = config.get(f"{split}_dataset")
        found: List[Tuple[str, Any]] = []
        for i, item in enumerate((section.transforms if section is not None else None) or []):
            if isinstance(item, Mapping) and "interpolation" in item and \
                    str(item["interpolation"]).lower() not in ("bicubic", "cubic"):
                found.append((f"{split}_dataset.transforms[{i}].interpolation", item["interpolation"]))
        return found
    return find


def _unused_hypothesis_template(config: RunConfig, default: RunConfig) -> List[Tuple[str, Any]]:
    """A hypothesis_template the YAML sets while zero_shot.templates, left unset (a MindFormers YAML has no
    zero_shot section), picks other prompts (OpenAI's 18); a YAML that chooses zero_shot.templates has decided."""
    templates = get_path(config, "zero_shot.templates")
    if config.is_set("eval_dataset.data_loader.hypothesis_template") and not config.is_set("zero_shot.templates") \
            and templates != "hypothesis_template":
        return [("eval_dataset.data_loader.hypothesis_template",
                 get_path(config, "eval_dataset.data_loader.hypothesis_template"))]
    return []


_PRETRAIN = "contrastive_language_image_pretrain"
_ZERO_SHOT = "zero_shot_image_classification"
_NO_PARALLEL = "ms_clip trains data-parallel only (every worker msrun starts holds the whole model)"
_NO_PROFILE = "ms_clip has no profiler hook; use MindSpore's profiler environment variables"

# The one list of accepted-but-not-implemented keys, with the reason for each.
NOT_IMPLEMENTED: Tuple[NotImplementedKey, ...] = (
    NotImplementedKey("src_strategy_path_or_dir", "no sharded checkpoints to transform: " + _NO_PARALLEL),
    NotImplementedKey("auto_trans_ckpt", "no sharded checkpoints to transform: " + _NO_PARALLEL),
    NotImplementedKey("only_save_strategy", "no parallel strategy to save: " + _NO_PARALLEL),
    NotImplementedKey("remote_save_url", "ModelArts upload is not supported; output stays under output_dir"),
    NotImplementedKey("parallel.enable_alltoall", _NO_PARALLEL),
    NotImplementedKey("parallel.full_batch", "each rank reads its own shard of every global batch"),
    NotImplementedKey("parallel.search_mode", _NO_PARALLEL),
    NotImplementedKey("parallel.enable_parallel_optimizer", "the optimizer state is not sharded"),
    NotImplementedKey("parallel.strategy_ckpt_save_file", _NO_PARALLEL),
    NotImplementedKey("parallel.strategy_ckpt_config", _NO_PARALLEL),
    NotImplementedKey("parallel.parallel_optimizer_config", "the optimizer state is not sharded"),
    NotImplementedKey("parallel_config.data_parallel", "the data-parallel degree is the number of workers msrun "
                                                       "starts"),
    NotImplementedKey("parallel_config.expert_parallel", "CLIP has no experts"),
    NotImplementedKey("parallel_config.micro_batch_num", "no pipeline parallelism; see "
                                                         "runner_config.gradient_accumulation_steps"),
    NotImplementedKey("parallel_config.gradient_aggregation_group", _NO_PARALLEL),
    NotImplementedKey("parallel_config.vocab_emb_dp", _NO_PARALLEL),
    NotImplementedKey("parallel_config.use_seq_parallel", _NO_PARALLEL),
    NotImplementedKey("micro_batch_interleave_num", _NO_PARALLEL),
    NotImplementedKey("recompute_config.recompute", "activation recomputation is not implemented"),
    NotImplementedKey("recompute_config.select_recompute", "activation recomputation is not implemented"),
    NotImplementedKey("recompute_config.parallel_optimizer_comm_recompute", _NO_PARALLEL),
    NotImplementedKey("recompute_config.mp_comm_recompute", _NO_PARALLEL),
    NotImplementedKey("recompute_config.recompute_slice_activation", "activation recomputation is not implemented"),
    NotImplementedKey("auto_tune", "no autotuning"),
    NotImplementedKey("filepath_prefix", "no autotuning"),
    NotImplementedKey("autotune_per_step", "no autotuning"),
    NotImplementedKey("profile", _NO_PROFILE),
    NotImplementedKey("profile_start_step", _NO_PROFILE),
    NotImplementedKey("profile_stop_step", _NO_PROFILE),
    NotImplementedKey("init_start_profile", _NO_PROFILE),
    NotImplementedKey("profile_communication", _NO_PROFILE),
    NotImplementedKey("profile_memory", _NO_PROFILE),
    NotImplementedKey("runner_config.sink_mode", "steps run one at a time from Python (data sinking is not used)"),
    NotImplementedKey("runner_config.sink_size", "steps run one at a time from Python (data sinking is not used)"),
    NotImplementedKey("layer_scale", "layer-wise learning-rate decay is not implemented"),
    NotImplementedKey("layer_decay", "layer-wise learning-rate decay is not implemented"),
    NotImplementedKey("lr_scale", "the learning rate is not scaled with the batch size; set it directly"),
    NotImplementedKey("lr_scale_factor", "the learning rate is not scaled with the batch size; set it directly"),
    NotImplementedKey("callbacks", "SummaryMonitor, ProfileMonitor and EvalCallBack do nothing here (the loss log, "
                                   "metrics.jsonl and do_eval cover them), nor do options of callbacks other than "
                                   "CheckpointMonitor", find=_inert_callbacks("callbacks")),
    NotImplementedKey("eval_callbacks", "only ObsMonitor (a no-op off ModelArts) is accepted; evaluation logs and "
                                        "writes its metrics itself", find=_inert_callbacks("eval_callbacks")),
    NotImplementedKey("callbacks[].save_checkpoint_epochs", "a checkpoint is written at every epoch end and every "
                                                            "save_checkpoint_steps", find=_checkpoint_option(
                                                                "save_checkpoint_epochs")),
    NotImplementedKey("callbacks[].integrated_save", "checkpoints always hold the whole model (data parallel)",
                      find=_checkpoint_option("integrated_save")),
    NotImplementedKey("callbacks[].async_save", "checkpoints are written synchronously and atomically",
                      find=_checkpoint_option("async_save")),
    NotImplementedKey("callbacks[].save_network_params", "checkpoints hold the network and the optimizer state",
                      find=_checkpoint_option("save_network_params")),
    NotImplementedKey("callbacks[].save_trainable_params", "checkpoints hold the network and the optimizer state",
                      find=_checkpoint_option("save_trainable_params")),
    NotImplementedKey("processor.tokenizer.type", "tokenization is configured per dataset (<split>_dataset.tokenizer)"),
    NotImplementedKey("processor.tokenizer.pad_token", "tokenization is configured per dataset "
                                                       "(<split>_dataset.tokenizer)"),
    NotImplementedKey("processor.tokenizer.vocab_file", "tokenization is configured per dataset "
                                                        "(<split>_dataset.tokenizer)"),
    NotImplementedKey("processor.return_tensors", "ms_clip's pipeline returns Python lists of scores and labels"),
    NotImplementedKey("processor.padding", "prompts are always padded to the model's context length"),
    # Dataset keys.
    NotImplementedKey("train_dataset.repeat", "one pass over the data per epoch; raise runner_config.epochs"),
    NotImplementedKey("eval_dataset.repeat", "evaluation reads every sample once"),
    NotImplementedKey("train_dataset.data_loader.column_names", "the pipeline's columns are fixed (image, text)"),
    NotImplementedKey("eval_dataset.data_loader.column_names", "the pipeline's columns are fixed"),
    NotImplementedKey("train_dataset.text_transforms.padding", "captions are always padded to max_length"),
    NotImplementedKey("eval_dataset.text_transforms.padding", "texts are always padded to max_length"),
    NotImplementedKey("train_dataset.text_transforms.random_seed", "the caption choice is seeded by "
                                                                   "train_dataset.seed, the epoch and the index"),
    NotImplementedKey("eval_dataset.text_transforms.random_seed", "retrieval encodes every caption",
                      task=_PRETRAIN),
    NotImplementedKey("train_dataset.tokenizer.pad_token", "captions are padded with id 0 ('!'), as OpenAI's CLIP "
                                                           "was trained"),
    NotImplementedKey("eval_dataset.tokenizer.pad_token", "texts are padded with id 0 ('!'), as OpenAI's CLIP was "
                                                          "trained"),
    NotImplementedKey("eval_dataset.text_transforms.type", "retrieval encodes every caption of every image",
                      task=_PRETRAIN),
    NotImplementedKey("eval_dataset.data_loader.shuffle", "retrieval reads the images in order", task=_PRETRAIN),
    NotImplementedKey("eval_dataset.drop_remainder", "retrieval scores every image", task=_PRETRAIN),
    NotImplementedKey("eval_dataset.python_multiprocessing", "retrieval decodes images in threads",
                      task=_PRETRAIN),
    NotImplementedKey("eval_dataset.seed", "retrieval draws nothing at random", task=_PRETRAIN),
    NotImplementedKey("train_dataset_task.dataset_config", "MindFormers' copy of train_dataset; train_dataset is "
                                                           "what is used", find=_dataset_copy("train")),
    NotImplementedKey("eval_dataset_task.dataset_config", "MindFormers' copy of eval_dataset; eval_dataset is "
                                                          "what is used", find=_dataset_copy("eval")),
    # MindFormers' zero-shot YAMLs resize with 'linear' and prompt with one hypothesis_template: said, not ignored.
    NotImplementedKey("train_dataset.transforms", "images are resized with PIL bicubic (OpenAI's preprocessing, "
                                                  "which the weights were trained with) whatever interpolation the "
                                                  "Resize entry names", find=_resize_interpolation("train")),
    NotImplementedKey("eval_dataset.transforms", "images are resized with PIL bicubic (OpenAI's preprocessing, "
                                                 "which the weights were trained with) whatever interpolation the "
                                                 "Resize entry names", find=_resize_interpolation("eval")),
    NotImplementedKey("eval_dataset.data_loader.hypothesis_template", "zero_shot.templates selects the prompts "
                      "(default: OpenAI's 18 templates, ensembled); set zero_shot.templates: hypothesis_template to "
                      "prompt with this single template as MindFormers did", task=_ZERO_SHOT,
                      find=_unused_hypothesis_template),
)


def _value_at(config: Mapping[str, Any], path: str) -> Tuple[bool, Any]:
    node: Any = config
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _same_setting(value: Any, reference: Any) -> bool:
    # None and '' both mean "not set" for path-like keys (YAML `~` vs MindFormers' '').
    return value == reference or (value in (None, "") and reference in (None, ""))


def warn_not_implemented(config: RunConfig, task: str) -> List[str]:
    """Log a warning for every NOT_IMPLEMENTED key set to a non-default value; returns their paths."""
    default = config_class(task)()
    warned: List[str] = []
    for entry in NOT_IMPLEMENTED:
        if entry.task not in (None, task):
            continue
        if entry.find is not None:
            found = entry.find(config, default)
        else:
            present, value = _value_at(config, entry.path)
            _, reference = _value_at(default, entry.path)
            found = [(entry.path, value)] if present and not _same_setting(value, reference) else []
        for path, value in found:
            logger.warning("%s is set to %r, but ms_clip does not implement it (%s); it has no effect", path,
                           value, entry.reason)
            warned.append(path)
    return warned


# =========================================================================== checks


def _check_positive(path: str, value: Any) -> None:
    _check_at_least(path, value, 1)


def _check_at_least(path: str, value: Any, minimum: int) -> None:
    if value is not None and value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise RunConfigError(f"{path}: expected {kind}, got {value!r}")


def _check_model_section(config: RunConfig) -> None:
    """model.arch.type names a registered family's model class and model_config.type its config class
    (CLIPModel/CLIPConfig, ChineseCLIPModel/ChineseCLIPConfig, ...); the config's keys are checked strictly."""
    families = {config_cls.__name__: model_cls.__name__ for config_cls, model_cls in FAMILIES.values()}
    arch = config.model.arch.type
    if arch not in families.values():
        valid = sorted(families.values())
        raise RunConfigError(f"model.arch.type: expected one of {valid}, got {arch!r}.{_hint(arch, valid)}")
    mc = config.model.model_config
    if mc is None:
        return
    kind = mc.get("type") or next(c for c, m in families.items() if m == arch)
    if families.get(kind) != arch:
        raise RunConfigError(f"model.model_config.type: {kind!r} does not build model.arch.type {arch!r}; "
                             f"pairs: {families}")
    # The family config's strict constructor names unknown keys and suggests the closest one.
    try:
        family_config_from_dict({**mc, "type": kind}, "model.model_config")
    except ConfigError as err:  # nested sections name themselves "<ConfigClass>.vision_config": use the YAML path
        raise RunConfigError(str(err).replace(f"{kind}.", "model.model_config.")) from None


def _check_choices(config: RunConfig) -> None:
    choices: Dict[str, Sequence[Any]] = {
        "run_mode": ("train", "finetune", "eval", "predict", "export"),
        "lr_schedule.type": ("cosine", "constant", "CosineWithWarmUpLR", "ConstantWarmUpLR", "constant_with_warmup",
                             "linear", "LinearWithWarmUpLR"),
        "optimizer.type": ("adamw", "AdamW", "AdamWeightDecay", "FusedAdamWeightDecay"),
        "runner_wrapper.type": ("MFTrainOneStepCell", "TrainOneStepCell", "TrainOneStepWithLossScaleCell"),
        "runner_wrapper.scale_sense.type": ("none", "DynamicLossScaleUpdateCell", "FixedLossScaleUpdateCell"),
        "context.device_target": (None, "Ascend", "GPU", "CPU"),
        "context.mode": (0, 1),
        "processor.type": ("CLIPProcessor",),
        "processor.image_processor.type": ("CLIPImageProcessor",),
        "export.file_format": ("MINDIR", "ONNX", "BOTH"),
    }
    for name, dataset in config.dataset_sections().items():
        # The model's own tokenizer is used whatever this says (ms_clip.get_tokenizer); the names are checked.
        choices[f"{name}.tokenizer.type"] = ("CLIPTokenizer", "BertTokenizer", "ChineseCLIPTokenizer")
    for path, valid in choices.items():
        value = get_path(config, path)
        if value not in valid:
            raise RunConfigError(f"{path}: expected one of {list(valid)}, got {value!r}.{_hint(value, valid)}")


def _check_numbers(config: RunConfig) -> None:
    runner = config.runner_config
    for key in ("epochs", "batch_size", "gradient_accumulation_steps", "log_interval"):
        _check_positive(f"runner_config.{key}", runner[key])
    if runner.lock_image and runner.lock_text:
        raise RunConfigError("runner_config.lock_image and runner_config.lock_text are both True: nothing would train")
    for path in ("optimizer.learning_rate", "lr_schedule.learning_rate"):
        value = get_path(config, path)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise RunConfigError(f"{path}: expected a learning rate > 0, got {value!r}")
    _check_at_least("lr_schedule.warmup_steps", config.lr_schedule.warmup_steps, 0)
    if not 0.0 <= config.lr_schedule.warmup_ratio < 1.0:
        raise RunConfigError(f"lr_schedule.warmup_ratio: expected a fraction in [0, 1), got "
                             f"{config.lr_schedule.warmup_ratio!r}")
    if config.lr_schedule.lr_end < 0:
        raise RunConfigError(f"lr_schedule.lr_end: expected a learning rate >= 0, got {config.lr_schedule.lr_end!r}")
    if config.runner_wrapper.max_grad_norm <= 0:
        raise RunConfigError(f"runner_wrapper.max_grad_norm: expected a norm > 0, got "
                             f"{config.runner_wrapper.max_grad_norm!r}")
    for name, dataset in config.dataset_sections().items():
        for key in ("batch_size", "num_parallel_workers", "repeat", "prefetch_size"):
            _check_positive(f"{name}.{key}", dataset[key])
        _check_at_least(f"{name}.text_transforms.max_length", dataset.text_transforms.max_length, 2)


def _check_output_dir(config: RunConfig) -> None:
    # Found now rather than when the first result is written, possibly hours later.
    if os.path.exists(config.output_dir) and not os.path.isdir(config.output_dir):
        raise RunConfigError(f"output_dir: {config.output_dir} exists and is not a directory; results, checkpoints "
                             f"and logs go into a directory there")


def _check_vocab_files(config: RunConfig) -> None:
    for name, dataset in config.dataset_sections().items():
        vocab_file = dataset.tokenizer.vocab_file
        if vocab_file and not os.path.isfile(vocab_file):
            raise RunConfigError(f"{name}.tokenizer.vocab_file: {vocab_file} is not a file (a gzipped BPE merges "
                                 f"file; leave it empty for CLIP's own)")


def _normalize_items(transforms: Optional[Sequence[Any]]) -> Iterator[Tuple[int, Mapping[str, Any]]]:
    for i, item in enumerate(transforms or []):
        if isinstance(item, Mapping) and item.get("type") in ("Normalize", "BatchNormalize"):
            yield i, item


def _check_normalize(config: RunConfig) -> None:
    """Normalize mean/std must be the model's preprocessing (CLIP's, ms_clip.constants): the weights were
    trained on pixels normalized that way. 0..255 values (MindFormers' form without ToTensor) count as /255."""
    for name, dataset in config.dataset_sections().items():
        for i, item in _normalize_items(dataset.transforms):
            for key, expected in (("mean", CLIP_MEAN), ("std", CLIP_STD)):
                value = item.get(key)
                if value is None:
                    continue
                where = f"{name}.transforms[{i}].{key}"
                try:
                    scaled = [float(v) for v in value]
                except (TypeError, ValueError):
                    raise RunConfigError(f"{where}: expected a list of 3 numbers, got {value!r}") from None
                if scaled and max(item.get("mean") or [0]) > 1.0:
                    scaled = [v / 255 for v in scaled]
                if len(scaled) != 3 or any(abs(a - b) > 1e-4 for a, b in zip(scaled, expected)):
                    raise RunConfigError(f"{where}: {list(value)} differs from the model's preprocessing {key} "
                                         f"{list(expected)} (CLIP's); the model's weights expect pixels normalized "
                                         f"with it. Remove the key or use that value")


# --------------------------------------------------------------------------- against the model


def _transform_sizes(dataset: DatasetSection, where: str) -> Iterator[Tuple[str, Any]]:
    for i, item in enumerate(dataset.transforms or []):
        if isinstance(item, Mapping) and item.get("type") in ("Resize", "CenterCrop", "RandomResizedCrop",
                                                              "BatchResize", "BatchCenterCrop"):
            for key in ("size", "image_resolution"):
                if key in item:
                    value = item[key]
                    yield f"{where}.transforms[{i}].{key}", value[0] if isinstance(value, (list, tuple)) else value


def _image_size_keys(config: RunConfig) -> Iterator[Tuple[str, Any]]:
    """(path, value) of every explicitly set key that says which image size the model takes."""
    for path in ("runner_config.image_size", "processor.image_processor.image_resolution"):
        if config.is_set(path):
            yield path, get_path(config, path)
    for name, dataset in config.dataset_sections().items():
        yield from _transform_sizes(dataset, name)


def _context_length_keys(config: RunConfig) -> Iterator[Tuple[str, Any]]:
    """(path, value) of every explicitly set key that says how many tokens a text has."""
    paths = ["processor.max_length"] + [f"{name}.text_transforms.max_length" for name in config.dataset_sections()]
    for path in paths:
        if config.is_set(path):
            yield path, get_path(config, path)


def _compare(config: RunConfig, image_size: Optional[int], context_length: Optional[int], source: str) -> None:
    if image_size is not None:
        for path, value in _image_size_keys(config):
            if value != image_size:
                raise RunConfigError(f"{path} is {value} but {source}'s vision_config.image_size is {image_size}: a "
                                     f"ViT's positional embedding fixes its input size. Set {path} to {image_size} "
                                     f"or remove it (the size then comes from the model)")
    if context_length is not None:
        for path, value in _context_length_keys(config):
            if value != context_length:
                raise RunConfigError(f"{path} is {value} but {source}'s context length "
                                     f"(text_config.max_position_embeddings) is {context_length}. Set {path} to "
                                     f"{context_length} or remove it (the length then comes from the model)")


def _check_against_yaml_model(config: RunConfig) -> None:
    """The run config against the architecture its own model.model_config spells out (if it does):
    a contradiction inside one file is found before any weights are fetched."""
    mc = config.model.model_config or {}
    image_size = (mc.get("vision_config") or {}).get("image_size")
    context_length = (mc.get("text_config") or {}).get("max_position_embeddings")
    _compare(config, image_size, context_length, "model.model_config")


def check_against_model(run_config: RunConfig, model_config: Any) -> None:
    """Check ``run_config`` against the model it runs (``model_config``: the model's config, e.g.
    a ``CLIPConfig``), then give the keys the user did not set the model's values.

    An explicitly set ``runner_config.image_size``, ``processor.image_processor.image_resolution`` or
    dataset Resize/CenterCrop/RandomResizedCrop size that differs from ``vision_config.image_size``,
    or a ``max_length`` that differs from ``text_config.max_position_embeddings``, is a
    RunConfigError naming both values. Called by ``Trainer`` once the model is resolved.
    """
    vision = getattr(model_config, "vision_config", None)
    text = getattr(model_config, "text_config", None)
    image_size = getattr(vision, "image_size", None)
    # Chinese-CLIP tokenizes to config.context_length (52), far below its BERT's 512 positions.
    context_length = getattr(model_config, "context_length", None) or getattr(text, "max_position_embeddings", None)
    _compare(run_config, image_size, context_length, "the model")
    # Keys left at their defaults follow the model (e.g. 32 px and 32 tokens for clip_tiny_shapes).
    if image_size is not None:
        for path in ("runner_config.image_size", "processor.image_processor.image_resolution"):
            if not run_config.is_set(path):
                _set_path(run_config, path, int(image_size))
    if context_length is not None:
        paths = ["processor.max_length"] + [f"{name}.text_transforms.max_length"
                                            for name in run_config.dataset_sections()]
        for path in paths:
            if not run_config.is_set(path):
                _set_path(run_config, path, int(context_length))


def _set_path(config: Mapping[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node: Any = config
    for part in parents:
        node = node[part]
    node[last] = value


# =========================================================================== tasks


def task_names() -> List[str]:
    return list(TASKS)


def resolve_task(task: Optional[str] = None, config: Optional[Mapping[str, Any]] = None) -> str:
    """The canonical task name from Trainer's ``task`` or, for 'general'/None, from ``trainer.type``."""
    if task and task != "general":
        if task in TASKS:
            return task
        raise RunConfigError(f"unknown task '{task}'.{_hint(task, list(TASKS))} Valid tasks: {task_names()}")
    trainer_type = ((config or {}).get("trainer") or {}).get("type") if isinstance(config, Mapping) else None
    if trainer_type:
        for name, info in TASKS.items():
            if trainer_type in info["trainer_types"]:
                return name
        valid = [t for info in TASKS.values() for t in info["trainer_types"]]
        raise RunConfigError(f"trainer.type: unknown trainer '{trainer_type}'.{_hint(trainer_type, valid)} "
                             f"Valid types: {valid}")
    raise RunConfigError("cannot tell the task: pass task='contrastive_language_image_pretrain' or "
                         "'zero_shot_image_classification', or set trainer.type in the run config")


def config_class(task: str) -> Type[RunConfig]:
    """The task's RunConfig subclass (its module's ``RUN_CONFIG_CLASS``), importing the module on first use."""
    task = resolve_task(task)
    module = importlib.import_module(TASKS[task]["module"])
    return module.RUN_CONFIG_CLASS


# =========================================================================== loading and overrides


def read_yaml(path: str) -> Dict[str, Any]:
    """A run YAML as a dict (``ms_clip.fileio.read_yaml``), errors naming the file as RunConfigError."""
    try:
        return _read_yaml_file(os.fspath(path), "run config file", allow_empty=True)
    except YamlError as err:
        raise RunConfigError(str(err)) from None


def get_path(config: Mapping[str, Any], path: str, default: Any = None) -> Any:
    """``config['a']['b']`` for ``path='a.b'``; ``default`` when a section on the way is missing."""
    found, value = _value_at(config, path)
    return value if found else default


def _parse_override_items(overrides: Union[Mapping[str, Any], Sequence[str]]) -> List[Tuple[str, Any]]:
    if isinstance(overrides, Mapping):
        return list(overrides.items())
    items = []
    for text in overrides:
        if "=" not in text:
            raise RunConfigError(f"override {text!r}: expected key.path=value")
        key, raw = text.split("=", 1)
        items.append((key.strip(), yaml.safe_load(raw)))
    return items


def apply_overrides(config: Dict[str, Any], overrides: Union[Mapping[str, Any], Sequence[str], None],
                    schema: Optional[Type[Section]] = None) -> Dict[str, Any]:
    """Set dotted keys in place: ``{'runner_config.epochs': 3}`` or ``['runner_config.epochs=3']``.

    String values of the ``key=value`` form are parsed as YAML scalars (``3`` -> int, ``true`` -> bool).
    Every path must be a key of ``schema`` (a Section class) when given, so a misspelt override fails
    like a misspelt YAML key. ``None`` values are skipped (an unset CLI flag).
    """
    if not overrides:
        return config
    for dotted, value in _parse_override_items(overrides):
        if value is None:
            continue
        parts = dotted.split(".")
        node: Any = config
        kinds: Optional[Dict[str, Any]] = _field_types(schema) if schema is not None else None
        for i, part in enumerate(parts):
            where = ".".join(parts[:i + 1])
            if isinstance(node, list):  # an index into a list value (e.g. callbacks.1.keep_checkpoint_max)
                if not part.isdigit() or int(part) >= len(node):
                    raise RunConfigError(f"override '{dotted}': '{where}' is not an index of a {len(node)}-item list")
                part = int(part)  # type: ignore[assignment]
                kinds = None  # list items are checked when the config is validated again
            elif kinds is not None:
                if part not in kinds:
                    raise RunConfigError(f"override '{dotted}': unknown key '{where}'.{_hint(part, list(kinds))}")
                sub = _section_type(kinds[part])
                kinds = _field_types(sub) if sub is not None else None
            if i == len(parts) - 1:
                node[part] = value
            else:
                if isinstance(node, dict) and not isinstance(node.get(part), (dict, list)):
                    node[part] = {}
                node = node[part]
    return config


def _set_paths(data: Any, prefix: str = "") -> List[str]:
    """Dotted paths of every key in a nested mapping (lists are values)."""
    out: List[str] = []
    if isinstance(data, Mapping):
        for key, value in data.items():
            path = _join(prefix, key)
            out.append(path)
            out.extend(_set_paths(value, path))
    return out


def load_run_config(source: Union[str, os.PathLike, Mapping[str, Any], None] = None, task: Optional[str] = None,
                    overrides: Union[Mapping[str, Any], Sequence[str], None] = None) -> RunConfig:
    """Read (YAML path or dict), merge overrides, validate against the task's sections, fill defaults.

    ``source=None`` gives the task's defaults. The task comes from ``task`` (unless 'general') or from
    the config's ``trainer.type``. Returns the task's RunConfig (attribute and item access); raises
    RunConfigError naming the file and the key on any bad key or value, and logs a warning for each
    NOT_IMPLEMENTED key set to a non-default value.
    """
    where = "run config"
    if source is None:
        raw: Dict[str, Any] = {}
    elif isinstance(source, Mapping):
        raw = _plain(source)
    else:
        where = os.fspath(source)
        raw = read_yaml(where)
    task = resolve_task(task, raw)
    cls = config_class(task)
    explicit = set(_set_paths(raw))
    try:
        config = build_section(cls(), raw)
        if overrides:
            # Overrides go onto the validated config's plain form, so list indices reach defaults too
            # (callbacks.1.prefix=run with no callbacks in the YAML); the result is validated again.
            mirrored = _mirrored_dataset_copies(config)
            merged = config.to_dict()
            apply_overrides(merged, overrides, cls)
            config = build_section(cls(), merged)
            explicit.update(dotted for dotted, value in _parse_override_items(overrides) if value is not None)
            # A YAML anchor (dataset_config: *train_dataset) makes the copy the same mapping as the section,
            # so an override of one is an override of both (as it is when run_mindformer edits the YAML).
            for split in mirrored:
                config[f"{split}_dataset_task"].dataset_config = copy.deepcopy(config[f"{split}_dataset"])
        config._explicit = frozenset(explicit)
        if config.trainer.type is None:
            config.trainer.type = TASKS[task]["trainer_types"][0]
        config.check()
    except RunConfigError as err:
        raise RunConfigError(f"{where}: {err}") from None
    warn_not_implemented(config, task)
    return config
