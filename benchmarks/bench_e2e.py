"""End to end: ms_clip through ``run_mindformer.py`` against open_clip + PyTorch, same files, same weights.

    python benchmarks/bench_e2e.py                          # both benchmarks, full size (long: run on an idle host)
    python benchmarks/bench_e2e.py --only zero_shot --images 10000 --reps 3
    python benchmarks/bench_e2e.py --only finetune --train_images 2000
    python benchmarks/bench_e2e.py --quick                  # clip_tiny-sized, 64 images: checks the script

1. Zero-shot CIFAR-100 (``zero_shot``): ``--images`` images (default 10,000) written as the real CIFAR-100
   python pickles (``cifar-100-python/{meta,test}``), evaluated by
   ``run_mindformer.py --config configs/clip/run_clip_vit_b_32_zero_shot_image_classification_cifar100.yaml
   --run_mode eval`` and by an open_clip model in a PyTorch ``DataLoader`` loop over the same pickle, with the
   same prompt templates (the list the run config resolves to: OpenAI's 18 CIFAR templates, ensembled), the same
   class names and the same preprocessing (PIL bicubic resize of the short side, center crop, CLIP's
   normalisation). The class-embedding cache is off, so both sides encode the 1,800 prompts in every run.
2. Fine-tuning (``finetune``): one epoch on a generated Flickr8k-layout set (``--train_images``, default 2,000;
   70 % train / 10 % dev / 20 % test) through ``run_mindformer.py --config
   configs/clip/run_clip_vit_b_32_pretrain_flickr8k.yaml --run_mode finetune`` against an open_clip training
   loop with the same settings: AdamW (lr, weight decay, betas, eps from the run config; no decay on gains,
   biases, logit_scale and embeddings, the same parameter split), constant learning rate without warmup,
   gradient clipping at the run config's max_grad_norm, the logit-scale clamp, batch 32, drop_remainder, and
   the same samples in the same order with the same caption per image (the order and caption draws are
   computed with ms_clip's pipeline functions ``epoch_order`` / ``pick_caption`` and handed to the PyTorch loop
   as a plan). Afterwards both models' retrieval recall is computed on the held-out test split with the same
   metric function (``ms_clip.eval.retrieval.retrieval_metrics``; ms_clip's side through
   ``run_mindformer.py --run_mode eval`` on its final checkpoint).

Weights: a seeded random-init open_clip ViT-B/32 (``quick_gelu``, OpenAI's architecture) saved as a ``.pt`` and
converted by ``ms_clip.convert.convert_weight``, so both sides start from equal weights. Equal weights must give
equal zero-shot accuracy: the script asserts the top-1/top-5 counts agree up to images whose ranking is a
float-rounding tie (classes whose logits differ by less than ``--tie_logit``), and prints both.

Every figure runs in its own process; wall time and peak RSS (``wait4`` of that process: the largest resident
set of it and its children) are measured from outside; medians over ``--reps`` runs. Results with the host
record: ``benchmarks/results/bench_e2e.json``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bench_common import describe_host, finish_host_record, host_record, run_measured  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CLI = os.path.join(REPO, "run_mindformer.py")
CONFIGS = os.path.join(REPO, "configs", "clip")

# open_clip model configs (CLIP(**cfg)): OpenAI's ViT-B/32, and a clip_tiny-sized model for --quick.
OPEN_CLIP_CFG = {
    "full": dict(embed_dim=512, quick_gelu=True,
                 vision_cfg=dict(image_size=224, layers=12, width=768, patch_size=32, head_width=64),
                 text_cfg=dict(context_length=77, vocab_size=49408, width=512, heads=8, layers=12)),
    "quick": dict(embed_dim=64, quick_gelu=True,
                  vision_cfg=dict(image_size=32, layers=2, width=64, patch_size=8, head_width=16),
                  text_cfg=dict(context_length=77, vocab_size=49408, width=64, heads=4, layers=2)),
}
RUN_YAMLS = {
    "full": {"zero_shot": "run_clip_vit_b_32_zero_shot_image_classification_cifar100.yaml",
             "finetune": "run_clip_vit_b_32_pretrain_flickr8k.yaml"},
    "quick": {"zero_shot": "run_clip_tiny_zero_shot_image_classification_cifar100.yaml",
              "finetune": "run_clip_tiny_pretrain_flickr8k.yaml"},
}
BATCH = 32


# ----------------------------------------------------------------------------- shared set-up (parent process)


def _open_clip_model(cfg: dict):
    import open_clip

    cfg = dict(cfg)
    quick_gelu = cfg.pop("quick_gelu")
    return open_clip.model.CLIP(**cfg, quick_gelu=quick_gelu)


def prepare_weights(work: str, scale: str, seed: int) -> dict:
    """A seeded random-init open_clip model saved as a state-dict .pt, and its ms_clip conversion."""
    import torch

    from ms_clip.convert import config_from_open_clip, convert_weight

    torch.manual_seed(seed)
    model = _open_clip_model(OPEN_CLIP_CFG[scale])
    pt = os.path.join(work, "open_clip_init.pt")
    torch.save(model.state_dict(), pt)
    cfg = dict(OPEN_CLIP_CFG[scale])
    ms_cfg = config_from_open_clip(cfg, quick_gelu=cfg["quick_gelu"])
    result = convert_weight(pt, os.path.join(work, "ms_clip_init.ckpt"), config=ms_cfg)
    return dict(pt=pt, ckpt=result.path, scale=scale)


def _cli(config: str, *args: str) -> list:
    return [sys.executable, CLI, "--config", config, *args]


def _env(threads: int, home: str) -> dict:
    # MS_CLIP_HOME: a fresh folder per run, so no run reuses another's class-embedding cache or downloads.
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "GLOG_v": "3", "MS_CLIP_HOME": home}


def _last_json(stdout: str) -> dict:
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON result line in the output")


def _run(cmd: list, env: dict, what: str, timeout: float) -> tuple:
    rc, out, err, wall, peak = run_measured(cmd, env=env, cwd=REPO, timeout=timeout)
    if rc != 0:
        sys.exit(f"{what} failed (exit {rc}):\n{out[-2000:]}\n{err[-4000:]}")
    return out, err, wall, peak


def _median_runs(runs: list, keys: tuple) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in keys}


# ----------------------------------------------------------------------------- zero-shot CIFAR-100


def write_cifar(work: str, n: int, seed: int) -> str:
    """``n`` test images as the real CIFAR-100 python pickles, with the real fine and coarse label names.

    The pixels are random: with random-init weights accuracy is at chance anyway; what matters is that both
    sides classify the same bytes identically."""
    from ms_clip.data.classification import write_cifar100
    from ms_clip.eval.templates import CIFAR100_CLASSNAMES

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    fine = rng.integers(0, 100, n)
    fine_names = [c.replace(" ", "_") for c in CIFAR100_CLASSNAMES]  # the pickle's spelling
    coarse_names = [f"superclass_{i}" for i in range(20)]
    return write_cifar100(work, images, fine.tolist(), (fine % 20).tolist(), fine_names, coarse_names, "test")


def zero_shot_plan(yaml_path: str, cifar_dir: str) -> dict:
    """The templates and class names ms_clip's evaluation uses with this run config (resolved by its code)."""
    from ms_clip.data.classification import read_classnames
    from ms_clip.run_config import load_run_config
    from ms_clip.tasks.zero_shot import resolve_eval_templates

    cfg = load_run_config(yaml_path, overrides={"eval_dataset.data_loader.dataset_dir": cifar_dir})
    return dict(templates=list(resolve_eval_templates(cfg)), classnames=read_classnames(cifar_dir),
                batch_size=int(cfg.eval_dataset.batch_size), topk=[1, 5])


