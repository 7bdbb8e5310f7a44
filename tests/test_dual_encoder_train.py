"""The contrastive-image-text recipe (HF run_clip.py) for the vision-text dual encoder: its run YAMLs, its linear
schedule against HF's, tower freezing as run_clip.py's, and a tiny dual encoder trained from random weights through
run_mindformer.py on generated COCO-layout data (retrieval far above chance; --run_mode eval reproduces it)."""
import json
import os
import sys

import numpy as np
import pytest

from ms_clip.run_config import load_run_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = os.path.join(ROOT, "configs", "clip", "run_clip_roberta_finetune_coco.yaml")
TINY = os.path.join(ROOT, "configs", "clip", "run_dual_encoder_tiny_coco.yaml")
N_TRAIN, N_VAL, BATCH, EPOCHS = 200, 100, 32, 4  # 1,000 (image, caption) pairs: 31 steps of 32 per epoch


def test_recipe_yaml_is_run_clips():
    """batch 64, lr 5e-5, no warmup, weight decay 0.1, linear decay, 3 epochs, 128 tokens, HF's AdamW betas/eps,
    Resize(224, bicubic) + CenterCrop(224), one sample per caption, retrieval on COCO val."""
    from ms_clip.data.pipeline import image_transform_from_config

    config = load_run_config(RECIPE)
    assert (config.runner_config.batch_size, config.runner_config.epochs, config.seed) == (64, 3, 42)
    assert (config.optimizer.learning_rate, config.optimizer.weight_decay) == (5e-5, 0.1)
    assert (config.optimizer.beta1, config.optimizer.beta2, config.optimizer.eps) == (0.9, 0.999, 1e-8)
    assert (config.lr_schedule.type, config.lr_schedule.warmup_steps, config.lr_schedule.warmup_ratio) == \
        ("linear", 0, 0.0)
    assert config.runner_wrapper.use_clip_grad and config.runner_wrapper.max_grad_norm == 1.0
    assert not config.runner_config.lock_image and not config.runner_config.lock_text
    train, val = config.train_dataset, config.eval_dataset
    assert train.text_transforms.max_length == val.text_transforms.max_length == 128
    assert (train.data_loader.type, train.data_loader.stage, train.data_loader.per_caption) == \
        ("CocoCaptionDataLoader", "train", True)
    assert (val.data_loader.type, val.data_loader.stage, val.batch_size) == ("CocoCaptionDataLoader", "val", 64)
    for section in (train, val):
        transform = image_transform_from_config(section.transforms, 224, "transforms")
        assert (transform.size, transform.random_crop, transform.resize) == (224, False, "crop")
    assert config.model.arch.type == "VisionTextDualEncoderModel" and config.load_checkpoint == "./clip-roberta"
    tiny = load_run_config(TINY)
    assert tiny.lr_schedule.type == "linear" and tiny.train_dataset.data_loader.per_caption


def test_recipe_pixels_are_run_clips_transform(tmp_path):
    """Training and retrieval images of the dual encoder go through run_clip.py's Transform (torchvision
    read_image RGB -> Resize([224], bicubic) -> CenterCrop(224) -> float -> Normalize), the recipe's transforms."""
    torch = pytest.importorskip("torch")
    tv = pytest.importorskip("torchvision")
    import dataclasses
    import types

    from PIL import Image

    from ms_clip.registry import load_config
    from ms_clip.tasks.pretrain import _image_transform

    config = load_config("dual_encoder_tiny")
    config.vision_config = dataclasses.replace(config.vision_config, image_size=224)
    model = types.SimpleNamespace(config=config)
    run = load_run_config(RECIPE)
    rng = np.random.default_rng(0)
    pixels = (rng.random((250, 310, 3)) * 255).astype(np.uint8)
    pixels[60:180, 80:200] = [200, 40, 30]
    path = str(tmp_path / "photo.jpg")
    Image.fromarray(pixels).save(path, quality=90)
    from torchvision import transforms as T
    from torchvision.io import ImageReadMode, read_image

    mean, std = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
    reference = torch.nn.Sequential(T.Resize([224], interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224),
                                    T.ConvertImageDtype(torch.float), T.Normalize(mean, std))
    expected = reference(read_image(path, mode=ImageReadMode.RGB)).numpy()
    for section, where in ((run.train_dataset, "train_dataset"), (run.eval_dataset, "eval_dataset")):
        transform = _image_transform(section, model, where)
        assert transform.backend == "torchvision"
        with Image.open(path) as img:
            ours = transform(img)
        assert ours.shape == expected.shape == (3, 224, 224)
        # Measured: 1 value of 150,528 one grey level apart (a rounding tie in the resize), the rest equal.
        level = 1 / 255 / min(std) + 1e-6
        off = np.abs(ours - expected) > 1e-5
        assert np.abs(ours - expected).max() <= level and off.sum() <= 10, (where, int(off.sum()), tv.__version__)
    # OpenAI's PIL pipeline (CLIP's own recipes) is measurably another transform: the backend matters.
    with Image.open(path) as img:
        pil = dataclasses.replace(transform, backend="pil")(img)
    assert (np.abs(pil - expected) > 1e-5).sum() > 1000


