"""Training pieces: ClipLoss, AdamW vs torch.optim.AdamW, schedules, the compiled step (accumulation, tower
locking, logit-scale clamp, fp16 loss scaling, non-finite stop), and the Trainer facade's errors."""
import json
import math
import os

import numpy as np
import pytest

import mindspore as ms
from mindspore import Parameter, Tensor

from ms_clip import ClipLoss, create_model
from ms_clip.train.loop import LossScaler, NonFiniteLossError, StepRunner
from ms_clip.train.optim import AdamW, no_weight_decay, tower_of
from ms_clip.train.schedule import LRSchedule, schedule_from_config

BATCH = 8


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((BATCH, 3, 32, 32)).astype(np.float32)
    text = rng.integers(1, 5000, (BATCH, 77)).astype(np.int32)
    text[:, 9] = 49407  # EOT (highest id) then zero padding, as the tokenizer writes
    text[:, 10:] = 0
    return Tensor(image), Tensor(text)


def _params(model):
    return {p.name: p.asnumpy().copy() for p in model.get_parameters()}


def _runner(dtype="float32", seed=0, **kwargs):
    ms.set_seed(seed)
    model = create_model("clip_tiny", compute_dtype=dtype)
    schedule = kwargs.pop("schedule", LRSchedule(1e-3, 100, 0, "constant"))
    return StepRunner(model, {"weight_decay": 0.1}, schedule, **kwargs)


def test_clip_loss_matches_numpy():
    rng = np.random.default_rng(0)
    img = rng.standard_normal((6, 10)).astype(np.float32)
    txt = rng.standard_normal((6, 10)).astype(np.float32)
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    scale = 14.3
    loss = float(ClipLoss()(Tensor(img), Tensor(txt), Tensor(scale, ms.float32)).asnumpy())
    logits = scale * img @ txt.T

    def ce(x):
        x = x - x.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(x).sum(axis=1)) - np.diag(x)))

    assert loss == pytest.approx((ce(logits) + ce(logits.T)) / 2, rel=1e-5)
    with pytest.raises(ValueError, match="0 <= rank < world_size"):
        ClipLoss(world_size=2, rank=2)


