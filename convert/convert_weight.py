"""Convert a PyTorch CLIP checkpoint to an ms_clip .ckpt (+ its config YAML), MindFormers' command line.

    python convert/convert_weight.py --torch_path ViT-B-32.pt --mindspore_path clip_vit_b_32.ckpt

Accepts OpenAI .pt archives, open_clip .pt/.bin/.safetensors state dicts, HF CLIPModel folders and
MindFormers .ckpt files; see ms_clip/convert.py. Prints the output's sha256; exits 1 with a one-line
error (no traceback) when the source cannot be converted.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional

try:
    import ms_clip  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--torch_path", required=True,
                        help="source: OpenAI .pt, open_clip .pt/.bin/.safetensors, HF CLIPModel folder or .ckpt")
    parser.add_argument("--mindspore_path", required=True, help="output .ckpt; <stem>.yaml is written beside it")
    parser.add_argument("--keep_dtype", action="store_true",
                        help="keep fp16/bf16 source tensors as they are (default: store float32)")
    parser.add_argument("--config", default=None,
                        help="architecture (registry name or YAML) instead of inferring it from tensor shapes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from ms_clip.convert import ConvertError, convert_weight
    from ms_clip.models.config import ConfigError
    from ms_clip.weights import WeightsError

    try:
        result = convert_weight(args.torch_path, args.mindspore_path, keep_dtype=args.keep_dtype, config=args.config)
    except (ConvertError, ConfigError, WeightsError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"converted {args.torch_path} ({result.source_format}, {result.num_tensors} tensors, "
          f"source dtypes {result.source_dtypes}, saved {result.saved_dtypes})")
    if result.dropped_keys:
        print(f"dropped non-weight entries: {result.dropped_keys}")
    print(f"wrote {result.path}\nwrote {result.config_path}\nsha256 {result.sha256}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
