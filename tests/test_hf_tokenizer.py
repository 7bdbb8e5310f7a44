"""The dual encoder's text tokenizer (``ms_clip.hf_tokenizer``) against HF ``transformers.AutoTokenizer``.

Tokenizer files are built offline: a byte-level BPE (RoBERTa layout: vocab.json + merges.txt) and a WordPiece
vocabulary (BERT layout: vocab.txt) are trained with the ``tokenizers`` library on part of the real-text corpus
(``_helpers_text_corpus``), HF's own classes load them and write their ``save_pretrained`` folders
(tokenizer.json); Chinese-CLIP's real BERT vocabulary (shipped in ms_clip/assets) is a real-vocabulary case.
The reference is what run_clip.py runs: ``AutoTokenizer(...)(texts, max_length=128, padding="max_length",
truncation=True)`` -- ids and attention masks, 0 mismatches. In transformers 5, RobertaTokenizer *is*
RobertaTokenizerFast (one class); BERT also has the pure-Python BertTokenizerLegacy, compared in the slow test.
"""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from _helpers_text_corpus import collect_corpus
from ms_clip.hf_tokenizer import HFTokenizer, HFTokenizerError

transformers = pytest.importorskip("transformers")

MAX_LENGTH = 128  # run_clip.py's --max_seq_length
# Spellings of special tokens, whitespace edge cases, emoji, accents, CJK, a text far over max_length.
HARD_CASES = ["", " ", "  lead", "trail  ", "\u00a0nbsp\u2003em space", "tab\tand\nnewline\r\n", "🙂🙃 emoji 👩‍👩‍👧",
              "Ünïcödé ÀÉÎ naïve café", "中文字符測試 mixed 한국어 テキスト", "word " * 300, "<mask>", "a <mask> b",
              "x<s>y</s>", "<pad> pad <unk>", "[CLS] hello [SEP] [MASK] [UNK] [PAD]", "[mask] lower [cls]",
              "Σίσυφος ΟΔΥΣΣΕΥΣ", "\x00\x01control\x7f", "\u200bzero\u200dwidth\ufeff"]


def _is_utf8(text: str) -> bool:
    # The corpus holds 2 strings with lone surrogates (regex character classes); HF's tokenizer refuses them with
    # a TypeError, ours with HFTokenizerError (test_errors_name_the_file_and_the_expectation).
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


@pytest.fixture(scope="module")
def corpus():
    return [t for t in collect_corpus(minimum=50_000) if _is_utf8(t)] + HARD_CASES


def _write_json(path, data):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f)


