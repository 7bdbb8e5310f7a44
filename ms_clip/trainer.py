"""``Trainer``: MindFormers' task facade over the plain task functions.

    Trainer(task="contrastive_language_image_pretrain", model="clip_tiny", train_dataset="./Flickr8k").train()
    Trainer(task="zero_shot_image_classification", model="clip_vit_b_32", eval_dataset="./cifar-100-python").evaluate()

The Trainer only wires things together: it validates the run config (``ms_clip.run_config``),
sets the MindSpore context, resolves the model and its weights (``resolve_model``) and calls the
task module's ``train`` / ``evaluate`` / ``predict``.
"""
from __future__ import annotations

import importlib
import logging
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ms_clip.distributed import broadcast_parameters, init_distributed
from ms_clip.models.config import CLIPConfig
from ms_clip.run_config import (TASKS, RunConfig, RunConfigError, check_against_model, get_path, load_run_config,
                                resolve_task)

logger = logging.getLogger(__name__)

__all__ = ["Trainer", "resolve_model", "apply_context", "init_distributed"]

_ARCH_KEYS = ("text_config", "vision_config", "projection_dim")


def apply_context(config: RunConfig) -> None:
    """Set MindSpore's execution mode and device from the run config's ``context`` section.

    Under ``use_parallel`` the device id is left to ``init()``, which takes msrun's DEVICE_ID (the
    local rank) and refuses any later change.
    """
    import mindspore as ms

    context = config.context
    ms.set_context(mode=ms.GRAPH_MODE if context.mode == 0 else ms.PYNATIVE_MODE)
    if context.device_target is not None:
        ms.set_context(device_target=context.device_target)
        if not config.use_parallel:
            ms.set_context(device_id=int(context.device_id))
    extra: Dict[str, Any] = {k: context[k] for k in ("max_call_depth", "enable_graph_kernel", "save_graphs")
                             if context[k]}
    if context.enable_graph_kernel and context.graph_kernel_flags:
        extra["graph_kernel_flags"] = context.graph_kernel_flags
    if context.max_device_memory:
        extra["max_device_memory"] = context.max_device_memory
    if context.runtime_num_threads:
        extra["runtime_num_threads"] = int(context.runtime_num_threads)
    if context.jit_config:
        extra["jit_config"] = dict(context.jit_config)
    if extra.get("save_graphs"):
        extra["save_graphs_path"] = context.save_graphs_path
    if extra:
        ms.set_context(**extra)


def _weights_source(config: Mapping[str, Any], explicit: Any) -> str:
    """The weights to load: an explicit argument, else ``load_checkpoint``, else ``checkpoint_name_or_path``."""
    if isinstance(explicit, (str, os.PathLike)) and os.fspath(explicit):
        return os.fspath(explicit)
    if config.get("load_checkpoint"):
        return str(config["load_checkpoint"])
    model_config = get_path(config, "model.model_config") or {}
    return str(model_config.get("checkpoint_name_or_path") or "")


def _overrides(model_config: Mapping[str, Any]) -> Dict[str, Any]:
    """Run-config CLIPConfig fields that apply on top of an architecture from elsewhere (dtype, ...)."""
    skip = ("type", "checkpoint_name_or_path")
    out = {k: v for k, v in (model_config or {}).items() if k not in skip}
    if "dtype" in out:
        out["compute_dtype"] = out.pop("dtype")
    return out


def resolve_model(config: Mapping[str, Any], model: Any = None, weights: Any = None,
                  require_weights: bool = False):
    """The CLIPModel a run uses.

    Architecture, first that applies: ``model`` (CLIPModel used as is / CLIPConfig / model YAML /
    registry name); the run config's ``model.model_config`` if it spells out the towers; the config
    saved beside the weights; ``trainer.model_name``. Weights: ``weights`` / ``load_checkpoint`` /
    ``model_config.checkpoint_name_or_path`` (a .ckpt, a save_pretrained folder or a registry name).
    Without weights the model is randomly initialised, unless ``require_weights`` (eval, predict,
    finetune), which raises instead.
    """
    from ms_clip.models.clip import CLIPModel
    from ms_clip.registry import resolve_weights, create_model, is_model_name, load_config
    from ms_clip.weights import load_weights

    model_config = dict(get_path(config, "model.model_config") or {})
    source = _weights_source(config, weights)
    if isinstance(model, CLIPModel):
        if source:
            _, ckpt = resolve_weights(source)
            load_weights(model, ckpt)
            logger.info("loaded weights %s into the given model", ckpt)
        return model
    if require_weights and not source:
        raise RunConfigError("no model weights given: set load_checkpoint (--load_checkpoint) to a .ckpt, a "
                             "save_pretrained folder or a model name (e.g. clip_vit_b_32), or "
                             "model.model_config.checkpoint_name_or_path; evaluation, prediction and fine-tuning never use "
                             "random weights")
    ckpt_config, ckpt = (None, None)
    if source:
        ckpt_config, ckpt = resolve_weights(source)
    overrides = _overrides(model_config)
    if isinstance(model, CLIPConfig):
        arch = model
    elif isinstance(model, (str, os.PathLike)) and os.fspath(model):
        arch = load_config(os.fspath(model))
    elif any(k in model_config for k in _ARCH_KEYS):
        arch = CLIPConfig.from_dict(model_config, "model.model_config")
        overrides = {}
    elif ckpt_config is not None:
        arch = ckpt_config
    else:
        name = get_path(config, "trainer.model_name")
        if not name or not is_model_name(name):
            raise RunConfigError(f"trainer.model_name: {name!r} is not a registered model; set it to one of the "
                                 f"registry names or give model.model_config")
        arch = load_config(name)
    if overrides:
        arch = CLIPConfig.from_dict({**arch.to_dict(), **overrides}, "model.model_config")
    arch.checkpoint_name_or_path = ""  # weights are loaded below, never implicitly by construction
    built = create_model(arch)
    if ckpt is not None:
        load_weights(built, ckpt)
        logger.info("loaded weights from %s", ckpt)
    else:
        logger.info("model initialised randomly (no load_checkpoint / checkpoint_name_or_path): training from scratch")
    return built


