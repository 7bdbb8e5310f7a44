"""AdamW as open_clip trains CLIP: torch's AdamW update (with bias correction), betas 0.9/0.98,
eps 1e-6, and no weight decay on gains, biases, logit_scale and embeddings.

Why our own Cell rather than ``nn.AdamWeightDecay``: MindSpore's AdamWeightDecay has no bias
correction, so its first steps are smaller than torch's AdamW (by ~30% at step 1 with beta2 0.98)
and a recipe ported from open_clip would not behave the same. The learning rate, the bias
corrections and the gradient multiplier (loss-scale undo x clipping) are inputs of the compiled
update, so schedules and resume live in Python.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np

import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops

__all__ = ["AdamW", "no_weight_decay", "tower_of", "trainable_parameters", "global_norm", "GradNorm"]

# Names of parameters that are embeddings (open_clip's no_weight_decay() set plus the token table).
_EMBEDDING_WORDS = ("embedding", "logit_scale")
_TEXT_TOWER = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text_projection",
               "bert.", "text_model.")  # Chinese-CLIP's and the dual encoder's BERT/RoBERTa towers
# A dual encoder freezes its towers as HF's run_clip.py does (--freeze_vision_model / --freeze_text_model freeze
# vision_model / text_model): the projections on top of them keep training.
_DUAL_ENCODER_PROJECTIONS = ("visual.proj", "text_projection")


def no_weight_decay(name: str, ndim: int) -> bool:
    """Gains, biases and other 1-D tensors, logit_scale and embeddings are not decayed (CLIP paper, open_clip)."""
    return ndim < 2 or any(word in name for word in _EMBEDDING_WORDS)


def tower_of(name: str) -> str:
    """'image', 'text' or 'shared' (logit_scale) for a CLIPModel parameter name."""
    if name.startswith("visual."):
        return "image"
    if name.startswith(_TEXT_TOWER):
        return "text"
    return "shared"


def trainable_parameters(model: nn.Cell, lock_image: bool = False, lock_text: bool = False) -> List[Parameter]:
    """The parameters to update; a locked tower's parameters are marked requires_grad=False and left out."""
    locked = {"image"} if lock_image else set()
    if lock_text:
        locked.add("text")
    from ms_clip.models.dual_encoder import VisionTextDualEncoderModel

    keep = _DUAL_ENCODER_PROJECTIONS if isinstance(model, VisionTextDualEncoderModel) else ()
    out = []
    for param in model.get_parameters():
        if tower_of(param.name) in locked and param.name not in keep:
            param.requires_grad = False
        else:
            out.append(param)
    return out


_adamw_update = ops.MultitypeFuncGraph("adamw_update")


@_adamw_update.register("Function", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor",
                        "Tensor", "Tensor", "Tensor")
def _update(fused, beta1, beta2, eps, lr, decay_factor, grad_multiplier, weight_decay, param, m, v, grad):
    """torch's AdamW step through MindSpore's fused, in-place ``AdamWeightDecay`` kernel.

    torch: ``p <- p (1 - lr wd) - lr (m / bc1) / (sqrt(v / bc2) + eps)``. The fused kernel has no bias
    correction: ``p <- p - lr' (m / (sqrt(v) + eps') + wd' p)``. Both agree with ``lr' = lr sqrt(bc2) / bc1``,
    ``eps' = eps sqrt(bc2)`` and ``wd' = wd bc1 / sqrt(bc2)`` (``decay_factor``); the caller passes ``lr'`` and
    ``eps'``. Why fused: written as a dozen element-wise ops, every intermediate of every parameter was a
    buffer of its own in MindSpore's CPU graph -- the ViT-B/32 train step peaked at 13.4 GB at batch 8 and
    13.7 GB at batch 16 (almost all of it the update: ~16 intermediates x 600 MB of parameters).
    """
    g = grad.astype(ms.float32) * grad_multiplier
    return fused(param, m, v, lr, beta1, beta2, eps, weight_decay * decay_factor, g)


class AdamW(nn.Cell):
    """``construct(grads, lr, bias_correction1, bias_correction2, grad_multiplier)`` updates the parameters.

    State (saved with checkpoints): ``adam_m.<name>`` and ``adam_v.<name>`` per parameter.
    """

    def __init__(self, params: Sequence[Parameter], weight_decay: float, beta1: float = 0.9, beta2: float = 0.98,
                 eps: float = 1e-6):
        super().__init__(auto_prefix=False)
        self.params = ms.ParameterTuple(params)
        self.names = [p.name for p in params]
        self.moment1 = self.params.clone(prefix="adam_m", init="zeros")
        self.moment2 = self.params.clone(prefix="adam_v", init="zeros")
        self.weight_decays = tuple(
            Tensor(0.0 if no_weight_decay(p.name, len(p.shape)) else weight_decay, ms.float32) for p in params)
        self.beta1 = Tensor(beta1, ms.float32)
        self.beta2 = Tensor(beta2, ms.float32)
        self.eps = Tensor(eps, ms.float32)
        self.betas = (beta1, beta2)
        self.hyper_map = ops.HyperMap()
        self.fused = ops.AdamWeightDecay()

    def bias_corrections(self, step: int) -> Tuple[float, float]:
        """(1 - beta1^t, 1 - beta2^t) for the t-th update (t = step + 1)."""
        t = step + 1
        return 1.0 - self.betas[0] ** t, 1.0 - self.betas[1] ** t

    def construct(self, grads, lr, bias_correction1, bias_correction2, grad_multiplier):
        root2 = ops.sqrt(bias_correction2)
        update = ops.partial(_adamw_update, self.fused, self.beta1, self.beta2, self.eps * root2,
                             lr * root2 / bias_correction1, bias_correction1 / root2, grad_multiplier)
        return self.hyper_map(update, self.weight_decays, self.params, self.moment1, self.moment2, grads)

    def state_dict(self) -> Dict[str, np.ndarray]:
        return {p.name: p.asnumpy() for p in list(self.moment1) + list(self.moment2)}


_square_sum = ops.MultitypeFuncGraph("square_sum")


@_square_sum.register("Tensor")
def _square_sum_one(grad):
    g = grad.astype(ms.float32)
    return ops.reduce_sum(g * g)


class GradNorm(nn.Cell):
    """Global L2 norm of a gradient tuple (inf/nan if any entry is non-finite)."""

    def __init__(self):
        super().__init__()
        self.hyper_map = ops.HyperMap()

    def construct(self, grads):
        squares = self.hyper_map(_square_sum, grads)
        total = ops.stack(squares).sum() if len(squares) > 1 else squares[0]
        return ops.sqrt(total)


def global_norm(grads) -> float:
    return float(GradNorm()(grads).asnumpy())
