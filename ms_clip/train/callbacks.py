"""Training callbacks: a progress bar, a metrics JSONL file and log lines, and a run log file.

A callback is any object with some of ``on_train_begin(info)``, ``on_step_end(info)``,
``on_epoch_end(info)``, ``on_eval_end(info)`` and ``on_train_end(info)``; ``info`` is a plain dict
(step, epoch, loss, lr, samples_per_second, ...). Users pass their own through
``Trainer(callbacks=[...])``.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

logger = logging.getLogger(__name__)

__all__ = ["Callback", "ProgressBar", "MetricsLogger", "call_all", "attach_log_file", "read_metrics"]


class Callback:
    """Base class with no-op hooks (subclassing is optional; duck typing works)."""

    def on_train_begin(self, info: Dict[str, Any]) -> None: ...

    def on_step_end(self, info: Dict[str, Any]) -> None: ...

    def on_epoch_end(self, info: Dict[str, Any]) -> None: ...

    def on_eval_end(self, info: Dict[str, Any]) -> None: ...

    def on_train_end(self, info: Dict[str, Any]) -> None: ...


def call_all(callbacks: Sequence[Any], hook: str, info: Dict[str, Any]) -> None:
    for callback in callbacks:
        method = getattr(callback, hook, None)
        if method is not None:
            method(info)


class ProgressBar(Callback):
    """tqdm bar over optimizer steps with loss, lr and samples/s (tqdm shows the ETA)."""

    def __init__(self, disable: Optional[bool] = None):
        self.disable = disable
        self.bar = None

    def on_train_begin(self, info):
        from tqdm import tqdm

        self.bar = tqdm(total=info["total_steps"], initial=info["step"], desc="train", unit="step",
                        dynamic_ncols=True, mininterval=1.0, file=sys.stderr, disable=self.disable)

    def on_step_end(self, info):
        if self.bar is None:
            return
        self.bar.update(1)
        self.bar.set_postfix(epoch=info["epoch"] + 1, loss=f"{info['loss']:.4f}", lr=f"{info['lr']:.2e}",
                             samples_s=f"{info['samples_per_second']:.1f}", refresh=False)

    def on_train_end(self, info):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class MetricsLogger(Callback):
    """One JSON line per step and per evaluation in ``metrics.jsonl``; a log line every ``log_interval`` steps.

    On resume, records after the resumed step (written by the interrupted run after its last
    checkpoint) are dropped, so the file holds one continuous curve.
    """

    def __init__(self, path: str, log_interval: int = 10):
        self.path = path
        self.log_interval = max(1, log_interval)
        self.file = None

    def on_train_begin(self, info):
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        if info["step"] > 0 and os.path.isfile(self.path):
            kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= info["step"]]
            # Atomically: a run killed during this rewrite must not lose the curve before the resumed step.
            from ms_clip.fileio import atomic_write

            with atomic_write(self.path) as f:
                f.writelines(json.dumps(r) + "\n" for r in kept)
        elif info["step"] == 0 and os.path.isfile(self.path):
            os.remove(self.path)
        self.file = open(self.path, "a", encoding="utf-8")

    def _write(self, record: Dict[str, Any]) -> None:
        if self.file is not None:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()

    def on_step_end(self, info):
        keys = ("step", "epoch", "loss", "lr", "grad_norm", "logit_scale", "loss_scale", "applied",
                "samples_per_second")
        self._write({"type": "train", **{k: info[k] for k in keys if k in info}, "time": time.time()})
        if info["step"] % self.log_interval == 0 or info["step"] == info["total_steps"]:
            # MindFormers' MFLossMonitor fields first (log parsers written for MindFormers find them), then ours.
            logger.info("Epoch:[%3d/%3d], step:[%5d/%5d], loss: %.6f, lr: %.3e | epoch %d/%d step %d/%d loss %.4f "
                        "lr %.3e grad_norm %.3f logit_scale %.2f %.1f samples/s",
                        info["epoch"] + 1, info["epochs"], info["step"], info["total_steps"], info["loss"], info["lr"],
                        info["epoch"] + 1, info["epochs"], info["step"], info["total_steps"], info["loss"],
                        info["lr"], info["grad_norm"], info["logit_scale"], info["samples_per_second"])

    def on_eval_end(self, info):
        self._write({"type": "eval", **info, "time": time.time()})

    def on_train_end(self, info):
        if self.file is not None:
            self.file.close()
            self.file = None


def read_metrics(path: str) -> List[Dict[str, Any]]:
    """Records of a metrics.jsonl (a torn last line from a killed run is ignored)."""
    records = []
    if not os.path.isfile(path):
        return records
    with open(path, "r", encoding="utf-8") as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def attach_log_file(path: str, level: int = logging.INFO) -> logging.Handler:
    """Copy ms_clip's log records (``level`` and up) into ``path``; returns the handler to remove later."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(level)
    package_logger = logging.getLogger("ms_clip")
    package_logger.addHandler(handler)
    if package_logger.getEffectiveLevel() > level:
        package_logger.setLevel(level)
    return handler
