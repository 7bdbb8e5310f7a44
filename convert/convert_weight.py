"""Convert a PyTorch CLIP checkpoint to an ms_clip .ckpt (+ its config YAML), MindFormers' command line.

    python convert/convert_weight.py --torch_path ViT-B-32.pt --mindspore_path clip_vit_b_32.ckpt

The way back (--reverse): an ms_clip model (a .ckpt with its YAML, a save_pretrained folder or a name)
to PyTorch: an open_clip state dict (.safetensors/.pt, with an open_clip model config .json beside it),
an open_clip local-dir folder, or a Hugging Face CLIPModel / ChineseCLIPModel / VisionTextDualEncoderModel folder:

    python convert/convert_weight.py --reverse --mindspore_path finetuned.ckpt --torch_path finetuned.safetensors
    python convert/convert_weight.py --reverse --mindspore_path finetuned.ckpt --torch_path finetuned_hf --format hf

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
                        help="source: OpenAI .pt, open_clip .pt/.bin/.safetensors, Chinese-CLIP .pt, HF CLIPModel, "
                             "ChineseCLIPModel or VisionTextDualEncoderModel folder, or .ckpt "
                             "(with --reverse: the output file or folder)")
    parser.add_argument("--mindspore_path", required=True,
                        help="output .ckpt; <stem>.yaml is written beside it (with --reverse: the ms_clip model to "
                             "export: a .ckpt with its YAML, a save_pretrained folder or a model name)")
    parser.add_argument("--reverse", action="store_true", help="ms_clip -> PyTorch (open_clip / HF) instead")
    parser.add_argument("--format", choices=("open_clip", "hf", "state_dict"), default=None,
                        help="with --reverse: open_clip (default for a .safetensors/.pt file; a folder gets "
                             "open_clip's local-dir layout), hf (default for a folder) or state_dict (our names)")
    parser.add_argument("--keep_dtype", action="store_true",
                        help="keep fp16/bf16 source tensors as they are (default: store float32)")
    parser.add_argument("--config", default=None,
                        help="architecture (registry name or YAML) instead of inferring it from tensor shapes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from ms_clip.convert import ConvertError, convert_weight
    from ms_clip.models.config import ConfigError
    from ms_clip.weights import WeightsError

    if args.reverse:
        return _reverse(args, (ConvertError, ConfigError, WeightsError, OSError))
    if args.format:
        parser.error("--format applies to --reverse only")

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


def _reverse(args: argparse.Namespace, user_errors: tuple) -> int:
    from ms_clip.export_torch import export_torch

    try:
        result = export_torch(args.mindspore_path, args.torch_path, fmt=args.format)
    except user_errors as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"exported {args.mindspore_path} ({result.num_tensors} tensors, {result.fmt}"
          f"{', ' + result.hf_class if result.hf_class else ''})")
    if result.dropped:
        print(f"not exported (the target has no place for them): {result.dropped}")
    for path in result.files:
        print(f"wrote {path}")
    print(f"load with: {result.load_hint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
