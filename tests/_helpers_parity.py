"""Reference CLIP models (OpenAI code, open_clip, HF transformers) saved in their real on-disk formats.

Everything is seeded random init; LayerNorm gains/biases, zero-initialised biases and logit_scale
are perturbed so that a dropped or transposed tensor cannot hide behind a trivial 1/0 value.
"""
from __future__ import annotations

import glob
import importlib.util
import os
import warnings
from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np



@dataclass(frozen=True)
class Arch:
    """The numbers that define a CLIP ViT (the union of what the three references need)."""

    name: str
    embed_dim: int
    image_size: int
    patch_size: int
    vision_width: int
    vision_layers: int
    text_width: int
    text_heads: int
    text_layers: int
    context_length: int = 77
    vocab_size: int = 49408

    @property
    def vision_heads(self) -> int:
        return self.vision_width // 64  # OpenAI / open_clip (head_width 64)


# Tiny: widths of 128 give OpenAI's width // 64 = 2 heads, so shapes alone determine the config.
TINY = Arch("tiny", embed_dim=48, image_size=32, patch_size=8, vision_width=128, vision_layers=2,
            text_width=128, text_heads=2, text_layers=2, context_length=16, vocab_size=100)
FULL = {
    "clip_vit_b_32": Arch("clip_vit_b_32", 512, 224, 32, 768, 12, 512, 8, 12),
    "clip_vit_b_16": Arch("clip_vit_b_16", 512, 224, 16, 768, 12, 512, 8, 12),
    "clip_vit_l_14": Arch("clip_vit_l_14", 768, 224, 14, 1024, 24, 768, 12, 12),
    "clip_vit_l_14_336": Arch("clip_vit_l_14_336", 768, 336, 14, 1024, 24, 768, 12, 12),
}


def _torch():
    import torch

    torch.set_num_threads(max(os.cpu_count() or 1, 1))
    return torch


def perturb(model, seed: int) -> None:
    """Make every constant-initialised tensor (LN 1/0, zero biases) random, and logit_scale != log(1/0.07)."""
    torch = _torch()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("logit_scale"):
                p.fill_(3.3)
            elif p.numel() > 1 and float(p.std()) == 0.0:
                p.add_(0.1 * torch.randn(p.shape, generator=gen))