@pytest.fixture(scope="module")
def folders(corpus, tmp_path_factory):
    """name -> folder: tokenizer files trained on every 7th corpus string, in the layouts HF reads."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    root = tmp_path_factory.mktemp("tokenizers")
    train = corpus[::7]
    out = {}

    def folder(name, config=None):
        path = root / name
        path.mkdir()
        if config is not None:
            _write_json(path / "tokenizer_config.json", config)
        out[name] = str(path)
        return path

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator(train, trainers.BpeTrainer(
        vocab_size=6000, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    bpe.model.save(str(folder("roberta_files", {"tokenizer_class": "RobertaTokenizer"})))
    bpe.model.save(str(folder("roberta_prefix_space", {"tokenizer_class": "RobertaTokenizer",
                                                       "add_prefix_space": True})))
    # transformers 4.x's save_pretrained layout: added_tokens_decoder with RoBERTa's lstrip <mask>, and
    # special_tokens_map.json.
    v4 = folder("roberta_files_v4", {
        "tokenizer_class": "RobertaTokenizer", "add_prefix_space": False, "model_max_length": 512,
        "added_tokens_decoder": {str(i): {"content": t, "lstrip": t == "<mask>", "rstrip": False, "normalized": False,
                                          "single_word": False, "special": True}
                                 for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])}})
    bpe.model.save(str(v4))
    _write_json(v4 / "special_tokens_map.json", {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                                                 "sep_token": "</s>", "pad_token": "<pad>", "cls_token": "<s>",
                                                 "mask_token": {"content": "<mask>", "lstrip": True, "rstrip": False,
                                                                "normalized": False, "single_word": False}})

    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.train_from_iterator(train, trainers.WordPieceTrainer(
        vocab_size=6000, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], show_progress=False))
    wordpiece.model.save(str(folder("bert_files", {"tokenizer_class": "BertTokenizer"})))
    wordpiece.model.save(str(folder("bert_cased", {"tokenizer_class": "BertTokenizer", "do_lower_case": False})))
    # A real vocabulary: Google's BERT-Chinese (21,128 tokens), as Chinese-CLIP ships it.
    real = folder("bert_chinese_real_vocab", {"tokenizer_class": "BertTokenizer"})
    shutil.copyfile(os.path.join(os.path.dirname(__file__), "..", "ms_clip", "assets", "chinese_clip_vocab.txt"),
                    real / "vocab.txt")

    # HF's own save_pretrained folders (tokenizer.json + tokenizer_config.json in transformers 5).
    for name in ("roberta_files", "bert_files"):
        transformers.AutoTokenizer.from_pretrained(out[name]).save_pretrained(out[name] + "_saved")
        out[name + "_saved"] = out[name] + "_saved"
    return out


def _mismatches(folder, texts, max_length=MAX_LENGTH, **call):
    """Indices of texts whose ids or attention mask differ from AutoTokenizer's (padding/truncation as run_clip)."""
    call = {"padding": "max_length", "truncation": True, **call}
    ref = transformers.AutoTokenizer.from_pretrained(folder)(texts, max_length=max_length, **call)
    ours = HFTokenizer.from_pretrained(folder)(texts, max_length=max_length, return_tensors=None, **call)
    return [i for i in range(len(texts)) if ref["input_ids"][i] != ours["input_ids"][i]
            or ref["attention_mask"][i] != ours["attention_mask"][i]]


# Every 3rd corpus string (~20k) for the two layouts the example's folders use, every 20th (~3k) for the others;
# the slow test runs the whole corpus on all of them.
@pytest.mark.parametrize("name,step", [("roberta_files", 3), ("bert_files", 3), ("roberta_files_saved", 20),
                                       ("bert_files_saved", 20), ("roberta_files_v4", 20),
                                       ("roberta_prefix_space", 20), ("bert_cased", 20),
                                       ("bert_chinese_real_vocab", 20)])
def test_ids_and_masks_equal_autotokenizer(name, step, corpus, folders, capsys):
    texts = corpus[::step] + HARD_CASES
    bad = _mismatches(folders[name], texts)
    ours = HFTokenizer.from_pretrained(folders[name])
    with capsys.disabled():
        print(f"\n[hf tokenizer] {name} ({ours.kind}, {len(ours)} tokens): {len(texts)} strings "
              f"({sum(not t.isascii() for t in texts)} non-ASCII, {sum(len(t) > 500 for t in texts)} over 500 chars), "
              f"{len(bad)} mismatches vs AutoTokenizer")
    assert not bad, [texts[i][:60] for i in bad[:5]]
    # The files really are the kind the name says (tokenizer.json wins when present).
    assert ours.kind == ("tokenizer.json" if name.endswith("_saved") else "bpe" if "roberta" in name else "wordpiece")


