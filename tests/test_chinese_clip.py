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

    def get(self, key: str, write_ckpt: bool = True):
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
        if not write_ckpt:
            # Full-size: from_pretrained(<the .pt>) converts in memory (read_source, infer_config, strict fit)
            # without a multi-GB .ckpt, whose protobuf MindSpore must hold in memory at once to read back.
            from types import SimpleNamespace

            from ms_clip.convert import infer_config

            src = read_source(source)
            result = SimpleNamespace(path=source, source_format=src.fmt, config=infer_config(src, source))
            del src
            self.cache[key] = (result, ref, images, ids)
            return self.cache[key]
        # The tiny model's 16-wide vision heads are not in the tensors: it converts against its registry config.
        result = convert_weight(source, os.path.join(directory, "converted.ckpt"),
                                config="chinese_clip_tiny" if key == "tiny" else None)
        self.cache[key] = (result, ref, images, ids)
        return self.cache[key]


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return _Sources(tmp_path_factory)


def _check_parity(sources, key: str, mode: str, write_ckpt: bool = True):
    result, (ref_img, ref_txt), images, ids = sources.get(key, write_ckpt)
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
    result = _check_parity(sources, struct, "graph", write_ckpt=False)
    registry_name = {"ViT-L-14@": "chinese_clip_vit_l_14", "ViT-L-14-336@": "chinese_clip_vit_l_14_336",
                     "ViT-H-14@": "chinese_clip_vit_h_14"}[struct.split("@")[0] + "@"]
    assert result.config.architecture() == load_config(registry_name).architecture()
    sources.cache.pop(struct)  # full-size models are large; free them


# ----------------------------------------------------------------------------- converter strictness


@pytest.fixture(scope="module")
def tiny_state(tmp_path_factory):
    """The tiny cn_clip model's released-format checkpoint contents (module.-prefixed fp16 tensors)."""
    path = str(tmp_path_factory.mktemp("cn_tiny") / "tiny.pt")
    _save_cn_clip(_seeded_cn_clip(TINY_INFO, seed=5), path, seed=5)
    return torch.load(path, map_location="cpu", weights_only=True)


def _variant(tmp_path, checkpoint, edit) -> str:
    state = dict(checkpoint["state_dict"])
    edit(state)
    path = str(tmp_path / "variant.pt")
    torch.save({**checkpoint, "state_dict": state}, path)
    return path


def test_unused_key_is_named(tmp_path, tiny_state):
    path = _variant(tmp_path, tiny_state, lambda s: s.__setitem__("module.bert.extra.weight", torch.zeros(3)))
    with pytest.raises(ConvertError, match=r"bert\.extra\.weight"):
        convert_weight(path, str(tmp_path / "out.ckpt"), config="chinese_clip_tiny")
    assert not os.path.exists(tmp_path / "out.ckpt")


def test_missing_key_is_named(tmp_path, tiny_state):
    key = "module.bert.encoder.layer.1.output.dense.bias"
    path = _variant(tmp_path, tiny_state, lambda s: s.pop(key))
    with pytest.raises(ConvertError, match=r"bert\.encoder\.layer\.1\.output\.dense\.bias"):
        convert_weight(path, str(tmp_path / "out.ckpt"), config="chinese_clip_tiny")
    assert not os.path.exists(tmp_path / "out.ckpt")


def test_shape_mismatch_is_named(tmp_path, tiny_state):
    key = "module.bert.encoder.layer.1.intermediate.dense.weight"
    path = _variant(tmp_path, tiny_state, lambda s: s.__setitem__(key, torch.zeros(128, 64).half()))
    with pytest.raises(ConvertError, match=r"bert\.encoder\.layer\.1\.intermediate\.dense\.weight.*\(128, 64\)"):
        convert_weight(path, str(tmp_path / "out.ckpt"), config="chinese_clip_tiny")


def test_wrong_architecture_for_a_registry_name(tmp_path, tiny_state):
    path = _variant(tmp_path, tiny_state, lambda s: None)
    with pytest.raises(ConvertError, match=r"shape"):
        convert_weight(path, str(tmp_path / "out.ckpt"), config="chinese_clip_vit_b_16")


def test_clip_model_refuses_a_chinese_checkpoint(tmp_path, tiny_state):
    path = _variant(tmp_path, tiny_state, lambda s: None)
    result = convert_weight(path, str(tmp_path / "tiny.ckpt"), config="chinese_clip_tiny")
    with pytest.raises(ConfigError, match=r"ChineseCLIPModel.*not a CLIPModel.*ChineseCLIPModel\.from_pretrained"):
        CLIPModel.from_pretrained(result.path)
    import ms_clip

    assert isinstance(ms_clip.from_pretrained(result.path), ChineseCLIPModel)
    assert read_source(path).fmt == "cn-clip"


