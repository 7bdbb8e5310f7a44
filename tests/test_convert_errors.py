"""Every way a conversion must fail (naming what is wrong), dtype handling, and the CLI's behaviour."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

import _helpers_parity as H
from ms_clip.convert import ConvertError, convert_weight, read_source

torch = pytest.importorskip("torch")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = os.path.join(REPO, "convert", "convert_weight.py")


@pytest.fixture(scope="module")
def tiny_state():
    """A tiny open_clip state dict (torch tensors, OpenAI names)."""
    return {k: v.detach().clone() for k, v in H.build_open_clip(H.TINY, 5).state_dict().items()}


def _save(state, path):
    torch.save(state, path)
    return str(path)


def test_unused_source_key_is_named(tmp_path, tiny_state):
    src = _save({**tiny_state, "visual.extra_head.weight": torch.zeros(3)}, tmp_path / "m.pt")
    with pytest.raises(ConvertError, match=r"not used by the model: \['visual.extra_head.weight'\]"):
        convert_weight(src, str(tmp_path / "out.ckpt"))
    assert not os.path.exists(tmp_path / "out.ckpt") and not os.path.exists(tmp_path / "out.yaml")


def test_missing_parameter_is_named(tmp_path, tiny_state):
    state = dict(tiny_state)
    del state["transformer.resblocks.1.attn.out_proj.bias"]
    with pytest.raises(ConvertError, match=r"not in .*\['transformer.resblocks.1.attn.out_proj.bias'\]"):
        convert_weight(_save(state, tmp_path / "m.pt"), str(tmp_path / "out.ckpt"))


def test_shape_mismatch_is_named(tmp_path, tiny_state):
    state = {**tiny_state, "visual.ln_post.weight": torch.ones(100)}
    with pytest.raises(ConvertError, match=r"visual.ln_post.weight: .* has \(100,\), model expects \(128,\)"):
        convert_weight(_save(state, tmp_path / "m.pt"), str(tmp_path / "out.ckpt"))


def test_not_a_vit_checkpoint(tmp_path, tiny_state):
    state = {k: v for k, v in tiny_state.items() if k != "visual.conv1.weight"}
    with pytest.raises(ConvertError, match=r"not a CLIP ViT checkpoint: missing 'visual.conv1.weight'"):
        convert_weight(_save(state, tmp_path / "m.pt"), str(tmp_path / "out.ckpt"))


@pytest.mark.parametrize("name", ["m.pt", "m.safetensors", "m.ckpt"])
def test_corrupt_files(tmp_path, tiny_state, name):
    path = tmp_path / name
    if name.endswith(".pt"):
        _save(tiny_state, path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])  # a truncated download
    else:
        path.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ConvertError, match=str(path).replace(".", r"\.")):
        convert_weight(str(path), str(tmp_path / "out.ckpt"))


def test_unknown_format_and_bad_folder(tmp_path):
    (tmp_path / "weights.npz").write_bytes(b"x")
    with pytest.raises(ConvertError, match="unknown source format"):
        convert_weight(str(tmp_path / "weights.npz"), str(tmp_path / "out.ckpt"))
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("x")
    with pytest.raises(ConvertError, match=r"Hugging Face CLIPModel or ChineseCLIPModel folder .*found \['notes.txt'\]"):
        convert_weight(str(tmp_path / "folder"), str(tmp_path / "out.ckpt"))
    with pytest.raises(ConvertError, match="source not found"):
        convert_weight(str(tmp_path / "nope.pt"), str(tmp_path / "out.ckpt"))


class _Evil:
    """A pickle payload that would create a file if unpickled with full pickle."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_code_is_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    src = tmp_path / "evil.pt"
    torch.save({"visual.conv1.weight": torch.zeros(1), "payload": _Evil(str(marker))}, src)
    assert not marker.exists()
    with pytest.raises(ConvertError, match=r"refused to unpickle the global 'io.open'"):
        convert_weight(str(src), str(tmp_path / "out.ckpt"))
    assert not marker.exists()


