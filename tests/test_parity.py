"""Parity: reference CLIPs (OpenAI's code, open_clip, HF transformers), saved in their real on-disk formats,
go through *our* converter into *our* model; features and logits must agree to 1e-4 (float32).

Measured errors are written to tests/_parity_report.json (arch x format x mode).
"""
from __future__ import annotations

import json
import os
import shutil

import pytest

import _helpers_parity as H

pytest.importorskip("torch")
TOL = 1e-4


def _update_report(arch: str, fmt: str, mode: str, errors) -> None:
    path = os.path.join(os.path.dirname(__file__), "_parity_report.json")
    report = {}
    if os.path.isfile(path):
        with open(path, "r", encoding="utf-8") as f:
            report = json.load(f)
    report[f"{arch} | {fmt} | {mode}"] = {k: float(f"{v:.3g}") for k, v in errors.items()}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(dict(sorted(report.items())), f, indent=1)


def _save(fmt: str, arch: H.Arch, directory: str, seed: int):
    """Build a reference of the family behind ``fmt``, save it in that format; return (source path, model kind, model)."""
    if fmt == "openai-torchscript":
        model = H.build_openai(arch, seed)
        path = os.path.join(directory, "ViT.pt")
        # reference outputs before tracing: save_torchscript re-registers metadata buffers on the model
        return path, "openai", model, lambda: H.save_torchscript(model, arch, path)
    if fmt.startswith("open_clip"):
        model = H.build_open_clip(arch, seed)
        ext = fmt.split("-")[1]
        path = os.path.join(directory, f"open_clip.{ext}")
        return path, "open_clip", model, lambda: H.save_state_dict(model, path, wrap=(ext == "pt"))
    if fmt.startswith("hf"):
        model = H.build_hf(arch, seed)
        path = os.path.join(directory, "hf")
        return path, "hf", model, lambda: H.save_hf(model, path, fmt.split("-")[1])
    raise ValueError(fmt)


class _Converted:
    """Module-level cache: each (arch, format) is built, saved and converted once for both modes."""

    def __init__(self, tmp_factory):
        self.tmp_factory = tmp_factory
        self.cache = {}

    def get(self, arch: H.Arch, fmt: str, via_cli: bool = False):
        key = (arch.name, fmt, via_cli)
        if key not in self.cache:
            from ms_clip.convert import convert_weight

            directory = str(self.tmp_factory.mktemp(f"{arch.name}-{fmt}"))
            source, kind, model, save = _save(fmt, arch, directory, seed=len(self.cache) + 1)
            images, ids = H.inputs(arch)
            ref = H.reference_outputs(kind, model, images, ids)
            save()
            del model
            out = os.path.join(directory, "converted.ckpt")
            if via_cli:
                assert H.load_cli().main(["--torch_path", source, "--mindspore_path", out]) == 0
            else:
                convert_weight(source, out)
            # the source is not needed again; full-size files are hundreds of MB
            shutil.rmtree(source) if os.path.isdir(source) else os.remove(source)
            self.cache[key] = (out, ref, images, ids)
        return self.cache[key]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    return _Converted(tmp_path_factory)


def _check(converted, arch, fmt, mode, via_cli=False, isolated=False):
    ckpt, ref, images, ids = converted.get(arch, fmt, via_cli)
    ours = H.run_ours_isolated(ckpt, images, ids, mode) if isolated else H.run_ours(ckpt, images, ids)
    errors = H.max_errors(ours, ref)
    _update_report(arch.name, fmt + (" (CLI)" if via_cli else ""), mode, errors)
    print(f"{arch.name} {fmt} {mode}: {errors}")
    bad = {k: v for k, v in errors.items() if not v <= TOL}
    assert not bad, f"{arch.name} {fmt} {mode}: max abs error above {TOL}: {bad}"


