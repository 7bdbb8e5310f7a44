"""The training loop: compiled forward/backward and update Cells, driven per optimizer step from Python.

One optimizer step over ``gradient_accumulation_steps`` = N micro-batches of B samples is ONE contrastive batch
of N * B samples (times the number of data-parallel ranks, whose features are all-gathered):

1. N = 1: ``ForwardBackward`` (compiled) gives the loss and the gradients of ``CLIPWithLoss`` in one pass, the
   loss multiplied by the loss scale (float16) before back-propagation.
   N > 1 (GradCache, Gao et al. 2021; open_clip's ``--accum-freq`` computes the same gradient another way):
   a. ``EmbedCell`` (compiled, forward only) embeds every micro-batch; no activations outlive a call, only the
      [B, D] features are kept;
   b. ``FeatureLossGrad`` (compiled) computes the contrastive loss of all N * B features (gathered over the
      ranks) and its gradient with respect to the features and to ``exp(logit_scale)``;
   c. ``BackwardWithSens`` (compiled) re-runs each micro-batch with gradients and back-propagates its slice of
      the feature gradient (``GradOperation(sens_param=True)``); the per-micro-batch parameter gradients add up
      to the gradient of the big batch's loss (``AddGrads``), with one micro-batch's activations alive at a time.
   The re-run must reproduce the first pass: with active dropout (p > 0 in training mode) it draws new masks,
   so the step is not exact (a warning says so at the first step);
2. data parallel: the mean of the ranks' summed gradients (all-reduce);
3. ``GradNorm`` (compiled) gives the global norm of the (still loss-scaled) gradients; one host
   sync decides: non-finite -> skip the step and lower the scale (dynamic loss scaling) or stop the
   run with a clear error (no loss scaling); finite -> continue;
4. ``ApplyUpdate`` (compiled): AdamW with the gradient multiplier ``1 / scale`` times the
   clipping factor ``min(1, max_norm / norm)``, then logit_scale clamped to [0, ln 100] (CLIP paper;
   OpenAI's released code lacks the clamp, openai/CLIP#46).

Everything that changes between steps (lr, bias corrections, multiplier, loss scale) is a scalar
input, so the Cells compile once.
"""
from __future__ import annotations

import json
import logging
import math
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops

from ms_clip.errors import MsClipError
from ms_clip.data.timing import InputWaitMeter
from ms_clip.loss import ClipLoss, CLIPWithLoss
from ms_clip.train.optim import AdamW, GradNorm, trainable_parameters
from ms_clip.train.schedule import LRSchedule

logger = logging.getLogger(__name__)

__all__ = ["NonFiniteLossError", "TrainingInterrupted", "LossScaler", "TrainState", "StepResult", "StepRunner",
           "ForwardBackward", "EmbedCell", "FeatureLossGrad", "BackwardWithSens", "ApplyUpdate", "active_dropout",
           "MAX_LOGIT_SCALE", "FitOptions", "fit", "steps_in_epoch", "past_epoch_end"]

MAX_LOGIT_SCALE = math.log(100.0)


class NonFiniteLossError(MsClipError, RuntimeError):
    """The loss or the gradients became NaN/inf and loss scaling cannot absorb it."""


class TrainingInterrupted(Exception):
    """Training stopped cleanly on SIGTERM/SIGINT after a step, with a checkpoint of that step.

    Not a user error: the CLI prints how to resume and exits with the shell's code for the signal
    (``exit_code``: 143 for SIGTERM, 130 for SIGINT).
    """

    def __init__(self, signum: int, step: int, checkpoint: Optional[str] = None):
        self.signum = signum
        self.step = step
        self.checkpoint = checkpoint
        super().__init__(self._message())

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)

    def _message(self) -> str:
        saved = f"checkpoint {self.checkpoint}" if self.checkpoint else "no checkpoint written (rank != 0)"
        return f"training stopped by {self.signal_name} after step {self.step}; {saved}"

    def with_checkpoint(self, checkpoint: Optional[str]) -> "TrainingInterrupted":
        self.checkpoint = checkpoint
        self.args = (self._message(),)
        return self