def torch_zero_shot(args: argparse.Namespace) -> dict:
    """Worker: open_clip + DataLoader over the CIFAR pickle; OpenAI's template ensembling."""
    import open_clip
    import torch
    from PIL import Image

    t_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    with open(args.plan, encoding="utf-8") as f:
        plan = json.load(f)
    model = _open_clip_model(OPEN_CLIP_CFG[plan["scale"]])
    model.load_state_dict(torch.load(plan["pt"], map_location="cpu"))
    model.eval()
    preprocess = open_clip.transform.image_transform(model.visual.image_size[0], is_train=False)
    with open(os.path.join(plan["cifar_dir"], "test"), "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    data = np.asarray(batch[b"data"]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    labels = torch.tensor(batch[b"fine_labels"])

    class Cifar(torch.utils.data.Dataset):
        def __len__(self):
            return len(data)

        def __getitem__(self, i):
            return preprocess(Image.fromarray(data[i])), int(labels[i])

    loader = torch.utils.data.DataLoader(Cifar(), batch_size=plan["batch_size"], shuffle=False,
                                         num_workers=args.loader_workers)
    t0 = time.perf_counter()
    with torch.inference_mode():
        weights = []
        for name in plan["classnames"]:
            tokens = open_clip.tokenizer.tokenize([t.format(name) for t in plan["templates"]])
            emb = model.encode_text(tokens)
            emb = emb / emb.norm(dim=-1, keepdim=True)
            emb = emb.mean(dim=0)
            weights.append(emb / emb.norm())
        classifier = torch.stack(weights, dim=1)
        t_text = time.perf_counter() - t0
        logits = []
        for images, _ in loader:
            feats = model.encode_image(images)
            logits.append(100.0 * (feats / feats.norm(dim=-1, keepdim=True)) @ classifier)
        logits = torch.cat(logits).numpy()
    loop_s = time.perf_counter() - t0
    order = np.argsort(-logits, axis=1, kind="stable")
    lab = labels.numpy()
    hits = {k: (order[:, :k] == lab[:, None]).any(axis=1) for k in plan["topk"]}
    correct = {k: int(h.sum()) for k, h in hits.items()}
    per_class = {k: np.bincount(lab[h], minlength=len(plan["classnames"])).tolist() for k, h in hits.items()}
    sorted_logits = -np.sort(-logits, axis=1)
    np.save(args.out, sorted_logits[:, :7])  # for the tie analysis in the parent
    return dict(num_samples=int(len(lab)), correct=correct, correct_per_class=per_class, text_s=t_text, loop_s=loop_s,
                process_s=time.perf_counter() - t_start)


def _per_class_counts(csv_path: str) -> dict:
    """Correct images per class from ms_clip's per-class CSV (accuracy x samples, rounded)."""
    import csv

    with open(csv_path, encoding="utf-8", newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["class_index"]))
    return {key: [round(float(r[key]) * int(r["num_samples"])) if r[key] not in ("", "None") else 0 for r in rows]
            for key in ("top1", "top5")}