def test_linear_schedule_is_hf_trainers():
    """HF Trainer's default schedule (get_linear_schedule_with_warmup) step for step: exact with the recipe's 0
    warmup steps, and after a warmup (during warmup ours is open_clip's (step + 1) / warmup, one step ahead)."""
    torch = pytest.importorskip("torch")
    from transformers import get_linear_schedule_with_warmup

    from ms_clip.train.schedule import schedule_from_config

    for warmup, total in ((0, 37), (5, 40)):
        ours = schedule_from_config({"type": "linear", "warmup_steps": warmup}, {"learning_rate": 5e-5}, total)
        param = torch.nn.Parameter(torch.zeros(1))
        optimizer = torch.optim.AdamW([param], lr=5e-5)
        scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total)
        for step in range(total):
            if step >= warmup:
                assert ours(step) == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-12, abs=1e-18), step
            optimizer.step()
            scheduler.step()
        assert ours(total) == 0.0


def test_freezing_a_tower_is_run_clips():
    """lock_image / lock_text freeze the vision / text tower (run_clip.py --freeze_vision_model /
    --freeze_text_model: model.vision_model / model.text_model); the projections and logit_scale keep training."""
    from ms_clip import create_model
    from ms_clip.train.optim import trainable_parameters

    names = [p.name for p in create_model("dual_encoder_tiny").get_parameters()]
    for lock_image, lock_text, frozen in (
            (True, False, {n for n in names if n.startswith("visual.") and n != "visual.proj"}),
            (False, True, {n for n in names if n.startswith("text_model.")})):
        model = create_model("dual_encoder_tiny")
        trainable = {p.name for p in trainable_parameters(model, lock_image, lock_text)}
        assert trainable == set(names) - frozen and len(frozen) > 10
        assert {"visual.proj", "text_projection", "logit_scale"} <= trainable
        assert all(not p.requires_grad for p in model.get_parameters() if p.name in frozen)


# --------------------------------------------------------------------------- tiny run through the CLI