class _StopSignals:
    """SIGTERM/SIGINT handlers for the duration of a training loop: the first signal asks the loop to stop
    at the next step boundary (and checkpoint); a second one stops at once.

    Installed only in the main thread (Python's rule); the previous handlers come back on ``restore``.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._previous: Dict[int, Any] = {}

    def install(self) -> "_StopSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def reassert(self) -> None:
        """Take SIGINT back from MindSpore, which installs C-level SIGINT handlers behind Python's back when a
        dataset pipeline starts and while its runtime runs a compiled graph (``mindspore::SignalGuard``, whose
        ``DefaultIntHandler`` does ``kill(getpid(), SIGTERM)``). Called after every step, so between steps a
        SIGINT is seen as SIGINT; one that lands while a graph runs still arrives as SIGTERM (the loop stops
        the same way, but reports SIGTERM)."""
        for signum in self._previous:
            signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            # None: a handler installed outside Python, which cannot be reinstated; the default is closest.
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:  # asked twice: do not wait for the step
            self.restore()
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + signum)
        self.signum = signum
        logger.warning("%s received: stopping after the current step with a checkpoint (send it again to stop "
                       "at once, without one)", signal.Signals(signum).name)


class ForwardBackward(nn.Cell):
    """``construct(image, text, sens) -> (loss, grads)``; grads are of ``sens * loss``."""

    def __init__(self, network: nn.Cell, params: Sequence[Parameter]):
        super().__init__(auto_prefix=False)
        self.network = network
        self.weights = ms.ParameterTuple(params)
        self.grad = ops.GradOperation(get_by_list=True, sens_param=True)

    def construct(self, image, text, sens):
        loss = self.network(image, text)
        grads = self.grad(self.network, self.weights)(image, text, sens)
        return loss, grads


class EmbedCell(nn.Cell):
    """``construct(image, text) -> (image_embeds, text_embeds, exp(logit_scale))``: the model's forward, no grad.

    Compiled on its own, so nothing of the towers' activations survives the call (GradCache's first pass)."""

    def __init__(self, model: nn.Cell):
        super().__init__(auto_prefix=False)
        self.model = model

    def construct(self, image, text):
        return self.model(image, text)


class FeatureLossGrad(nn.Cell):
    """``construct(image_embeds, text_embeds, logit_scale, sens) -> (loss, (d_image, d_text, d_logit_scale))``.

    The contrastive loss of a whole accumulated batch of features and the gradient of ``sens * loss`` with respect
    to the features and to ``logit_scale`` (the model's ``exp(logit_scale)`` output). With a distributed
    ``ClipLoss`` the features are all-gathered and the feature gradient sums every rank's loss (its
    ``GatherWithGrad``), as in the one-pass step.
    """

    def __init__(self, loss: ClipLoss):
        super().__init__(auto_prefix=False)
        self.loss = loss
        self.grad = ops.GradOperation(get_all=True, sens_param=True)

    def construct(self, image_embeds, text_embeds, logit_scale, sens):
        loss = self.loss(image_embeds, text_embeds, logit_scale)
        grads = self.grad(self.loss)(image_embeds, text_embeds, logit_scale, sens)
        return loss, grads


class BackwardWithSens(nn.Cell):
    """``construct(image, text, d_image, d_text, d_logit_scale) -> grads``: the gradients with respect to
    ``params`` of ``<image_embeds, d_image> + <text_embeds, d_text> + exp(logit_scale) * d_logit_scale`` for one
    micro-batch (GradCache's second pass: the model is re-run with gradients, its outputs' gradients given)."""

    def __init__(self, model: nn.Cell, params: Sequence[Parameter]):
        super().__init__(auto_prefix=False)
        self.model = model
        self.weights = ms.ParameterTuple(params)
        self.grad = ops.GradOperation(get_by_list=True, sens_param=True)

    def construct(self, image, text, d_image, d_text, d_logit_scale):
        return self.grad(self.model, self.weights)(image, text, (d_image, d_text, d_logit_scale))


def active_dropout(model: nn.Cell) -> List[str]:
    """Names of the dropout layers of ``model`` that drop anything when called now (p > 0 and training mode).

    MindSpore's ``nn.Dropout`` is the identity unless its cell is in training mode (``set_train(True)``)."""
    names = []
    for name, cell in model.cells_and_names():
        if isinstance(cell, nn.Dropout) and cell.training:
            p = cell.p if cell.p is not None else 1.0 - float(cell.keep_prob)
            if p > 0:
                names.append(name)
    return names


