"""Strict configs: unknown keys, invariants, MindFormers aliases, and that every field changes the model."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import mindspore as ms
from mindspore import Tensor

from ms_clip.models import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig, ConfigError

# A micro architecture: every field can be varied and the model rebuilt in well under a second.
BASE = {
    "text_config": dict(vocab_size=50, hidden_size=32, intermediate_size=48, num_hidden_layers=1,
                        num_attention_heads=2, max_position_embeddings=8),
    "vision_config": dict(hidden_size=32, intermediate_size=48, num_hidden_layers=1, num_attention_heads=2,
                          image_size=16, patch_size=8),
    "projection_dim": 16,
}
# checkpoint_name_or_path is used (weights loaded at construction), tested in test_model.py.
# preprocessing (the weights' mean/std/resize) is read by the processor, not the network: tests/test_zoo.py
# checks that it reaches the processor, the pipeline and the zero-shot task.
EXEMPT = {("", "checkpoint_name_or_path"), ("", "preprocessing")}

# One changed value per field; each must change parameter shapes, initial values or outputs.
CHANGES = {
    "vocab_size": 60, "hidden_size": 64, "intermediate_size": 40, "num_hidden_layers": 2, "num_attention_heads": 4,
    "max_position_embeddings": 10, "hidden_act": "gelu", "dropout": 0.5, "attention_dropout": 0.5,
    "layer_norm_eps": 0.5, "initializer_range": 0.5, "initializer_factor": 3.0, "image_size": 24, "patch_size": 4,
    "num_channels": 1, "projection_dim": 8, "logit_scale_init_value": 1.0, "compute_dtype": "float16",
}


def test_unknown_key_names_key_valid_list_and_suggestion():
    with pytest.raises(ConfigError) as info:
        CLIPTextConfig.from_dict({"hiden_size": 64})
    msg = str(info.value)
    assert "unknown key 'hiden_size'" in msg and "Did you mean 'hidden_size'" in msg and "'vocab_size'" in msg
    with pytest.raises(ConfigError, match=r"CLIPConfig.vision_config: unknown key 'patch'"):
        CLIPConfig.from_dict({"vision_config": {"patch": 16}})
    with pytest.raises(ConfigError, match=r"unknown key 'projection'.*Did you mean 'projection_dim'"):
        CLIPConfig.from_dict({"projection": 8})
    with pytest.raises(TypeError):  # direct construction is strict too (dataclass)
        CLIPVisionConfig(hidden=3)


@pytest.mark.parametrize("cls,kwargs,pattern", [
    (CLIPTextConfig, dict(hidden_size=100, num_attention_heads=8), r"divisible by num_attention_heads \(got 100 and 8\)"),
    (CLIPVisionConfig, dict(hidden_size=64, num_attention_heads=3), r"\(got 64 and 3\)"),
    (CLIPVisionConfig, dict(image_size=30, patch_size=8), r"image_size must be divisible by patch_size \(got 30 and 8\)"),
    (CLIPTextConfig, dict(hidden_act="swish"), r"hidden_act must be one of .* got 'swish'"),
    (CLIPTextConfig, dict(dropout=1.5), r"dropout must be a probability"),
    (CLIPVisionConfig, dict(num_hidden_layers=0), r"num_hidden_layers must be a positive integer, got 0"),
    (CLIPConfig, dict(compute_dtype="int8"), r"compute_dtype must be one of"),
    (CLIPConfig, dict(text_config=3), r"text_config must be a CLIPTextConfig or dict"),
])
def test_invariants(cls, kwargs, pattern):
    with pytest.raises(ConfigError, match=pattern):
        cls(**kwargs)


def test_mindformers_aliases():
    assert CLIPTextConfig.from_dict({"drop_out": 0.25}).dropout == 0.25
    cfg = CLIPConfig.from_dict({"dtype": "float16", "type": "CLIPConfig"})  # 'type' is MindFormers bookkeeping
    assert cfg.compute_dtype == "float16"


def test_round_trip_through_dict():
    cfg = CLIPConfig.from_dict(BASE)
    assert CLIPConfig.from_dict(cfg.to_dict()) == cfg


def _config(where: str, name: str, value) -> CLIPConfig:
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE.items()}
    target = data[where] if where else data
    target[name] = value
    if where and name == "hidden_size":  # keep heads dividing the width
        target["num_attention_heads"] = 2
    return CLIPConfig.from_dict(data)


def _signature(cfg: CLIPConfig):
    """Parameter shapes and initial values, eval outputs and train-mode outputs, all seeded."""
    ms.set_seed(0)
    model = CLIPModel(cfg)
    params = {p.name: p.asnumpy() for p in model.get_parameters()}
    vc, tc = cfg.vision_config, cfg.text_config
    rng = np.random.default_rng(0)
    image = Tensor(rng.standard_normal((2, vc.num_channels, vc.image_size, vc.image_size)).astype(np.float32))
    ids = rng.integers(1, tc.vocab_size - 1, size=(2, tc.max_position_embeddings)).astype(np.int32)
    ids[:, -1] = tc.vocab_size - 1
    outputs = []
    for train in (False, True):
        model.set_train(train)
        ms.set_seed(1)
        img, txt, scale = model(image, Tensor(ids))
        outputs.append((img.asnumpy().astype(np.float32), txt.asnumpy().astype(np.float32), scale.asnumpy()))
    return params, outputs


def _same(a, b) -> bool:
    (pa, oa), (pb, ob) = a, b
    if {k: v.shape for k, v in pa.items()} != {k: v.shape for k, v in pb.items()}:
        return False
    if any(not np.array_equal(pa[k], pb[k]) for k in pa):
        return False
    return all(x.shape == y.shape and np.array_equal(x, y) for ra, rb in zip(oa, ob) for x, y in zip(ra, rb))


def _fields():
    out = [("", f.name) for f in dataclasses.fields(CLIPConfig) if f.name not in ("text_config", "vision_config")]
    out += [("text_config", f.name) for f in dataclasses.fields(CLIPTextConfig)]
    out += [("vision_config", f.name) for f in dataclasses.fields(CLIPVisionConfig)]
    return [f for f in out if f not in EXEMPT]


@pytest.fixture(scope="module")
def base_signature():
    ms.set_context(mode=ms.PYNATIVE_MODE)
    sig = _signature(CLIPConfig.from_dict(BASE))
    assert _same(sig, _signature(CLIPConfig.from_dict(BASE))), "seeded build + forward must be deterministic"
    yield sig
    ms.set_context(mode=ms.GRAPH_MODE)


@pytest.mark.parametrize("where,name", _fields(), ids=lambda v: v or "CLIPConfig")
def test_every_field_changes_the_model(base_signature, where, name):
    assert name in CHANGES, f"add a test value for new config field {where}.{name} in CHANGES"
    changed = _signature(_config(where, name, CHANGES[name]))
    assert not _same(base_signature, changed), (
        f"{where or 'CLIPConfig'}.{name}={CHANGES[name]!r} changed neither parameter shapes, initial values nor "
        f"outputs: the model ignores this field")
