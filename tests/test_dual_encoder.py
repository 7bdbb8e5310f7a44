"""Vision-text dual encoder: parity with HF ``VisionTextDualEncoderModel`` through our converter (CLIP vision +
RoBERTa, CLIP vision + BERT), ``from_vision_text_pretrained`` against HF's own, save/load round trips with the
tokenizer files, the converter's strictness and the registered tiny config.

References are HF transformers models with seeded random weights saved with ``save_pretrained`` (safetensors);
their tokenizers are trained offline with the ``tokenizers`` library and loaded by HF's own tokenizer classes,
so the token ids and attention masks fed to both models are HF's.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

import _helpers_parity as H

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import mindspore as ms  # noqa: E402
from mindspore import Tensor, nn  # noqa: E402

import ms_clip  # noqa: E402
from ms_clip.convert import ConvertError, convert_weight, read_source  # noqa: E402
from ms_clip.errors import MsClipError  # noqa: E402
from ms_clip.models import ConfigError, VisionTextDualEncoderConfig, VisionTextDualEncoderModel  # noqa: E402

TOL = 1e-4
MAX_LENGTH = 24  # tokenizer max length in the parity tests (run_clip.py pads/truncates to max_seq_length)
TEXTS = ["a photo of a cat", "two dogs running on the grass near a red car", "",
         "A man rides a bicycle down a busy street while people watch from the sidewalk and a bus waits " * 3,
         "naïve café, 3 bicycles!", "dog"]
_WORDS = ("a photo of the cat dog man woman car bus street grass red blue green running sitting on near with "
          "bicycle people sidewalk watch waits rides down busy two three small large white black").split()


def _corpus():
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(_WORDS, size=rng.integers(3, 12))) for _ in range(400)] + TEXTS


def _roberta_tokenizer(directory: str):
    """A byte-level BPE tokenizer in RoBERTa's layout (vocab.json + merges.txt + tokenizer.json), loaded by HF."""
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(_corpus(), vocab_size=400, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    os.makedirs(directory, exist_ok=True)
    bpe.save_model(directory)
    tok = transformers.RobertaTokenizerFast.from_pretrained(directory)
    tok.save_pretrained(directory)
    return tok


def _bert_tokenizer(directory: str):
    """A WordPiece tokenizer in BERT's layout (vocab.txt), loaded by HF."""
    from tokenizers import BertWordPieceTokenizer

    wp = BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator(_corpus(), vocab_size=300, min_frequency=1)
    os.makedirs(directory, exist_ok=True)
    wp.save_model(directory)
    tok = transformers.BertTokenizerFast.from_pretrained(directory)
    tok.save_pretrained(directory)
    return tok


def _vision_config():
    return transformers.CLIPVisionConfig(hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                                         num_attention_heads=3, image_size=32, patch_size=8, hidden_act="quick_gelu")


def _text_config(kind: str, vocab_size: int):
    # initializer_range 0.2 (not 0.02): HF draws the text weights *and both projections* from N(0, 0.2), so the
    # features are O(1) and 1e-4 is a tight tolerance (with 0.02 they are ~0.03 and padding moves them by ~1e-3).
    common = dict(vocab_size=vocab_size, hidden_size=40, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=80, hidden_act="gelu", initializer_range=0.2)
    if kind == "roberta":
        return transformers.RobertaConfig(max_position_embeddings=MAX_LENGTH + 4, pad_token_id=1, type_vocab_size=1,
                                          layer_norm_eps=1e-5, **common)
    return transformers.BertConfig(max_position_embeddings=MAX_LENGTH + 2, **common)


def _hf_dual(kind: str, directory: str, seed: int):
    """A seeded HF VisionTextDualEncoderModel with its tokenizer, saved (safetensors + tokenizer files)."""
    tok = (_roberta_tokenizer if kind == "roberta" else _bert_tokenizer)(directory)
    torch.manual_seed(seed)
    config = transformers.VisionTextDualEncoderConfig.from_vision_text_configs(
        _vision_config(), _text_config(kind, len(tok)), projection_dim=24)
    model = transformers.VisionTextDualEncoderModel(config=config).eval()
    H.perturb(model, seed)  # LN gains/biases, zero biases and logit_scale made non-trivial
    model.save_pretrained(directory)
    return model, tok


def _hf_features(model, images: np.ndarray, ids: np.ndarray, mask: np.ndarray):
    ids_t, mask_t = torch.from_numpy(ids.astype(np.int64)), torch.from_numpy(mask.astype(np.int64))
    with torch.no_grad():
        img = model.get_image_features(pixel_values=torch.from_numpy(images))
        txt = model.get_text_features(input_ids=ids_t, attention_mask=mask_t)
        out = model(input_ids=ids_t, attention_mask=mask_t, pixel_values=torch.from_numpy(images))
    # transformers 5 returns a model output whose pooler_output holds the projected features; 4.x a tensor.
    return {"image": getattr(img, "pooler_output", img).numpy(), "text": getattr(txt, "pooler_output", txt).numpy(),
            "image_embeds": out.image_embeds.numpy(), "text_embeds": out.text_embeds.numpy(),
            "scale": float(model.logit_scale.detach().exp())}


class _Features(nn.Cell):
    """The feature getters and construct in one Cell, so GRAPH_MODE compiles them (not only construct)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def construct(self, image, ids, mask):
        image_embeds, text_embeds, scale = self.model(image, ids)
        return (self.model.get_image_features(image), self.model.get_text_features(ids, mask),
                self.model.get_text_features(ids), image_embeds, text_embeds, scale)


def _ours(model, images, ids, mask):
    model.set_train(False)
    outs = _Features(model)(Tensor(images), Tensor(ids, ms.int32), Tensor(mask, ms.int32))
    return dict(zip(("image", "text", "text_default_mask", "image_embeds", "text_embeds", "scale"),
                    (o.asnumpy() for o in outs)))


def _images(n: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 32, 32)).astype(np.float32)


class _Refs:
    """Each HF reference is built and saved once per module (both modes use it)."""

    def __init__(self, tmp_factory):
        self.tmp_factory = tmp_factory
        self.cache = {}

    def get(self, kind: str):
        if kind not in self.cache:
            directory = str(self.tmp_factory.mktemp(f"hf_{kind}"))
            model, tok = _hf_dual(kind, directory, seed=11 if kind == "roberta" else 12)
            self.cache[kind] = (directory, model, tok)
        return self.cache[kind]


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    return _Refs(tmp_path_factory)


def _max_err(a, b) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


# ----------------------------------------------------------------------------- parity


@pytest.mark.parametrize("kind", ["roberta", "bert"])
def test_parity_hf_dual_encoder(refs, kind, ms_mode):
    """HF folder -> our converter -> our model: image/text features <= 1e-4 with the tokenizer's padding and mask
    (max_length padding and longest padding, texts of different lengths, one truncated, one empty)."""
    directory, hf_model, tok = refs.get(kind)
    model = ms_clip.from_pretrained(directory)
    assert isinstance(model, VisionTextDualEncoderModel)
    cfg = model.config
    assert cfg.text_config.position_ids_from_padding is (kind == "roberta")
    assert cfg.text_config.pad_token_id == tok.pad_token_id
    assert cfg.projection_dim == 24 and cfg.vision_config.num_attention_heads == 3
    images = _images()
    errors = {}
    for padding in ("max_length", "longest"):
        enc = tok(TEXTS, padding=padding, truncation=True, max_length=MAX_LENGTH, return_tensors="np")
        ids, mask = enc["input_ids"].astype(np.int32), enc["attention_mask"].astype(np.int32)
        assert (mask == 0).any() and ids.shape[1] == MAX_LENGTH  # padding present; the long text is truncated
        ref = _hf_features(hf_model, images, ids, mask)
        ours = _ours(model, images, ids, mask)
        for key in ("image", "text", "image_embeds", "text_embeds"):
            errors[f"{key}/{padding}"] = _max_err(ours[key], ref[key])
            # Relative to the features' scale too (tiny projections give small features).
            errors[f"{key}/{padding} (relative)"] = errors[f"{key}/{padding}"] / float(np.abs(ref[key]).max())
        # Without a mask ours masks the pad id, which is exactly the tokenizer's mask.
        assert np.array_equal(mask, (ids != tok.pad_token_id).astype(np.int32))
        errors[f"text(default mask)/{padding}"] = _max_err(ours["text_default_mask"], ref["text"])
        # Control: attending to the padding (HF's all-ones default) changes the features far beyond the tolerance.
        ones = _hf_features(hf_model, images, ids, np.ones_like(mask))["text"]
        assert _max_err(ones, ref["text"]) > 50 * TOL
        assert abs(float(ours["scale"]) - ref["scale"]) <= 1e-4 * ref["scale"]
    sys.__stdout__.write(f"\n[dual-encoder parity] clip-vision+{kind} | {ms_mode}: "
                         + ", ".join(f"{k} {v:.2g}" for k, v in errors.items()) + "\n")
    assert max(errors.values()) <= TOL, errors


def test_transformers4_key_layout_and_cli(refs, tmp_path):
    """transformers 4.x saved the vision tower as vision_model.vision_model.*: the same weights; convert_weight.py
    converts the folder to a .ckpt + YAML that loads back bit-identically."""
    from safetensors.numpy import load_file, save_file

    directory, _, _ = refs.get("roberta")
    new = read_source(directory)
    assert new.fmt == "hf-dual-encoder"
    old_dir = tmp_path / "v4"
    old_dir.mkdir()
    tensors = load_file(os.path.join(directory, "model.safetensors"))
    renamed = {("vision_model." + k if k.startswith("vision_model.") else k): v for k, v in tensors.items()}
    renamed["text_model.embeddings.position_ids"] = np.arange(MAX_LENGTH + 4, dtype=np.int64)[None]  # 4.x buffer
    save_file(renamed, str(old_dir / "model.safetensors"))
    (old_dir / "config.json").write_text(open(os.path.join(directory, "config.json")).read())
    old = read_source(str(old_dir))
    assert sorted(old.tensors) == sorted(new.tensors)
    assert all(np.array_equal(old.tensors[k], new.tensors[k]) for k in new.tensors)
    assert old.dropped == ["text_model.embeddings.position_ids"]

    cli = H.load_cli()
    out = tmp_path / "conv" / "dual.ckpt"
    assert cli.main(["--torch_path", directory, "--mindspore_path", str(out)]) == 0
    model = ms_clip.from_pretrained(str(out))
    assert isinstance(model, VisionTextDualEncoderModel)
    params = {p.name: p.asnumpy() for p in model.get_parameters()}
    assert sorted(params) == sorted(new.tensors)
    assert all(np.array_equal(params[k], new.tensors[k]) for k in params)


# ----------------------------------------------------------------------------- from_vision_text_pretrained


def _hf_clip_folder(directory: str, seed: int):
    torch.manual_seed(seed)
    config = transformers.CLIPConfig(
        text_config=dict(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=16, bos_token_id=98, eos_token_id=99),
        vision_config=_vision_config().to_dict(), projection_dim=20)
    model = transformers.CLIPModel(config).eval()
    H.perturb(model, seed)
    model.save_pretrained(directory)


def _hf_roberta_folder(directory: str, seed: int, masked_lm: bool = False):
    tok = _roberta_tokenizer(directory)
    torch.manual_seed(seed)
    config = _text_config("roberta", len(tok))
    model = (transformers.RobertaForMaskedLM if masked_lm else transformers.RobertaModel)(config).eval()
    H.perturb(model, seed)
    model.save_pretrained(directory)
    return tok


@pytest.fixture(scope="module")
def tower_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("towers")
    _hf_clip_folder(str(root / "clip"), seed=21)
    tok = _hf_roberta_folder(str(root / "roberta"), seed=22)
    return str(root / "clip"), str(root / "roberta"), tok


def test_from_vision_text_pretrained_equals_hf(tower_folders, tmp_path):
    """Ours from an HF CLIP folder + an HF RoBERTa folder equals HF's own from_vision_text_pretrained on every tower
    weight (bit for bit) and on the pooled outputs; the new projections are HF's N(0, 0.02), logit_scale 2.6592."""
    clip_dir, text_dir, tok = tower_folders
    ours = VisionTextDualEncoderModel.from_vision_text_pretrained(clip_dir, text_dir, projection_dim=32)
    hf = transformers.VisionTextDualEncoderModel.from_vision_text_pretrained(clip_dir, text_dir, projection_dim=32)
    hf_dir = str(tmp_path / "hf_dual")
    hf.save_pretrained(hf_dir)
    ref = read_source(hf_dir).tensors  # HF's model under our names (the converter is tested by the parity tests)
    params = {p.name: p.asnumpy() for p in ours.get_parameters()}
    assert sorted(params) == sorted(ref)
    new = {"visual.proj", "text_projection", "logit_scale"}
    same = [k for k in params if k not in new and np.array_equal(params[k], ref[k])]
    assert len(same) == len(params) - len(new), sorted(set(params) - new - set(same))
    cfg = ours.config
    assert cfg.context_length == MAX_LENGTH + 4 - 2  # the text tower's usable positions (< 128)
    assert cfg.text_config.position_ids_from_padding and cfg.text_config.pad_token_id == 1
    # New parameters: HF draws nn.Linear weights from N(0, text initializer_range = 0.2 here); never left at zero.
    for name, shape in (("visual.proj", (48, 32)), ("text_projection", (40, 32))):
        arr = params[name]
        assert arr.shape == shape and ref[name].shape == shape
        assert 0.17 < arr.std() < 0.23 and abs(arr.mean()) < 0.03, (name, arr.std(), arr.mean())
        assert 0.17 < ref[name].std() < 0.23
    assert float(params["logit_scale"]) == pytest.approx(2.6592) == float(ref["logit_scale"])
    # Pooled outputs: with HF's projections copied in, features equal HF's (the towers compute the same).
    ours.visual.proj.set_data(Tensor(ref["visual.proj"]))
    ours.text_projection.set_data(Tensor(ref["text_projection"]))
    images = _images(2, seed=3)
    enc = tok(TEXTS[:4], padding="max_length", truncation=True, max_length=MAX_LENGTH, return_tensors="np")
    ids, mask = enc["input_ids"].astype(np.int32), enc["attention_mask"].astype(np.int32)
    ref_out = _hf_features(hf.eval(), images, ids, mask)
    ours.set_train(False)
    img = ours.get_image_features(Tensor(images)).asnumpy()
    txt = ours.get_text_features(Tensor(ids), Tensor(mask)).asnumpy()
    errors = {"image": _max_err(img, ref_out["image"]), "text": _max_err(txt, ref_out["text"])}
    sys.__stdout__.write(f"\n[dual-encoder from_vision_text_pretrained] {errors}\n")
    assert max(errors.values()) <= TOL, errors
    # The tokenizer files travel with the model.
    assert ours.tokenizer_dir == os.path.abspath(text_dir)


def test_from_vision_text_pretrained_masked_lm_folder_and_registered_name(tmp_path):
    """A RobertaForMaskedLM folder (roberta.* + lm_head.*, no pooler) loads as HF's AutoModel does (head dropped,
    pooler new); a registered CLIP name with bundled weights gives the vision tower."""
    text_dir = str(tmp_path / "mlm")
    _hf_roberta_folder(text_dir, seed=5, masked_lm=True)
    ours = VisionTextDualEncoderModel.from_vision_text_pretrained("clip_tiny_shapes", text_dir, projection_dim=16)
    hf_text = transformers.AutoModel.from_pretrained(text_dir)
    state = {k: v.numpy() for k, v in hf_text.state_dict().items()}
    params = {p.name: p.asnumpy() for p in ours.get_parameters()}
    loaded = [k for k in state if not k.startswith("pooler.") and k in {n[len("text_model."):] for n in params}]
    assert len(loaded) == len([k for k in state if not k.startswith(("pooler.", "embeddings.position_ids"))])
    assert all(np.array_equal(params["text_model." + k], state[k]) for k in loaded)
    assert params["text_model.pooler.dense.bias"].tolist() == [0.0] * 40  # new, as HF initialises it
    assert 0.17 < params["text_model.pooler.dense.weight"].std() < 0.23  # N(0, initializer_range = 0.2)
    assert 0.17 < state["pooler.dense.weight"].std() < 0.23
    vision = ms_clip.from_pretrained("clip_tiny_shapes")
    for p in vision.get_parameters():
        if p.name.startswith("visual.") and p.name != "visual.proj":
            assert np.array_equal(params[p.name], p.asnumpy()), p.name
    with pytest.raises(MsClipError, match=r"^.*BERT/RoBERTa folder.*found"):
        VisionTextDualEncoderModel.from_vision_text_pretrained("clip_tiny_shapes", str(tmp_path))


# ----------------------------------------------------------------------------- save / load


def test_save_pretrained_round_trip_copies_tokenizer(tower_folders, tmp_path):
    clip_dir, text_dir, _ = tower_folders
    model = VisionTextDualEncoderModel.from_vision_text_pretrained(clip_dir, text_dir, projection_dim=16)
    out = str(tmp_path / "saved")
    model.save_pretrained(out)
    expected = sorted(f for f in ms_clip.loader.TOKENIZER_FILES if os.path.isfile(os.path.join(text_dir, f)))
    assert {"vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json"} <= set(expected)
    for name in expected:
        with open(os.path.join(text_dir, name), "rb") as a, open(os.path.join(out, name), "rb") as b:
            assert a.read() == b.read(), name
    back = ms_clip.from_pretrained(out)
    assert isinstance(back, VisionTextDualEncoderModel) and back.config.to_dict() == model.config.to_dict()
    before = {p.name: p.asnumpy() for p in model.get_parameters()}
    after = {p.name: p.asnumpy() for p in back.get_parameters()}
    assert sorted(before) == sorted(after)
    assert all(before[k].tobytes() == after[k].tobytes() for k in before)
    assert back.tokenizer_dir == os.path.abspath(out)
    # Saved again elsewhere: still complete.
    again = str(tmp_path / "again")
    back.save_pretrained(again)
    assert sorted(f for f in os.listdir(again) if f in ms_clip.loader.TOKENIZER_FILES) == expected


# ----------------------------------------------------------------------------- strictness and config


def _edited_folder(source: str, target, edit) -> str:
    from safetensors.numpy import load_file, save_file

    target.mkdir()
    tensors = load_file(os.path.join(source, "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(target / "model.safetensors"))
    (target / "config.json").write_text(open(os.path.join(source, "config.json")).read())
    return str(target)


@pytest.mark.parametrize("case", ["missing_text", "missing_vision", "unexpected_text", "unexpected_vision",
                                  "missing_projection"])
def test_converter_is_strict(refs, tmp_path, case):
    directory, _, _ = refs.get("bert")
    key = {"missing_text": "text_model.encoder.layer.1.attention.self.key.bias",
           "missing_vision": "vision_model.encoder.layers.1.mlp.fc2.weight",
           "unexpected_text": "text_model.encoder.layer.0.attention.self.rotary.weight",
           "unexpected_vision": "vision_model.head.weight",
           "missing_projection": "text_projection.weight"}[case]

    def edit(tensors):
        if case.startswith("missing"):
            del tensors[key]
        else:
            tensors[key] = np.zeros((2, 2), np.float32)

    folder = _edited_folder(directory, tmp_path / case, edit)
    # The reported name is ours for keys that pass the renaming (vision blocks), HF's otherwise.
    shown = {"missing_vision": "visual.transformer.resblocks.1.mlp.c_proj.weight"}.get(case, key)
    with pytest.raises(ConvertError) as err:
        convert_weight(folder, str(tmp_path / "out.ckpt"))
    assert "\n" not in str(err.value) and shown in str(err.value), str(err.value)
    with pytest.raises(MsClipError) as err:
        ms_clip.from_pretrained(folder)
    assert "\n" not in str(err.value) and shown in str(err.value), str(err.value)


def test_converter_refuses_unsupported_towers(refs, tmp_path):
    directory, _, _ = refs.get("bert")
    config = json.load(open(os.path.join(directory, "config.json")))
    for where, key, value, pattern in (("text_config", "model_type", "electra", r"text model_type 'electra'"),
                                       ("text_config", "position_embedding_type", "relative_key",
                                        "position_embedding_type='relative_key'"),
                                       ("vision_config", "model_type", "vit", r"vision_config.model_type is 'vit'"),
                                       ("text_config", "hidden_size", 64, r"hidden_size=64 but the weights have 40")):
        folder = _edited_folder(directory, tmp_path / f"{key}_{value}", lambda t: None)
        edited = json.loads(json.dumps(config))
        edited[where][key] = value
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(edited, f)
        with pytest.raises(ConvertError, match=pattern):
            ms_clip.from_pretrained(folder)


def test_tiny_registered_config_and_validation():
    model = ms_clip.create_model("dual_encoder_tiny")
    assert isinstance(model, VisionTextDualEncoderModel)
    cfg = model.config
    assert cfg.context_length == 128 <= cfg.text_config.max_text_length
    assert cfg.text_config.add_pooling_layer and cfg.text_config.position_ids_from_padding
    names = {p.name for p in model.get_parameters()}
    assert {"visual.proj", "text_projection", "logit_scale", "text_model.pooler.dense.weight"} <= names
    ms.set_context(mode=ms.PYNATIVE_MODE)
    ids = np.ones((2, 128), np.int32)
    ids[:, 0], ids[0, 1:5], ids[0, 5], ids[1, 1] = 0, [10, 11, 12, 13], 2, 2
    img, txt, scale = model(Tensor(_images(2)), Tensor(ids))
    assert img.shape == (2, 64) and txt.shape == (2, 64)
    assert float(scale.asnumpy()) == pytest.approx(np.exp(2.6592), rel=1e-6)
    # A defaults-only config is the example's pair: ViT-B/32 + roberta-base, 512, 128.
    default = VisionTextDualEncoderConfig()
    assert (default.text_config.vocab_size, default.text_config.max_text_length, default.projection_dim,
            default.context_length, default.vision_config.patch_size) == (50265, 512, 512, 128, 32)
    with pytest.raises(ConfigError, match=r"context_length must be in \[2, 512\].*got 513"):
        VisionTextDualEncoderConfig(context_length=513)
    with pytest.raises(ConfigError, match="add_pooling_layer must be true"):
        VisionTextDualEncoderConfig(text_config={"add_pooling_layer": False})
    with pytest.raises(ConfigError, match="unknown key 'projection_dims'"):
        VisionTextDualEncoderConfig.from_dict({"projection_dims": 3})


# ----------------------------------------------------------------------------- the way back to PyTorch


@pytest.mark.parametrize("kind", ["roberta", "bert"])
def test_export_hf_round_trip(refs, tmp_path, kind):
    """ms_clip -> HF VisionTextDualEncoderModel folder (with the tokenizer files) -> transformers loads it and
    computes HF's features; -> ms_clip again gives the same tensors bit for bit."""
    from ms_clip.export_torch import export_torch

    directory, hf_model, tok = refs.get(kind)
    model = ms_clip.from_pretrained(directory)
    out = str(tmp_path / "exported")
    result = export_torch(model, out, fmt="hf")
    assert result.hf_class == "VisionTextDualEncoderModel"
    vocab = ["vocab.json", "merges.txt"] if kind == "roberta" else ["vocab.txt"]
    assert {"config.json", "model.safetensors", "tokenizer.json", *vocab} <= set(os.listdir(out))
    exported = transformers.VisionTextDualEncoderModel.from_pretrained(out).eval()
    assert type(exported.text_model).__name__ == ("RobertaModel" if kind == "roberta" else "BertModel")
    images = _images(2, seed=5)
    enc = transformers.AutoTokenizer.from_pretrained(out)(TEXTS, padding="max_length", truncation=True,
                                                          max_length=MAX_LENGTH, return_tensors="np")
    ids, mask = enc["input_ids"].astype(np.int32), enc["attention_mask"].astype(np.int32)
    a, b = _hf_features(exported, images, ids, mask), _hf_features(hf_model, images, ids, mask)
    assert max(_max_err(a[k], b[k]) for k in ("image", "text")) <= 1e-6
    back = ms_clip.from_pretrained(out)
    before = {p.name: p.asnumpy() for p in model.get_parameters()}
    after = {p.name: p.asnumpy() for p in back.get_parameters()}
    assert sorted(before) == sorted(after) and all(before[k].tobytes() == after[k].tobytes() for k in before)
    assert back.config.architecture() == model.config.architecture()