def test_adamw_matches_torch_adamw():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    weight0 = rng.standard_normal((4, 3)).astype(np.float32)
    bias0 = rng.standard_normal((4,)).astype(np.float32)
    ours_w, ours_b = Parameter(Tensor(weight0), name="w.weight"), Parameter(Tensor(bias0), name="w.bias")
    opt = AdamW([ours_w, ours_b], weight_decay=0.2, beta1=0.9, beta2=0.98, eps=1e-6)
    tw, tb = torch.nn.Parameter(torch.tensor(weight0)), torch.nn.Parameter(torch.tensor(bias0))
    torch_opt = torch.optim.AdamW([{"params": [tw], "weight_decay": 0.2}, {"params": [tb], "weight_decay": 0.0}],
                                  lr=1e-2, betas=(0.9, 0.98), eps=1e-6)
    for step in range(5):
        gw = rng.standard_normal((4, 3)).astype(np.float32)
        gb = rng.standard_normal((4,)).astype(np.float32)
        lr = 1e-2 * (step + 1) / 5
        for group in torch_opt.param_groups:
            group["lr"] = lr
        tw.grad, tb.grad = torch.tensor(gw), torch.tensor(gb)
        torch_opt.step()
        bc1, bc2 = opt.bias_corrections(step)
        # grad_multiplier 0.5 applied to grads that are twice as large: the same update.
        opt(ms.mutable((Tensor(2 * gw), Tensor(2 * gb))), Tensor(lr, ms.float32), Tensor(bc1, ms.float32),
            Tensor(bc2, ms.float32), Tensor(0.5, ms.float32))
    np.testing.assert_allclose(ours_w.asnumpy(), tw.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours_b.asnumpy(), tb.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert set(opt.state_dict()) == {"adam_m.w.weight", "adam_m.w.bias", "adam_v.w.weight", "adam_v.w.bias"}


def test_weight_decay_and_tower_rules():
    model = create_model("clip_tiny")
    decayed = {p.name for p in model.get_parameters() if not no_weight_decay(p.name, len(p.shape))}
    for name in ("logit_scale", "token_embedding.weight", "positional_embedding", "visual.class_embedding",
                 "visual.positional_embedding", "ln_final.weight", "visual.transformer.resblocks.0.ln_1.bias",
                 "transformer.resblocks.0.attn.in_proj_bias"):
        assert name not in decayed
    for name in ("visual.conv1.weight", "visual.proj", "text_projection", "transformer.resblocks.1.mlp.c_fc.weight",
                 "visual.transformer.resblocks.0.attn.in_proj_weight"):
        assert name in decayed
    assert tower_of("visual.proj") == "image" and tower_of("text_projection") == "text"
    assert tower_of("logit_scale") == "shared"


def test_schedules():
    cosine = LRSchedule(1.0, total_steps=110, warmup_steps=10, kind="cosine", lr_end=0.1)
    assert cosine(0) == pytest.approx(0.1) and cosine(9) == pytest.approx(1.0)
    assert cosine(10) == pytest.approx(1.0) and cosine(60) == pytest.approx(0.55) and cosine(110) == pytest.approx(0.1)
    assert LRSchedule(2.0, 50, 0, "constant")(49) == 2.0
    from_config = schedule_from_config({"type": "CosineWithWarmUpLR", "learning_rate": None, "warmup_steps": 0,
                                        "warmup_ratio": 0.1, "total_steps": -1, "lr_end": 0.0},
                                       {"learning_rate": 5e-4}, 200)
    assert (from_config.base_lr, from_config.warmup_steps, from_config.total_steps) == (5e-4, 20, 200)


def test_accumulating_a_batch_twice_equals_one_step_on_it():
    image, text = _batch()
    single = _runner()
    single([(image, text)], 0)
    double = _runner(accumulation=2)
    result = double([(image, text), (image, text)], 0)
    assert result.applied
    a, b = _params(single.model), _params(double.model)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_lock_image_tower_and_logit_scale_clamp():
    runner = _runner(lock_image=True)
    runner.model.logit_scale.set_data(Tensor(5.0, ms.float32))  # above ln(100)
    before = _params(runner.model)
    runner([_batch()], 0)
    after = _params(runner.model)
    assert all(np.array_equal(before[n], after[n]) for n in before if n.startswith("visual."))
    assert not np.array_equal(before["text_projection"], after["text_projection"])
    assert after["logit_scale"] <= math.log(100) + 1e-6


def test_float16_dynamic_loss_scaling_skips_overflowing_steps():
    runner = _runner("float16", scaler=LossScaler("dynamic", scale=2.0 ** 100, factor=2.0, window=1000))
    before = _params(runner.model)
    result = runner([_batch()], 0)
    assert not result.applied and runner.scaler.scale == 2.0 ** 99  # fp16 gradients overflowed: skipped
    assert all(np.array_equal(before[n], v) for n, v in _params(runner.model).items())
    runner.scaler.scale = 1024.0
    result = runner([_batch()], 0)
    assert result.applied and math.isfinite(result.loss)
    assert not np.array_equal(before["text_projection"], _params(runner.model)["text_projection"])


def test_non_finite_loss_stops_without_touching_weights():
    runner = _runner()
    image, text = _batch()
    bad = image.asnumpy()
    bad[0, 0, 0, 0] = np.nan
    before = _params(runner.model)
    with pytest.raises(NonFiniteLossError, match="non-finite loss at optimizer step 0"):
        runner([(Tensor(bad), text)], 0)
    assert all(np.array_equal(before[n], v) for n, v in _params(runner.model).items())


# --------------------------------------------------------------------------- Trainer facade


@pytest.fixture(scope="module")
def tiny_flickr(tmp_path_factory):
    from ms_clip.demo.synthetic import write_flickr8k

    return write_flickr8k(str(tmp_path_factory.mktemp("flickr")), n_images=40, seed=1, image_size=32)


def test_trainer_stops_on_divergence_and_keeps_the_last_good_checkpoint(tiny_flickr, tmp_path):
    from ms_clip import CLIPModel, Trainer

    args = {"output_dir": str(tmp_path), "runner_config": {"epochs": 3, "batch_size": 8},
            "optimizer": {"learning_rate": 1e38, "weight_decay": 0.0},  # diverges to inf within a few steps
            "runner_wrapper": {"use_clip_grad": False},
            "callbacks": [{"type": "CheckpointMonitor", "save_checkpoint_steps": 1, "keep_checkpoint_max": 2}],
            "train_dataset": {"num_parallel_workers": 1}}
    trainer = Trainer(args=args, task="contrastive_language_image_pretrain", model="clip_tiny",
                      train_dataset=tiny_flickr)
    with pytest.raises(NonFiniteLossError, match="the last good checkpoint is .*clip_step\\d+\\.ckpt") as err:
        trainer.train()
    ckpt = str(err.value).split("the last good checkpoint is ")[1].split(". Lower")[0]
    latest = json.load(open(os.path.join(tmp_path, "checkpoint", "latest.json")))
    assert os.path.basename(ckpt) == latest["weights"]
    model = CLIPModel.from_pretrained(ckpt)  # intact and loadable
    assert all(np.isfinite(p.asnumpy()).all() for p in model.get_parameters())


def test_trainer_argument_errors(tiny_flickr):
    from ms_clip import Trainer
    from ms_clip.models.config import ConfigError
    from ms_clip.run_config import RunConfigError

    with pytest.raises(ConfigError, match="unknown model name 'clip_tinny'. Did you mean 'clip_tiny'"):
        Trainer(task="contrastive_language_image_pretrain", model="clip_tinny")
    with pytest.raises(ValueError, match=r"\['optimizers'\] are not supported"):
        Trainer(task="contrastive_language_image_pretrain", model="clip_tiny", optimizers=object())
    trainer = Trainer(task="contrastive_language_image_pretrain", args={"model": {"model_config": {
        "checkpoint_name_or_path": ""}}, "trainer": {"model_name": "clip_tiny"}}, eval_dataset=tiny_flickr)
    with pytest.raises(RunConfigError, match="no model weights given"):
        trainer.evaluate()  # never random weights for evaluation
    with pytest.raises(NotImplementedError, match="has no predict"):
        trainer.predict(input_data="x.jpg")