class AddGrads(nn.Cell):
    def __init__(self):
        super().__init__()
        self.hyper_map = ops.HyperMap()

    def construct(self, total, grads):
        return self.hyper_map(ops.add, total, grads)


class MeanOverRanks(nn.Cell):
    """The mean of a tensor over all ranks (for logging the global-batch loss)."""

    def __init__(self, world_size: int):
        super().__init__()
        self.all_reduce = ops.AllReduce(ops.ReduceOp.SUM)
        self.world_size = world_size

    def construct(self, x):
        return self.all_reduce(x) / self.world_size


class ApplyUpdate(nn.Cell):
    """AdamW update followed by the logit_scale clamp."""

    def __init__(self, optimizer: AdamW, logit_scale: Parameter):
        super().__init__(auto_prefix=False)
        self.optimizer = optimizer
        self.logit_scale = logit_scale
        self.max_logit_scale = Tensor(MAX_LOGIT_SCALE, ms.float32)
        self.zero = Tensor(0.0, ms.float32)

    def construct(self, grads, lr, bias_correction1, bias_correction2, grad_multiplier):
        done = self.optimizer(grads, lr, bias_correction1, bias_correction2, grad_multiplier)
        current = ops.depend(self.logit_scale, done)
        return ops.assign(self.logit_scale, ops.clip_by_value(current, self.zero, self.max_logit_scale))


@dataclass
class LossScaler:
    """Loss scaling state. ``kind``: none | dynamic | fixed (MindSpore's Dynamic/FixedLossScaleUpdateCell)."""

    kind: str = "none"
    scale: float = 1.0
    factor: float = 2.0
    window: int = 1000
    good_steps: int = 0

    def update(self, finite: bool) -> bool:
        """Record one step's outcome; returns whether to apply it."""
        if self.kind != "dynamic":
            return finite
        if not finite:
            self.scale = max(1.0, self.scale / self.factor)
            self.good_steps = 0
            return False
        self.good_steps += 1
        if self.good_steps >= self.window:
            self.scale *= self.factor
            self.good_steps = 0
        return True


@dataclass
class TrainState:
    """Where training is: everything a resume needs beyond weights and optimizer moments."""

    step: int = 0  # optimizer steps applied (the schedule position)
    epoch: int = 0  # current epoch (0-based)
    batch_in_epoch: int = 0  # micro-batches of this epoch already consumed (the data position)
    samples_seen: int = 0
    skipped_steps: int = 0  # steps dropped by loss scaling on overflow
    loss_scale: float = 1.0
    good_steps: int = 0

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class StepResult:
    loss: float
    grad_norm: float
    applied: bool
    lr: float
    loss_scale: float