# ----------------------------------------------------------------------------- tokenizer


HARD_CASES = [
    "", " ", "\t\n\r", "\x00\x01\x7f\x85\u200b\u200d\ufeff\ufffd", "猫\u0000狗", "ａｂｃ　ＡＢＣ　１２３！？",
    "全角：“引号”（括号）【方括号】《书名号》——破折号……省略号", "😀👍🏽👨‍👩‍👧 emoji 表情🐱", "ΣΑΣ ΟΔΟΣ Σ. AΣ\x01B",
    "İstanbul ǅemal ß ﬁ Å Ω K", "e\u0301 a\u0300 n\u0303 Crème Brûlée", "\u2028行\u2029段\u3000空格",
    "\U0002B820\U0002CEAF\U00030000𠀀𪜀", "\ue000\U000F0000 private use", "\u0378\u0379 unassigned",
    "a" * 250, "猫" * 60, "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "https://example.com/路径?查询=值&x=1#片段", "C++/C# vs. R&D: 50% off!!! $100 @home",
    "한국어 텍스트 日本語のテキスト ภาษาไทย العربية עברית",
    b"\xe7\x8c\xab bytes".decode("utf-8"), "  leading and trailing  ", "[CLS] [SEP] [UNK] [PAD] [MASK]",
    "##猫 ##ing", "\u0e01\u0e34\u0e19 \u0915\u093f", "⺀⿕〇々〆ヶ", "①②③ ⅠⅡⅢ ½ ¼ ²³",
]


def _chinese_corpus():
    from _helpers_text_corpus import collect_chinese_corpus

    return collect_chinese_corpus(per_catalog=40) + HARD_CASES


def test_tokenizer_matches_cn_clip_on_real_corpus():
    from cn_clip.clip import tokenize as reference

    from ms_clip.bert_tokenizer import tokenize

    corpus = _chinese_corpus()
    ours, ref = tokenize(corpus), reference(corpus).numpy()
    bad = [corpus[i] for i in np.nonzero((ours != ref).any(axis=1))[0]]
    chinese = sum(any("\u4e00" <= c <= "\u9fff" for c in t) for t in corpus)
    sys.__stdout__.write(f"\n[chinese-clip tokenizer] {len(corpus)} strings ({chinese} with Chinese, "
                         f"{sum(not t.isascii() for t in corpus)} non-ASCII, {len(HARD_CASES)} hand-picked): "
                         f"{len(bad)} mismatches\n")
    assert not bad, bad[:5]
    assert ours.dtype == np.int32 and ours.shape == (len(corpus), 52)
    assert chinese >= 2000


def _codepoint_texts(step_rare: int):
    """Every code point outside the big uniform blocks (letters Lo, private use Co, unassigned Cn), a sample of
    those, each in two contexts (inside a Greek word, for the final-sigma rule, and alone)."""
    cps = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        if unicodedata.category(chr(cp)) in ("Lo", "Co", "Cn") and cp % step_rare:
            continue
        cps.append(cp)
    return [f"aΣ{chr(cp)}b {chr(cp)}" for cp in cps] + [f"{chr(cp)}Ab\u00e9 ΣΣ{chr(cp)}" for cp in cps]


@pytest.mark.parametrize("step_rare", [pytest.param(97, id="ci"), pytest.param(1, id="all", marks=pytest.mark.slow)])
def test_tokenizer_matches_cn_clip_on_code_points(step_rare):
    from cn_clip.clip import tokenize as reference

    from ms_clip.bert_tokenizer import tokenize

    texts = _codepoint_texts(step_rare)
    bad = np.nonzero((tokenize(texts) != reference(texts).numpy()).any(axis=1))[0]
    sys.__stdout__.write(f"\n[chinese-clip tokenizer] {len(texts)} code-point strings: {len(bad)} mismatches\n")
    assert len(bad) == 0, [texts[i] for i in bad[:5]]