@pytest.mark.slow
def test_whole_corpus_equals_autotokenizer_and_bert_legacy(corpus, folders, capsys):
    """All folders on the whole corpus; and BERT's pure-Python tokenizer (transformers' BertTokenizerLegacy), which
    differs from the fast one HF's AutoTokenizer returns on some Unicode (its own slow/fast gap): ours must equal
    the fast one everywhere and differ from the legacy one only where HF's two disagree with each other."""
    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

    for name in sorted(folders):
        bad = _mismatches(folders[name], corpus)
        with capsys.disabled():
            print(f"\n[hf tokenizer, whole corpus] {name}: {len(corpus)} strings, {len(bad)} mismatches")
        assert not bad, (name, [corpus[i][:60] for i in bad[:5]])
    for name in ("bert_files", "bert_chinese_real_vocab"):
        legacy = BertTokenizerLegacy(os.path.join(folders[name], "vocab.txt"))
        fast = transformers.AutoTokenizer.from_pretrained(folders[name])
        ours = HFTokenizer.from_pretrained(folders[name])
        ref_legacy = legacy(corpus, max_length=MAX_LENGTH, padding="max_length", truncation=True)["input_ids"]
        ref_fast = fast(corpus, max_length=MAX_LENGTH, padding="max_length", truncation=True)["input_ids"]
        got = ours(corpus, return_tensors=None)["input_ids"]
        vs_legacy = [i for i in range(len(corpus)) if got[i] != ref_legacy[i]]
        hf_gap = [i for i in range(len(corpus)) if ref_fast[i] != ref_legacy[i]]
        with capsys.disabled():
            print(f"[hf tokenizer] {name}: {len(vs_legacy)} differ from BertTokenizerLegacy, all among the "
                  f"{len(hf_gap)} where HF's fast and legacy tokenizers differ")
        assert set(vs_legacy) <= set(hf_gap)


def test_call_variants_match_hf(corpus, folders):
    """Other lengths, 'longest' / no padding, no truncation, no special tokens: still HF's ids and masks."""
    texts = corpus[:4000:40] + HARD_CASES[:10]
    short = [t for t in texts if len(t) < 200]
    for name in ("roberta_files", "bert_files_saved"):
        for max_length, call in ((16, {}), (2, {}), (64, {"padding": "longest"}), (16, {"padding": False}),
                                 (32, {"add_special_tokens": False})):
            assert not _mismatches(folders[name], texts, max_length, **call), (name, max_length, call)
        assert not _mismatches(folders[name], short, 512, truncation=False, padding="longest")


def test_outputs_types_and_defaults(folders):
    tok = HFTokenizer.from_pretrained(folders["roberta_files"])
    assert tok.model_max_length == MAX_LENGTH and tok.pad_token_id == 1 and (tok.cls_token_id, tok.sep_token_id) == (0, 2)
    enc = tok(["a cat", ""])
    assert set(enc) == {"input_ids", "attention_mask"}
    assert enc["input_ids"].dtype == np.int32 and enc["input_ids"].shape == (2, MAX_LENGTH)
    assert enc["attention_mask"].dtype == np.int32 and enc["attention_mask"][1, :3].tolist() == [1, 1, 0]
    assert enc["input_ids"][1, :3].tolist() == [0, 2, 1]  # <s> </s> <pad>
    assert np.array_equal(tok.batch_ids(["a cat", ""], 16), enc["input_ids"][:, :16])
    single = tok("a cat", return_tensors=None)
    assert single["input_ids"][:2] == [0, tok.encode_text("a cat")[0]] and len(single["input_ids"]) == MAX_LENGTH
    assert tok.decode(tok.encode("a cat on a mat"), skip_special_tokens=True) == "a cat on a mat"
    assert HFTokenizer.from_pretrained(folders["bert_files"], model_max_length=52)(["x"])["input_ids"].shape == (1, 52)
    ms = pytest.importorskip("mindspore")
    out = tok(["a"], return_tensors="ms")
    assert isinstance(out["input_ids"], ms.Tensor) and out["input_ids"].dtype == ms.int32


def test_save_pretrained_copies_the_files(folders, tmp_path):
    for name in ("roberta_files_v4", "bert_files_saved"):
        tok = HFTokenizer.from_pretrained(folders[name])
        written = tok.save_pretrained(tmp_path / name)
        assert sorted(os.path.basename(p) for p in written) == sorted(os.listdir(folders[name]))
        for path in written:
            with open(path, "rb") as a, open(os.path.join(folders[name], os.path.basename(path)), "rb") as b:
                assert a.read() == b.read()
        texts = HARD_CASES + ["two dogs on the grass"]
        assert np.array_equal(HFTokenizer.from_pretrained(tmp_path / name)(texts)["input_ids"], tok(texts)["input_ids"])
        assert tok.save_pretrained(folders[name])  # into its own folder: nothing to copy, no error


def _copy(folders, name, tmp_path):
    target = tmp_path / ("broken_" + name)
    shutil.copytree(folders[name], target)
    return target


