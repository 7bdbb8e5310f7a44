"""Deployment speed: ms_clip vs its own MindIR export (GraphCell) vs its ONNX export in onnxruntime.

    python benchmarks/bench_deploy.py                       # ViT-B/32, images batch 8, texts batch 32
    python benchmarks/bench_deploy.py --model clip_tiny --image_batch 32 --reps 5

The model is built with random weights (the speed does not depend on them). It is exported once
per format with ms_clip.export.export_mindir (static batch), then each runtime encodes the same
inputs: median of ``--reps`` calls after two warm-up calls, on the same threads (MindSpore's and
onnxruntime's thread pools sized to the machine's cores). The largest absolute difference of each
export's features from ms_clip's is reported with its speed. ``--via_torch`` adds the dynamic-batch
ONNX graphs that ``export_onnx_via_torch`` writes through PyTorch. Table to stdout, JSON to
benchmarks/results/bench_deploy.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bench_common import finish_host_record, host_record, time_call  # noqa: E402
from typing import Callable, Dict

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("GLOG_v", "3")


def _median_seconds(fn: Callable[[], object], reps: int) -> Dict[str, float]:
    first, median = time_call(fn, reps)
    return {"first_s": first, "median_s": median}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="clip_vit_b_32")
    parser.add_argument("--image_batch", type=int, default=8)
    parser.add_argument("--text_batch", type=int, default=32)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--via_torch", action="store_true",
                        help="also the dynamic-batch ONNX of export_onnx_via_torch (needs torch + transformers)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                      "bench_deploy.json"))
    args = parser.parse_args()
    host = host_record(what="bench_deploy.py")  # issue 16: every result carries the host

    import mindspore as ms

    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    import onnxruntime as ort

    from ms_clip import create_model
    from ms_clip.export import DeployedModel, export_mindir
    from ms_clip.features import encode_images, encode_token_ids

    threads = os.cpu_count() or 1
    load_before = os.getloadavg()
    model = create_model(args.model)
    model.set_train(False)
    size = model.config.vision_config.image_size
    length = model.config.text_config.max_position_embeddings
    rng = np.random.default_rng(0)
    pixels = rng.standard_normal((args.image_batch, 3, size, size)).astype(np.float32)
    ids = rng.integers(1, 49406, size=(args.text_batch, length)).astype(np.int32)
    ids[:, 0] = 49406
    ids[np.arange(args.text_batch), rng.integers(5, length, size=args.text_batch)] = 49407

    work = tempfile.mkdtemp(prefix="bench_deploy_")
    export_seconds = {}
    folders = {}
    for fmt in ("MINDIR", "ONNX"):
        for kind, batch in (("image", args.image_batch), ("text", args.text_batch)):
            folder = os.path.join(work, f"{fmt}_{kind}")
            result = export_mindir(model, folder, batch_size=batch, file_format=fmt)
            export_seconds[f"{fmt}_{kind}"] = result.seconds
            folders[(fmt, kind)] = folder
    if args.via_torch:
        from ms_clip.export import export_onnx_via_torch

        folder = os.path.join(work, "ONNX_torch")
        export_seconds["ONNX_via_torch"] = export_onnx_via_torch(model, folder).seconds
        folders[("ONNX_torch", "image")] = folders[("ONNX_torch", "text")] = folder

    runners = {
        "ms_clip": (lambda: encode_images(model, pixels, batch_size=args.image_batch),
                    lambda: encode_token_ids(model, ids, batch_size=args.text_batch)),
    }
    formats = [("MINDIR", "MindIR GraphCell"), ("ONNX", "onnxruntime (ONNX from MindSpore)")]
    if args.via_torch:
        formats.append(("ONNX_torch", "onnxruntime (ONNX via PyTorch, dynamic batch)"))
    for fmt, name in formats:
        if fmt.startswith("ONNX"):
            # onnxruntime's default pool may use every core as well; set it explicitly so both sides match.
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            sessions = {k: ort.InferenceSession(os.path.join(folders[(fmt, k)], f"{k}_encoder.onnx"), options,
                                                providers=["CPUExecutionProvider"]) for k in ("image", "text")}
            runners[name] = (
                lambda s=sessions["image"]: s.run(None, {s.get_inputs()[0].name: pixels})[0],
                lambda s=sessions["text"]: s.run(None, {s.get_inputs()[0].name: ids})[0])
        else:
            image, text = DeployedModel(folders[(fmt, "image")]), DeployedModel(folders[(fmt, "text")])
            runners[name] = (lambda d=image: d.encode_images(pixels), lambda d=text: d.encode_token_ids(ids))

    reference = {"image": np.asarray(runners["ms_clip"][0]()), "text": np.asarray(runners["ms_clip"][1]())}
    rows = []
    for name, (image_fn, text_fn) in runners.items():
        row = {"runtime": name}
        for kind, fn, batch in (("image", image_fn, args.image_batch), ("text", text_fn, args.text_batch)):
            timing = _median_seconds(fn, args.reps)
            row[f"{kind}_per_s"] = batch / timing["median_s"]
            row[f"{kind}_first_s"] = timing["first_s"]
            row[f"{kind}_max_abs_err"] = float(np.abs(np.asarray(fn()) - reference[kind]).max())
        rows.append(row)
        print(f"{name}: {row['image_per_s']:.2f} img/s, {row['text_per_s']:.2f} texts/s "
              f"(max abs vs ms_clip {row['image_max_abs_err']:.2e} / {row['text_max_abs_err']:.2e})", flush=True)

    report = {
        "model": args.model, "image_batch": args.image_batch, "text_batch": args.text_batch, "reps": args.reps,
        "threads": threads, "cpu": platform.processor() or platform.machine(),
        "mindspore": ms.__version__, "onnxruntime": ort.__version__,
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "export_seconds": export_seconds, "rows": rows, "host": finish_host_record(host),
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    print(f"\n| runtime | image encode (batch {args.image_batch}) | text encode (batch {args.text_batch}) | "
          f"max abs vs ms_clip (image / text) |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['runtime']} | {row['image_per_s']:.2f} img/s | {row['text_per_s']:.2f} texts/s | "
              f"{row['image_max_abs_err']:.1e} / {row['text_max_abs_err']:.1e} |")
    print(f"\nload average {load_before[0]:.2f} -> {os.getloadavg()[0]:.2f}; wrote {args.out}")
    shutil.rmtree(work, ignore_errors=True)  # the exported graphs (ViT-B/32: ~0.6 GB per format)
    return 0


if __name__ == "__main__":
    sys.exit(main())
