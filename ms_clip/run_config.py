"""Run configs: MindFormers' run YAML schema, validated strictly, with defaults and CLI overrides.

A run config is the YAML that ``run_mindformer.py --config`` and ``Trainer(args=...)`` take
(mindformers-api.md §3). A *schema* is a plain nested dict whose values are the defaults:

* a dict value is a section, validated recursively; a key that is not in it is an error that
  names the key path and suggests the closest valid key (difflib);
* any other value (scalars, lists, ``None``) is a leaf; a leaf whose default is a bool/int/float/
  str/list only accepts a value of that kind (``None`` defaults accept anything).

The common sections (everything both CLIP tasks share) are ``COMMON_SCHEMA`` below; each task
module (``ms_clip.tasks.pretrain``, ``ms_clip.tasks.zero_shot``) exports ``RUN_CONFIG_SCHEMA``
with its own sections, merged in by ``build_schema(task)``. The task is chosen by Trainer's
``task`` argument or by ``trainer.type`` in the YAML.

Public functions: ``build_schema``, ``validate``, ``load_run_config``, ``apply_overrides``,
``resolve_task``, ``read_yaml``, ``merge_schemas``, ``task_names``.
"""
from __future__ import annotations

import copy
import difflib
import importlib
import logging
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import yaml

from ms_clip.models.config import CLIPConfig, ConfigError

logger = logging.getLogger(__name__)

__all__ = ["RunConfigError", "COMMON_SCHEMA", "TASKS", "build_schema", "validate", "load_run_config",
           "apply_overrides", "resolve_task", "read_yaml", "merge_schemas", "task_names", "get_path"]


class RunConfigError(ConfigError):
    """A run config key or value is invalid; the message names the key path and what was expected."""


# Task name (Trainer's ``task``) -> trainer type (YAML ``trainer.type``) and the module holding its
# RUN_CONFIG_SCHEMA / train / evaluate / predict functions.
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

# Callback types a run YAML may list (MindFormers' names); see ``_check_callbacks``.
CALLBACK_TYPES = ("MFLossMonitor", "CheckpointMonitor", "CheckpointMointor", "ObsMonitor", "SummaryMonitor",
                  "ProfileMonitor", "EvalCallBack")
CHECKPOINT_CALLBACK_KEYS = ("type", "prefix", "directory", "save_checkpoint_steps", "save_checkpoint_epochs",
                            "keep_checkpoint_max", "integrated_save", "async_save", "save_network_params",
                            "save_trainable_params")