class StepRunner:
    """Compiled cells plus the host logic of one optimizer step (accumulation, scaling, clipping).

    ``runner(micro_batches, step)`` takes the step's micro-batches (``accumulation`` of them in training) and
    trains on them as one contrastive batch: the loss is the loss of all their samples together (and of every
    rank's), and so are the gradients (see the module docstring: one pass for a single micro-batch, GradCache
    for several).
    """

    def __init__(self, model: nn.Cell, optimizer_config: Dict[str, Any], schedule: LRSchedule, *,
                 accumulation: int = 1, clip_norm: Optional[float] = 1.0, scaler: Optional[LossScaler] = None,
                 lock_image: bool = False, lock_text: bool = False, world_size: int = 1, rank: int = 0):
        self.model = model
        self.params = trainable_parameters(model, lock_image, lock_text)
        self.optimizer = AdamW(self.params, float(optimizer_config.get("weight_decay", 0.0)),
                               float(optimizer_config.get("beta1", 0.9)), float(optimizer_config.get("beta2", 0.98)),
                               float(optimizer_config.get("eps", 1e-6)))
        self.loss = ClipLoss(world_size, rank)
        self.network = CLIPWithLoss(model, self.loss)
        self.forward_backward = ForwardBackward(self.network, self.params)
        # GradCache cells (built always: cheap until first called, and compiled only if accumulation > 1).
        self.embed = EmbedCell(model)
        self.feature_loss_grad = FeatureLossGrad(self.loss)
        self.backward_with_sens = BackwardWithSens(model, self.params)
        self.add_grads = AddGrads()
        self.grad_norm = GradNorm()
        self.apply_update = ApplyUpdate(self.optimizer, model.logit_scale)
        # Data parallel: every rank gets the mean of all ranks' gradients (MindSpore's all-reduce).
        self.grad_reducer = nn.DistributedGradReducer(self.params, mean=True, degree=world_size) \
            if world_size > 1 else None
        self.loss_mean = MeanOverRanks(world_size) if world_size > 1 else None
        self.schedule = schedule
        self.accumulation = accumulation
        self.clip_norm = clip_norm
        self.scaler = scaler or LossScaler()
        self._dropout_checked = False

    def any_rank(self, flag: bool) -> bool:
        """True if ``flag`` is set on any rank (all ranks must call this at the same step)."""
        if self.loss_mean is None:
            return flag
        return float(self.loss_mean(Tensor(1.0 if flag else 0.0, ms.float32)).asnumpy()) > 0

    def _warn_dropout(self, micro_batches: int) -> None:
        """Once per runner: GradCache re-runs each micro-batch, and active dropout would draw new masks there."""
        if self._dropout_checked:
            return
        self._dropout_checked = True
        names = active_dropout(self.model)
        if names:
            logger.warning(
                "gradient accumulation over %d micro-batches with %d active dropout layers (%s%s): the loss uses the "
                "features of one dropout draw and the gradients flow through another (each micro-batch is re-run), "
                "so the step approximates one contrastive batch of all micro-batches instead of equalling it; set the "
                "towers' dropout to 0 or gradient_accumulation_steps to 1 for an exact large-batch step",
                micro_batches, len(names), ", ".join(names[:3]), ", ..." if len(names) > 3 else "")

    def _one_pass(self, image: Tensor, text: Tensor, sens: Tensor) -> Tuple[Tensor, Any]:
        loss, grads = self.forward_backward(image, text, sens)
        # Tuples of tensors passed into a compiled Cell are constants (recompiled on every new value)
        # unless marked mutable.
        return loss, ms.mutable(grads)

    def _grad_cache(self, micro_batches: Sequence[Tuple[Tensor, Tensor]], sens: Tensor) -> Tuple[Tensor, Any]:
        """Loss and summed gradients of all micro-batches as one contrastive batch (GradCache)."""
        self._warn_dropout(len(micro_batches))
        images, texts, sizes, logit_scale = [], [], [], None
        for image, text in micro_batches:
            image_embeds, text_embeds, logit_scale = self.embed(image, text)
            images.append(image_embeds.asnumpy())
            texts.append(text_embeds.asnumpy())
            sizes.append(images[-1].shape[0])
        loss, (d_image, d_text, d_logit_scale) = self.feature_loss_grad(
            Tensor(np.concatenate(images)), Tensor(np.concatenate(texts)), logit_scale, sens)
        # The loss runs in float32 (ClipLoss casts); each sens takes the dtype of the output it belongs to.
        d_image, d_text = d_image.asnumpy().astype(images[0].dtype), d_text.asnumpy().astype(texts[0].dtype)
        # exp(logit_scale) is the same output in every micro-batch: its gradient enters the backward once.
        no_scale_grad = Tensor(0.0, d_logit_scale.dtype)
        total, offset = None, 0
        for i, ((image, text), size) in enumerate(zip(micro_batches, sizes)):
            grads = self.backward_with_sens(image, text, Tensor(d_image[offset:offset + size]),
                                            Tensor(d_text[offset:offset + size]),
                                            d_logit_scale if i == 0 else no_scale_grad)
            offset += size
            grads = ms.mutable(grads)
            total = grads if total is None else ms.mutable(self.add_grads(total, grads))
        return loss, total

    def __call__(self, micro_batches: Sequence[Tuple[Tensor, Tensor]], step: int) -> StepResult:
        if not micro_batches:
            raise ValueError("StepRunner: an optimizer step needs at least one micro-batch")
        sens = Tensor(self.scaler.scale, ms.float32)
        if len(micro_batches) == 1:
            loss, total = self._one_pass(*micro_batches[0], sens)
        else:
            loss, total = self._grad_cache(micro_batches, sens)
        if self.grad_reducer is not None:
            total = ms.mutable(self.grad_reducer(total))
        if self.loss_mean is not None:
            loss = self.loss_mean(loss)
        loss = float(loss.asnumpy())
        # The loss is already the mean over every sample of the step: only the loss scale is divided out.
        divisor = self.scaler.scale
        norm = float(self.grad_norm(total).asnumpy()) / divisor
        lr = self.schedule(step)
        finite = math.isfinite(norm) and math.isfinite(loss)
        if not self.scaler.update(finite):
            if self.scaler.kind != "dynamic" or self.scaler.scale <= 1.0:
                raise NonFiniteLossError(
                    f"non-finite {'loss' if not math.isfinite(loss) else 'gradients'} at optimizer step {step} "
                    f"(loss {loss}, gradient norm {norm}, lr {lr:.3g}, loss scale {self.scaler.scale:g})")
            return StepResult(loss, norm, False, lr, self.scaler.scale)
        multiplier = 1.0 / divisor
        if self.clip_norm:
            multiplier *= min(1.0, self.clip_norm / (norm + 1e-6))
        bc1, bc2 = self.optimizer.bias_corrections(step)
        self.apply_update(total, Tensor(lr, ms.float32), Tensor(bc1, ms.float32), Tensor(bc2, ms.float32),
                          Tensor(multiplier, ms.float32))
        return StepResult(loss, norm, True, lr, self.scaler.scale)


