"""Generate ms_clip's model zoo from open_clip's own tables (open_clip_torch 3.3.0).

Reads ``open_clip.list_pretrained()``, ``open_clip.get_pretrained_cfg(arch, tag)`` and
``open_clip/model_configs/*.json`` and writes, as plain data:

* ``ms_clip/pretrained_table.py``: architecture name x tag -> where the weights come from and the
  preprocessing they were trained with; open_clip's names -> ours; the architectures we do not support
  and why.
* ``ms_clip/model_configs/<name>.yaml`` for every supported architecture (existing files are checked,
  never rewritten).

Run it again after an open_clip upgrade and review the diff: ``python scripts/gen_pretrained_table.py``.

Naming: ``clip_`` + open_clip's name in lower case with ``-`` -> ``_`` (``ViT-H-14`` -> ``clip_vit_h_14``,
``ViT-bigG-14`` -> ``clip_vit_bigg_14``, ``RN50x4`` -> ``clip_rn50x4``). open_clip's activation suffix is
kept, except for the architectures OpenAI released (RN50..RN50x64, ViT-B/32, B/16, L/14, L/14@336):
there the bare name has always meant OpenAI's model (QuickGELU, in MindFormers and ms_clip alike), so
the GELU variant is ``<name>_gelu`` and ``<name>_quickgelu`` is an alias of the bare name. A tag lives
under the architecture its weights were trained with: open_clip lists e.g. ViT-B-32/openai although the
weights need QuickGELU (its pretrained cfg says ``quick_gelu: True``), so ours lists it under
``clip_vit_b_32`` (QuickGELU) only.
"""
from __future__ import annotations

import json
import os
import pprint
import sys
from typing import Any, Dict, List, Optional, Tuple

import open_clip

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_DIR = os.path.join(REPO, "ms_clip", "model_configs")
TABLE = os.path.join(REPO, "ms_clip", "pretrained_table.py")
OPEN_CLIP_CONFIGS = os.path.join(os.path.dirname(open_clip.__file__), "model_configs")

# What our towers compute exactly: open_clip's plain ViT (class token, ln_pre, pre-LN blocks, ln_post on
# the class token, projection) or ModifiedResNet, and its standard causal text transformer with EOT pooling.
_VISION_KEYS = {"image_size", "layers", "width", "patch_size", "head_width", "mlp_ratio"}
_TEXT_KEYS = {"context_length", "vocab_size", "width", "heads", "layers"}
_TOP_KEYS = {"embed_dim", "vision_cfg", "text_cfg", "quick_gelu"}
_RESIZE_MODES = {"shortest": "crop", "squash": "squash"}  # open_clip -> ms_clip.processor
_WHY = {
    "timm_model_name": "timm vision tower", "hf_model_name": "Hugging Face text tower",
    "attentional_pool": "attentional pooling", "no_ln_pre": "no ln_pre", "pool_type": "pooling other than the "
    "class/EOT token", "final_ln_after_pool": "final LayerNorm after pooling", "no_causal_mask": "text tower "
    "without causal mask", "hf_tokenizer_name": "non-CLIP tokenizer", "multimodal_cfg": "CoCa decoder",
    "custom_text": "custom text tower", "init_logit_bias": "SigLIP logit bias", "eos_id": "EOS pooling id",
    "embed_cls": "text CLS embedding", "proj_bias": "projection bias", "norm_kwargs": "LayerNorm options",
    "act_kwargs": "activation options", "tokenizer_kwargs": "tokenizer options", "output_tokens": "token outputs",
    "ls_init_value": "LayerScale", "patch_dropout": "patch dropout", "proj_type": "projection type",
}


def base_name(arch: str) -> str:
    return arch[:-len("-quickgelu")] if arch.endswith("-quickgelu") else arch


def open_clip_config(arch: str) -> Dict[str, Any]:
    with open(os.path.join(OPEN_CLIP_CONFIGS, arch + ".json"), encoding="utf-8") as f:
        return json.load(f)


