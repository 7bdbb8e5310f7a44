"""The open CLIP model zoo (issue 17): every new architecture against a seeded random-init open_clip model through
our converter (features <= 1e-4 in float32, GRAPH and PYNATIVE), the table, and the Hub download path against a
local HTTP server that answers like huggingface.co (X-Linked-ETag / X-Linked-Size on a HEAD, then the file).

CI runs RN50 (at 96 px: same weights, smaller maps) and the GELU ViT-B/32; ``-m slow`` runs every other
architecture at full size, each in its own process.
"""
from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import threading

import numpy as np
import pytest

import _helpers_parity as H

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")
TOL = 1e-4


# ----------------------------------------------------------------------------- references


def build_reference(open_clip_arch: str, seed: int, image_size: int = 0):
    """open_clip's own model for ``open_clip_arch``, seeded, with LN/bias/BN statistics perturbed."""
    torch.manual_seed(seed)
    kwargs = {"force_image_size": image_size} if image_size else {}
    model = open_clip.create_model(open_clip_arch, pretrained=None, **kwargs).eval()
    H.perturb(model, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # BatchNorm running statistics away from 0/1, so a dropped buffer cannot hide
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(0.1 * torch.randn(buf.shape, generator=gen))
            elif name.endswith("running_var"):
                buf.copy_(0.5 + torch.rand(buf.shape, generator=gen))
    return model


def reference_inputs(model, batch: int = 2):
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    arch = H.Arch("ref", 0, size, 1, 0, 0, 0, 1, 0, context_length=77, vocab_size=49408)
    return H.inputs(arch, batch)


def _convert_and_compare(open_clip_arch: str, name: str, mode: str, tmp_path, image_size: int = 0,
                         isolated: bool = False, infer: bool = False):
    from ms_clip.convert import convert_weight
    from ms_clip.registry import load_config

    model = build_reference(open_clip_arch, seed=3, image_size=image_size)
    images, ids = reference_inputs(model)
    ref = H.reference_outputs("open_clip", model, images, ids)
    source = str(tmp_path / "open_clip_model.safetensors")
    H.save_state_dict(model, source)
    del model
    config = load_config(name)
    if image_size:
        config.vision_config.image_size = image_size
    result = convert_weight(source, str(tmp_path / "converted.ckpt"), config=None if infer else config)
    os.remove(source)
    if infer:
        assert result.config.architecture() == config.architecture()
    ours = H.run_ours_isolated(result.path, images, ids, mode) if isolated else H.run_ours(result.path, images, ids)
    errors = H.max_errors(ours, ref)
    print(f"{name} ({open_clip_arch}) {mode}: {errors}")
    _record(name, mode, errors)
    assert max(errors.values()) <= TOL, f"{name} {mode}: max abs error above {TOL}: {errors}"
    return errors


def _record(name: str, mode: str, errors) -> None:
    path = os.path.join(os.path.dirname(__file__), "_parity_report.json")
    report = {}
    if os.path.isfile(path):
        with open(path, "r", encoding="utf-8") as f:
            report = json.load(f)
    report[f"{name} | open_clip-safetensors | {mode}"] = {k: float(f"{v:.3g}") for k, v in errors.items()}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(dict(sorted(report.items())), f, indent=1)


# ----------------------------------------------------------------------------- parity (CI)


def test_rn50_parity(tmp_path, ms_mode):
    """ModifiedResNet RN50 (OpenAI's QuickGELU text tower) at 96 px; the architecture is inferred from tensors."""
    _convert_and_compare("RN50-quickgelu", "clip_rn50", ms_mode, tmp_path, image_size=96, infer=True)


def test_vit_b_32_gelu_parity(tmp_path, ms_mode):
    """open_clip's GELU ViT-B/32 (LAION / DataComp weights) at full size."""
    _convert_and_compare("ViT-B-32", "clip_vit_b_32_gelu", ms_mode, tmp_path)


# ----------------------------------------------------------------------------- parity (slow: the rest)

SLOW = {
    "clip_rn101": ("RN101-quickgelu", 0), "clip_rn50x4": ("RN50x4-quickgelu", 0),
    "clip_rn50x16": ("RN50x16-quickgelu", 0), "clip_rn50x64": ("RN50x64-quickgelu", 0),
    "clip_rn50_gelu": ("RN50", 0),
    "clip_vit_b_32_256": ("ViT-B-32-256", 0), "clip_vit_b_16_gelu": ("ViT-B-16", 0),
    "clip_vit_b_16_plus_240": ("ViT-B-16-plus-240", 0), "clip_vit_l_14_gelu": ("ViT-L-14", 0),
    "clip_vit_l_14_336_gelu": ("ViT-L-14-336", 0), "clip_vit_h_14": ("ViT-H-14", 0),
    "clip_vit_h_14_quickgelu": ("ViT-H-14-quickgelu", 0), "clip_vit_h_14_378_quickgelu": ("ViT-H-14-378-quickgelu", 0),
    "clip_vit_g_14": ("ViT-g-14", 0), "clip_vit_bigg_14": ("ViT-bigG-14", 0),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SLOW))