def test_fp16_archive_becomes_fp32_or_stays_fp16(tmp_path):
    """OpenAI's released archives hold fp16 weights (clip.model.convert_weights); default output is fp32."""
    import mindspore as ms

    model = H.build_openai(H.TINY, 3)
    H.save_torchscript(model, H.TINY, str(tmp_path / "ViT.pt"), half=True)
    expected = {k: v.float().numpy() for k, v in torch.jit.load(str(tmp_path / "ViT.pt")).state_dict().items()}

    res = convert_weight(str(tmp_path / "ViT.pt"), str(tmp_path / "fp32.ckpt"))
    assert res.source_dtypes.get("float16", 0) > 20 and res.source_dtypes.get("float32", 0) > 0
    assert res.saved_dtypes == {"float32": res.num_tensors}
    saved = ms.load_checkpoint(res.path)
    assert {p.dtype for p in saved.values()} == {ms.float32}
    for name, value in saved.items():  # values are exactly the fp16 numbers
        np.testing.assert_array_equal(value.asnumpy(), expected[name], err_msg=name)

    kept = convert_weight(str(tmp_path / "ViT.pt"), str(tmp_path / "fp16.ckpt"), keep_dtype=True)
    assert kept.saved_dtypes == {"float16": kept.source_dtypes["float16"], "float32": kept.source_dtypes["float32"]}
    assert ms.load_checkpoint(kept.path)["visual.conv1.weight"].dtype == ms.float16
    assert ms.load_checkpoint(kept.path)["ln_final.weight"].dtype == ms.float32  # OpenAI keeps LN in fp32

    from ms_clip.models import CLIPModel

    loaded = CLIPModel.from_pretrained(kept.path)  # fp16 tensors load into the fp32 parameters
    np.testing.assert_array_equal(loaded.visual.conv1.weight.asnumpy(), expected["visual.conv1.weight"])


def test_bf16_safetensors_without_torch_reader(tmp_path, tiny_state):
    import mindspore as ms
    from safetensors.torch import save_file

    save_file({k: v.to(torch.bfloat16) for k, v in tiny_state.items()}, str(tmp_path / "m.safetensors"))
    expected = {k: v.to(torch.bfloat16).float().numpy() for k, v in tiny_state.items()}
    source = read_source(str(tmp_path / "m.safetensors"))
    assert set(source.dtypes.values()) == {"bfloat16"}
    for name, arr in source.tensors.items():
        np.testing.assert_array_equal(arr, expected[name], err_msg=name)
    kept = convert_weight(str(tmp_path / "m.safetensors"), str(tmp_path / "bf16.ckpt"), keep_dtype=True)
    assert kept.saved_dtypes == {"bfloat16": kept.num_tensors}
    assert ms.load_checkpoint(kept.path)["ln_final.weight"].dtype == ms.bfloat16
    from ms_clip.models import CLIPModel

    loaded = CLIPModel.from_pretrained(kept.path)
    np.testing.assert_array_equal(loaded.ln_final.weight.asnumpy(), expected["ln_final.weight"])


def test_mindformers_ckpt_names(tmp_path, tiny_state):
    """MindFormers' convert_weight.py wrote gamma/beta/embedding_table/in_proj.weight; we read them back."""
    from ms_clip.weights import save_weights

    renamed = {}
    for name, value in tiny_state.items():
        if name == "attn_mask":
            continue
        new = name.replace("in_proj_weight", "in_proj.weight").replace("in_proj_bias", "in_proj.bias")
        if ".ln_" in "." + new or new.startswith("ln_"):
            new = new.replace(".weight", ".gamma").replace(".bias", ".beta")
        new = new.replace("token_embedding.weight", "token_embedding.embedding_table")
        renamed[new] = value.numpy()
    assert "visual.ln_pre.gamma" in renamed and "transformer.resblocks.0.attn.in_proj.weight" in renamed
    save_weights(renamed, str(tmp_path / "mindformers.ckpt"))
    res = convert_weight(str(tmp_path / "mindformers.ckpt"), str(tmp_path / "out.ckpt"))
    from ms_clip.weights import read_checkpoint

    ours = read_checkpoint(res.path)
    assert set(ours) == {k for k in tiny_state if k != "attn_mask"}
    for name, arr in ours.items():
        np.testing.assert_array_equal(arr, tiny_state[name].numpy(), err_msg=name)