def near_ties(sorted_logits: np.ndarray, k: int, tol: float) -> int:
    """Images whose k-th and (k+1)-th best class logits differ by less than ``tol``: their top-k membership
    can flip between two correct float32 implementations."""
    return int((sorted_logits[:, k - 1] - sorted_logits[:, k] < tol).sum())


def run_zero_shot(args: argparse.Namespace, work: str, weights: dict, scale: str) -> dict:
    yaml_path = os.path.join(CONFIGS, RUN_YAMLS[scale]["zero_shot"])
    cifar_dir = write_cifar(os.path.join(work, "cifar"), args.images, args.seed)
    plan = dict(zero_shot_plan(yaml_path, cifar_dir), pt=weights["pt"], scale=scale, cifar_dir=cifar_dir)
    plan_path = os.path.join(work, "zero_shot_plan.json")
    with open(plan_path, "w", encoding="utf-8") as f:
        json.dump(plan, f)
    print(f"zero-shot: {args.images} CIFAR-100 images, {len(plan['templates'])} templates x "
          f"{len(plan['classnames'])} classes", file=sys.stderr)
    ms_runs, pt_runs = [], []
    for rep in range(args.reps):
        out_dir = os.path.join(work, f"zs_ms_{rep}")
        cmd = _cli(yaml_path, "--run_mode", "eval", "--eval_dataset_dir", cifar_dir, "--load_checkpoint",
                   weights["ckpt"], "--output_dir", out_dir, "--options", "zero_shot.cache_class_embeddings=False")
        out, _, wall, peak = _run(cmd, _env(args.threads, os.path.join(work, f"home_zs_{rep}")),
                                  "run_mindformer.py --run_mode eval", args.timeout)
        with open(os.path.join(out_dir, "zero_shot_metrics.json"), encoding="utf-8") as f:
            metrics = json.load(f)
        n = int(metrics["num_samples"])
        ms_runs.append(dict(wall_s=wall, peak_rss_mb=peak, images_per_s=n / wall, num_samples=n,
                            top1=float(metrics["top1"]), top5=float(metrics["top5"]),
                            correct_per_class=_per_class_counts(os.path.join(out_dir,
                                                                             "zero_shot_per_class_accuracy.csv"))))
        logits_path = os.path.join(work, f"zs_torch_{rep}.npy")
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "zero_shot", "--plan", plan_path,
               "--out", logits_path, "--threads", str(args.threads), "--loader_workers", str(args.loader_workers)]
        out, _, wall, peak = _run(cmd, _env(args.threads, os.path.join(work, "home_torch")), "open_clip zero-shot",
                                  args.timeout)
        r = _last_json(out)
        n = r["num_samples"]
        pt_runs.append(dict(wall_s=wall, peak_rss_mb=peak, images_per_s=n / wall, num_samples=n,
                            top1=r["correct"]["1"] / n, top5=r["correct"]["5"] / n, loop_s=r["loop_s"],
                            correct_per_class={f"top{k}": v for k, v in r["correct_per_class"].items()}))
        print(f"  rep {rep}: ms_clip {ms_runs[-1]['wall_s']:.1f} s, open_clip {wall:.1f} s", file=sys.stderr)
    ms_med = _median_runs(ms_runs, ("wall_s", "peak_rss_mb", "images_per_s"))
    pt_med = _median_runs(pt_runs, ("wall_s", "peak_rss_mb", "images_per_s"))
    # Accuracy: identical across reps on each side (deterministic), and equal between the sides up to ties.
    sorted_logits = np.load(logits_path)
    n = pt_runs[-1]["num_samples"]
    agreement = {}
    for k in (1, 5):
        key = f"top{k}"
        ms_count = round(ms_runs[-1][key] * n)
        pt_count = round(pt_runs[-1][key] * n)
        ties = near_ties(sorted_logits, k, args.tie_logit)
        # Per class, not only in total: every image whose top-k membership flips moves one class's count by 1.
        per_class_gap = int(np.abs(np.array(ms_runs[-1]["correct_per_class"][key])
                                   - np.array(pt_runs[-1]["correct_per_class"][key])).sum())
        agreement[key] = dict(ms_clip_correct=ms_count, pytorch_correct=pt_count, near_ties=ties,
                              per_class_count_gap=per_class_gap,
                              agree=abs(ms_count - pt_count) <= ties and per_class_gap <= ties)
    result = dict(images=n, templates=len(plan["templates"]), classes=len(plan["classnames"]),
                  ms_clip=dict(ms_med, top1=ms_runs[-1]["top1"], top5=ms_runs[-1]["top5"], runs=ms_runs),
                  pytorch=dict(pt_med, top1=pt_runs[-1]["top1"], top5=pt_runs[-1]["top5"], runs=pt_runs),
                  speedup=pt_med["wall_s"] / ms_med["wall_s"], accuracy_agreement=agreement,
                  tie_logit=args.tie_logit)
    print(f"zero-shot CIFAR-100 ({n} images): ms_clip top-1 {100 * result['ms_clip']['top1']:.2f} % / top-5 "
          f"{100 * result['ms_clip']['top5']:.2f} %; open_clip top-1 {100 * result['pytorch']['top1']:.2f} % / "
          f"top-5 {100 * result['pytorch']['top5']:.2f} %  (counts {agreement['top1']['ms_clip_correct']} vs "
          f"{agreement['top1']['pytorch_correct']}, {agreement['top1']['near_ties']} near-ties at top-1)")
    for k, a in agreement.items():
        assert a["agree"], (f"zero-shot {k}: ms_clip {a['ms_clip_correct']} vs open_clip {a['pytorch_correct']} "
                            f"correct (per-class gap {a['per_class_count_gap']}) differ by more than the "
                            f"{a['near_ties']} near-tie images: equal weights must give equal accuracy")
    return result