# --------------------------------------------------------------------------- epochs


@dataclass
class FitOptions:
    """What ``fit`` needs beyond the step runner (filled from the run config by the pretrain task)."""

    epochs: int
    batch_size: int  # per shard
    accumulation: int = 1
    max_steps: int = -1
    seed: int = 0
    num_shards: int = 1
    shard_id: int = 0
    is_main: bool = True  # rank 0: writes checkpoints, logs and metrics
    save_every_steps: int = 0  # 0: only at epoch end
    eval_every_epochs: int = 0  # 0: never during training
    eval_every_steps: int = -1
    pipeline: Dict[str, Any] = field(default_factory=dict)  # build_caption_dataset keyword arguments
    # A JSONL file that gets this rank's sample indices of every optimizer step (None: not recorded).
    samples_path: Optional[str] = None


def steps_in_epoch(num_samples: int, options: FitOptions) -> int:
    """Optimizer steps per epoch (micro-batches that do not fill a whole accumulation are dropped)."""
    from ms_clip.data.pipeline import steps_per_epoch

    batches = steps_per_epoch(num_samples, options.batch_size, options.num_shards,
                              options.pipeline.get("drop_remainder", True))
    return batches // options.accumulation


def past_epoch_end(state: TrainState, per_epoch: int, accumulation: int = 1) -> TrainState:
    """``state``, with "all of epoch e consumed" written as the start of epoch e + 1.

    A checkpoint written on an epoch's last step (a step-interval save, a stop request) would otherwise
    hold a data position past the epoch's last batch, from which no batch can be read.
    """
    if state.batch_in_epoch < per_epoch * accumulation:
        return state
    return replace(state, epoch=state.epoch + 1, batch_in_epoch=0)