def test_old_hf_position_ids_are_dropped(tmp_path):
    from safetensors.torch import load_file, save_file

    model = H.build_hf(H.TINY, 2)
    H.save_hf(model, str(tmp_path / "hf"), "safetensors")
    weights = tmp_path / "hf" / "model.safetensors"
    state = load_file(str(weights))
    state["text_model.embeddings.position_ids"] = torch.arange(H.TINY.context_length)[None]
    state["vision_model.embeddings.position_ids"] = torch.arange(17)[None]
    save_file(state, str(weights))
    res = convert_weight(str(tmp_path / "hf"), str(tmp_path / "out.ckpt"))
    assert res.dropped_keys == ["text_model.embeddings.position_ids", "vision_model.embeddings.position_ids"]
    # an HF key we do not know is an error, not silently dropped
    state["vision_model.head.weight"] = torch.zeros(2)
    save_file(state, str(weights))
    with pytest.raises(ConvertError, match=r"not part of an HF CLIPModel: \['vision_model.head.weight'\]"):
        convert_weight(str(tmp_path / "hf"), str(tmp_path / "out2.ckpt"))


def _run_cli(*args):
    env = {**os.environ, "GLOG_v": "3"}
    return subprocess.run([sys.executable, CLI, *args], capture_output=True, text=True, env=env, timeout=300)


def test_cli_prints_sha256_and_writes_yaml(tmp_path, tiny_state):
    src = _save(tiny_state, tmp_path / "ViT.pt")
    proc = _run_cli("--torch_path", src, "--mindspore_path", str(tmp_path / "clip_tiny.ckpt"))
    assert proc.returncode == 0, proc.stderr
    digest = hashlib.sha256((tmp_path / "clip_tiny.ckpt").read_bytes()).hexdigest()
    assert f"sha256 {digest}" in proc.stdout
    assert (tmp_path / "clip_tiny.yaml").is_file()


def test_cli_error_is_one_clean_line(tmp_path, tiny_state):
    src = _save({**tiny_state, "bogus": torch.zeros(1)}, tmp_path / "m.pt")
    proc = _run_cli("--torch_path", src, "--mindspore_path", str(tmp_path / "out.ckpt"))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "error:" in proc.stderr and "['bogus']" in proc.stderr


def test_safetensors_conversion_needs_no_torch(tmp_path, tiny_state):
    """ms_clip (hub, convert) imports without torch, and .safetensors sources convert without it."""
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tiny_state.items()}, str(tmp_path / "m.safetensors"))
    code = ("import sys; sys.modules['torch'] = None\n"  # any `import torch` now raises ImportError
            "import ms_clip, ms_clip.hub, ms_clip.convert\n"
            f"r = ms_clip.convert.convert_weight({str(tmp_path / 'm.safetensors')!r}, {str(tmp_path / 'o.ckpt')!r})\n"
            "print(r.num_tensors)\n"
            f"ms_clip.convert.convert_weight({str(tmp_path / 'x.pt')!r}, {str(tmp_path / 'p.ckpt')!r})\n")
    (tmp_path / "x.pt").write_bytes(b"not used")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "GLOG_v": "3"})
    assert proc.stdout.strip() == str(len(tiny_state) - ("attn_mask" in tiny_state)), proc.stderr
    assert "legacy (PyTorch < 1.6, non-zip) torch.save file, reading it needs torch" in proc.stderr  # zip .pt files do not