def test_errors_name_the_file_and_the_expectation(folders, tmp_path):
    def error(path, match):
        with pytest.raises(HFTokenizerError, match=match) as info:
            HFTokenizer.from_pretrained(path)
        assert "\n" not in str(info.value)

    empty = tmp_path / "empty"
    empty.mkdir()
    error(empty, r"empty: no tokenizer files \(expected tokenizer.json, or vocab.json \+ merges.txt")
    error(tmp_path / "nowhere", "tokenizer folder not found")

    bad = _copy(folders, "roberta_files", tmp_path)
    (bad / "vocab.json").write_text("{not json", encoding="utf-8")
    error(bad, r"vocab.json: cannot read the BPE vocabulary")
    (bad / "vocab.json").write_text("[1, 2]", encoding="utf-8")
    error(bad, r"vocab.json: expected a JSON object \{token: id\}")
    bad = _copy(folders, "roberta_files_v4", tmp_path)
    with open(bad / "merges.txt", "a", encoding="utf-8") as f:
        f.write("one two three\n")
    error(bad, r"merges.txt line \d+: expected a merge rule 'left right'")
    bad = _copy(folders, "bert_files_saved", tmp_path)
    (bad / "tokenizer.json").write_text('{"model": 3}', encoding="utf-8")
    error(bad, r"tokenizer.json: not a valid tokenizer.json")
    bad = _copy(folders, "bert_files", tmp_path)
    (bad / "tokenizer_config.json").write_text("{", encoding="utf-8")
    error(bad, r"tokenizer_config.json: cannot read")
    _write_json(bad / "tokenizer_config.json", {"do_lower_case": "yes"})
    error(bad, r"tokenizer_config.json: do_lower_case must be true or false, got 'yes'")
    # A named token missing from the vocabulary is added after it, as HF adds it (no error there either).
    _write_json(bad / "tokenizer_config.json", {"tokenizer_class": "BertTokenizer", "pad_token": "<new pad>"})
    assert HFTokenizer.from_pretrained(bad).pad_token_id == transformers.AutoTokenizer.from_pretrained(bad).pad_token_id

    tok = HFTokenizer.from_pretrained(folders["roberta_files"])
    for kwargs, match in (({"padding": "longer"}, "padding must be"), ({"return_tensors": "pt"}, "return_tensors"),
                          ({"max_length": 1}, "max_length must be at least 2"),
                          ({"padding": "longest", "truncation": False, "max_length": 8}, None)):
        if match is None:  # ragged rows cannot be one array
            with pytest.raises(HFTokenizerError, match="rows of one length"):
                tok(["a", "a b c d e f"], padding=False, truncation=False)
            continue
        with pytest.raises(HFTokenizerError, match=match):
            tok(["a"], **kwargs)
    with pytest.raises(HFTokenizerError, match=r"text 1 .* is not valid Unicode"):
        tok(["fine", "lone \ud800 surrogate"])
    with pytest.raises(HFTokenizerError, match="expected a text"):
        tok(["a", 3])


# ----------------------------------------------------------------------------- ms_clip.get_tokenizer


