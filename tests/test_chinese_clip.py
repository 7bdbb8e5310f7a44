"""Chinese-CLIP: parity with cn_clip and HF ChineseCLIPModel through our converter, tokenizer identity with
cn_clip.clip.tokenize, cn_clip's preprocessing pixel for pixel, the weights table and the converter's strictness.

References: ``cn_clip`` 1.6.0 (Chinese-CLIP's own package; seeded random models saved in its real checkpoint
format: ``torch.save({"epoch", "step", "name", "state_dict": {"module.<key>": fp16}})``, with the BERT pooler
that released files carry) and HF ``transformers.ChineseCLIPModel`` (``save_pretrained`` folders).
"""
from __future__ import annotations

import json
import os
import sys
import unicodedata

import numpy as np
import pytest

import _helpers_parity as H
from _helpers_http import serve_directory

torch = pytest.importorskip("torch")
cn_clip_utils = pytest.importorskip("cn_clip.clip.utils")

import mindspore as ms  # noqa: E402

from ms_clip import hub  # noqa: E402
from ms_clip.convert import ConvertError, convert_weight, read_source  # noqa: E402
from ms_clip.models import ChineseCLIPConfig, ChineseCLIPModel, CLIPModel, ConfigError  # noqa: E402
from ms_clip.registry import load_config  # noqa: E402

TOL = 1e-4
TEXTS = ["一只猫", "两只狗在草地上奔跑。", "", "A red car 停在路边, next to 3 bicycles!",
         "北京的秋天天高云淡，适合登山；" * 6, "Ἀθῆναι ΟΔΟΣ naïve café ＡＢＣ１２３ 😀"]


# ----------------------------------------------------------------------------- reference models


def _seeded_cn_clip(struct_or_info, seed: int):
    """A cn_clip CLIP with seeded random weights, float32 on CPU, constant tensors perturbed."""
    from cn_clip.clip.model import CLIP, convert_weights

    torch.manual_seed(seed)
    if isinstance(struct_or_info, str):
        model = cn_clip_utils.create_model(struct_or_info)  # converts to fp16, as cn_clip does
    else:
        model = CLIP(**struct_or_info)
        convert_weights(model)
    model = model.float().eval()
    H.perturb(model, seed)
    return model


def _save_cn_clip(model, path: str, seed: int) -> None:
    """cn_clip's released checkpoint format: fp16, DDP 'module.' prefix, a BERT pooler, training metadata.

    The float32 model is set to the fp16-rounded values so that it is the exact reference of the file."""
    state = {k: v.detach().half() for k, v in model.state_dict().items()}
    model.load_state_dict({k: v.float() for k, v in state.items()})
    width = model.bert_config.hidden_size
    gen = torch.Generator().manual_seed(seed)
    state["bert.pooler.dense.weight"] = torch.randn(width, width, generator=gen).half()
    state["bert.pooler.dense.bias"] = torch.randn(width, generator=gen).half()
    torch.save({"epoch": 3, "step": 1234, "name": "seeded-test",
                "state_dict": {"module." + k: v for k, v in state.items()}}, path)


# Matches ms_clip/model_configs/chinese_clip_tiny.yaml (vision heads 64 / 16 = 4; BERT heads 4).
TINY_INFO = dict(embed_dim=64, image_resolution=32, vision_layers=2, vision_width=64, vision_patch_size=8,
                 vision_head_width=16, vocab_size=21128, text_attention_probs_dropout_prob=0.1,
                 text_hidden_act="gelu", text_hidden_dropout_prob=0.1, text_hidden_size=64,
                 text_initializer_range=0.02, text_intermediate_size=256, text_max_position_embeddings=64,
                 text_num_attention_heads=4, text_num_hidden_layers=2, text_type_vocab_size=2)


def _cn_reference(model, images: np.ndarray, ids: np.ndarray):
    with torch.no_grad():
        return (model.encode_image(torch.from_numpy(images)).numpy(),
                model.encode_text(torch.from_numpy(ids.astype(np.int64))).numpy())


def _hf_features(output):
    # transformers 5 returns a model output whose pooler_output holds the projected features; 4.x a tensor.
    return getattr(output, "pooler_output", output).detach().numpy()


def _hf_tiny(seed: int):
    from transformers import ChineseCLIPConfig as HFConfig, ChineseCLIPModel as HFModel

    torch.manual_seed(seed)
    config = HFConfig(
        text_config=dict(vocab_size=21128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=48, max_position_embeddings=64),
        vision_config=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8),
        projection_dim=24)
    model = HFModel(config).eval()
    H.perturb(model, seed)
    return model


def _hf_reference(model, images: np.ndarray, ids: np.ndarray):
    ids_t = torch.from_numpy(ids.astype(np.int64))
    with torch.no_grad():
        img = _hf_features(model.get_image_features(pixel_values=torch.from_numpy(images)))
        txt = _hf_features(model.get_text_features(input_ids=ids_t, attention_mask=(ids_t != 0).long(),
                                                   token_type_ids=torch.zeros_like(ids_t)))
    return img, txt


def _inputs(image_size: int, n_images: int = 2):
    from cn_clip.clip import tokenize

    rng = np.random.default_rng(0)
    images = rng.standard_normal((n_images, 3, image_size, image_size)).astype(np.float32)
    return images, tokenize(TEXTS).numpy().astype(np.int32)