# The sections both tasks share, with MindFormers' defaults (§3) unless a comment says otherwise.
COMMON_SCHEMA: Dict[str, Any] = {
    "seed": 0,
    "run_mode": "train",  # train | finetune | eval | predict
    "output_dir": "./output",
    # Weights to start from: a .ckpt (with its config .yaml beside it), a save_pretrained directory or
    # a registry name. Empty: model.model_config.checkpoint_name_or_path, else random init (train only).
    "load_checkpoint": "",
    "src_strategy_path_or_dir": "",
    "auto_trans_ckpt": False,
    "only_save_strategy": False,
    # True: continue from the newest checkpoint under output_dir/checkpoint; or a checkpoint path.
    "resume_training": False,
    "remote_save_url": None,
    "use_parallel": False,
    "context": {
        "mode": 0,  # 0 = GRAPH_MODE, 1 = PYNATIVE_MODE; training always compiles its step (GRAPH)
        # Ascend | GPU | CPU. None keeps MindSpore's default device.
        "device_target": None,
        "device_id": 0,
        "enable_graph_kernel": False,
        "graph_kernel_flags": "--opt_level=0",
        "max_call_depth": 10000,
        "save_graphs": False,
        "save_graphs_path": "./graph",
        "max_device_memory": None,
        "jit_config": None,
        "runtime_num_threads": None,
    },
    "parallel": {
        "parallel_mode": 0,  # 0 = DATA_PARALLEL (the only mode CLIP uses)
        "gradients_mean": True,
        "enable_alltoall": False,
        "full_batch": False,
        "search_mode": "sharding_propagation",
        "enable_parallel_optimizer": False,
        "strategy_ckpt_save_file": "./ckpt_strategy.ckpt",
        "strategy_ckpt_config": None,
        "parallel_optimizer_config": None,
    },
    "parallel_config": {
        "data_parallel": 1,
        "model_parallel": 1,
        "expert_parallel": 1,
        "pipeline_stage": 1,
        "micro_batch_num": 1,
        "gradient_aggregation_group": 4,
        "vocab_emb_dp": True,
        "use_seq_parallel": False,
    },
    "micro_batch_interleave_num": 1,
    "recompute_config": {
        "recompute": False,
        "select_recompute": False,
        "parallel_optimizer_comm_recompute": False,
        "mp_comm_recompute": True,
        "recompute_slice_activation": False,
    },
    # Autotune and profiling (MindFormers keys; accepted, profiling only via MindSpore's profiler flags).
    "auto_tune": False,
    "filepath_prefix": "./autotune",
    "autotune_per_step": 10,
    "profile": False,
    "profile_start_step": 1,
    "profile_stop_step": 10,
    "init_start_profile": False,
    "profile_communication": False,
    "profile_memory": True,
    "runner_config": {
        "epochs": 5,
        "batch_size": 32,
        "image_size": 224,
        "sink_mode": False,
        "sink_size": 2,
        # Ours: optimizer steps accumulate gradients of this many micro-batches (open_clip --accum-freq
        # semantics differ: here each micro-batch is its own contrastive batch).
        "gradient_accumulation_steps": 1,
        # Ours: freeze a tower (open_clip --lock-image / --lock-text): its parameters get no updates.
        "lock_image": False,
        "lock_text": False,
        # Ours: log a line (and a metrics.jsonl record) every this many optimizer steps.
        "log_interval": 10,
        # Ours: stop after this many optimizer steps in total (-1: run all epochs). For smoke runs.
        "max_steps": -1,
        # Ours: write each rank's sample indices of every optimizer step to output_dir/log/samples_rank<r>.jsonl
        # (to check the data sharding: every sample once per epoch across ranks).
        "record_samples": False,
    },
    # How each optimizer step is wrapped (MindFormers' runner_wrapper keys).
    "runner_wrapper": {
        "type": "MFTrainOneStepCell",
        # Loss scaling, used when the model computes in float16 (model_config.dtype). type: none |
        # DynamicLossScaleUpdateCell (skip the step on overflow, halve the scale) | FixedLossScaleUpdateCell.
        "scale_sense": {
            "type": "DynamicLossScaleUpdateCell",
            "loss_scale_value": 65536.0,
            "scale_factor": 2.0,
            "scale_window": 1000,
        },
        "use_clip_grad": True,  # clip gradients by their global norm
        "max_grad_norm": 1.0,
    },
    "trainer": {
        "type": None,  # ContrastiveLanguageImagePretrainTrainer | ZeroShotImageClassificationTrainer
        "model_name": "clip_vit_b_32",  # registry name of the architecture (and default weights)
    },
    "model": {
        "arch": {"type": "CLIPModel"},
        # A CLIPConfig as a dict (text_config, vision_config, projection_dim, dtype, checkpoint_name_or_path,
        # ...). Checked against CLIPConfig's fields (unknown keys are errors) but left as written:
        # missing architecture keys come from trainer.model_name's registry config, not from defaults here.
        "model_config": None,
    },
    "layer_scale": False,
    "layer_decay": 0.65,
    "optimizer": {
        "type": "adamw",  # adamw | AdamWeightDecay | AdamW
        "learning_rate": 1.0e-5,
        "weight_decay": 0.001,
        # open_clip / CLIP paper values (MindFormers used MindSpore's 0.9/0.999/1e-8 defaults).
        "beta1": 0.9,
        "beta2": 0.98,
        "eps": 1.0e-6,
    },
    "lr_scale": False,
    "lr_scale_factor": 256,
    # Ours (MindFormers had none for CLIP, i.e. a constant lr): cosine decay with linear warmup, or constant.
    "lr_schedule": {
        "type": "constant",  # cosine | constant (aliases: CosineWithWarmUpLR, ConstantWarmUpLR)
        "learning_rate": None,  # None: optimizer.learning_rate
        "lr_end": 0.0,  # cosine floor
        "warmup_steps": 0,
        "warmup_ratio": 0.0,  # used when warmup_steps is 0: fraction of total steps
        "total_steps": -1,  # -1: epochs * optimizer steps per epoch
    },
    "callbacks": [
        "MFLossMonitor",
        {"type": "CheckpointMonitor", "prefix": "clip", "save_checkpoint_steps": 100, "keep_checkpoint_max": 3},
    ],
    "eval_callbacks": None,
    "processor": {
        "type": "CLIPProcessor",
        "image_processor": {"type": "CLIPImageProcessor", "image_resolution": 224},
        "tokenizer": {"type": "CLIPTokenizer", "pad_token": "!"},
        "return_tensors": "ms",
        "max_length": 77,
        "padding": "max_length",
    },
    # MindFormers' Trainer.evaluate during training (names from MindFormers' later run YAMLs).
    "do_eval": False,
    "eval_step_interval": -1,
    "eval_epoch_interval": 1,
    "metric": None,  # task-specific (tasks override this section)
}

