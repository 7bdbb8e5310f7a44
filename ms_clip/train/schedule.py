"""Learning-rate schedules, as plain functions of the optimizer step (open_clip ``scheduler.py``).

The schedule is evaluated in Python and fed to the compiled step as a scalar, so a resumed run
only needs the step number to continue the same curve.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

__all__ = ["LRSchedule", "schedule_from_config"]

_COSINE = ("cosine", "CosineWithWarmUpLR")
_CONSTANT = ("constant", "ConstantWarmUpLR", "constant_with_warmup")
# HF Trainer's default (``get_linear_schedule_with_warmup``, lr_scheduler_type "linear"); MindFormers' name.
_LINEAR = ("linear", "LinearWithWarmUpLR")


@dataclass(frozen=True)
class LRSchedule:
    """Linear warmup ``base_lr * (step + 1) / warmup_steps``, then constant, or cosine or linear to ``lr_end``."""

    base_lr: float
    total_steps: int
    warmup_steps: int = 0
    kind: str = "cosine"  # cosine | constant | linear
    lr_end: float = 0.0

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        if self.kind == "constant":
            return self.base_lr
        decay_steps = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / decay_steps)
        if self.kind == "linear":
            return self.lr_end + (1.0 - progress) * (self.base_lr - self.lr_end)
        return self.lr_end + 0.5 * (1 + math.cos(math.pi * progress)) * (self.base_lr - self.lr_end)


def schedule_from_config(lr_schedule: Mapping[str, Any], optimizer: Mapping[str, Any],
                         steps_total: int) -> LRSchedule:
    """The schedule a run config's ``lr_schedule`` and ``optimizer`` sections describe."""
    kind = lr_schedule.get("type", "constant")
    if kind not in _COSINE + _CONSTANT + _LINEAR:
        raise ValueError(f"lr_schedule.type must be one of {list(_COSINE + _CONSTANT + _LINEAR)}, got {kind!r}")
    base_lr = lr_schedule.get("learning_rate")
    base_lr = optimizer.get("learning_rate") if base_lr is None else base_lr
    total = lr_schedule.get("total_steps", -1)
    total = steps_total if total is None or total < 0 else int(total)
    warmup = int(lr_schedule.get("warmup_steps") or 0)
    if warmup <= 0 and lr_schedule.get("warmup_ratio"):
        warmup = int(round(float(lr_schedule["warmup_ratio"]) * total))
    shape = "cosine" if kind in _COSINE else "linear" if kind in _LINEAR else "constant"
    return LRSchedule(float(base_lr), max(1, total), max(0, warmup), shape,
                      float(lr_schedule.get("lr_end") or 0.0))
