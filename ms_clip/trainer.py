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
from ms_clip import registry
from ms_clip.loader import WEIGHT_SUFFIXES, model_for_run
from ms_clip.run_config import TASKS, RunConfig, RunConfigError, check_against_model, load_run_config, resolve_task

logger = logging.getLogger(__name__)

__all__ = ["Trainer", "resolve_model", "apply_context", "init_distributed", "device_available"]



def apply_context(config: RunConfig) -> None:
    """Set MindSpore's execution mode and device from the run config's ``context`` section.

    Under ``use_parallel`` the device id is left to ``init()``, which takes msrun's DEVICE_ID (the
    local rank) and refuses any later change.
    """
    import mindspore as ms

    context = config.context
    ms.set_context(mode=ms.GRAPH_MODE if context.mode == 0 else ms.PYNATIVE_MODE)
    if context.device_target is not None and context.device_target != "CPU" and not device_available(
            context.device_target):
        # MindFormers' YAMLs all say Ascend; on a CPU-only install that would end in MindSpore's multi-line
        # RuntimeError. (run_mindformer.py rejects an explicit --device_target the install lacks.)
        logger.warning("context.device_target is %r but this MindSpore install has no %s backend: running on CPU "
                       "(pass --device_target CPU to say so)", context.device_target, context.device_target)
        context.device_target = "CPU"
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


def device_available(target: str) -> bool:
    """Whether this MindSpore install has the ``target`` backend (Ascend/GPU wheels; CPU always)."""
    import mindspore as ms

    try:
        return bool(ms.hal.is_available(target))
    except (AttributeError, RuntimeError, ValueError):  # older MindSpore without mindspore.hal: let set_context say
        return True


def resolve_model(config: Mapping[str, Any], model: Any = None, weights: Any = None,
                  require_weights: bool = False):
    """The model a run uses: ``ms_clip.loader.model_for_run`` (its docstring has the precedence table)."""
    return model_for_run(config, model, weights, require_weights)


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
        if isinstance(model, str) and registry.is_model_name(model):
            overrides["trainer.model_name"] = model
        elif isinstance(model, str) and not model.endswith(WEIGHT_SUFFIXES + (".yaml", ".yml")) \
                and not os.path.isdir(model):
            registry.canonical_name(model)  # an unknown name fails here, with the valid names
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
        self._model = model_for_run(self.config, self._model_arg, weights, require_weights)
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
        return self._train(weights, resume_training, do_eval, require_weights=True, **kwargs)

    def _train(self, weights, resume_training, do_eval, require_weights, **kwargs) -> Dict[str, Any]:
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        model_config = self.config.model.model_config or {}
        if not require_weights and weights is None and model_config.get("checkpoint_name_or_path"):
            # MindFormers' train mode started from scratch: run_mindformer.py and Trainer.train() both cleared
            # model_config.checkpoint_name_or_path (its YAMLs name the pretrained weights there for eval/finetune).
            logger.info("train: model.model_config.checkpoint_name_or_path %r is not loaded (training starts from "
                        "scratch, as in MindFormers); use finetune, or load_checkpoint (--load_checkpoint), to start "
                        "from weights", model_config["checkpoint_name_or_path"])
            self.config.model.model_config = {**model_config, "checkpoint_name_or_path": ""}
        if self.task == "contrastive_language_image_pretrain" and (do_eval or self.config.do_eval) \
                and "eval" not in self._datasets and not self.config.is_set("eval_dataset.data_loader.dataset_dir"):
            # No evaluation folder given: evaluate on the training folder's test split rather than on the
            # placeholder default (./checkpoint_download/Flickr8k).
            train_loader, eval_loader = self.config.train_dataset.data_loader, self.config.eval_dataset.data_loader
            eval_loader.dataset_dir = train_loader.dataset_dir
            if not self.config.is_set("eval_dataset.data_loader.type"):
                eval_loader.type = train_loader.type
            logger.info("do_eval without eval_dataset.data_loader.dataset_dir (--eval_dataset_dir): evaluating on "
                        "the %r split of the training folder %s", eval_loader.stage, eval_loader.dataset_dir)
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
        if input_data is None and not self.config.get("input_data"):
            input_data = self._eval_images()
        return self._module.predict(model, self.config, input_data=input_data, **kwargs)

    def _eval_images(self) -> Any:
        """MindFormers' predict without input data classified the eval dataset: its images, in order."""
        from ms_clip.data.classification import load_classification_dataset
        from ms_clip.tasks.zero_shot import LOADER_LAYOUTS

        loader = self.config.eval_dataset.data_loader
        data = load_classification_dataset(loader.dataset_dir, LOADER_LAYOUTS[loader.type], loader.stage,
                                           loader.fine_label)
        logger.info("predict: no input_data (--predict_data) given: classifying the %d images of the eval dataset "
                    "%s, as MindFormers did", len(data), data.source)
        return data.images


def _peek_trainer_type(path: Any) -> Optional[Dict[str, Any]]:
    """The ``trainer`` section of a run YAML (to pick the task before full validation)."""
    if path is None:
        return None
    from ms_clip.run_config import read_yaml

    return read_yaml(os.fspath(path))