class Trainer:
    """MindFormers' Trainer for CLIP's two tasks (see module docstring).

    Args:
        args: a run YAML path, a dict in the run YAML schema, or None (the task's defaults).
        task: 'contrastive_language_image_pretrain', 'zero_shot_image_classification', or 'general'
            (taken from ``trainer.type`` in ``args``).
        model: a registry name, a CLIPModel, a CLIPConfig or a model YAML path.
        model_name: registry name written to ``trainer.model_name``.
        train_dataset / eval_dataset: a dataset folder (written to ``<split>_dataset.data_loader.dataset_dir``)
            or, for pretraining, ``ms_clip.data.captions.CaptionRecords``.
        callbacks: training callbacks (objects with ``on_step_end(info)`` etc., see ``ms_clip.train.callbacks``).
        tokenizer, image_processor, audio_processor, optimizers, wrapper, pet_method, eval_callbacks,
        compute_metrics: MindFormers' arguments; only their defaults are supported (the run config's
        ``processor``, ``optimizer`` and ``runner_wrapper`` sections configure these), other values raise.
    """

    def __init__(self, args: Union[str, os.PathLike, Mapping[str, Any], None] = None, task: str = "general",
                 model: Any = None, model_name: Optional[str] = None, train_dataset: Any = None,
                 eval_dataset: Any = None, tokenizer: Any = None, image_processor: Any = None,
                 audio_processor: Any = None, optimizers: Any = None, wrapper: Any = None, pet_method: str = "",
                 callbacks: Optional[Sequence[Any]] = None, eval_callbacks: Any = None, compute_metrics: Any = None,
                 save_config: bool = False):
        unsupported = {"tokenizer": tokenizer, "image_processor": image_processor, "audio_processor": audio_processor,
                       "optimizers": optimizers, "wrapper": wrapper, "pet_method": pet_method or None,
                       "eval_callbacks": eval_callbacks, "compute_metrics": compute_metrics}
        given = [name for name, value in unsupported.items() if value is not None]
        if given:
            raise ValueError(f"Trainer: {given} are not supported; configure the tokenizer/processor, optimizer and "
                             f"step wrapper in the run config (processor, optimizer, lr_schedule, runner_wrapper)")
        overrides: Dict[str, Any] = {}
        self._datasets: Dict[str, Any] = {}
        for split, value in (("train", train_dataset), ("eval", eval_dataset)):
            if isinstance(value, (str, os.PathLike)):
                overrides[f"{split}_dataset.data_loader.dataset_dir"] = os.fspath(value)
            elif value is not None:
                self._datasets[split] = value
        self._model_arg = model
        if isinstance(model, str) and not model.endswith((".yaml", ".yml")) and not os.path.isdir(model):
            from ms_clip.registry import canonical_name

            canonical_name(model)  # an unknown name fails here, with the valid names
            overrides["trainer.model_name"] = model
        if model_name:
            overrides["trainer.model_name"] = model_name
        raw = args
        if isinstance(args, Mapping):
            raw = dict(args)
        self.task = resolve_task(task, raw if isinstance(raw, Mapping) else _peek_trainer_type(raw))
        self.config = load_run_config(raw, self.task, overrides)
        self.callbacks = list(callbacks or [])
        self._module = importlib.import_module(TASKS[self.task]["module"])
        self._model = None
        self._distributed: Optional[Tuple[int, int]] = None
        if save_config:
            self._save_config()

    # ------------------------------------------------------------------ helpers
    def _save_config(self) -> str:
        from ms_clip.fileio import write_yaml

        return write_yaml(os.path.join(self.config.output_dir, "run_config.yaml"), self.config.to_dict())

    def _prepare(self) -> Tuple[int, int]:
        """Context, then the distributed backend (which needs the device target), once: (rank, world_size)."""
        if self._distributed is None:
            apply_context(self.config)
            self._distributed = init_distributed(self.config)
        return self._distributed

    def _model_for(self, weights: Any = None, require_weights: bool = False):
        _, world_size = self._prepare()
        import mindspore as ms

        ms.set_seed(int(self.config["seed"]))  # same initial weights on every rank and every run
        explicit_name = isinstance(self._model_arg, str) and self._model_arg == self.config["trainer"]["model_name"]
        if require_weights and explicit_name and not _weights_source(self.config, weights):
            weights = self._model_arg  # Trainer(model="clip_vit_b_32") for eval: its pretrained weights
        self._model = resolve_model(self.config, self._model_arg, weights, require_weights)
        check_against_model(self.config, self._model.config)  # image size, context length vs the model
        # The seed already gives every rank the same random init; weights read from per-node files may
        # still differ, so rank 0's copy wins.
        broadcast_parameters(self._model.get_parameters(), world_size)
        return self._model

    def _require(self, method: str) -> None:
        if not hasattr(self._module, method):
            raise NotImplementedError(f"task '{self.task}' has no {method}(); "
                                      f"{'use evaluate()' if method == 'predict' else 'see ms_clip.run_config.TASKS'}")

    @staticmethod
    def _checkpoint_flag(value: Any, output_dir: str) -> Optional[str]:
        """MindFormers' ``*_checkpoint`` argument: a path/name, True (newest checkpoint of this output_dir), False."""
        if value is True:
            from ms_clip.train.checkpoint import CheckpointManager

            latest = CheckpointManager(os.path.join(output_dir, "checkpoint")).latest()
            if latest is None:
                raise RunConfigError(f"no checkpoint in {os.path.join(output_dir, 'checkpoint')} to load")
            return os.path.join(output_dir, "checkpoint", latest["weights"])
        if value in (None, False, ""):
            return None
        return os.fspath(value)

    # ------------------------------------------------------------------ MindFormers' methods
    def train(self, train_checkpoint: Any = False, resume_training: Any = None, auto_trans_ckpt: Any = None,
              do_eval: bool = False, **kwargs: Any) -> Dict[str, Any]:
        """Train (from scratch unless weights are given); returns the training summary."""
        self._require("train")
        return self._train(self._checkpoint_flag(train_checkpoint, self.config.output_dir), resume_training,
                           do_eval, require_weights=False, **kwargs)

    def finetune(self, finetune_checkpoint: Any = False, resume_training: Any = None, auto_trans_ckpt: Any = None,
                 do_eval: bool = False, **kwargs: Any) -> Dict[str, Any]:
        """Train starting from pretrained weights (``finetune_checkpoint``, ``load_checkpoint`` or the model name)."""
        self._require("train")
        weights = self._checkpoint_flag(finetune_checkpoint, self.config["output_dir"])
        if weights is None and not _weights_source(self.config, None):
            weights = self.config["trainer"]["model_name"]  # MindFormers: fine-tune the named pretrained model
        return self._train(weights, resume_training, do_eval, require_weights=True, **kwargs)

    def _train(self, weights, resume_training, do_eval, require_weights, **kwargs) -> Dict[str, Any]:
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        model = self._model_for(weights, require_weights)
        rank, world_size = self._prepare()
        return self._module.train(model, self.config, train_records=self._datasets.get("train"),
                                  eval_records=self._datasets.get("eval"), callbacks=self.callbacks,
                                  resume_training=resume_training, do_eval=do_eval or self.config.do_eval,
                                  distributed=(rank, world_size))

    def evaluate(self, eval_checkpoint: Any = False, auto_trans_ckpt: Any = None, **kwargs: Any) -> Dict[str, Any]:
        """Evaluate on ``eval_dataset`` (retrieval recall or zero-shot accuracy); returns the metrics dict."""
        self._require("evaluate")
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        model = self._model_for(self._checkpoint_flag(eval_checkpoint, self.config.output_dir), True)
        if self.task == "contrastive_language_image_pretrain":
            return self._module.evaluate(model, self.config, eval_records=self._datasets.get("eval"),
                                         distributed=self._prepare())
        return self._module.evaluate(model, self.config)

    def predict(self, predict_checkpoint: Any = None, auto_trans_ckpt: Any = None, input_data: Any = None,
                batch_size: Optional[int] = None, **kwargs: Any) -> List[List[Dict[str, Any]]]:
        """Zero-shot classification of ``input_data``; kwargs: top_k, candidate_labels, hypothesis_template."""
        self._require("predict")
        allowed = {"top_k", "candidate_labels", "hypothesis_template"}
        unknown = sorted(set(kwargs) - allowed)
        if unknown:
            raise TypeError(f"predict: unexpected arguments {unknown}; accepted: {sorted(allowed)}")
        if batch_size:
            if int(batch_size) < 1:
                raise RunConfigError(f"predict: batch_size must be a positive integer, got {batch_size!r}")
            self.config.zero_shot.predict_batch_size = int(batch_size)  # images per forward pass in predict
        model = self._model_for(self._checkpoint_flag(predict_checkpoint, self.config.output_dir), True)
        return self._module.predict(model, self.config, input_data=input_data, **kwargs)


def _peek_trainer_type(path: Any) -> Optional[Dict[str, Any]]:
    """The ``trainer`` section of a run YAML (to pick the task before full validation)."""
    if path is None:
        return None
    from ms_clip.run_config import read_yaml

    return read_yaml(os.fspath(path))