_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list"}


def task_names() -> List[str]:
    return list(TASKS)


def resolve_task(task: Optional[str] = None, config: Optional[Mapping[str, Any]] = None) -> str:
    """The canonical task name from Trainer's ``task`` or, for 'general'/None, from ``trainer.type``."""
    if task and task != "general":
        if task in TASKS:
            return task
        raise RunConfigError(f"unknown task '{task}'.{_hint(task, TASKS)} Valid tasks: {task_names()}")
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


def _hint(key: str, valid) -> str:
    close = difflib.get_close_matches(str(key), [str(v) for v in valid], n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


def merge_schemas(base: Mapping[str, Any], extra: Mapping[str, Any]) -> Dict[str, Any]:
    """``base`` with ``extra``'s sections added; a section in both is merged key by key (extra wins)."""
    out = copy.deepcopy(dict(base))
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_schemas(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def build_schema(task: str) -> Dict[str, Any]:
    """COMMON_SCHEMA merged with the task module's ``RUN_CONFIG_SCHEMA``."""
    task = resolve_task(task)
    module = importlib.import_module(TASKS[task]["module"])
    schema = merge_schemas(COMMON_SCHEMA, module.RUN_CONFIG_SCHEMA)
    schema["trainer"]["type"] = TASKS[task]["trainer_types"][0]
    return schema


def _kind_error(path: str, value: Any, default: Any) -> Optional[str]:
    for kind in (bool, int, float, str, list):
        if isinstance(default, kind):
            break
    else:
        return None
    ok = isinstance(value, kind)
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif kind is list:
        ok = isinstance(value, (list, tuple))
    if ok or value is None:
        return None
    return f"{path}: expected {_TYPE_NAMES[kind]} (like the default {default!r}), got {value!r}"


def _coerce(value: Any, default: Any) -> Any:
    """PyYAML reads ``1e-5`` (no dot) as a string; accept numeric strings where a number is expected."""
    if isinstance(default, float) and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def validate(config: Optional[Mapping[str, Any]], schema: Mapping[str, Any], path: str = "",
             fill_defaults: bool = True) -> Dict[str, Any]:
    """Check ``config`` against ``schema`` and return a plain nested dict with defaults filled in.

    Raises RunConfigError naming the key path of the first unknown key (with the closest valid key)
    or wrongly typed value.
    """
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise RunConfigError(f"{path or 'run config'}: expected a mapping of keys, got {type(config).__name__}: "
                             f"{config!r}")
    out: Dict[str, Any] = copy.deepcopy(dict(schema)) if fill_defaults else {}
    for key, value in config.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in schema:
            raise RunConfigError(f"unknown key '{where}'.{_hint(key, schema)} "
                                 f"Valid keys{' in ' + path if path else ''}: {sorted(map(str, schema))}")
        default = schema[key]
        if isinstance(default, Mapping):
            if value is None:  # an empty section in YAML ("context:") means "all defaults"
                value = {}
            out[key] = validate(value, default, where, fill_defaults)
            continue
        value = _coerce(value, default)
        problem = _kind_error(where, value, default)
        if problem:
            raise RunConfigError(problem)
        out[key] = copy.deepcopy(value)
    return out


# --------------------------------------------------------------------------- checks beyond the schema


def _check_model(config: Dict[str, Any]) -> None:
    model = config.get("model") or {}
    arch = (model.get("arch") or {}).get("type")
    if arch not in (None, "CLIPModel"):
        raise RunConfigError(f"model.arch.type: only 'CLIPModel' is supported, got {arch!r}")
    mc = model.get("model_config")
    if mc is None:
        return
    if not isinstance(mc, Mapping):
        raise RunConfigError(f"model.model_config: expected a mapping of CLIPConfig keys, got {mc!r}")
    if mc.get("type", "CLIPConfig") != "CLIPConfig":
        raise RunConfigError(f"model.model_config.type: only 'CLIPConfig' is supported, got {mc.get('type')!r}")
    # CLIPConfig's strict constructor names unknown keys and suggests the closest one.
    try:
        CLIPConfig.from_dict(mc, "model.model_config")
    except ConfigError as err:
        raise RunConfigError(str(err).replace("CLIPConfig.", "model.model_config.")) from None


def _check_callbacks(config: Dict[str, Any]) -> None:
    callbacks = config.get("callbacks")
    if callbacks is None:
        return
    if not isinstance(callbacks, (list, tuple)):
        raise RunConfigError(f"callbacks: expected a list of callback names or {{type: ...}} mappings, got {callbacks!r}")
    for i, item in enumerate(callbacks):
        name = item if isinstance(item, str) else (item.get("type") if isinstance(item, Mapping) else None)
        if name not in CALLBACK_TYPES:
            raise RunConfigError(f"callbacks[{i}]: unknown callback {name!r}.{_hint(name, CALLBACK_TYPES)} "
                                 f"Valid types: {list(CALLBACK_TYPES)}")
        if isinstance(item, Mapping) and name in ("CheckpointMonitor", "CheckpointMointor"):
            for key in item:
                if key not in CHECKPOINT_CALLBACK_KEYS:
                    raise RunConfigError(f"unknown key 'callbacks[{i}].{key}'.{_hint(key, CHECKPOINT_CALLBACK_KEYS)} "
                                         f"Valid keys: {list(CHECKPOINT_CALLBACK_KEYS)}")


def _check_values(config: Dict[str, Any]) -> None:
    choices = {
        "run_mode": ("train", "finetune", "eval", "predict", "export"),
        "lr_schedule.type": ("cosine", "constant", "CosineWithWarmUpLR", "ConstantWarmUpLR", "constant_with_warmup"),
        "optimizer.type": ("adamw", "AdamW", "AdamWeightDecay", "FusedAdamWeightDecay"),
        "runner_wrapper.scale_sense.type": ("none", "DynamicLossScaleUpdateCell", "FixedLossScaleUpdateCell"),
        "context.device_target": (None, "Ascend", "GPU", "CPU"),
        "context.mode": (0, 1),
    }
    for path, valid in choices.items():
        value = get_path(config, path)
        if value not in valid:
            raise RunConfigError(f"{path}: expected one of {list(valid)}, got {value!r}.{_hint(value, valid)}")
    for path in ("runner_config.epochs", "runner_config.batch_size", "runner_config.gradient_accumulation_steps",
                 "runner_config.log_interval"):
        value = get_path(config, path)
        if value is not None and value < 1:
            raise RunConfigError(f"{path}: expected a positive integer, got {value!r}")
    if config["runner_config"]["lock_image"] and config["runner_config"]["lock_text"]:
        raise RunConfigError("runner_config.lock_image and runner_config.lock_text are both True: nothing would train")


# MindFormers keys that are accepted (so their YAMLs load) but change nothing here: a warning, never silence.
_NOT_ACTED_ON = ("runner_config.sink_mode", "layer_scale", "lr_scale", "recompute_config.recompute", "auto_tune",
                 "profile", "auto_trans_ckpt", "only_save_strategy", "parallel.enable_parallel_optimizer")


def _warn_not_acted_on(config: Dict[str, Any]) -> None:
    for path in _NOT_ACTED_ON:
        if get_path(config, path):
            logger.warning("%s is set but ms_clip does not implement it; it has no effect", path)


# Extra checks run after schema validation, in order. Task modules may add theirs via
# ``RUN_CONFIG_CHECKS`` (a list of callables taking the validated dict).
_CHECKS: List[Callable[[Dict[str, Any]], None]] = [_check_model, _check_callbacks, _check_values,
                                                   _warn_not_acted_on]


# --------------------------------------------------------------------------- loading and overrides


def read_yaml(path: str) -> Dict[str, Any]:
    """A run YAML as a dict, with errors naming the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise RunConfigError(f"run config file not found: {path}")
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as err:
        raise RunConfigError(f"{path}: not valid YAML ({err})") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise RunConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return dict(data)


def get_path(config: Mapping[str, Any], path: str, default: Any = None) -> Any:
    """``config['a']['b']`` for ``path='a.b'``; ``default`` when a section on the way is missing."""
    node: Any = config
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def apply_overrides(config: Dict[str, Any], overrides: Union[Mapping[str, Any], Sequence[str], None],
                    schema: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Set dotted keys in place: ``{'runner_config.epochs': 3}`` or ``['runner_config.epochs=3']``.

    String values of the ``key=value`` form are parsed as YAML scalars (``3`` -> int, ``true`` -> bool).
    Every path must exist in ``schema`` (when given), so a misspelt override fails like a misspelt YAML key.
    ``None`` values are skipped (an unset CLI flag).
    """
    if not overrides:
        return config
    items: List[Tuple[str, Any]]
    if isinstance(overrides, Mapping):
        items = list(overrides.items())
    else:
        items = []
        for text in overrides:
            if "=" not in text:
                raise RunConfigError(f"override {text!r}: expected key.path=value")
            key, raw = text.split("=", 1)
            items.append((key.strip(), yaml.safe_load(raw)))
    for dotted, value in items:
        if value is None:
            continue
        parts = dotted.split(".")
        node: Any = config
        node_schema = schema
        for i, part in enumerate(parts):
            where = ".".join(parts[:i + 1])
            if isinstance(node, list):  # an index into a list value (e.g. callbacks.1.keep_checkpoint_max)
                if not part.isdigit() or int(part) >= len(node):
                    raise RunConfigError(f"override '{dotted}': '{where}' is not an index of a {len(node)}-item list")
                part = int(part)  # type: ignore[assignment]
                node_schema = None  # list items are checked after validation by the section's own check
            elif node_schema is not None:
                if not isinstance(node_schema, Mapping) or part not in node_schema:
                    valid = node_schema if isinstance(node_schema, Mapping) else {}
                    raise RunConfigError(f"override '{dotted}': unknown key '{where}'.{_hint(part, valid)}")
                node_schema = node_schema[part]
            if i == len(parts) - 1:
                node[part] = value
            else:
                if isinstance(node, dict) and not isinstance(node.get(part), (dict, list)):
                    node[part] = {}
                node = node[part]
    return config


def load_run_config(source: Union[str, os.PathLike, Mapping[str, Any], None] = None, task: Optional[str] = None,
                    overrides: Union[Mapping[str, Any], Sequence[str], None] = None) -> Dict[str, Any]:
    """Read (YAML path or dict), merge overrides, validate against the task's schema, fill defaults.

    ``source=None`` gives the task's defaults. The task comes from ``task`` (unless 'general') or from
    the config's ``trainer.type``. Returns a plain nested dict; raises RunConfigError on any bad key.
    """
    where = "run config"
    if source is None:
        raw: Dict[str, Any] = {}
    elif isinstance(source, Mapping):
        raw = copy.deepcopy(dict(source))
    else:
        where = os.fspath(source)
        raw = read_yaml(where)
    task = resolve_task(task, raw)
    schema = build_schema(task)
    try:
        config = validate(raw, schema)
        apply_overrides(config, overrides, schema)
        config = validate(config, schema)  # re-check overridden values' kinds
        module = importlib.import_module(TASKS[task]["module"])
        for check in _CHECKS + list(getattr(module, "RUN_CONFIG_CHECKS", [])):
            check(config)
    except RunConfigError as err:
        raise RunConfigError(f"{where}: {err}") from None
    config["trainer"]["type"] = config["trainer"]["type"] or TASKS[task]["trainer_types"][0]
    return config