FORMATS = ["openai-torchscript", "open_clip-pt", "open_clip-safetensors", "hf-safetensors", "hf-bin"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_tiny_parity(converted, fmt, ms_mode):
    _check(converted, H.TINY, fmt, ms_mode)


def test_tiny_parity_cli(converted, ms_mode):
    _check(converted, H.TINY, "openai-torchscript", ms_mode, via_cli=True)


def test_hf_config_json_is_read(tmp_path, ms_mode):
    """Heads, activation, MLP width and LN eps come from config.json for HF folders, not from OpenAI's rules."""
    from ms_clip.convert import convert_weight

    arch = H.TINY
    model = H.build_hf(arch, 7, H.hf_config(arch, num_attention_heads=8, intermediate_size=96, hidden_act="gelu",
                                            layer_norm_eps=1e-6))
    images, ids = H.inputs(arch)
    ref = H.reference_outputs("hf", model, images, ids)
    H.save_hf(model, str(tmp_path / "hf"), "safetensors")
    result = convert_weight(str(tmp_path / "hf"), str(tmp_path / "out.ckpt"))
    text = result.config.text_config
    assert (text.num_attention_heads, text.intermediate_size, text.hidden_act, text.layer_norm_eps) == (8, 96, "gelu", 1e-6)
    errors = H.max_errors(H.run_ours(result.path, images, ids), ref)
    _update_report("tiny", "hf-safetensors (8 heads, gelu)", ms_mode, errors)
    assert max(errors.values()) <= TOL, errors


def test_explicit_config_for_non_openai_heads(tmp_path):
    """open_clip files do not store head counts; a config override converts a 4-head text tower exactly."""
    import dataclasses

    import mindspore as ms

    from ms_clip.convert import convert_weight, infer_config, read_source

    ms.set_context(mode=ms.PYNATIVE_MODE)
    arch = dataclasses.replace(H.TINY, text_heads=4)
    model = H.build_open_clip(arch, 11)
    images, ids = H.inputs(arch)
    ref = H.reference_outputs("open_clip", model, images, ids)
    H.save_state_dict(model, str(tmp_path / "m.safetensors"))
    config = infer_config(read_source(str(tmp_path / "m.safetensors")))
    assert config.text_config.num_attention_heads == 2  # OpenAI's width // 64 rule
    config.text_config.num_attention_heads = 4
    result = convert_weight(str(tmp_path / "m.safetensors"), str(tmp_path / "out.ckpt"), config=config)
    errors = H.max_errors(H.run_ours(result.path, images, ids), ref)
    assert max(errors.values()) <= TOL, errors
    ms.set_context(mode=ms.GRAPH_MODE)


def test_vit_b_32_parity(converted, ms_mode):
    """Full-size ViT-B/32 in CI: an OpenAI-style TorchScript archive built from OpenAI's own model code."""
    _check(converted, H.FULL["clip_vit_b_32"], "openai-torchscript", ms_mode)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["openai-torchscript", "open_clip-safetensors", "hf-safetensors"])
@pytest.mark.parametrize("arch", list(H.FULL))
def test_full_size_parity(converted, arch, fmt):
    """All four full-size architectures; both modes inside one test so the large files can be deleted after,
    each run in its own process (see run_ours_isolated)."""
    from ms_clip.models import CLIPConfig
    from ms_clip.registry import load_config

    try:
        for mode in ("graph", "pynative"):
            _check(converted, H.FULL[arch], fmt, mode, isolated=True)
        # the inferred config is exactly the registry's architecture
        ckpt = converted.get(H.FULL[arch], fmt)[0]
        ours = CLIPConfig.from_pretrained(os.path.splitext(ckpt)[0] + ".yaml")
        reg = load_config(arch)
        assert (ours.text_config, ours.vision_config, ours.projection_dim) == (
            reg.text_config, reg.vision_config, reg.projection_dim)
    finally:
        entry = converted.cache.pop((arch, fmt, False), None)
        if entry:
            shutil.rmtree(os.path.dirname(entry[0]), ignore_errors=True)
