#!/usr/bin/env python
"""MindFormers' command line for CLIP: parse flags -> run config -> Trainer -> train/finetune/eval/predict.

    python run_mindformer.py --config configs/clip/run_clip_vit_b_32_pretrain_flickr8k.yaml \\
        --run_mode train --train_dataset_dir ./Flickr8k
    python run_mindformer.py --config configs/clip/run_clip_vit_b_32_zero_shot_image_classification_cifar100.yaml \\
        --run_mode eval --eval_dataset_dir ./cifar-100-python

User errors (a bad key, a missing file, no weights, ...) end with one ``error: ...`` line and exit
code 1; set MS_CLIP_DEBUG=1 for the traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shlex
import sys
from typing import Any, Dict, List, Optional, Sequence

logger = logging.getLogger("ms_clip.cli")


def str2bool(value: str) -> bool:
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")


def bool_or_path(value: str):
    """--resume_training: True/False (any case, or 1/0, yes/no) or a training checkpoint path."""
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="CLIP with MindFormers' run_mindformer.py interface (ms_clip)")
    parser.add_argument("--config", required=True, help="run YAML (configs/clip/run_clip_*.yaml)")
    parser.add_argument("--run_mode", choices=("train", "finetune", "eval", "predict", "export"), default=None,
                        help="default: the YAML's run_mode")
    parser.add_argument("--train_dataset_dir", help="sets train_dataset.data_loader.dataset_dir")
    parser.add_argument("--eval_dataset_dir", help="sets eval_dataset.data_loader.dataset_dir")
    parser.add_argument("--predict_data", nargs="+", help="images, folders (expanded to their images) or URLs")
    parser.add_argument("--predict_batch_size", type=int)
    parser.add_argument("--load_checkpoint", help="weights: a .ckpt, a save_pretrained folder or a model name")
    parser.add_argument("--resume_training", type=bool_or_path,
                        help="True: continue from the newest checkpoint of output_dir; or a training checkpoint")
    parser.add_argument("--do_eval", type=str2bool, help="evaluate during training (eval_epoch_interval)")
    parser.add_argument("--output_dir")
    parser.add_argument("--epochs", type=int, help="sets runner_config.epochs")
    parser.add_argument("--batch_size", type=int, help="sets runner_config.batch_size")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--device_id", type=int)
    parser.add_argument("--device_target", choices=("Ascend", "GPU", "CPU"))
    parser.add_argument("--use_parallel", type=str2bool)
    parser.add_argument("--options", nargs="+", default=[], metavar="KEY=VALUE",
                        help="any other run-config key by dotted path, e.g. runner_config.max_steps=20")
    # The rest of MindFormers' run_mindformer.py flags, so its command lines run unchanged. Those that set a
    # run-config key act through it (the run config warns about keys ms_clip does not implement, see
    # ms_clip.run_config.NOT_IMPLEMENTED); those without a key warn here (CLI_NOT_IMPLEMENTED).
    mf = parser.add_argument_group("MindFormers' flags")
    mf.add_argument("--mode", type=int, choices=(0, 1), help="context.mode: 0 GRAPH_MODE, 1 PYNATIVE_MODE")
    mf.add_argument("--gradient_accumulation_steps", type=int, help="sets runner_config.gradient_accumulation_steps")
    mf.add_argument("--sink_mode", type=str2bool, help="runner_config.sink_mode (not implemented: warns)")
    mf.add_argument("--profile", type=str2bool, help="profile (not implemented: warns)")
    mf.add_argument("--auto_trans_ckpt", type=str2bool, help="auto_trans_ckpt (not implemented: warns)")
    mf.add_argument("--src_strategy_path_or_dir", help="src_strategy_path_or_dir (not implemented: warns)")
    mf.add_argument("--only_save_strategy", type=str2bool, help="only_save_strategy (not implemented: warns)")
    mf.add_argument("--remote_save_url", help="remote_save_url (not implemented: warns)")
    for flag, kind in CLI_NOT_IMPLEMENTED_TYPES.items():
        mf.add_argument(f"--{flag}", type=kind, help=f"accepted, not implemented: {CLI_NOT_IMPLEMENTED[flag]}")
    return parser


# MindFormers flags with no run-config key in ms_clip: accepted, and warned about when given.
CLI_NOT_IMPLEMENTED = {
    "num_samples": "the whole dataset split is used; make a smaller split (or runner_config.max_steps) instead",
    "strategy_load_checkpoint": "ms_clip trains data-parallel only: there is no parallel strategy to load",
    "transform_process_num": "ms_clip trains data-parallel only: there are no sharded checkpoints to transform",
    "register_path": "ms_clip has no registry of outside classes; models come from ms_clip.models.FAMILIES",
}
CLI_NOT_IMPLEMENTED_TYPES = {"num_samples": int, "strategy_load_checkpoint": str, "transform_process_num": int,
                             "register_path": str}


def warn_unimplemented_flags(args: argparse.Namespace) -> List[str]:
    """Log a warning for every given flag of CLI_NOT_IMPLEMENTED; returns their names."""
    given = [flag for flag in CLI_NOT_IMPLEMENTED if getattr(args, flag, None) is not None]
    for flag in given:
        logger.warning("--%s is accepted for MindFormers' command lines but ms_clip does not implement it (%s); "
                       "it has no effect", flag, CLI_NOT_IMPLEMENTED[flag])
    return given


def expand_predict_data(items: Optional[Sequence[str]]) -> Optional[List[str]]:
    """Files and URLs as given; a folder becomes its image files in name order."""
    if not items:
        return None
    from ms_clip.constants import IMAGE_EXTENSIONS  # the one list, shared with datasets and the pipeline

    out: List[str] = []
    for item in items:
        if os.path.isdir(item):
            files = sorted(os.path.join(item, n) for n in os.listdir(item) if n.lower().endswith(IMAGE_EXTENSIONS))
            if not files:
                raise ValueError(f"--predict_data: folder {item} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
            out.extend(files)
        else:
            out.append(item)
    return out


def overrides_from_args(args: argparse.Namespace) -> Dict[str, Any]:
    flags = {
        "run_mode": args.run_mode,
        "train_dataset.data_loader.dataset_dir": args.train_dataset_dir,
        "eval_dataset.data_loader.dataset_dir": args.eval_dataset_dir,
        "load_checkpoint": args.load_checkpoint,
        "do_eval": args.do_eval,
        "output_dir": args.output_dir,
        "runner_config.epochs": args.epochs,
        "runner_config.batch_size": args.batch_size,
        "seed": args.seed,
        "context.device_id": args.device_id,
        "context.device_target": args.device_target,
        "use_parallel": args.use_parallel,
        "context.mode": args.mode,
        "runner_config.gradient_accumulation_steps": args.gradient_accumulation_steps,
        "runner_config.sink_mode": args.sink_mode,
        "profile": args.profile,
        "auto_trans_ckpt": args.auto_trans_ckpt,
        "src_strategy_path_or_dir": args.src_strategy_path_or_dir,
        "only_save_strategy": args.only_save_strategy,
        "remote_save_url": args.remote_save_url,
    }
    return {k: v for k, v in flags.items() if v is not None}


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    from ms_clip.run_config import RunConfigError, apply_overrides, read_yaml
    from ms_clip.trainer import Trainer, device_available

    warn_unimplemented_flags(args)
    if args.device_target and args.device_target != "CPU" and not device_available(args.device_target):
        raise RunConfigError(f"--device_target {args.device_target}: this MindSpore install has no "
                             f"{args.device_target} backend; use --device_target CPU")

    raw = read_yaml(args.config)
    apply_overrides(raw, overrides_from_args(args))
    apply_overrides(raw, args.options)
    run_mode = raw.get("run_mode") or "train"
    trainer = Trainer(args=raw)
    # --resume_training goes to train() as an argument, not into the run config: there it may be a path
    # (the config's resume_training key takes a boolean); None leaves the config's value.
    resume = args.resume_training
    with _output_dir_lock(trainer, run_mode):
        if run_mode == "train":
            result: Any = trainer.train(resume_training=resume)
        elif run_mode == "finetune":
            result = trainer.finetune(resume_training=resume)
        elif run_mode == "eval":
            result = trainer.evaluate()
        elif run_mode == "predict":
            result = trainer.predict(input_data=expand_predict_data(args.predict_data),
                                     batch_size=args.predict_batch_size)
            logger.info("output result is: %s", result)
        elif run_mode == "export":
            result = run_export(trainer)
        else:
            raise ValueError(f"run_mode {run_mode!r} is not supported; use train, finetune, eval, predict or export")
    print(json.dumps(result, default=str))
    return 0


def run_export(trainer: Any) -> List[Dict[str, Any]]:
    """--run_mode export: the model's image and text encoders as MindIR (and/or ONNX) graphs in output_dir,
    at runner_config.batch_size (--batch_size), with the preprocessing config and tokenizer beside them
    (ms_clip.export). The weights follow the usual precedence (--load_checkpoint, ...); never random."""
    from ms_clip.export import export_model
    from ms_clip.trainer import apply_context, resolve_model

    config = trainer.config
    apply_context(config)
    model = resolve_model(config, require_weights=True)
    section = config["export"]
    formats = ("MINDIR", "ONNX") if section["file_format"] == "BOTH" else (section["file_format"],)
    results = export_model(model, config["output_dir"], int(config["runner_config"]["batch_size"]),
                           image_size=section["image_size"], dynamic_batch=bool(section["dynamic_batch"]),
                           file_formats=formats)
    for r in results:
        logger.info("exported %s to %s (batch %s, %d px, %d tokens): %s", r.file_format, r.output_dir,
                    "dynamic" if r.batch_size is None else r.batch_size, r.image_size, r.context_length,
                    ", ".join(os.path.basename(f) for f in r.files))
    return [{"format": r.file_format, "output_dir": r.output_dir, "batch_size": r.batch_size,
             "image_size": r.image_size, "context_length": r.context_length, "files": r.files} for r in results]


def _output_dir_lock(trainer: Any, run_mode: str):
    """The output directory's run lock for runs that write there (train, finetune, eval), taken before the
    model loads so that a second run fails at once. Under msrun the rank is not known yet: train() locks
    on rank 0 itself."""
    if run_mode not in ("train", "finetune", "eval") or os.environ.get("MS_WORKER_NUM"):
        return contextlib.nullcontext()
    from ms_clip.train.run_lock import lock_output_dir

    return lock_output_dir(trainer.config["output_dir"])


def resume_command(argv: Sequence[str]) -> str:
    """The command line that continues this run: ``argv`` with ``--resume_training True``."""
    args, skip = [], False
    for arg in argv[1:]:
        if skip:
            skip = False
        elif arg == "--resume_training":
            skip = True
        elif not arg.startswith("--resume_training="):
            args.append(arg)
    return shlex.join([sys.executable, argv[0], *args, "--resume_training", "True"])


def _report_interrupted(err: Any) -> int:
    """How a clean stop on SIGTERM/SIGINT ends: what was saved, the command that resumes, the signal's exit code."""
    print(f"{_process_label()}{err}.", file=sys.stderr)
    if err.checkpoint:
        where = " (rerun the msrun job with these script arguments)" if os.environ.get("MS_WORKER_NUM") else ""
        print(f"resume with: {resume_command(sys.argv)}{where}", file=sys.stderr)
    return err.exit_code


