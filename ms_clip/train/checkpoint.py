"""Training checkpoints under ``<output_dir>/checkpoint``: atomic, keep-last-K, resumable.

Layout::

    checkpoint/config.yaml                      the model config (so from_pretrained(x.ckpt) works)
    checkpoint/<prefix>_step0000100.ckpt        model weights only (strictly loadable)
    checkpoint/train_state/<prefix>_step0000100.ckpt    AdamW moments (adam_m.* / adam_v.*)
    checkpoint/train_state/<prefix>_step0000100.json    step, epoch, data position, loss scale, ...
    checkpoint/latest.json                      the newest complete checkpoint + the kept list

A save runs in three phases, so a run killed at any moment leaves a complete checkpoint that
``latest.json`` names:

1. write the new files, each to a temporary name (``fileio.TMP_PREFIX``) renamed when complete;
2. replace ``latest.json`` (atomically) to name the new checkpoint;
3. only then delete the checkpoints beyond ``keep`` (including files that an earlier, killed run
   wrote but never pointed to).

Temporary files of killed writers are removed when a run starts (``remove_temp_files``) and after
a failed save; a full disk ends the run with ``DiskFullError`` naming the directory and the space the
save needs. Weights and training state are separate files so that a training checkpoint is also a
plain model checkpoint.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
from mindspore import nn

from ms_clip.errors import MsClipError
from ms_clip.fileio import TMP_PREFIX, write_json
from ms_clip.registry import save_config
from ms_clip.weights import WeightsError, assign_weights, read_checkpoint, save_weights

logger = logging.getLogger(__name__)

__all__ = ["CheckpointManager", "DiskFullError", "remove_temp_files", "resolve_resume", "LATEST", "STATE_DIR"]

LATEST = "latest.json"
STATE_DIR = "train_state"
# Test-only: seconds to sleep between the files of a save, so that a test's SIGKILL lands inside saves.
SAVE_DELAY_ENV = "MS_CLIP_TEST_SAVE_DELAY"


class DiskFullError(MsClipError, RuntimeError):
    """A checkpoint could not be written because its disk (or quota) is full; names the directory."""


def remove_temp_files(directory: str, subdirs: Sequence[str] = (STATE_DIR,),
                      suffixes: Optional[Sequence[str]] = None) -> List[str]:
    """Delete the temporary files (``.tmp-*``, ending in one of ``suffixes`` if given) that killed or failed
    writers left in ``directory`` and its ``subdirs`` (default: a checkpoint directory and its
    ``train_state``); returns their paths.

    Only the run holding the output directory's lock may call this (another writer's live temp file
    would go too).
    """
    removed = []
    for folder in (directory, *(os.path.join(directory, d) for d in subdirs)):
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            continue
        for name in names:
            path = os.path.join(folder, name)
            if name.startswith(TMP_PREFIX) and (suffixes is None or name.endswith(tuple(suffixes))) \
                    and os.path.isfile(path):
                try:
                    os.remove(path)
                    removed.append(path)
                except FileNotFoundError:
                    pass
    if removed:
        logger.info("removed %d temporary file(s) left by an interrupted save in %s", len(removed), directory)
    return removed


def _pause() -> None:
    delay = os.environ.get(SAVE_DELAY_ENV)
    if delay:
        time.sleep(float(delay))


def _nbytes(values) -> int:
    total = 0
    for value in values:
        shape = getattr(value, "shape", ())
        itemsize = getattr(getattr(value, "dtype", None), "itemsize", None) or 4  # MindSpore dtypes: assume 4
        total += int(np.prod(shape)) * int(itemsize)
    return total


def _read_json(path: str, what: str) -> Dict[str, Any]:
    """A JSON object from ``path``; WeightsError naming the file when it is unreadable, empty or not JSON."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = json.load(f)
    except UnicodeDecodeError as err:
        raise WeightsError(f"{path}: not valid JSON (not UTF-8 text at byte {err.start}); {what}") from None
    except json.JSONDecodeError as err:
        problem = "the file is empty" if not err.doc.strip() else f"{err.msg} at line {err.lineno} column {err.colno}"
        raise WeightsError(f"{path}: not valid JSON ({problem}); {what}") from None
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: expected a JSON object, got {type(data).__name__}; {what}")
    return data