def unsupported_reason(cfg: Dict[str, Any]) -> Optional[str]:
    extra = sorted((set(cfg) - _TOP_KEYS) | (set(cfg.get("vision_cfg", {})) - _VISION_KEYS)
                   | (set(cfg.get("text_cfg", {})) - _TEXT_KEYS))
    if not extra:
        return None
    return ", ".join(dict.fromkeys(_WHY.get(k, k) for k in extra))


def our_name(base: str, act: str, openai_bases: set) -> str:
    name = "clip_" + base.lower().replace("-", "_")
    if base in openai_bases:
        return name if act == "quick_gelu" else name + "_gelu"
    return name if act == "gelu" else name + "_quickgelu"


def model_config(cfg: Dict[str, Any], act: str) -> Dict[str, Any]:
    v, t = cfg["vision_cfg"], cfg["text_cfg"]
    text = {"vocab_size": t["vocab_size"], "hidden_size": t["width"], "intermediate_size": 4 * t["width"],
            "num_hidden_layers": t["layers"], "num_attention_heads": t["heads"],
            "max_position_embeddings": t["context_length"], "hidden_act": act}
    if isinstance(v["layers"], (list, tuple)):  # ModifiedResNet; heads as open_clip: width * 32 // head_width(64)
        vision = {"type": "CLIPResNetVisionConfig", "layers": list(v["layers"]), "width": v["width"],
                  "num_attention_heads": v["width"] * 32 // v.get("head_width", 64), "image_size": v["image_size"]}
    else:
        width = v["width"]
        vision = {"hidden_size": width, "intermediate_size": int(width * v.get("mlp_ratio", 4.0)),
                  "num_hidden_layers": v["layers"], "num_attention_heads": width // v.get("head_width", 64),
                  "image_size": v["image_size"], "patch_size": v["patch_size"], "hidden_act": act}
    return {"text_config": text, "vision_config": vision, "projection_dim": cfg["embed_dim"],
            "logit_scale_init_value": 2.6592}


def _yaml(cfg: Dict[str, Any], title: str) -> str:
    lines = [f"# {title} — architecture only (weights: ms_clip/pretrained_table.py). File stem = registry name.",
             "# Generated by scripts/gen_pretrained_table.py from open_clip's model_configs."]
    for section in ("text_config", "vision_config"):
        lines.append(f"{section}:")
        for key, value in cfg[section].items():
            lines.append(f"  {key}: {json.dumps(value) if isinstance(value, list) else value}")
    lines += [f"projection_dim: {cfg['projection_dim']}", f"logit_scale_init_value: {cfg['logit_scale_init_value']}"]
    return "\n".join(lines) + "\n"


def _same_architecture(path: str, cfg: Dict[str, Any]) -> bool:
    import yaml

    with open(path, encoding="utf-8") as f:
        have = yaml.safe_load(f)
    return all(have[s].get(k) == v for s in ("text_config", "vision_config") for k, v in cfg[s].items()
               if k != "type") and have["projection_dim"] == cfg["projection_dim"]


def source_of(pcfg: Dict[str, Any]) -> Dict[str, str]:
    url = pcfg.get("url") or ""
    if "openaipublic" in url:  # OpenAI's own file: the URL's path component is its sha256
        return {"url": url, "sha256": url.rstrip("/").split("/")[-2]}
    hub = pcfg.get("hf_hub") or ""
    if not hub:
        raise SystemExit(f"no download source in {pcfg}")
    repo, filename = os.path.split(hub.rstrip("/")) if not hub.endswith("/") else (hub.rstrip("/"), "")
    return {"hf_hub": repo, "filename": filename} if filename else {"hf_hub": repo}


def main() -> int:
    pairs: List[Tuple[str, str]] = open_clip.list_pretrained()
    openai_bases = {base_name(a) for a, t in pairs if t == "openai"}
    zoo: Dict[str, Dict[str, Any]] = {}
    open_clip_names: Dict[str, str] = {}
    unsupported: Dict[str, str] = {}
    configs: Dict[str, Tuple[Dict[str, Any], str]] = {}
    for arch, tag in pairs:
        base = base_name(arch)
        cfg = open_clip_config(arch)
        reason = unsupported_reason(cfg)
        if reason:
            unsupported.setdefault(arch, reason)
            continue
        for act in ("quick_gelu", "gelu"):  # both variants of every supported architecture exist
            name = our_name(base, act, openai_bases)
            configs.setdefault(name, (model_config(cfg, act), f"open_clip {base}{'-quickgelu' if act == 'quick_gelu' else ''}"))
        open_clip_names[arch] = our_name(base, "quick_gelu" if arch.endswith("-quickgelu") or cfg.get("quick_gelu")
                                         else "gelu", openai_bases)
        pcfg = open_clip.get_pretrained_cfg(arch, tag)
        act = "quick_gelu" if (arch.endswith("-quickgelu") or pcfg.get("quick_gelu")) else "gelu"
        name = our_name(base, act, openai_bases)
        if tag in zoo.get(name, {}):
            continue  # listed under both ViT-X and ViT-X-quickgelu: the same file
        if pcfg.get("interpolation", "bicubic") != "bicubic" or pcfg.get("resize_mode", "shortest") not in _RESIZE_MODES:
            unsupported.setdefault(f"{arch}/{tag}", f"preprocessing {pcfg.get('interpolation')}/{pcfg.get('resize_mode')}")
            continue
        zoo.setdefault(name, {})[tag] = {
            **source_of(pcfg),
            "preprocess": {"mean": list(pcfg["mean"]), "std": list(pcfg["std"]), "interpolation": "bicubic",
                           "resize_mode": _RESIZE_MODES[pcfg.get("resize_mode", "shortest")]},
            "open_clip": f"{arch}/{tag}",
        }
    defaults = {name: ("openai" if "openai" in tags else next(iter(tags))) for name, tags in zoo.items()}
    aliases = {"clip_" + b.lower().replace("-", "_") + "_quickgelu": "clip_" + b.lower().replace("-", "_")
               for b in sorted(openai_bases) if not unsupported_reason(open_clip_config(b))}

    written = []
    for name, (cfg, title) in sorted(configs.items()):
        path = os.path.join(CONFIG_DIR, name + ".yaml")
        if os.path.isfile(path):
            if not _same_architecture(path, cfg):
                raise SystemExit(f"{path} exists with another architecture than open_clip's {title}")
            continue
        with open(path, "w", encoding="utf-8") as f:
            f.write(_yaml(cfg, title))
        written.append(name)

    body = [
        '"""The model zoo: architecture name x pretrained tag -> weights source and preprocessing (plain data).',
        "",
        "GENERATED by scripts/gen_pretrained_table.py from open_clip_torch "
        f"{open_clip.__version__}'s tables; do not edit by hand.",
        "",
        "ZOO[name][tag]: ``url`` + ``sha256`` (OpenAI's files: the URL path carries the sha256) or ``hf_hub`` (a",
        "Hugging Face repository: ``open_clip_model.safetensors``, else ``open_clip_pytorch_model.bin``, verified",
        "against the LFS sha256 and size the Hub reports) or ``hf_hub`` + ``filename``; ``preprocess``: the",
        "mean/std, interpolation and resize mode the weights were trained with; ``open_clip``: open_clip's",
        "``arch/tag``. DEFAULT_TAG: the weights a bare name loads (OpenAI's where they exist). OPEN_CLIP_NAMES:",
        "open_clip's architecture name -> ours. ALIASES: other spellings -> registry names. UNSUPPORTED:",
        "open_clip architectures (and tags) we cannot compute exactly, with the reason.",
        '"""',
        "",
        "ZOO = " + pprint.pformat(zoo, width=118, sort_dicts=False),
        "",
        "DEFAULT_TAG = " + pprint.pformat(defaults, width=118, sort_dicts=False),
        "",
        "OPEN_CLIP_NAMES = " + pprint.pformat(open_clip_names, width=118, sort_dicts=False),
        "",
        "ALIASES = " + pprint.pformat(aliases, width=118, sort_dicts=False),
        "",
        "UNSUPPORTED = " + pprint.pformat(unsupported, width=118, sort_dicts=False),
        "",
    ]
    with open(TABLE, "w", encoding="utf-8") as f:
        f.write("\n".join(body))
    print(f"{sum(len(t) for t in zoo.values())} weights over {len(zoo)} architectures "
          f"({len(configs)} architectures in all); new configs: {written}; unsupported: {len(unsupported)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