def test_bert_tokenizer_api(tmp_path):
    from ms_clip import BertTokenizer, get_tokenizer
    from ms_clip.bert_tokenizer import CHINESE_CLIP_VOCAB_SHA256, default_vocab_path
    from ms_clip.fileio import sha256_file

    assert sha256_file(default_vocab_path()) == CHINESE_CLIP_VOCAB_SHA256
    assert os.path.isfile(os.path.join(os.path.dirname(default_vocab_path()), "chinese_clip_vocab.NOTICE.txt"))
    tok = BertTokenizer.from_pretrained("chinese_clip_vit_b_16")
    assert tok.vocab_size == 21128 and tok.tokenize("一只猫!") == ["一", "只", "猫", "!"]
    out = tok(["一只猫", "狗"], return_tensors="np")
    assert out["input_ids"].shape == (2, 52) and out["input_ids"][1, :3].tolist() == [101, 4318, 102]
    assert out["attention_mask"][1].tolist() == [1, 1, 1] + [0] * 49
    short = tok("一只猫", max_length=4, return_tensors=None)
    assert short["input_ids"] == [101, 671, 1372, 102]  # [CLS] + the first max_length - 2 ids + [SEP]
    assert tok.decode(out["input_ids"][0], skip_special_tokens=True) == "一 只 猫"
    saved = tok.save_pretrained(str(tmp_path))
    assert BertTokenizer.from_pretrained(str(tmp_path)).vocab == tok.vocab and saved.endswith("vocab.txt")
    chinese, english = get_tokenizer("chinese_clip_tiny"), get_tokenizer("clip_tiny")
    assert chinese(["一只猫"]).shape == (1, 52) and english("a cat").shape == (1, 77)
    np.testing.assert_array_equal(chinese(TEXTS), cn_clip_utils.tokenize(TEXTS).numpy())


# ----------------------------------------------------------------------------- preprocessing


def test_preprocessing_pixel_exact():
    from PIL import Image

    from ms_clip.processor import CLIPImageProcessor, preprocess

    rng = np.random.default_rng(1)
    images = []
    for w, h in [(640, 480), (100, 300), (224, 224), (17, 33), (400, 401)]:
        rgb = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        images += [rgb] + [rgb.convert(mode) for mode in ("L", "RGBA", "P", "LA", "CMYK", "1")]
    for size in (224, 336):
        reference = cn_clip_utils.image_transform(size)
        processor = CLIPImageProcessor(size, resize_mode="squash")
        worst = max(float(np.abs(reference(im).numpy() - processor.preprocess_one(im)).max()) for im in images)
        assert worst == 0.0, (size, worst)
        np.testing.assert_array_equal(preprocess(images[1], size, resize_mode="squash"),
                                      reference(images[1]).numpy())
    with pytest.raises(ValueError, match="resize_mode must be one of"):
        CLIPImageProcessor(224, resize_mode="stretch")


# ----------------------------------------------------------------------------- weights table and downloads


def test_weights_table_has_the_released_models():
    for name, filename in [("chinese_clip_vit_b_16", "clip_cn_vit-b-16.pt"), ("chinese_clip_vit_l_14", "clip_cn_vit-l-14.pt"),
                           ("chinese_clip_vit_l_14_336", "clip_cn_vit-l-14-336.pt"),
                           ("chinese_clip_vit_h_14", "clip_cn_vit-h-14.pt")]:
        entry = hub.PRETRAINED[name]
        repo = cn_clip_utils._MODELS[{"chinese_clip_vit_b_16": "ViT-B-16", "chinese_clip_vit_l_14": "ViT-L-14",
                                      "chinese_clip_vit_l_14_336": "ViT-L-14-336",
                                      "chinese_clip_vit_h_14": "ViT-H-14"}[name]]
        assert entry["url"] == f"https://huggingface.co/OFA-Sys/{repo[0]}/resolve/main/{repo[1]}"
        assert entry["filename"] == filename and "sha256" not in entry
        assert 0 < entry["min_size"] < entry["max_size"]
        assert isinstance(load_config(name), ChineseCLIPConfig)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MS_CLIP_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _files(directory):
    return sorted(os.path.relpath(os.path.join(d, f), directory) for d, _, fs in os.walk(directory) for f in fs
                  if f != ".lock")