class CheckpointManager:
    """Writes, lists, prunes and reads the checkpoints of one run."""

    def __init__(self, directory: str, prefix: str = "clip", keep: int = 3):
        if keep < 1:
            raise ValueError(f"keep_checkpoint_max must be >= 1, got {keep}")
        self.directory = directory
        self.prefix = prefix
        self.keep = keep
        self._pattern = re.compile(rf"^{re.escape(prefix)}_step(\d+)\.(ckpt|json)$")

    def _paths(self, step: int) -> Dict[str, str]:
        stem = f"{self.prefix}_step{step:07d}"
        return {"weights": os.path.join(self.directory, stem + ".ckpt"),
                "optimizer": os.path.join(self.directory, STATE_DIR, stem + ".ckpt"),
                "state": os.path.join(self.directory, STATE_DIR, stem + ".json")}

    def latest(self) -> Optional[Dict[str, Any]]:
        """The newest complete checkpoint's record (``latest.json``), or None if there is none."""
        path = os.path.join(self.directory, LATEST)
        if not os.path.isfile(path):
            return None
        data = _read_json(path, "it names the newest checkpoint: delete it and resume from a checkpoint file "
                                "with --resume_training <output_dir>/checkpoint/<name>.ckpt")
        for key in ("weights", "state_file"):
            if not isinstance(data.get(key), str):
                raise WeightsError(f"{path}: no '{key}' entry; it was not written by ms_clip training")
        return data

    def save(self, model: nn.Cell, optimizer_state: Mapping[str, Any], state: Mapping[str, Any],
             run_info: Mapping[str, Any]) -> str:
        """Write weights, optimizer moments and state for ``state['step']``, point ``latest.json`` at them,
        then prune to the last ``keep`` checkpoints. Returns the weights' path."""
        step = int(state["step"])
        paths = self._paths(step)
        record = {"state": dict(state), "run": dict(run_info), "weights": os.path.basename(paths["weights"]),
                  "optimizer": os.path.relpath(paths["optimizer"], self.directory)}
        try:
            previous = self.latest()
        except WeightsError as err:  # a damaged pointer must not stop the run from writing a good one
            logger.warning("ignoring the unreadable checkpoint pointer: %s", err)
            previous = None
        # Steps after this one belong to a timeline this run abandoned (resumed from an older checkpoint).
        kept = [int(s) for s in (previous or {}).get("kept_steps", []) if int(s) < step]
        kept = (kept + [step])[-self.keep:]
        try:
            save_config(model.config, self.directory)  # config.yaml beside the weights
            _pause()
            save_weights(optimizer_state, paths["optimizer"])
            _pause()
            write_json(paths["state"], record, indent=1)
            _pause()
            save_weights(model, paths["weights"])
            _pause()
            write_json(os.path.join(self.directory, LATEST),
                       {**record, "state_file": os.path.relpath(paths["state"], self.directory), "kept_steps": kept},
                       indent=1)
        except BaseException as err:
            self._discard_failed_save(step, previous)
            if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFullError(self._disk_full_message(model, optimizer_state, step)) from None
            raise
        _pause()
        self._prune(kept)
        logger.info("saved checkpoint %s (step %d, epoch %d)", paths["weights"], step, state["epoch"])
        return paths["weights"]

    def _discard_failed_save(self, step: int, previous: Optional[Mapping[str, Any]]) -> None:
        """After a failed save: remove temp files and this step's partial files (frees the disk)."""
        remove_temp_files(self.directory)
        if previous is not None and previous.get("weights") == os.path.basename(self._paths(step)["weights"]):
            return  # the pointer still names these files
        for path in self._paths(step).values():
            try:
                os.remove(path)
            except FileNotFoundError:
                pass

    def _disk_full_message(self, model: nn.Cell, optimizer_state: Mapping[str, Any], step: int) -> str:
        needed = _nbytes(p for p in model.get_parameters()) + _nbytes(optimizer_state.values())
        try:
            free = f"{shutil.disk_usage(self.directory).free / 2 ** 20:.1f} MB free"
        except OSError:
            free = "free space unknown"
        return (f"no space left on device in {self.directory}: the checkpoint of step {step} needs about "
                f"{needed / 2 ** 20:.1f} MB ({free}); free some space or set output_dir on another disk, then "
                f"resume with --resume_training True")

    def _prune(self, kept: List[int]) -> None:
        """Delete every checkpoint of this prefix whose step is not in ``kept`` (also orphans of killed runs)."""
        for folder in (self.directory, os.path.join(self.directory, STATE_DIR)):
            try:
                names = os.listdir(folder)
            except FileNotFoundError:
                continue
            for name in names:
                match = self._pattern.match(name)
                if match and int(match.group(1)) not in kept:
                    try:
                        os.remove(os.path.join(folder, name))
                    except FileNotFoundError:
                        pass

    def load(self, weights_path: Optional[str] = None) -> Dict[str, Any]:
        """The record (state, run info, file paths) of ``weights_path``, or of the latest checkpoint.

        Checkpoints a resumed run writes still go to this manager's own directory.
        """
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
        record = _read_json(state_file, "the training state of a checkpoint")
        base = os.path.dirname(os.path.dirname(state_file))
        record["weights_path"] = os.path.join(base, record["weights"])
        record["optimizer_path"] = os.path.join(base, record["optimizer"])
        for key in ("weights_path", "optimizer_path"):
            if not os.path.isfile(record[key]):
                raise WeightsError(f"cannot resume: {record[key]} (named by {state_file}) is missing")
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