def test_full_size_zoo_parity(tmp_path, name):
    """Every other new architecture at full size; ours runs in its own process per mode (memory)."""
    arch, size = SLOW[name]
    for mode in ("graph", "pynative"):
        _convert_and_compare(arch, name, mode, tmp_path, image_size=size, isolated=True,
                             infer=name.startswith("clip_rn") and not name.endswith("_gelu"))


# ----------------------------------------------------------------------------- the table


def test_every_zoo_architecture_is_open_clips():
    """Each registry architecture of the zoo equals open_clip's config read by config_from_open_clip."""
    from ms_clip.convert import config_from_open_clip
    from ms_clip.pretrained_table import OPEN_CLIP_NAMES
    from ms_clip.registry import load_config

    for arch, name in OPEN_CLIP_NAMES.items():
        cfg = open_clip.get_model_config(arch)
        ours = config_from_open_clip(cfg, quick_gelu=arch.endswith("-quickgelu") or cfg.get("quick_gelu", False))
        assert ours.architecture() == load_config(name).architecture(), arch


def test_table_covers_open_clips_standard_architectures():
    from ms_clip.pretrained_table import UNSUPPORTED, ZOO

    listed = {(entry["open_clip"]) for tags in ZOO.values() for entry in tags.values()}
    for arch, tag in open_clip.list_pretrained():
        if arch in UNSUPPORTED or f"{arch}/{tag}" in UNSUPPORTED:
            continue
        other = arch[:-len("-quickgelu")] if arch.endswith("-quickgelu") else arch + "-quickgelu"
        assert f"{arch}/{tag}" in listed or f"{other}/{tag}" in listed, (arch, tag)


def test_unsupported_open_clip_architecture_is_refused_by_name():
    from ms_clip.convert import ConvertError, config_from_open_clip

    with pytest.raises(ConvertError, match="no_ln_pre"):
        config_from_open_clip(open_clip.get_model_config("ViT-L-14-CLIPA"))


# ----------------------------------------------------------------------------- downloads from the Hub

TINY_OPEN_CLIP_CFG = {"embed_dim": 64, "quick_gelu": True,
                      "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 16, "patch_size": 8},
                      "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 2}}
TINY_PREPROCESS = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "interpolation": "bicubic",
                   "resize_mode": "squash"}


