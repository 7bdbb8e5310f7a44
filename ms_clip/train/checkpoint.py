"""Training checkpoints under ``<output_dir>/checkpoint``: atomic, keep-last-K, resumable.

Layout::

    checkpoint/config.yaml                      the model config (so from_pretrained(x.ckpt) works)
    checkpoint/<prefix>_step0000100.ckpt        model weights only (strictly loadable)
    checkpoint/train_state/<prefix>_step0000100.ckpt    AdamW moments (adam_m.* / adam_v.*)
    checkpoint/train_state/<prefix>_step0000100.json    step, epoch, data position, loss scale, ...
    checkpoint/latest.json                      the newest complete checkpoint + the kept list

Every file is written to a temporary name and renamed; ``latest.json`` is replaced last, so a run
killed at any moment leaves the previous complete checkpoint as "latest". Weights and training
state are separate files so that a training checkpoint is also a plain model checkpoint.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from typing import Any, Dict, List, Mapping, Optional

from mindspore import nn

from ms_clip.registry import save_config
from ms_clip.weights import WeightsError, assign_weights, read_checkpoint, save_weights

logger = logging.getLogger(__name__)

__all__ = ["CheckpointManager", "write_json_atomic", "resolve_resume"]

LATEST = "latest.json"
STATE_DIR = "train_state"


def write_json_atomic(path: str, data: Any) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class CheckpointManager:
    """Writes, lists, prunes and reads the checkpoints of one run."""

    def __init__(self, directory: str, prefix: str = "clip", keep: int = 3):
        if keep < 1:
            raise ValueError(f"keep_checkpoint_max must be >= 1, got {keep}")
        self.directory = directory
        self.prefix = prefix
        self.keep = keep

    def _paths(self, step: int) -> Dict[str, str]:
        stem = f"{self.prefix}_step{step:07d}"
        return {"weights": os.path.join(self.directory, stem + ".ckpt"),
                "optimizer": os.path.join(self.directory, STATE_DIR, stem + ".ckpt"),
                "state": os.path.join(self.directory, STATE_DIR, stem + ".json")}

    def latest(self) -> Optional[Dict[str, Any]]:
        path = os.path.join(self.directory, LATEST)
        if not os.path.isfile(path):
            return None
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)

    def save(self, model: nn.Cell, optimizer_state: Mapping[str, Any], state: Mapping[str, Any],
             run_info: Mapping[str, Any]) -> str:
        """Write weights, optimizer moments and state for ``state['step']``; prune to the last ``keep``."""
        paths = self._paths(int(state["step"]))
        save_config(model.config, self.directory)  # config.yaml beside the weights
        save_weights(optimizer_state, paths["optimizer"])
        record = {"state": dict(state), "run": dict(run_info), "weights": os.path.basename(paths["weights"]),
                  "optimizer": os.path.relpath(paths["optimizer"], self.directory)}
        write_json_atomic(paths["state"], record)
        save_weights(model, paths["weights"])
        previous = self.latest()
        kept: List[int] = [s for s in (previous or {}).get("kept_steps", []) if s != state["step"]]
        kept.append(int(state["step"]))
        for old in kept[:-self.keep]:
            for path in self._paths(old).values():
                if os.path.exists(path):
                    os.remove(path)
        write_json_atomic(os.path.join(self.directory, LATEST),
                          {**record, "state_file": os.path.relpath(paths["state"], self.directory),
                           "kept_steps": kept[-self.keep:]})
        logger.info("saved checkpoint %s (step %d, epoch %d)", paths["weights"], state["step"], state["epoch"])
        return paths["weights"]

    def load(self, weights_path: Optional[str] = None) -> Dict[str, Any]:
        """The record (state, run info, file paths) of ``weights_path``, or of the latest checkpoint."""
        if weights_path is None:
            latest = self.latest()
            if latest is None:
                raise WeightsError(f"nothing to resume: no {LATEST} in {self.directory} (no checkpoint was "
                                   f"completed by an earlier run with this output_dir)")
            state_file = os.path.join(self.directory, latest["state_file"])
        else:
            directory = os.path.dirname(os.path.abspath(weights_path))
            stem = os.path.splitext(os.path.basename(weights_path))[0]
            state_file = os.path.join(directory, STATE_DIR, stem + ".json")
            if not os.path.isfile(state_file):
                raise WeightsError(f"cannot resume from {weights_path}: its training state {state_file} is missing "
                                   f"(only checkpoints written by training can be resumed; use load_checkpoint to "
                                   f"start a new run from plain weights)")
            self.directory = directory
        with open(state_file, "r", encoding="utf-8") as f:
            record = json.load(f)
        base = os.path.dirname(state_file)
        record["weights_path"] = os.path.join(os.path.dirname(base), record["weights"])
        record["optimizer_path"] = os.path.join(os.path.dirname(base), record["optimizer"])
        return record

    @staticmethod
    def restore(record: Mapping[str, Any], model: nn.Cell, optimizer: nn.Cell) -> None:
        """Load the weights (strictly) and the optimizer moments named in ``record``."""
        assign_weights(model, read_checkpoint(record["weights_path"]), source=f"checkpoint {record['weights_path']}")
        moments = {p.name: p for p in list(optimizer.moment1) + list(optimizer.moment2)}
        saved = read_checkpoint(record["optimizer_path"])
        missing = sorted(set(moments) - set(saved))
        if missing:
            raise WeightsError(f"optimizer state {record['optimizer_path']} lacks {len(missing)} moments "
                               f"(first: {missing[:3]}); was a different tower frozen in the interrupted run?")
        from mindspore import Tensor

        for name, param in moments.items():
            param.set_data(Tensor(saved[name]))


def resolve_resume(resume_training: Any, checkpoint_dir: str) -> Optional[str]:
    """``resume_training`` (False | True | path to a training .ckpt) -> None, '' (latest) or the path."""
    if resume_training in (None, False, "", "False", "false"):
        return None
    if resume_training is True or resume_training in ("True", "true"):
        return ""
    path = os.fspath(resume_training)
    if not os.path.isfile(path):
        raise WeightsError(f"resume_training: checkpoint not found: {path}")
    return path