def test_download_without_hash_checks_size_and_records_sha256(home, tmp_path, tiny_state, monkeypatch, capsys):
    from ms_clip.fileio import sha256_file

    www = tmp_path / "www"
    www.mkdir()
    source = _variant(www, tiny_state, lambda s: None)
    digest, size = sha256_file(source), os.path.getsize(source)
    with serve_directory(str(www)) as base:
        monkeypatch.setitem(hub.PRETRAINED, "chinese_clip_tiny",
                            {"url": f"{base}/variant.pt", "filename": "variant.pt", "min_size": size - 10,
                             "max_size": size + 10})
        model = ChineseCLIPModel.from_pretrained("chinese_clip_tiny")
    assert isinstance(model, ChineseCLIPModel)
    assert _files(home) == ["chinese_clip_tiny/chinese_clip_tiny.ckpt", "chinese_clip_tiny/chinese_clip_tiny.source.json",
                            "chinese_clip_tiny/chinese_clip_tiny.yaml"]
    record = json.load(open(home / "chinese_clip_tiny" / "chinese_clip_tiny.source.json"))
    assert record["sha256"] == digest and record["size"] == size
    assert digest in capsys.readouterr().out
    state = {k[len("module."):]: v.float().numpy() for k, v in tiny_state["state_dict"].items()}
    for name, param in model.parameters_and_names():
        np.testing.assert_array_equal(param.asnumpy(), state[name], err_msg=name)


def test_download_of_wrong_size_leaves_nothing(home, tmp_path, tiny_state, monkeypatch):
    www = tmp_path / "www"
    www.mkdir()
    source = _variant(www, tiny_state, lambda s: None)
    size = os.path.getsize(source)
    with serve_directory(str(www)) as base:
        monkeypatch.setitem(hub.PRETRAINED, "chinese_clip_tiny",
                            {"url": f"{base}/variant.pt", "filename": "variant.pt", "min_size": size + 1,
                             "max_size": size + 100})
        with pytest.raises(hub.HubError, match=rf"{size:,} bytes, expected {size + 1:,}\.\.{size + 100:,}"):
            hub.get_pretrained_checkpoint("chinese_clip_tiny")
    assert _files(home) == []


def test_offline_says_url_place_and_command(home, monkeypatch):
    with serve_directory(str(home.parent)) as base:
        pass  # the port is closed now: a refused connection, as offline
    entry = dict(hub.PRETRAINED["chinese_clip_vit_b_16"], url=f"{base}/clip_cn_vit-b-16.pt")
    monkeypatch.setitem(hub.PRETRAINED, "chinese_clip_vit_b_16", entry)
    with pytest.raises(hub.HubError) as err:
        ChineseCLIPModel.from_pretrained("chinese_clip_vit_b_16")
    message = str(err.value)
    assert f"{base}/clip_cn_vit-b-16.pt" in message and "no published sha256" in message
    assert os.path.join(str(home), "chinese_clip_vit_b_16", "clip_cn_vit-b-16.pt") in message
    assert "convert/convert_weight.py --torch_path clip_cn_vit-b-16.pt" in message
    assert "oss-cn-beijing" in message  # the project's mirror


# ----------------------------------------------------------------------------- the BERT tower alone (BERT, RoBERTa)


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_bert_tower_matches_hf_with_pooler(family):
    """Our BertModel against HF BertModel / RobertaModel (pooler included): the dual-encoder towers need only config."""
    import transformers

    from ms_clip.models import BertConfig, BertModel
    from ms_clip.weights import assign_weights

    pad = 0 if family == "bert" else 1
    kwargs = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                  max_position_embeddings=40, type_vocab_size=2 if family == "bert" else 1, pad_token_id=pad)
    torch.manual_seed(11)
    hf_class = transformers.BertModel if family == "bert" else transformers.RobertaModel
    config_class = transformers.BertConfig if family == "bert" else transformers.RobertaConfig
    reference = hf_class(config_class(**kwargs), add_pooling_layer=True).eval()
    H.perturb(reference, 11)
    ours = BertModel(BertConfig(**kwargs, position_ids_from_padding=family == "roberta", add_pooling_layer=True))
    state = {k: v.detach().numpy() for k, v in reference.state_dict().items()
             if not k.endswith(("position_ids", "token_type_ids"))}
    assign_weights(ours, state, source=f"HF {hf_class.__name__}")
    ours.set_train(False)
    rng = np.random.default_rng(2)
    ids = rng.integers(pad + 1, 99, (3, 12)).astype(np.int32)
    ids[1, 7:] = pad  # right padding
    ids[2, :3] = pad  # left padding (RoBERTa numbers positions around it)
    ids_t = torch.from_numpy(ids.astype(np.int64))
    with torch.no_grad():
        out = reference(input_ids=ids_t, attention_mask=(ids_t != pad).long())
    hidden = ours(ms.Tensor(ids))
    mask = ids != pad  # padded positions' hidden states are never used and may differ
    np.testing.assert_allclose(hidden.asnumpy()[mask], out.last_hidden_state.numpy()[mask], atol=TOL)
    np.testing.assert_allclose(ours.pooled_output(hidden).asnumpy(), out.pooler_output.numpy(), atol=TOL)