def test_get_tokenizer_for_text_tower_and_dual_encoder_folders(folders, tmp_path):
    import ms_clip
    from ms_clip.features import caption_tokenizer_for_model, tokenizer_for_model

    texts = ["a photo of a cat", "", "two dogs " * 100, "naïve café 🙂"]
    # An HF RoBERTa folder (config.json of the text model + tokenizer files): its tokenizer at run_clip's 128.
    text_tower = _copy(folders, "roberta_files", tmp_path)
    _write_json(text_tower / "config.json", {"model_type": "roberta", "architectures": ["RobertaForMaskedLM"]})
    tok = ms_clip.get_tokenizer(str(text_tower))
    ref = transformers.AutoTokenizer.from_pretrained(folders["roberta_files"])(
        texts, max_length=MAX_LENGTH, padding="max_length", truncation=True, return_tensors="np")
    assert isinstance(tok, HFTokenizer) and tok.model_max_length == MAX_LENGTH
    assert np.array_equal(tok(texts)["input_ids"], ref["input_ids"])
    assert np.array_equal(tok(texts)["attention_mask"], ref["attention_mask"])

    # A dual encoder saved with its tokenizer files: from the folder, the .ckpt, the model; its context length.
    model = ms_clip.create_model("dual_encoder_tiny", context_length=40)
    model.tokenizer_dir = str(text_tower)
    ckpt = model.save_pretrained(str(tmp_path / "dual"))
    ref40 = transformers.AutoTokenizer.from_pretrained(folders["roberta_files"])(
        texts, max_length=40, padding="max_length", truncation=True, return_tensors="np")
    for spec in (str(tmp_path / "dual"), ckpt, model):
        tok = ms_clip.get_tokenizer(spec)
        assert isinstance(tok, HFTokenizer) and tok.model_max_length == 40, spec
        assert np.array_equal(tok(texts)["input_ids"], ref40["input_ids"]), spec
        assert np.array_equal(tok(texts)["attention_mask"], ref40["attention_mask"]), spec
    # What zero-shot, retrieval, the pipeline and training tokenize with.
    assert np.array_equal(tokenizer_for_model(model)(texts), ref40["input_ids"])
    assert np.array_equal(caption_tokenizer_for_model(model)(texts, context_length=40), ref40["input_ids"])
    assert tokenizer_for_model(model, 16)(texts).shape == (4, 16)
    with pytest.raises(ms_clip.models.ConfigError, match="alone does not say where its text tokenizer is"):
        ms_clip.get_tokenizer(model.config)
    # CLIP is untouched.
    assert ms_clip.get_tokenizer("clip_vit_b_32")(["a cat"]).shape == (1, 77)


# ----------------------------------------------------------------------------- the dual encoder's processor


def _example_transform(image_size, mean, std):
    """run_clip.py's ``Transform`` (torchvision Resize / CenterCrop / ConvertImageDtype / Normalize, scripted)."""
    torch = pytest.importorskip("torch")
    tv = pytest.importorskip("torchvision.transforms")
    from torchvision.transforms.functional import InterpolationMode

    class Transform(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.transforms = torch.nn.Sequential(tv.Resize([image_size], interpolation=InterpolationMode.BICUBIC),
                                                  tv.CenterCrop(image_size), tv.ConvertImageDtype(torch.float),
                                                  tv.Normalize(mean, std))

        def forward(self, x):
            with torch.no_grad():
                return self.transforms(x)

    return torch.jit.script(Transform())


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory):
    """skimage's sample photos at COCO-like and odd sizes (down- and up-scaling), as JPEG and PNG, in the modes
    photos come in (RGB, greyscale, RGBA with transparency, palette)."""
    data = pytest.importorskip("skimage.data")
    from PIL import Image

    root = tmp_path_factory.mktemp("photos")
    out = []
    for name, size in (("astronaut", (640, 480)), ("coffee", (500, 375)), ("chelsea", (333, 500)),
                       ("rocket", (150, 100)), ("camera", (224, 224)), ("hubble_deep_field", (427, 640)),
                       ("coffee", (1001, 97))):
        image = Image.fromarray(getattr(data, name)()).resize(size, Image.LANCZOS)
        for mode, ext in (("RGB", "jpg"), ("L", "jpg"), ("RGBA", "png"), ("P", "png")):
            converted = image.convert(mode)
            if mode == "RGBA":
                alpha = np.linspace(0, 255, converted.width * converted.height).reshape(converted.height, -1)
                converted.putalpha(Image.fromarray(alpha.astype(np.uint8)))
            path = root / f"{name}_{size[0]}x{size[1]}_{mode}.{ext}"
            converted.save(path, quality=90) if ext == "jpg" else converted.save(path)
            out.append(str(path))
    return out