def _ours(ckpt: str, images: np.ndarray, ids: np.ndarray):
    model = ChineseCLIPModel.from_pretrained(ckpt)
    model.set_train(False)
    img = model.get_image_features(ms.Tensor(images)).asnumpy()
    txt = model.get_text_features(ms.Tensor(ids)).asnumpy()
    return model, img, txt


class _Sources:
    """Each reference is built, saved in its real format and converted once per module, for both modes."""

    def __init__(self, tmp_factory):
        self.tmp_factory = tmp_factory
        self.cache = {}

    def get(self, key: str):
        if key in self.cache:
            return self.cache[key]
        directory = str(self.tmp_factory.mktemp(key.replace("@", "_")))
        if key.startswith("hf"):
            model = _hf_tiny(seed=7)
            images, ids = _inputs(32)
            source = os.path.join(directory, "hf")
            model.save_pretrained(source)
            ref = _hf_reference(model, images, ids)
        else:
            info = TINY_INFO if key == "tiny" else key
            model = _seeded_cn_clip(info, seed=3)
            images, ids = _inputs(model.visual.input_resolution)
            source = os.path.join(directory, "cn_clip.pt")
            _save_cn_clip(model, source, seed=3)
            ref = _cn_reference(model, images, ids)
        del model
        # The tiny model's 16-wide vision heads are not in the tensors: it converts against its registry config.
        result = convert_weight(source, os.path.join(directory, "converted.ckpt"),
                                config="chinese_clip_tiny" if key == "tiny" else None)
        self.cache[key] = (result, ref, images, ids)
        return self.cache[key]


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return _Sources(tmp_path_factory)


def _check_parity(sources, key: str, mode: str):
    result, (ref_img, ref_txt), images, ids = sources.get(key)
    model, img, txt = _ours(result.path, images, ids)
    errors = {"image": float(np.abs(img - ref_img).max()), "text": float(np.abs(txt - ref_txt).max())}
    sys.__stdout__.write(f"\n[chinese-clip parity] {key} | {result.source_format} | {mode}: "
                         f"image {errors['image']:.3g}, text {errors['text']:.3g}\n")
    assert errors["image"] <= TOL and errors["text"] <= TOL, errors
    # construct: L2-normalised embeddings and exp(logit_scale), as CLIPModel
    image_embeds, text_embeds, scale = model(ms.Tensor(images), ms.Tensor(ids))
    np.testing.assert_allclose(np.linalg.norm(text_embeds.asnumpy(), axis=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(image_embeds.asnumpy(), ref_img / np.linalg.norm(ref_img, axis=-1, keepdims=True),
                               atol=TOL)
    return result


# ----------------------------------------------------------------------------- parity


def test_parity_cn_clip_rbt3_vit_b_16(sources, ms_mode):
    """CI: Chinese-CLIP's RBT3 text tower + ViT-B/16, its real checkpoint format, both modes."""
    result = _check_parity(sources, "ViT-B-16@RBT3-chinese", ms_mode)
    assert result.source_format == "cn-clip"
    assert result.dropped_keys == ["bert.pooler.dense.bias", "bert.pooler.dense.weight"]
    assert result.source_dtypes == {"float16": result.num_tensors}  # as released (the dropped pooler too)
    cfg = result.config
    assert isinstance(cfg, ChineseCLIPConfig)
    assert (cfg.text_config.num_hidden_layers, cfg.text_config.num_attention_heads, cfg.vision_config.patch_size,
            cfg.projection_dim, cfg.context_length) == (3, 12, 16, 512, 52)


def test_parity_hf_chinese_clip(sources, ms_mode):
    """HF ChineseCLIPModel (save_pretrained folder): heads and activations come from config.json."""
    result = _check_parity(sources, "hf-tiny", ms_mode)
    assert result.source_format == "hf-chinese-clip"
    assert result.config.text_config.num_attention_heads == 4  # config.json, not hidden / 64
    assert result.config.vision_config.num_attention_heads == 4


def test_parity_cn_clip_tiny_with_registry_config(sources):
    """A tower whose head width is not 64 (like ViT-H's 80) needs its config: convert against a registry name."""
    result = _check_parity(sources, "tiny", "graph")
    assert result.config.architecture() == load_config("chinese_clip_tiny").architecture()


@pytest.mark.slow
@pytest.mark.parametrize("struct", ["ViT-L-14@RoBERTa-wwm-ext-base-chinese", "ViT-L-14-336@RoBERTa-wwm-ext-base-chinese",
                                    "ViT-H-14@RoBERTa-wwm-ext-large-chinese"])
def test_parity_large_towers(sources, struct):
    """The released architectures' large towers (RoBERTa-wwm-ext-base/large, ViT-L/14, L/14@336, H/14)."""
    ms.set_context(mode=ms.GRAPH_MODE)
    result = _check_parity(sources, struct, "graph")
    registry_name = {"ViT-L-14@": "chinese_clip_vit_l_14", "ViT-L-14-336@": "chinese_clip_vit_l_14_336",
                     "ViT-H-14@": "chinese_clip_vit_h_14"}[struct.split("@")[0] + "@"]
    assert result.config.architecture() == load_config(registry_name).architecture()
    sources.cache.pop(struct)  # full-size models are large; free them
