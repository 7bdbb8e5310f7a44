"""CLIP's symmetric contrastive loss (open_clip ``ClipLoss``), optionally over the global batch.

    loss = (CE(logits_per_image, labels) + CE(logits_per_text, labels)) / 2

On one device ``labels = arange(B)``. With ``world_size > 1`` each rank all-gathers the image and
text features of every rank and scores its *local* rows against *all* columns (open_clip's
``local_loss=True`` with ``gather_with_grad=True``, the flags most OpenCLIP models were trained with): labels are
``arange(B) + B * rank``. The gather back-propagates the sum over ranks (``GatherWithGrad``), so
every rank's features receive the gradients of every rank's loss; with the gradient mean over
ranks the update equals one device computing the loss over the whole global batch.
"""
from __future__ import annotations

from typing import Optional, Tuple

import mindspore as ms
from mindspore import Tensor, nn, ops

__all__ = ["ClipLoss", "CLIPWithLoss", "GatherWithGrad"]


class GatherWithGrad(nn.Cell):
    """All-gather along axis 0 whose gradient is the sum over ranks of the gradient of this rank's rows.

    That is AllGather's own gradient (a sum ReduceScatter); written as AllReduce + slice because
    MindSpore has no ReduceScatter kernel on CPU.
    """

    def __init__(self, rank: int):
        super().__init__()
        self.rank = rank
        self.gather = ops.AllGather()
        self.all_reduce = ops.AllReduce(ops.ReduceOp.SUM)

    def construct(self, x):
        return self.gather(x)

    def bprop(self, x, out, dout):
        batch = x.shape[0]
        total = self.all_reduce(dout)
        return (total[self.rank * batch:(self.rank + 1) * batch],)


class ClipLoss(nn.Cell):
    """``construct(image_embeds, text_embeds, logit_scale) -> scalar loss`` (float32).

    ``image_embeds``/``text_embeds``: L2-normalised [B, D]; ``logit_scale``: exp of the learned
    temperature (what ``CLIPModel`` returns). ``world_size``/``rank`` select the global-batch
    loss; they need ``mindspore.communication.init()`` to have run.
    """

    def __init__(self, world_size: int = 1, rank: int = 0):
        super().__init__()
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"ClipLoss: need world_size >= 1 and 0 <= rank < world_size, got {world_size}, {rank}")
        self.world_size = world_size
        self.rank = rank
        self.gather = GatherWithGrad(rank) if world_size > 1 else None
        self.cross_entropy = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")

    def logits(self, image_embeds: Tensor, text_embeds: Tensor, logit_scale: Tensor) -> Tuple[Tensor, Tensor]:
        """(logits_per_image [B, N], logits_per_text [B, N]) with N = B * world_size columns."""
        image_embeds = image_embeds.astype(ms.float32)
        text_embeds = text_embeds.astype(ms.float32)
        if self.world_size > 1:
            all_image = self.gather(image_embeds)  # [world_size * B, D], rank-major
            all_text = self.gather(text_embeds)
            return (logit_scale * ops.matmul(image_embeds, all_text.T),
                    logit_scale * ops.matmul(text_embeds, all_image.T))
        logits_per_image = logit_scale * ops.matmul(image_embeds, text_embeds.T)
        return logits_per_image, logits_per_image.T

    def construct(self, image_embeds: Tensor, text_embeds: Tensor, logit_scale: Tensor) -> Tensor:
        logits_per_image, logits_per_text = self.logits(image_embeds, text_embeds, logit_scale)
        batch = image_embeds.shape[0]
        labels = ops.arange(0, batch, dtype=ms.int32) + batch * self.rank
        return (self.cross_entropy(logits_per_image, labels) + self.cross_entropy(logits_per_text, labels)) / 2


class CLIPWithLoss(nn.Cell):
    """``CLIPModel`` + ``ClipLoss``: ``construct(image, text) -> loss`` (what the train step differentiates).

    It is also MindFormers' training form: MindFormers' ``CLIPModel(image, text)`` returned this loss in
    training mode; with ms_clip, ``CLIPWithLoss(model)(image, text)`` does (the model itself always returns
    embeddings, so the loss never sits inside it). ``loss`` defaults to the single-device ``ClipLoss()``.
    """

    def __init__(self, model: nn.Cell, loss: Optional[ClipLoss] = None):
        super().__init__(auto_prefix=False)  # keep the model's parameter names (visual.*, logit_scale, ...)
        self.model = model
        self.loss = loss if loss is not None else ClipLoss()

    def construct(self, image: Tensor, text: Tensor) -> Tensor:
        image_embeds, text_embeds, logit_scale = self.model(image, text)
        return self.loss(image_embeds, text_embeds, logit_scale)