# ----------------------------------------------------------------------------- fine-tuning epoch


def finetune_plan(yaml_path: str, flickr: str, weights: dict, scale: str) -> dict:
    """What the PyTorch loop must reproduce, read from ms_clip's run config and computed by its pipeline
    functions: the epoch's sample order and caption draws, the optimizer settings and the no-decay set."""
    from ms_clip.data.captions import flatten_captions, read_flickr8k
    from ms_clip.data.pipeline import epoch_order, pick_caption, shard_order
    from ms_clip.run_config import load_run_config
    from ms_clip.torchfile import read_torch_checkpoint
    from ms_clip.train.optim import no_weight_decay

    cfg = load_run_config(yaml_path, overrides={"train_dataset.data_loader.dataset_dir": flickr})
    section = cfg.train_dataset
    seed = int(section.seed if section.seed is not None else cfg.seed)
    batch = int(cfg.runner_config.batch_size)
    records = read_flickr8k(flickr, "train")
    order = shard_order(epoch_order(len(records), seed, 0, True), batch, 1, 0, True)
    samples = [(records.image_paths[i], records.captions[i][pick_caption(len(records.captions[i]), seed, 0, int(i))])
               for i in order]
    test = read_flickr8k(flickr, "test")
    texts, owners = flatten_captions(test)
    tensors = read_torch_checkpoint(weights["pt"])[0]
    no_decay = sorted(name for name, arr in tensors.items() if no_weight_decay(name, np.ndim(arr)))
    opt = cfg.optimizer
    wrapper = cfg.runner_wrapper
    return dict(samples=samples, batch_size=batch, lr=float(opt.learning_rate), weight_decay=float(opt.weight_decay),
                betas=[float(opt.beta1), float(opt.beta2)], eps=float(opt.eps), no_decay=no_decay,
                max_grad_norm=float(wrapper.max_grad_norm) if wrapper.use_clip_grad else None,
                test_images=list(test.image_paths), test_texts=list(texts), test_owners=[int(o) for o in owners],
                pt=weights["pt"], scale=scale)


