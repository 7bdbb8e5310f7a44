"""Before/after of ms_clip's main CPU optimisation: the ViT patch embedding.

OpenAI's ``conv1`` is a Conv2d(3 -> W, kernel = stride = patch, no bias). On MindSpore 2.9/2.10 the
CPU Conv2d kernel for this shape is very slow; ms_clip computes the same thing as a reshape and one
2-D MatMul(transpose_b) (``ms_clip.models.vit.PatchEmbedding``). This script times both on the
same input and checks they agree.

    python benchmarks/bench_patch_embedding.py [--batch 32] [--patch 32]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bench_common import timings  # noqa: E402


def _median_time(fn, reps: int = 5) -> float:
    return statistics.median(timings(fn, reps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--patch", type=int, default=32)
    parser.add_argument("--width", type=int, default=768)
    args = parser.parse_args()

    import mindspore as ms
    from mindspore import Tensor, nn

    from ms_clip.models.vit import CLIPVisionConfig, PatchEmbedding

    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    cfg = CLIPVisionConfig(hidden_size=args.width, intermediate_size=4 * args.width, num_attention_heads=12,
                           patch_size=args.patch, image_size=224)
    ours = PatchEmbedding(cfg)
    conv = nn.Conv2d(3, args.width, args.patch, stride=args.patch, pad_mode="valid", has_bias=False)
    conv.weight.set_data(ours.weight.value())
    x = Tensor(np.random.RandomState(0).randn(args.batch, 3, 224, 224).astype(np.float32))

    def conv_tokens():
        y = conv(x)  # [B, W, g, g] -> [B, g*g, W]
        return y.reshape(args.batch, args.width, -1).transpose(0, 2, 1).asnumpy()

    err = float(np.abs(conv_tokens() - ours(x).asnumpy()).max())
    t_conv = _median_time(conv_tokens, reps=3)
    t_ours = _median_time(lambda: ours(x).asnumpy())
    print(f"MindSpore {ms.__version__}, batch {args.batch}, patch {args.patch}, width {args.width}")
    print(f"  nn.Conv2d(k=s={args.patch})          {t_conv * 1e3:9.1f} ms")
    print(f"  reshape + MatMul(transpose_b) (ours) {t_ours * 1e3:9.1f} ms   ({t_conv / t_ours:.0f}x faster)")
    print(f"  max abs difference                   {err:.2e}")


if __name__ == "__main__":
    main()