@pytest.fixture(scope="module")
def tiny_hub_files(tmp_path_factory):
    """clip_tiny's architecture as an open_clip model, in the Hub's files (safetensors, bin, open_clip_config.json)."""
    from open_clip.model import CLIP

    torch.manual_seed(5)
    cfg = {k: v for k, v in TINY_OPEN_CLIP_CFG.items() if k != "quick_gelu"}
    model = CLIP(cfg["embed_dim"], cfg["vision_cfg"], cfg["text_cfg"], quick_gelu=True).eval()
    H.perturb(model, 5)
    directory = tmp_path_factory.mktemp("hub")
    H.save_state_dict(model, str(directory / "w.safetensors"))
    H.save_state_dict(model, str(directory / "w.bin"))
    state = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    config_json = json.dumps({"model_cfg": TINY_OPEN_CLIP_CFG, "preprocess_cfg": {
        "mean": TINY_PREPROCESS["mean"], "std": TINY_PREPROCESS["std"], "interpolation": "bicubic",
        "resize_mode": "squash"}}).encode()
    return {"safetensors": (directory / "w.safetensors").read_bytes(), "bin": (directory / "w.bin").read_bytes(),
            "config": config_json, "state": state}


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MS_CLIP_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def tiny_tag(monkeypatch):
    """A zoo entry 'clip_tiny' x 'test' on the fake Hub repository org/tiny."""
    from ms_clip import pretrained_table

    monkeypatch.setitem(pretrained_table.ZOO, "clip_tiny", {"test": {"hf_hub": "org/tiny", "preprocess": TINY_PREPROCESS,
                                                                     "open_clip": "tiny/test"}})
    return "clip_tiny.test"


def _hub(files, monkeypatch):
    import _helpers_http

    ctx = _helpers_http.serve_hub(files)
    server = ctx.__enter__()
    monkeypatch.setenv("HF_ENDPOINT", server.base)
    return ctx, server


def _cache_files(home):
    return sorted(os.path.relpath(os.path.join(d, f), home) for d, _, fs in os.walk(home) for f in fs
                  if f != ".lock")


def _assert_weights(model, state):
    for name, param in model.parameters_and_names():
        np.testing.assert_array_equal(param.asnumpy(), state[name], err_msg=name)


def test_hub_tag_good_hash(home, tiny_tag, tiny_hub_files, monkeypatch):
    from ms_clip import CLIPModel
    from ms_clip.pipelines import model_image_processor

    ctx, server = _hub({"org/tiny/open_clip_model.safetensors": tiny_hub_files["safetensors"]}, monkeypatch)
    try:
        model = CLIPModel.from_pretrained("clip_tiny", pretrained="test")
        assert _cache_files(home) == ["clip_tiny.test/clip_tiny.test.ckpt", "clip_tiny.test/clip_tiny.test.yaml"]
        assert ("HEAD", "/org/tiny/resolve/main/open_clip_model.safetensors") in server.requests
    finally:
        ctx.__exit__(None, None, None)
    _assert_weights(model, tiny_hub_files["state"])
    # the tag's preprocessing travels with the cached config to the processor
    assert model.config.preprocessing == TINY_PREPROCESS
    processor = model_image_processor(model)
    assert (processor.mean, processor.resize_mode) == ((0.5, 0.5, 0.5), "squash")
    again = CLIPModel.from_pretrained(tiny_tag)  # the combined form; the server is gone: from the cache
    _assert_weights(again, tiny_hub_files["state"])


def test_hub_falls_back_to_pytorch_bin(home, tiny_tag, tiny_hub_files, monkeypatch):
    from ms_clip import CLIPModel

    ctx, server = _hub({"org/tiny/open_clip_pytorch_model.bin": tiny_hub_files["bin"]}, monkeypatch)
    try:
        _assert_weights(CLIPModel.from_pretrained(tiny_tag), tiny_hub_files["state"])
    finally:
        ctx.__exit__(None, None, None)


@pytest.mark.parametrize("fault", ["wrong_hash", "truncated", "no_header", "wrong_size"])
def test_hub_download_faults_leave_nothing(home, tiny_tag, tiny_hub_files, monkeypatch, fault):
    from ms_clip import CLIPModel
    from ms_clip.hub import HubError

    key = "org/tiny/open_clip_model.safetensors"
    data = tiny_hub_files["safetensors"]
    ctx, server = _hub({key: data}, monkeypatch)
    if fault == "wrong_hash":
        server.headers_for[key] = ("0" * 64, len(data))
    elif fault == "truncated":
        server.truncate[key] = len(data) // 2
    elif fault == "no_header":
        server.headers_for[key] = None
    else:
        server.headers_for[key] = (hashlib.sha256(data).hexdigest(), len(data) + 1)
    expected = {"wrong_hash": "sha256 mismatch", "truncated": "bytes", "no_header": "X-Linked-ETag",
                "wrong_size": "bytes"}[fault]
    try:
        with pytest.raises(HubError, match=expected):
            CLIPModel.from_pretrained(tiny_tag)
    finally:
        ctx.__exit__(None, None, None)
    assert _cache_files(home) == [], "a failed download must leave no file behind"