def _cli(*args, timeout=1500):
    import subprocess

    env = dict(os.environ, GLOG_v="3", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, os.path.join(ROOT, "run_mindformer.py"), "--config", TINY, *args],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def _roberta_style_tokenizer(folder):
    """A byte-level BPE (RoBERTa's kind: vocab.json + merges.txt, <s>=0 <pad>=1 </s>=2) learned by HF tokenizers
    from every caption the shapes world can write (no download)."""
    from tokenizers import ByteLevelBPETokenizer

    from ms_clip.demo.synthetic import _POSITION_PHRASE, COLOURS, SHAPES, SIZES, TEMPLATES

    corpus = [t.format(shape=s, colour=c, size=z, position=p) for t in TEMPLATES for s in SHAPES for c in COLOURS
              for z in SIZES for p in _POSITION_PHRASE.values()]
    tokenizer = ByteLevelBPETokenizer()
    tokenizer.train_from_iterator(corpus, vocab_size=400, min_frequency=1, show_progress=False,
                                  special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    os.makedirs(folder, exist_ok=True)
    tokenizer.save_model(folder)
    return folder


@pytest.fixture(scope="module")
def coco_world(tmp_path_factory):
    """(COCO-layout shapes data, a random-init dual_encoder_tiny save_pretrained folder with its tokenizer)."""
    import mindspore as ms

    from ms_clip import create_model
    from ms_clip.demo.coco_shapes import write_shapes_coco

    base = tmp_path_factory.mktemp("dual_coco")
    data = write_shapes_coco(str(base / "coco"), n_train=N_TRAIN, n_val=N_VAL, seed=0, image_size=32)
    ms.set_seed(0)
    model = create_model("dual_encoder_tiny")
    model.tokenizer_dir = _roberta_style_tokenizer(str(base / "tokenizer"))
    model.save_pretrained(str(base / "init"))
    return data, str(base / "init")


def test_tiny_dual_encoder_trained_through_the_cli_then_eval_reproduces(coco_world, tmp_path):
    from ms_clip.eval.retrieval import chance_recall
    from ms_clip.loader import get_tokenizer

    data, init = coco_world
    out = tmp_path / "run"
    proc = _cli("--run_mode", "finetune", "--load_checkpoint", init, "--train_dataset_dir", data,
                "--eval_dataset_dir", data, "--output_dir", str(out), "--epochs", str(EPOCHS),
                "--options", f"eval_epoch_interval={EPOCHS}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "metrics.jsonl") as f:
        records = list(map(json.loads, f))
    evals = [r for r in records if r["type"] == "eval"]
    before, after = evals[0], evals[-1]
    chance = chance_recall(N_VAL, 5)["mean_recall"]
    message = (f"COCO-layout shapes val ({after['num_images']} images, {after['num_texts']} captions): mean recall "
               f"chance {100 * chance:.1f}%, before training {100 * before['mean_recall']:.1f}%, after "
               f"{after['step']} steps {100 * after['mean_recall']:.1f}% (t->i R@1/5/10 "
               f"{100 * after['text_to_image_R@1']:.1f}/{100 * after['text_to_image_R@5']:.1f}/"
               f"{100 * after['text_to_image_R@10']:.1f}%, i->t R@1/5/10 {100 * after['image_to_text_R@1']:.1f}/"
               f"{100 * after['image_to_text_R@5']:.1f}/{100 * after['image_to_text_R@10']:.1f}%)")
    print(message)
    assert (before["num_images"], before["num_texts"]) == (N_VAL, 5 * N_VAL)
    assert before["step"] == 0 and after["step"] == EPOCHS * (5 * N_TRAIN // BATCH)  # one sample per caption
    assert before["mean_recall"] < 2 * chance, message
    assert after["mean_recall"] > 4 * chance, message
    assert after["text_to_image_R@10"] > 0.4 and after["image_to_text_R@10"] > 0.4, message
    assert all((out / "plots" / name).is_file() for name in ("loss.png", "recall.png"))  # as for Flickr8k
    losses = [r["loss"] for r in records if r["type"] == "train"]
    assert losses[-1] < 0.7 * np.log(BATCH), losses  # ln(32) = 3.47 is the loss of features that tell nothing

    # The checkpoint folder holds the text tokenizer (a .ckpt alone loads with it), and --run_mode eval on the
    # checkpoint reproduces the recall exactly.
    ckpt = json.loads(proc.stdout.strip().splitlines()[-1])["checkpoint"]
    assert os.path.isfile(os.path.join(os.path.dirname(ckpt), "vocab.json"))
    assert get_tokenizer(ckpt).batch_ids(["a red circle"], 8).tolist() == \
        get_tokenizer(init).batch_ids(["a red circle"], 8).tolist()
    proc = _cli("--run_mode", "eval", "--eval_dataset_dir", data, "--load_checkpoint", ckpt,
                "--output_dir", str(tmp_path / "eval"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / "eval" / "retrieval_results.json") as f:
        again = json.load(f)
    for key in ("text_to_image_R@1", "text_to_image_R@5", "text_to_image_R@10", "image_to_text_R@1",
                "image_to_text_R@5", "image_to_text_R@10", "mean_recall"):
        assert again[key] == pytest.approx(after[key], abs=1e-12), key
    assert again["chance_mean_recall"] == pytest.approx(chance)


@pytest.mark.slow
def test_msrun_two_workers_equal_one_process_on_the_dual_encoder(coco_world, tmp_path):
    """2 CPU workers x batch 16 under msrun (contrastive loss over the global batch of 32) against one process x
    batch 32 on the same COCO-layout data, from the same dual encoder folder: the same losses step for step."""
    import subprocess

    data, init = coco_world
    script = os.path.join(ROOT, "scripts", "examples", "clip_tiny_pretrain_on_flickr8k_distributed_cpu.sh")
    common = ["--run_mode", "finetune", "--load_checkpoint", init, "--do_eval", "False",
              "--options", "runner_config.max_steps=6", "runner_config.log_interval=1"]
    env = dict(os.environ, GLOG_v="3", PYTHON=sys.executable, CONFIG=TINY, MASTER_PORT="8137",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    dist = subprocess.run(["bash", script, data, str(tmp_path / "dist"), "--batch_size", "16", *common],
                          capture_output=True, text=True, timeout=1500, env=env, cwd=ROOT)
    assert dist.returncode == 0, dist.stdout[-3000:] + dist.stderr[-3000:]
    single = _cli("--device_target", "CPU", "--train_dataset_dir", data, "--eval_dataset_dir", data,
                  "--output_dir", str(tmp_path / "single"), "--batch_size", "32", *common)
    assert single.returncode == 0, single.stderr[-3000:]

    def losses(name):
        with open(tmp_path / name / "metrics.jsonl") as f:
            return [r["loss"] for r in map(json.loads, f) if r["type"] == "train"]

    a, b = losses("dist"), losses("single")
    print("msrun 2 x 16:", a, "\n1 x 32:", b)
    assert len(a) == len(b) == 6
    assert max(abs(x - y) / abs(y) for x, y in zip(a, b)) < 1e-5