def _process_label() -> str:
    """'[rank R] ' / '[scheduler] ' inside an msrun job (each process's log then says who failed), else ''."""
    if not os.environ.get("MS_WORKER_NUM"):
        return ""
    from ms_clip.distributed import current_rank, is_scheduler

    if is_scheduler():
        return "[scheduler] "
    rank = current_rank()
    return f"[rank {rank}] " if rank is not None else f"[worker {os.environ.get('RANK_ID', '?')}, not joined] "


def _user_errors():
    """Errors printed as one line (exit 1): ms_clip's own user errors, plus the ValueError/FileNotFoundError
    that argument checks raise. Anything else -- MindSpore's RuntimeErrors included -- is a bug and keeps its
    traceback (MS_CLIP_DEBUG=1 keeps it for these too)."""
    from ms_clip.errors import MsClipError

    return (MsClipError, ValueError, FileNotFoundError)


if __name__ == "__main__":
    os.environ.setdefault("GLOG_v", "3")  # MindSpore's C++ warnings would drown the training log
    from ms_clip.train.loop import TrainingInterrupted

    try:
        sys.exit(main())
    except TrainingInterrupted as stop:
        sys.exit(_report_interrupted(stop))
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as err:  # noqa: BLE001 - turned into one readable line below
        if os.environ.get("MS_CLIP_DEBUG") or not isinstance(err, _user_errors()):
            raise
        print(f"error: {_process_label()}{err}", file=sys.stderr)
        if os.environ.get("MS_WORKER_NUM"):
            # In an msrun job, MindSpore's exit handlers keep retrying the (failed) cluster for tens of
            # seconds before the process ends; msrun only reacts to the exit, so leave at once.
            logging.shutdown()
            sys.stderr.flush()
            sys.stdout.flush()
            os._exit(1)
        sys.exit(1)