def test_open_clip_hf_hub_form(home, tiny_hub_files, monkeypatch):
    from ms_clip import CLIPModel

    files = {"org/oc-tiny/open_clip_config.json": tiny_hub_files["config"],
             "org/oc-tiny/open_clip_model.safetensors": tiny_hub_files["safetensors"]}
    ctx, _ = _hub(files, monkeypatch)
    try:
        model = CLIPModel.from_pretrained("hf-hub:org/oc-tiny")
    finally:
        ctx.__exit__(None, None, None)
    _assert_weights(model, tiny_hub_files["state"])
    assert model.config.preprocessing == TINY_PREPROCESS
    assert model.config.text_config.hidden_act == "quick_gelu" and model.config.vision_config.num_attention_heads == 4


def test_plain_hf_repository_id(home, tmp_path, monkeypatch, ms_mode):
    """An HF CLIPModel repository (config.json + model.safetensors) by id: converted, same features as HF."""
    from ms_clip import CLIPModel

    model = H.build_hf(H.TINY, 9)
    images, ids = H.inputs(H.TINY)
    ref = H.reference_outputs("hf", model, images, ids)
    H.save_hf(model, str(tmp_path / "hf"), "safetensors")
    files = {f"org/hf-tiny/{f}": (tmp_path / "hf" / f).read_bytes() for f in ("config.json", "model.safetensors")}
    ctx, _ = _hub(files, monkeypatch)
    try:
        ours = CLIPModel.from_pretrained("org/hf-tiny")
    finally:
        ctx.__exit__(None, None, None)
    ckpt = os.path.join(str(home), "hf", "org--hf-tiny", "model.ckpt")
    errors = H.max_errors(H.run_ours(ckpt, images, ids), ref)
    assert max(errors.values()) <= TOL, errors
    assert ours.config.text_config.hidden_size == H.TINY.text_width


def test_unknown_tag_names_the_valid_ones(home):
    from ms_clip import CLIPModel
    from ms_clip.hub import HubError

    with pytest.raises(HubError, match=r"Tags of 'clip_vit_h_14': \['dfn5b'|laion2b_s32b_b79k"):
        CLIPModel.from_pretrained("clip_vit_h_14", pretrained="laion2b_s99b")
    # a GELU tag asked of OpenAI's QuickGELU name points to the architecture its weights need
    with pytest.raises(HubError, match="clip_vit_b_32_gelu"):
        CLIPModel.from_pretrained("clip_vit_b_32.laion2b_s34b_b79k")


def test_names_tags_and_support_list(capsys):
    from ms_clip import CLIPModel, loader
    from ms_clip.hub import default_tag, zoo_tags

    assert default_tag("clip_vit_b_32") == "openai" and default_tag("clip_rn50") == "openai"
    assert default_tag("clip_vit_h_14") == "laion2b_s32b_b79k"
    assert "laion2b_s32b_b82k" in zoo_tags("clip_vit_l_14_gelu")
    assert zoo_tags("clip_vit_l_14_gelu")["laion2b_s32b_b82k"]["preprocess"]["mean"] == [0.5, 0.5, 0.5]
    assert zoo_tags("clip_vit_h_14_quickgelu")["dfn5b"]["preprocess"]["resize_mode"] == "squash"
    config = loader.load_config("clip_vit_h_14_quickgelu.dfn5b")  # no download: architecture + preprocessing
    assert config.preprocessing["resize_mode"] == "squash"
    assert config.vision_config.num_attention_heads == 16 and config.text_config.hidden_act == "quick_gelu"
    assert loader.load_config("clip_rn50_quickgelu").vision_config.layers == [3, 4, 6, 3]
    CLIPModel.show_support_list()
    out = capsys.readouterr().out
    assert "clip_vit_h_14: laion2b_s32b_b79k (default)" in out and "clip_rn50: openai (default), yfcc15m, cc12m" in out