def torch_finetune(args: argparse.Namespace) -> dict:
    """Worker: open_clip training loop for one epoch following the plan, then test-split features."""
    import open_clip
    import torch
    from PIL import Image

    t_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with open(args.plan, encoding="utf-8") as f:
        plan = json.load(f)
    model = _open_clip_model(OPEN_CLIP_CFG[plan["scale"]])
    model.load_state_dict(torch.load(plan["pt"], map_location="cpu"))
    size = model.visual.image_size[0]
    preprocess = open_clip.transform.image_transform(size, is_train=False)  # resize cubic + center crop + normalise
    no_decay = set(plan["no_decay"])
    named = list(model.named_parameters())
    groups = [{"params": [p for n, p in named if n not in no_decay], "weight_decay": plan["weight_decay"]},
              {"params": [p for n, p in named if n in no_decay], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=plan["lr"], betas=tuple(plan["betas"]), eps=plan["eps"])
    loss_fn = open_clip.loss.ClipLoss()
    samples = plan["samples"]

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return len(samples)

        def __getitem__(self, i):
            path, caption = samples[i]
            with Image.open(path) as img:
                pixels = preprocess(img.convert("RGB"))
            return pixels, open_clip.tokenizer.tokenize([caption])[0]

    # The plan is already in epoch order: no shuffling here; drop_remainder like the ms_clip run.
    loader = torch.utils.data.DataLoader(Pairs(), batch_size=plan["batch_size"], shuffle=False, drop_last=True,
                                         num_workers=args.loader_workers)
    model.train()
    t0 = time.perf_counter()
    steps, losses = 0, []
    for images, texts in loader:
        image_features, text_features, logit_scale = model(images, texts)[:3]
        loss = loss_fn(image_features, text_features, logit_scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if plan["max_grad_norm"]:
            torch.nn.utils.clip_grad_norm_(model.parameters(), plan["max_grad_norm"])
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        steps += 1
        losses.append(float(loss))
    train_s = time.perf_counter() - t0
    # Held-out features, written for the parent's metric (the same function scores both frameworks).
    model.eval()
    with torch.inference_mode():
        feats = []
        for i in range(0, len(plan["test_images"]), 64):
            batch = []
            for path in plan["test_images"][i:i + 64]:
                with Image.open(path) as img:
                    batch.append(preprocess(img.convert("RGB")))
            feats.append(model.encode_image(torch.stack(batch), normalize=True))
        image_features = torch.cat(feats).numpy()
        text_features = torch.cat([model.encode_text(open_clip.tokenizer.tokenize(plan["test_texts"][i:i + 256]),
                                                     normalize=True)
                                   for i in range(0, len(plan["test_texts"]), 256)]).numpy()
    np.savez(args.out, image=image_features, text=text_features)
    return dict(steps=steps, samples=steps * plan["batch_size"], train_s=train_s,
                samples_per_second=steps * plan["batch_size"] / train_s, last_loss=losses[-1] if losses else None,
                first_loss=losses[0] if losses else None,
                process_s=time.perf_counter() - t_start)


def finetune_yaml(work: str, scale: str) -> str:
    """The shipped fine-tuning run YAML with the benchmark's settings, written under ``work``: one epoch, a
    constant learning rate without warmup (open_clip's loop gets the same), no evaluation during training; for
    --quick, clip_tiny's YAML with its RandomResizedCrop replaced by the ViT-B/32 YAML's deterministic
    resize + center crop (so both loops see the same pixels)."""
    import yaml

    with open(os.path.join(CONFIGS, RUN_YAMLS[scale]["finetune"]), encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    raw["lr_schedule"] = {"type": "constant", "warmup_steps": 0, "warmup_ratio": 0.0}
    raw["do_eval"] = False
    raw["runner_config"]["epochs"] = 1
    size = OPEN_CLIP_CFG[scale]["vision_cfg"]["image_size"]
    transforms = [{"type": "Resize", "size": size, "interpolation": "cubic"}, {"type": "CenterCrop", "size": size},
                  {"type": "ToTensor"},
                  {"type": "Normalize", "mean": [0.48145466, 0.4578275, 0.40821073],
                   "std": [0.26862954, 0.26130258, 0.27577711], "is_hwc": False}]
    raw["train_dataset"]["transforms"] = transforms
    if (raw.get("train_dataset_task") or {}).get("dataset_config"):
        raw["train_dataset_task"]["dataset_config"] = raw["train_dataset"]  # the YAML anchor, written out
    path = os.path.join(work, "finetune_run.yaml")
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(raw, f, sort_keys=False)
    return path


def _first_logged_loss(metrics_jsonl: str):
    """The loss ms_clip's training loop logged for step 1 (output_dir/metrics.jsonl), or None."""
    try:
        with open(metrics_jsonl, encoding="utf-8") as f:
            for line in f:
                record = json.loads(line)
                if record.get("type") == "train" and record.get("step") == 1:
                    return float(record["loss"])
    except (OSError, ValueError):
        pass
    return None


def run_finetune(args: argparse.Namespace, work: str, weights: dict, scale: str) -> dict:
    from ms_clip.demo.synthetic import write_flickr8k
    from ms_clip.eval.retrieval import retrieval_metrics

    yaml_path = finetune_yaml(work, scale)
    image_size = OPEN_CLIP_CFG[scale]["vision_cfg"]["image_size"]
    flickr = write_flickr8k(os.path.join(work, "flickr"), n_images=args.train_images, seed=args.seed,
                            image_size=max(64, image_size))
    plan = finetune_plan(yaml_path, flickr, weights, scale)
    plan_path = os.path.join(work, "finetune_plan.json")
    with open(plan_path, "w", encoding="utf-8") as f:
        json.dump(plan, f)
    steps = len(plan["samples"]) // plan["batch_size"]
    print(f"fine-tuning: {args.train_images} images ({len(plan['samples'])} train samples used, {steps} steps of "
          f"{plan['batch_size']}; {len(plan['test_images'])} held-out test images, {len(plan['test_texts'])} "
          f"captions)", file=sys.stderr)
    ms_runs, pt_runs = [], []
    for rep in range(args.reps):
        out_dir = os.path.join(work, f"ft_ms_{rep}")
        home = os.path.join(work, f"home_ft_{rep}")
        cmd = _cli(yaml_path, "--run_mode", "finetune", "--train_dataset_dir", flickr, "--load_checkpoint",
                   weights["ckpt"], "--output_dir", out_dir)
        out, err, wall, peak = _run(cmd, _env(args.threads, home), "run_mindformer.py --run_mode finetune",
                                    args.timeout)
        summary = _last_json(out)
        ms_runs.append(dict(wall_s=wall, peak_rss_mb=peak, samples=int(summary["step"]) * plan["batch_size"],
                            steps=int(summary["step"]), loop_samples_per_second=summary.get("samples_per_second"),
                            last_loss=summary.get("loss"), checkpoint=summary.get("checkpoint")))
        ms_runs[-1]["samples_per_s"] = ms_runs[-1]["samples"] / wall
        ms_runs[-1]["first_loss"] = _first_logged_loss(os.path.join(out_dir, "metrics.jsonl"))
        out_path = os.path.join(work, f"ft_torch_{rep}.npz")
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "finetune", "--plan", plan_path, "--out",
               out_path, "--threads", str(args.threads), "--loader_workers", str(args.loader_workers)]
        out, _, wall, peak = _run(cmd, _env(args.threads, home), "open_clip fine-tuning", args.timeout)
        r = _last_json(out)
        pt_runs.append(dict(wall_s=wall, peak_rss_mb=peak, samples=r["samples"], steps=r["steps"],
                            samples_per_s=r["samples"] / wall, loop_samples_per_second=r["samples_per_second"],
                            last_loss=r["last_loss"], first_loss=r["first_loss"]))
        print(f"  rep {rep}: ms_clip {ms_runs[-1]['wall_s']:.1f} s, open_clip {wall:.1f} s", file=sys.stderr)
    assert ms_runs[-1]["steps"] == pt_runs[-1]["steps"], (ms_runs[-1]["steps"], pt_runs[-1]["steps"])
    # Same weights, same first batch (images, captions, preprocessing) and the same loss: the first step's loss
    # must agree to float32 rounding, else the two loops are not training on the same thing.
    first_ms, first_pt = ms_runs[-1]["first_loss"], pt_runs[-1]["first_loss"]
    first_gap = abs(first_ms - first_pt) / abs(first_pt) if first_ms is not None else None
    print(f"first-step loss: ms_clip {first_ms} vs open_clip {first_pt} (relative gap {first_gap})", file=sys.stderr)
    assert first_gap is None or first_gap <= args.loss_rtol, (
        f"first-step loss ms_clip {first_ms} vs open_clip {first_pt}: relative gap {first_gap:.2e} > "
        f"{args.loss_rtol:g}; the two loops do not see the same first batch")
    # Held-out recall after the epoch: ms_clip through its own CLI eval on the final checkpoint, PyTorch from the
    # worker's features; both scored by ms_clip.eval.retrieval.retrieval_metrics.
    cmd = _cli(yaml_path, "--run_mode", "eval", "--eval_dataset_dir", flickr, "--load_checkpoint",
               ms_runs[-1]["checkpoint"], "--output_dir", os.path.join(work, "ft_ms_eval"))
    out, _, eval_wall, _ = _run(cmd, _env(args.threads, os.path.join(work, "home_eval")), "run_mindformer.py eval",
                                args.timeout)
    ms_recall = _last_json(out)
    feats = np.load(out_path)
    pt_recall = retrieval_metrics(feats["image"], feats["text"], plan["test_owners"], (1, 5, 10))
    keys = [k for k in ms_recall if k in pt_recall and isinstance(pt_recall[k], float)]
    ms_med = _median_runs(ms_runs, ("wall_s", "peak_rss_mb", "samples_per_s"))
    pt_med = _median_runs(pt_runs, ("wall_s", "peak_rss_mb", "samples_per_s"))
    result = dict(train_images=len(plan["samples"]), steps=ms_runs[-1]["steps"], batch_size=plan["batch_size"],
                  test_images=len(plan["test_images"]), test_captions=len(plan["test_texts"]),
                  ms_clip=dict(ms_med, recall={k: ms_recall[k] for k in keys}, runs=ms_runs, eval_wall_s=eval_wall),
                  pytorch=dict(pt_med, recall={k: pt_recall[k] for k in keys}, runs=pt_runs),
                  speedup=pt_med["wall_s"] / ms_med["wall_s"], first_loss_relative_gap=first_gap,
                  settings={k: plan[k] for k in ("lr", "weight_decay", "betas", "eps", "max_grad_norm")})
    print(f"fine-tuning epoch ({result['steps']} steps x {plan['batch_size']}): ms_clip {ms_med['wall_s']:.1f} s "
          f"({ms_med['samples_per_s']:.2f} samples/s), open_clip {pt_med['wall_s']:.1f} s "
          f"({pt_med['samples_per_s']:.2f} samples/s); held-out recall:")
    for k in keys:
        print(f"    {k:28s} ms_clip {ms_recall[k]:.4f}   open_clip {pt_recall[k]:.4f}")
    return result


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="zero_shot,finetune", help="zero_shot, finetune or both")
    parser.add_argument("--images", type=int, default=10000, help="CIFAR-100 test images")
    parser.add_argument("--train_images", type=int, default=2000, help="Flickr8k-layout images (70 %% train)")
    parser.add_argument("--reps", type=int, default=3, help="runs per framework and benchmark (median)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--loader_workers", type=int, default=2, help="PyTorch DataLoader worker processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tie_logit", type=float, default=0.05,
                        help="logit gap (x100 cosine) below which a ranking counts as a float-rounding tie")
    parser.add_argument("--loss_rtol", type=float, default=1e-4,
                        help="largest relative gap allowed between the two loops' first-step losses")
    parser.add_argument("--quick", action="store_true", help="clip_tiny-sized models, 64 images, 1 rep")
    parser.add_argument("--no-gemm", action="store_true", help="skip the host GEMM rates")
    parser.add_argument("--timeout", type=float, default=4 * 3600.0, help="seconds per process")
    parser.add_argument("--work", help="keep the generated data and outputs here (default: a temp dir, removed)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--worker", choices=("zero_shot", "finetune"), help=argparse.SUPPRESS)
    parser.add_argument("--plan", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    if args.worker:
        fn = torch_zero_shot if args.worker == "zero_shot" else torch_finetune
        print(json.dumps(fn(args)), flush=True)
        return
    if args.quick:
        args.images, args.train_images, args.reps = min(args.images, 64), min(args.train_images, 64), 1
    benches = [b for b in args.only.split(",") if b]
    if set(benches) - {"zero_shot", "finetune"}:
        parser.error(f"--only: expected zero_shot and/or finetune, got {benches}")
    scale = "quick" if args.quick else "full"
    host = host_record(args.threads, gemm=not args.no_gemm, gemm_reps=1 if args.quick else 7, what="bench_e2e.py")
    work = args.work or tempfile.mkdtemp(prefix="ms_clip_e2e_")
    os.makedirs(work, exist_ok=True)
    try:
        weights = prepare_weights(work, scale, args.seed)
        results = {}
        if "zero_shot" in benches:
            results["zero_shot"] = run_zero_shot(args, work, weights, scale)
        if "finetune" in benches:
            results["finetune"] = run_finetune(args, work, weights, scale)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    host = finish_host_record(host)
    print(describe_host(host))
    for name, r in results.items():
        m, p = r["ms_clip"], r["pytorch"]
        rate = "images_per_s" if name == "zero_shot" else "samples_per_s"
        print(f"{name:9s}: ms_clip {m['wall_s']:8.1f} s {m[rate]:8.2f}/s {m['peak_rss_mb']:7.0f} MB | open_clip "
              f"{p['wall_s']:8.1f} s {p[rate]:8.2f}/s {p['peak_rss_mb']:7.0f} MB | speed-up {r['speedup']:.2f}x")
    path = args.json or os.path.join(HERE, "results", f"bench_e2e{'_quick' if args.quick else ''}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(dict(host=host, quick=args.quick, reps=args.reps, model="clip_tiny-sized" if args.quick else
                       "ViT-B/32 (open_clip quick_gelu, random init)", results=results), f, indent=2)
    print(f"JSON written to {path}")


if __name__ == "__main__":
    main()