def fit(runner: StepRunner, records, transform, options: FitOptions, state: TrainState,
        save_checkpoint: Callable[[TrainState], Any], evaluate: Optional[Callable[[], Dict[str, float]]] = None,
        callbacks: Sequence[Any] = ()) -> Tuple[TrainState, Dict[str, Any]]:
    """Train from ``state`` to the end of ``options.epochs`` (or ``max_steps``).

    Returns the final state and a summary (steps, last loss, samples/s without the compile step).

    ``save_checkpoint(state)`` is called at the configured steps and at every epoch end (rank 0 only);
    ``evaluate()`` at the configured intervals on every rank (a sharded evaluation needs them all), its
    metrics going to the callbacks' ``on_eval_end`` (rank 0 only, like ``on_step_end``).

    SIGTERM/SIGINT (handlers installed for the loop only) stop the loop after the current step: the state is
    checkpointed and ``TrainingInterrupted`` raised.
    """
    from ms_clip.data.pipeline import build_caption_dataset
    from ms_clip.train.callbacks import call_all

    per_epoch = steps_in_epoch(len(records), options)
    if per_epoch < 1:
        raise ValueError(f"{records.source}: {len(records)} images give no full optimizer step with batch size "
                         f"{options.batch_size} x {options.num_shards} shard(s) x {options.accumulation} "
                         f"accumulation; lower runner_config.batch_size")
    state = past_epoch_end(state, per_epoch, options.accumulation)  # (checkpoints of older versions)
    total = per_epoch * options.epochs
    if options.max_steps > 0:
        total = min(total, options.max_steps)
    samples_per_step = options.batch_size * options.accumulation * options.num_shards
    info: Dict[str, Any] = {"step": state.step, "epoch": state.epoch, "epochs": options.epochs, "total_steps": total,
                            "steps_per_epoch": per_epoch, "num_samples": len(records)}
    call_all(callbacks, "on_train_begin", info)
    last_saved = state.step
    rate, timed_steps, timed_seconds = 0.0, 0, 0.0
    input_wait, input_wall = 0.0, 0.0  # is training input-bound? (time inside the iterator's next())

    def run_eval() -> None:
        if evaluate is None:
            return
        runner.model.set_train(False)  # no dropout, BatchNorm on running statistics
        metrics = evaluate()
        runner.model.set_train(True)
        if options.is_main:
            call_all(callbacks, "on_eval_end", {"step": state.step, "epoch": state.epoch, **metrics})

    samples_file = None
    if options.samples_path:
        os.makedirs(os.path.dirname(os.path.abspath(options.samples_path)), exist_ok=True)
        samples_file = open(options.samples_path, "a" if state.step else "w", encoding="utf-8")

    signals = _StopSignals().install()
    stopped = False
    # Training mode for the steps: dropout acts (BERT/RoBERTa towers: 0.1, as their references train) and ResNet
    # BatchNorm uses batch statistics. Evaluation switches back to inference mode (run_eval, and at the end).
    runner.model.set_train(True)
    try:
        if state.step == 0:
            run_eval()  # the "before" point of the recall curve
        done = state.step >= total
        while state.epoch < options.epochs and not done and not stopped:
            dataset, source = build_caption_dataset(
                records, options.batch_size, transform, seed=options.seed, epoch=state.epoch,
                start_batch=state.batch_in_epoch, num_shards=options.num_shards, shard_id=options.shard_id,
                with_index=True, **options.pipeline)
            pending: List[Tuple[Tensor, Tensor]] = []
            indices: List[np.ndarray] = []
            tick = time.perf_counter()
            meter = InputWaitMeter(dataset.create_tuple_iterator(num_epochs=1))
            signals.reassert()
            for image, text, index in meter:
                pending.append((image, text))
                indices.append(index.asnumpy())
                if len(pending) < options.accumulation:
                    continue
                result = runner(pending, state.step)
                signals.reassert()  # (cheap: one system call per signal)
                if samples_file is not None:
                    samples_file.write(json.dumps({"epoch": state.epoch, "step": state.step + 1,
                                                   "rank": options.shard_id,
                                                   "indices": np.concatenate(indices).tolist()}) + "\n")
                    samples_file.flush()
                pending, indices = [], []
                state.batch_in_epoch += options.accumulation
                state.samples_seen += samples_per_step
                state.loss_scale, state.good_steps = runner.scaler.scale, runner.scaler.good_steps
                if result.applied:
                    state.step += 1
                else:
                    state.skipped_steps += 1
                    logger.warning("step skipped: gradients overflowed at loss scale; lowered to %g",
                                   runner.scaler.scale)
                now = time.perf_counter()
                if state.step > 1 or state.skipped_steps:  # the first step includes graph compilation
                    timed_steps += 1
                    timed_seconds += now - tick
                rate = samples_per_step / max(now - tick, 1e-9)
                tick = now
                info = {"step": state.step, "epoch": state.epoch, "epochs": options.epochs, "total_steps": total,
                        "loss": result.loss, "lr": result.lr, "grad_norm": result.grad_norm,
                        "logit_scale": float(np.exp(runner.model.logit_scale.asnumpy())),
                        "loss_scale": result.loss_scale, "applied": result.applied, "samples_per_second": rate}
                if options.is_main:
                    call_all(callbacks, "on_step_end", info)
                if result.applied and options.is_main and options.save_every_steps > 0 and \
                        state.step % options.save_every_steps == 0:
                    save_checkpoint(past_epoch_end(state, per_epoch, options.accumulation))
                    last_saved = state.step
                if result.applied and options.eval_every_steps > 0 and state.step % options.eval_every_steps == 0:
                    run_eval()
                if state.step >= total:
                    done = True
                    break
                # Every rank must leave at the same step (a signal may reach the ranks at different steps).
                if runner.any_rank(signals.signum is not None):
                    stopped = True
                    break
            input_wait, input_wall = input_wait + meter.wait_seconds, input_wall + meter.wall_seconds
            bad = len(source.bad.files)
            if bad:
                logger.warning("epoch %d: %d bad images were skipped (replaced by the next good image)",
                               state.epoch + 1, bad)
            if stopped:
                break
            if not done or state.batch_in_epoch >= per_epoch * options.accumulation:
                state.epoch += 1
                state.batch_in_epoch = 0
                if options.is_main and state.step != last_saved:
                    save_checkpoint(state)
                    last_saved = state.step
                if options.eval_every_epochs > 0 and state.epoch % options.eval_every_epochs == 0:
                    run_eval()
            if not done and runner.any_rank(signals.signum is not None):
                stopped = True
        if options.is_main and state.step != last_saved:
            # max_steps ended the run mid-epoch, or a signal stopped it
            save_checkpoint(past_epoch_end(state, per_epoch, options.accumulation))
        info = {**info, "step": state.step, "epoch": state.epoch,
                "samples_per_second": samples_per_step * timed_steps / timed_seconds if timed_seconds else rate,
                "input_wait_share": input_wait / input_wall if input_wall else 0.0}
    finally:
        runner.model.set_train(False)
        signals.restore()
        if samples_file is not None:
            samples_file.close()
    logger.info("training loop: %.1f%% of %.1f s spent waiting for input data", 100 * info["input_wait_share"],
                input_wall)
    call_all(callbacks, "on_train_end", info)
    if stopped:
        raise TrainingInterrupted(signals.signum if signals.signum is not None else signal.SIGTERM, state.step)
    summary = {k: info.get(k) for k in ("step", "epoch", "total_steps", "loss", "lr", "logit_scale",
                                        "samples_per_second", "input_wait_share")}
    summary["skipped_steps"] = state.skipped_steps
    return state, summary