def test_processor_pixels_match_run_clip_transform(photo_files, capsys):
    """Our dual-encoder image preprocessing against the example's torchvision transform on the same files."""
    from torchvision.io import ImageReadMode, read_image

    from ms_clip.constants import CLIP_MEAN, CLIP_STD
    from ms_clip.processor import CLIPImageProcessor

    worst, differing, total = 0.0, 0, 0
    for size in (224, 32):
        reference = _example_transform(size, CLIP_MEAN, CLIP_STD)
        ours = CLIPImageProcessor(size, backend="torchvision")
        for path in photo_files:
            want = reference(read_image(path, ImageReadMode.RGB)).numpy()
            got = ours.preprocess_one(path)
            assert got.shape == want.shape and got.dtype == np.float32
            diff = np.abs(got - want)
            worst, differing, total = max(worst, float(diff.max())), differing + int((diff > 0).sum()), total + diff.size
    # One uint8 level after normalisation is 1 / 255 / min(std) = 0.0150.
    one_level = 1 / 255 / min(CLIP_STD) + 1e-6
    with capsys.disabled():
        print(f"\n[dual encoder processor] {len(photo_files)} files x 2 sizes: {differing} of {total} values differ "
              f"from run_clip.py's Transform ({differing / total:.1e}), max abs diff {worst:.4f} (one uint8 level = "
              f"{one_level:.4f}); OpenAI's PIL pipeline on the same files differs by up to "
              f"{_pil_gap(photo_files):.3f}")
    assert worst <= one_level and differing / total < 1e-4


def _pil_gap(paths):
    from torchvision.io import ImageReadMode, read_image

    from ms_clip.constants import CLIP_MEAN, CLIP_STD
    from ms_clip.processor import CLIPImageProcessor

    reference, pil = _example_transform(224, CLIP_MEAN, CLIP_STD), CLIPImageProcessor(224)
    return max(float(np.abs(pil.preprocess_one(p) - reference(read_image(p, ImageReadMode.RGB)).numpy()).max())
               for p in paths[:8])


def test_dual_encoder_processor_from_folder(folders, photo_files, tmp_path):
    import ms_clip
    from ms_clip.processor import CLIPImageProcessor, VisionTextDualEncoderProcessor

    folder = _copy(folders, "bert_files_saved", tmp_path)
    model = ms_clip.create_model("dual_encoder_tiny", context_length=20)
    model.tokenizer_dir = str(folder)
    model.save_pretrained(str(tmp_path / "dual"))
    # HF's processor files: run_clip.py normalises with the image processor's mean/std.
    _write_json(tmp_path / "dual" / "preprocessor_config.json", {"image_mean": [0.5, 0.5, 0.5],
                                                                 "image_std": [0.25, 0.25, 0.25]})
    proc = VisionTextDualEncoderProcessor.from_pretrained(str(tmp_path / "dual"))
    out = proc(text=["a cat", ""], images=photo_files[:3])
    assert sorted(out) == ["attention_mask", "input_ids", "pixel_values"]
    assert out["input_ids"].shape == (2, 20) and out["pixel_values"].shape == (3, 3, 32, 32)
    ref = transformers.AutoTokenizer.from_pretrained(folders["bert_files"])(
        ["a cat", ""], max_length=20, padding="max_length", truncation=True, return_tensors="np")
    assert np.array_equal(out["input_ids"], ref["input_ids"]) and np.array_equal(out["attention_mask"],
                                                                                 ref["attention_mask"])
    expected = CLIPImageProcessor(32, mean=[0.5] * 3, std=[0.25] * 3, backend="torchvision")(photo_files[:3],
                                                                                            return_tensors="np")
    assert np.array_equal(out["pixel_values"], expected)
    proc.save_pretrained(tmp_path / "proc")
    again = VisionTextDualEncoderProcessor.from_pretrained(str(tmp_path / "proc"))
    assert again.image_processor.to_dict() == proc.image_processor.to_dict()
    assert np.array_equal(again(text=["a cat", ""], max_length=20)["input_ids"], out["input_ids"])
    from ms_clip.processor import image_processor_for

    assert image_processor_for(model.config).to_dict() == {**CLIPImageProcessor(32).to_dict(), "backend": "torchvision"}
    with pytest.raises(ValueError, match="backend must be"):
        CLIPImageProcessor(32, resize_mode="squash", backend="torchvision")