def inputs(arch: Arch, batch: int = 2, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Images [B,3,H,W] float32 and token ids [B, L] int32 with one EOT (= vocab-1, the largest id) per row."""
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((batch, 3, arch.image_size, arch.image_size)).astype(np.float32)
    ids = np.zeros((batch, arch.context_length), np.int32)
    for row in range(batch):
        eot = arch.context_length - 1 if row == 0 else min(5 + row, arch.context_length - 1)
        ids[row, 0] = arch.vocab_size - 2  # SOT-like
        ids[row, 1:eot] = rng.integers(1, arch.vocab_size - 2, size=eot - 1)
        ids[row, eot] = arch.vocab_size - 1
    return images, ids


def _logits(torch, img, txt, scale):
    img = img / img.norm(dim=-1, keepdim=True)
    txt = txt / txt.norm(dim=-1, keepdim=True)
    return scale.exp() * img @ txt.T


def _openai_model_source():
    spec = importlib.util.find_spec("clip")
    paths = spec.submodule_search_locations if spec else []
    candidates = [os.path.join(p, "model.py") for p in paths] + glob.glob(
        os.path.join(os.path.dirname(os.__file__), "..", "**", "clip", "model.py"))
    for path in candidates:
        if os.path.isfile(path):
            module_spec = importlib.util.spec_from_file_location("_openai_clip_model", path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
            return module
    raise RuntimeError("OpenAI's clip/model.py not found (pip install clip-anytorch)")


def build_openai(arch: Arch, seed: int):
    torch = _torch()
    torch.manual_seed(seed)
    model = _openai_model_source().CLIP(arch.embed_dim, arch.image_size, arch.vision_layers, arch.vision_width,
                                        arch.patch_size, arch.context_length, arch.vocab_size, arch.text_width,
                                        arch.text_heads, arch.text_layers).eval()
    perturb(model, seed)
    return model


def build_open_clip(arch: Arch, seed: int):
    torch = _torch()
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    torch.manual_seed(seed)
    model = CLIP(arch.embed_dim,
                 CLIPVisionCfg(layers=arch.vision_layers, width=arch.vision_width, head_width=64,
                               patch_size=arch.patch_size, image_size=arch.image_size),
                 CLIPTextCfg(context_length=arch.context_length, vocab_size=arch.vocab_size, width=arch.text_width,
                             heads=arch.text_heads, layers=arch.text_layers),
                 quick_gelu=True).eval()
    perturb(model, seed)
    return model


def hf_config(arch: Arch, **text_overrides):
    from transformers import CLIPConfig

    text = dict(vocab_size=arch.vocab_size, hidden_size=arch.text_width, intermediate_size=4 * arch.text_width,
                num_hidden_layers=arch.text_layers, num_attention_heads=arch.text_heads,
                max_position_embeddings=arch.context_length, hidden_act="quick_gelu",
                eos_token_id=arch.vocab_size - 1, bos_token_id=arch.vocab_size - 2, pad_token_id=0)
    text.update(text_overrides)
    vision = dict(hidden_size=arch.vision_width, intermediate_size=4 * arch.vision_width,
                  num_hidden_layers=arch.vision_layers, num_attention_heads=arch.vision_heads,
                  image_size=arch.image_size, patch_size=arch.patch_size, hidden_act="quick_gelu")
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=arch.embed_dim)


def build_hf(arch: Arch, seed: int, config=None):
    torch = _torch()
    from transformers import CLIPModel

    torch.manual_seed(seed)
    model = CLIPModel(config or hf_config(arch)).eval()
    perturb(model, seed)
    return model


def reference_outputs(kind: str, model, images: np.ndarray, ids: np.ndarray) -> Dict[str, np.ndarray]:
    """Unnormalised image/text features and logits_per_image from a torch reference, in float32."""
    torch = _torch()
    img_t, ids_t = torch.from_numpy(images), torch.from_numpy(ids.astype(np.int64))
    with torch.no_grad():
        if kind == "hf":
            img = model.get_image_features(pixel_values=img_t)
            txt = model.get_text_features(input_ids=ids_t)
            img = getattr(img, "pooler_output", img)  # transformers 5 returns an output object
            txt = getattr(txt, "pooler_output", txt)
        else:
            img, txt = model.encode_image(img_t), model.encode_text(ids_t)
        logits = _logits(torch, img, txt, model.logit_scale)
    return {"image": img.float().numpy(), "text": txt.float().numpy(), "logits": logits.float().numpy()}


# ----------------------------------------------------------------------------- on-disk formats


def save_torchscript(model, arch: Arch, path: str, half: bool = False) -> None:
    """An archive like OpenAI's released .pt: a traced TorchScript module whose state_dict also holds
    ``input_resolution``, ``context_length`` and ``vocab_size`` tensors, optionally with fp16 weights
    (OpenAI's clip.model.convert_weights casts exactly the Linear/Conv/MHA/projection tensors)."""
    torch = _torch()
    for attr in ("context_length", "vocab_size"):
        if hasattr(model, attr):
            delattr(model, attr)
    model.register_buffer("input_resolution", torch.tensor(arch.image_size))
    model.register_buffer("context_length", torch.tensor(arch.context_length))
    model.register_buffer("vocab_size", torch.tensor(arch.vocab_size))
    images, ids = inputs(arch, batch=1)
    img_t, ids_t = torch.from_numpy(images), torch.from_numpy(ids.astype(np.int64))
    example = {"forward": (img_t, ids_t), "encode_image": (img_t,), "encode_text": (ids_t,)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace_module(model, example, check_trace=False)
        if half:
            # The traced module shares the Parameter objects, so casting them in place stores fp16 tensors
            # (fp16 matmuls need not run on CPU: the archive is only read here, never executed).
            _openai_model_source().convert_weights(model)
        torch.jit.save(traced, path)


def save_state_dict(model, path: str, wrap: bool = False) -> None:
    """open_clip's format: a plain state dict (.pt/.bin via torch.save, .safetensors via safetensors)."""
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if path.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file(state, path)
    else:
        torch = _torch()
        if wrap:  # what open_clip's training loop writes: DDP 'module.' prefix inside {'state_dict': ...}
            state = {"epoch": 3, "name": "test", "state_dict": {"module." + k: v for k, v in state.items()}}
        torch.save(state, path)


def save_hf(model, directory: str, fmt: str) -> None:
    """An HF CLIPModel folder: save_pretrained (model.safetensors), or the older pytorch_model.bin layout."""
    if fmt == "safetensors":
        model.save_pretrained(directory)
    else:
        torch = _torch()
        os.makedirs(directory, exist_ok=True)
        model.config.save_pretrained(directory)
        torch.save(model.state_dict(), os.path.join(directory, "pytorch_model.bin"))


# ----------------------------------------------------------------------------- ours


def load_cli():
    """convert/convert_weight.py as a module (it is a script, not part of the package)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "convert", "convert_weight.py")
    spec = importlib.util.spec_from_file_location("_convert_weight_cli", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_ours(ckpt_path: str, images: np.ndarray, ids: np.ndarray) -> Dict[str, np.ndarray]:
    """Load the converted checkpoint with CLIPModel.from_pretrained and run it as one Cell (so GRAPH_MODE
    compiles the feature getters and construct, not just construct)."""
    import mindspore as ms
    from mindspore import Tensor, nn

    from ms_clip.models import CLIPModel, clip_logits

    class Outputs(nn.Cell):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def construct(self, image, text):
            logits, _ = clip_logits(*self.model(image, text))
            return self.model.get_image_features(image), self.model.get_text_features(text), logits

    model = CLIPModel.from_pretrained(ckpt_path)
    model.set_train(False)
    img, txt, logits = Outputs(model)(Tensor(images), Tensor(ids, ms.int32))
    return {"image": img.asnumpy(), "text": txt.asnumpy(), "logits": logits.asnumpy()}


def run_ours_isolated(ckpt_path: str, images: np.ndarray, ids: np.ndarray, mode: str) -> Dict[str, np.ndarray]:
    """run_ours in a fresh process: compiled full-size graphs stay cached for the life of a process,
    and a session running all four architectures would otherwise exceed the machine's 24 GB."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        np.savez(os.path.join(tmp, "in.npz"), images=images, ids=ids)
        code = (f"import sys, numpy as np, mindspore as ms; sys.path.insert(0, {os.path.dirname(__file__)!r})\n"
                f"import _helpers_parity as H\n"
                f"ms.set_context(mode=ms.{'GRAPH' if mode == 'graph' else 'PYNATIVE'}_MODE, device_target='CPU')\n"
                f"d = np.load({os.path.join(tmp, 'in.npz')!r})\n"
                f"np.savez({os.path.join(tmp, 'out.npz')!r}, **H.run_ours({ckpt_path!r}, d['images'], d['ids']))\n")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env={**os.environ, "GLOG_v": "3"})
        assert proc.returncode == 0, proc.stderr[-3000:]
        with np.load(os.path.join(tmp, "out.npz")) as out:
            return {k: out[k] for k in out.files}


def max_errors(ours: Dict[str, np.ndarray], ref: Dict[str, np.ndarray]) -> Dict[str, float]:
    out = {}
    for key in ("image", "text", "logits"):
        assert ours[key].shape == ref[key].shape, f"{key}: ours {ours[key].shape} vs reference {ref[key].shape}"
        out[key] = float(np.max(np.abs(ours[key].astype(np.float64) - ref[key].astype(np.float64))))
    return out
