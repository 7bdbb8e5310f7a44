"""ms_clip.tokenizer against the reference tokenizers, token for token.

Oracles:
* OpenAI's own ``clip/simple_tokenizer.py`` (from the clip-anytorch wheel, loaded by file path so
  that ``clip/__init__`` and its torchvision imports are not needed);
* open_clip's ``SimpleTokenizer`` / ``open_clip.tokenize``.

The two agree on every text except where the special tokens are written in the text: OpenAI
recognises ``<|startoftext|>``/``<|endoftext|>``, open_clip renamed them ``<start_of_text>``/
``<end_of_text>``. ms_clip uses OpenAI's (and MindFormers') names, so OpenAI is the oracle for every
string and open_clip for every string without a special-token spelling.
"""

from __future__ import annotations

import gzip
import importlib.util
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ms_clip.tokenizer import DEFAULT_BPE_SHA256, CLIPTokenizer, default_bpe_path, tokenize

from _helpers_text_corpus import collect_corpus

open_clip_tokenizer = pytest.importorskip("open_clip.tokenizer")

REPO = Path(__file__).resolve().parents[1]
SPECIAL_SPELLINGS = ("<|startoftext|>", "<|endoftext|>", "<start_of_text>", "<end_of_text>")

HARD_CASES = [
    # unicode: accents (NFC and NFD), ß, dotted İ (lower() lengthens it), ligatures, full width, scripts
    "Ünïcödé façade", "cafe\u0301 vs café", "Straße ẞ", "İstanbul DİYARBAKIR", "ﬁnancial ﬂubberiﬁc",
    "ＬＯＵＤ　ＮＯＩＳＥＳ", "Ωμέγα Σίσυφος", "Съешь же ещё этих мягких французских булок",
    "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก", "안녕하세요 세계", "こんにちは世界、カタカナ",
    "一只猫坐在垫子上。", "Tiếng Việt có dấu", "ᚠᛇᚻ᛫ᛒᛦᚦ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙", "Ⅻ ⅻ ① ½ ²³",
    # emoji: plain, skin tone, ZWJ sequences, flags, keycaps, variation selectors
    "😀🎉👍🏽", "family 👨‍👩‍👧‍👦 here", "🇫🇷🇯🇵🏳️‍🌈", "1️⃣ #️⃣ ❤️ ☺︎", "a photo of a 🐱 on a 🛋️",
    # HTML entities: single, double and triple escaped (ftfy unescapes once more unless '<' is present)
    "Tom &amp; Jerry", "&amp;amp;lt;b&amp;amp;gt;", "&lt;b&gt;bold&lt;/b&gt;", "<b>x</b> &amp;amp; y",
    "it&#x2019;s &#8220;quoted&#8221;", "non&nbsp;breaking&hellip;", "&notanentity; & &", "&#0; &#xD800;",
    # mojibake that ftfy repairs
    "âœ” No problems", "CafÃ©", "&macr;\\_(ã\x83\x84)_/&macr;", "The Mona Lisa doesnÃ¢â‚¬â„¢t have eyebrows.",
    "Ã¶Ã¤Ã¼ ÃŸ", "à¤¨à¤®à¤¸à¥\x8dà¤¤à¥‡",
    # contractions, straight and curly, upper case
    "I've we're it's don't I'm you'll he'd", "WE'VE THEY'RE IT'S", "it’s ‘quoted’ “double”", "'s 't 've",
    "rock'n'roll o'clock y'all'd've",
    # digits: each is its own token
    "1234567890", "3.14159 2.71828", "2024-01-01T12:34:56Z", "١٢٣٤ ٥٦", "१२३ ໑໒", "0x1F600 1e-9 -42",
    # whitespace oddities and control characters
    "\t\n  a \r\n b\x0b c\x0c d\u00a0e\u2003f\u3000g\x85h\u2028i\u2029j",
    "", "   ", "\n\n", "\x1c\x1d\x1e\x1f", "a\u200bb\u200cc\u200dd", "\ufeffbom", "\x00nul\x07bel\x7fdel",
    "\x1b[31mred\x1b[0m text", "tab\tseparated\tvalues", "trailing spaces   ", "   leading",
    # special tokens written as text (both spellings, any case) and near misses
    "<|startoftext|>", "<|endoftext|>", "<|ENDOFTEXT|>", "a<|endoftext|>b<|startoftext|>c",
    "<start_of_text>", "<end_of_text>", "<|endoftext", "|endoftext|>", "<||>",
    # punctuation runs, code, URLs
    "!!!???...", "foo(bar)[baz]{qux}", "https://example.com/a?b=c&d=e#f", "user@example.com",
    "def f(x): return x ** 2  # comment", "$100 €50 ¥1000 £5", "@@@ ### %%% ^^^", "a--b__c~~d",
    # very long strings (far beyond 77 tokens; BPE over very long words)
    "a " * 5000, "x" * 3000, "supercalifragilisticexpialidocious" * 100, "🙂" * 500,
    "The quick brown fox jumps over the lazy dog. " * 200, "".join(chr(c) for c in range(0x20, 0x3000, 7)),
]


def _load_openai_simple_tokenizer():
    spec = importlib.util.find_spec("clip")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("clip-anytorch (OpenAI's tokenizer) is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "simple_tokenizer.py"
    module_spec = importlib.util.spec_from_file_location("openai_clip_simple_tokenizer", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.SimpleTokenizer()


@pytest.fixture(scope="module")
def openai_ref():
    return _load_openai_simple_tokenizer()


@pytest.fixture(scope="module")
def open_clip_ref():
    return open_clip_tokenizer.SimpleTokenizer()


@pytest.fixture(scope="module")
def ours():
    return CLIPTokenizer()


@pytest.fixture(scope="module")
def corpus():
    return collect_corpus(minimum=50_000) + HARD_CASES


def _has_special_spelling(text: str) -> bool:
    lowered = text.lower()
    return any(s in lowered for s in SPECIAL_SPELLINGS)


def test_corpus_token_for_token(corpus, ours, openai_ref, open_clip_ref, capsys):
    start = time.perf_counter()
    mismatches_openai, mismatches_open_clip, compared_open_clip = [], [], 0
    for text in corpus:
        got = ours.encode_text(text)
        if got != openai_ref.encode(text):
            mismatches_openai.append(text)
        if not _has_special_spelling(text):
            compared_open_clip += 1
            if got != open_clip_ref.encode(text):
                mismatches_open_clip.append(text)
    non_ascii = sum(not t.isascii() for t in corpus)
    with capsys.disabled():
        print(
            f"\n[tokenizer corpus] {len(corpus)} strings ({non_ascii} non-ASCII, {len(HARD_CASES)} hand-picked): "
            f"{len(mismatches_openai)} mismatches vs OpenAI, {len(mismatches_open_clip)} vs open_clip "
            f"(on {compared_open_clip} strings without special-token spellings) "
            f"in {time.perf_counter() - start:.1f} s"
        )
    assert len(corpus) >= 50_000
    assert non_ascii >= 1000, "the corpus must exercise the ftfy (non-ASCII) path too"
    assert not mismatches_openai, f"first mismatches vs OpenAI: {[t[:80] for t in mismatches_openai[:5]]}"
    assert not mismatches_open_clip, f"first mismatches vs open_clip: {[t[:80] for t in mismatches_open_clip[:5]]}"


@pytest.mark.parametrize("text", HARD_CASES, ids=range(len(HARD_CASES)))
def test_hard_cases_and_decode(text, ours, openai_ref):
    ids = ours.encode_text(text)
    assert ids == openai_ref.encode(text)
    assert ours.decode(ids) == openai_ref.decode(ids)


def test_special_tokens_as_text_follow_openai(ours, open_clip_ref):
    # The one place where the references disagree: OpenAI's spelling is special for us.
    assert ours.encode_text("<|endoftext|>") == [49407]
    assert ours.encode_text("<|startoftext|>") == [49406]
    assert open_clip_ref.encode("<end_of_text>") == [49407]
    assert ours.encode_text("<end_of_text>") != [49407]


def test_vocabulary_matches_reference(ours, open_clip_ref):
    assert ours.vocab_size == open_clip_ref.vocab_size == 49408
    rename = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    expected = {rename.get(t, t): i for t, i in open_clip_ref.encoder.items()}
    assert ours.get_vocab() == expected


def test_hello_world_example_and_pad_tokens():
    # MindFormers' own test example, with the YAML pad '!' (id 0) and with the default pad (EOT).
    bang = CLIPTokenizer(pad_token="!")
    out = bang("hello world?", max_length=8, return_tensors=None)
    assert out["input_ids"] == [49406, 3306, 1002, 286, 49407, 0, 0, 0]
    assert out["attention_mask"] == [1, 1, 1, 1, 1, 0, 0, 0]
    default = CLIPTokenizer()
    assert default.pad_token_id == 49407
    assert default("hello world?", max_length=8, return_tensors=None)["input_ids"] == [
        49406, 3306, 1002, 286, 49407, 49407, 49407, 49407]
    assert bang.encode("hello world?") == [49406, 3306, 1002, 286, 49407]


def test_call_return_tensors_and_padding(corpus):
    tok = CLIPTokenizer(pad_token="!")
    texts = corpus[:200:7] + ["a " * 200]
    ref = tokenize(texts)
    as_np = tok(texts, return_tensors="np")
    assert as_np["input_ids"].dtype == np.int32 and as_np["input_ids"].shape == (len(texts), 77)
    np.testing.assert_array_equal(as_np["input_ids"], ref)
    lengths = [min(len(tok.encode(t)), 77) for t in texts]
    np.testing.assert_array_equal(as_np["attention_mask"].sum(1), lengths)
    # the mask is 1 exactly on the non-padding prefix
    np.testing.assert_array_equal(as_np["attention_mask"], np.arange(77)[None, :] < np.array(lengths)[:, None])

    import mindspore as ms

    as_ms = tok(texts, return_tensors="ms")
    assert isinstance(as_ms["input_ids"], ms.Tensor) and as_ms["input_ids"].dtype == ms.int32
    np.testing.assert_array_equal(as_ms["input_ids"].asnumpy(), ref)
    np.testing.assert_array_equal(as_ms["attention_mask"].asnumpy(), as_np["attention_mask"])

    as_lists = tok(texts, return_tensors=None)
    assert as_lists["input_ids"] == ref.tolist()
    single = tok(texts[0], return_tensors="np")
    assert single["input_ids"].shape == (1, 77)

    longest = tok(["a cat", "a photo of a dog"], padding="longest", return_tensors="np")
    assert longest["input_ids"].shape == (2, 7) and longest["attention_mask"][0].tolist() == [1] * 4 + [0] * 3
    unpadded = tok(["a cat", "a photo of a dog"], padding=False, return_tensors=None)
    assert [len(r) for r in unpadded["input_ids"]] == [4, 7]
    with pytest.raises(ValueError, match="equal length"):
        tok(["a cat", "a photo of a dog"], padding=False, return_tensors="np")
    with pytest.raises(ValueError, match="return_tensors"):
        tok("x", return_tensors="pt")
    with pytest.raises(ValueError, match="padding"):
        tok("x", padding="left")


def test_tokenize_matches_open_clip_with_truncation(corpus):
    import open_clip

    # Every 250th string: a mix of short lines and long paragraphs (truncated), plus hard cases.
    texts = [t for t in corpus[::250] + HARD_CASES if not _has_special_spelling(t)]
    for context_length in (77, 16):
        got = tokenize(texts, context_length=context_length)
        expected = open_clip.tokenize(texts, context_length=context_length).numpy()
        assert got.dtype == np.int32 and got.shape == (len(texts), context_length)
        np.testing.assert_array_equal(got, expected)
    long_rows = tokenize(["a " * 100, "x" * 3000], context_length=77)
    assert (long_rows[:, -1] == 49407).all() and (long_rows != 0).all()
    assert tokenize([]).shape == (0, 77)
    assert tokenize("a cat").shape == (1, 77)


def test_tokenize_without_truncation_raises_with_text_and_length(openai_ref):
    text = "a photo of " * 40
    n_tokens = len(openai_ref.encode(text)) + 2
    with pytest.raises(ValueError) as info:
        tokenize(["short", text], truncate=False)
    message = str(info.value)
    assert f"{n_tokens} tokens" in message and "context length 77" in message
    assert "'a photo of a photo of" in message and len(message) < 300  # the text, shortened
    # exactly at the limit is fine: 75 tokens + SOT + EOT
    fits = "a " * 75
    assert tokenize(fits, truncate=False)[0, -1] == 49407
    with pytest.raises(ValueError, match="76 tokens"):
        tokenize("a " * 74, context_length=75, truncate=False)
    with pytest.raises(ValueError, match="context_length"):
        tokenize("x", context_length=1)


def test_tokenize_reuses_one_tokenizer_and_is_fast():
    tokenize("warm up")
    start = time.perf_counter()
    for _ in range(200):
        tokenize(["a photo of a cat.", "a photo of a dog."])
    per_call = (time.perf_counter() - start) / 200
    # Building a tokenizer takes ~0.1 s; a reused one tokenizes two prompts in microseconds.
    assert per_call < 2e-3, f"tokenize() took {per_call * 1e3:.2f} ms per call; is the tokenizer rebuilt?"


def test_bounded_cache_gives_the_same_ids(corpus, ours):
    small = CLIPTokenizer(max_cached_words=50)
    texts = corpus[:3000:3]
    assert [small.encode_text(t) for t in texts] == [ours.encode_text(t) for t in texts]
    assert len(small._word_ids) <= 50


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(TypeError, match="str"):
        CLIPTokenizer().encode(123)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pad_token='<pad>'"):
        CLIPTokenizer(pad_token="<pad>")
    with pytest.raises(FileNotFoundError, match="nowhere.txt.gz"):
        CLIPTokenizer(vocab_file=tmp_path / "nowhere.txt.gz")


def test_merges_file_hash_is_checked(tmp_path):
    good = default_bpe_path()
    assert good.is_file()
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged = tmp_path / good.name
    damaged.write_bytes(bytes(data))
    with pytest.raises(ValueError) as info:
        CLIPTokenizer(vocab_file=damaged)
    assert str(damaged) in str(info.value) and DEFAULT_BPE_SHA256 in str(info.value)

    # Same content under another name: accepted as a custom vocabulary, same ids.
    renamed = tmp_path / "my_merges.txt.gz"
    shutil.copy(good, renamed)
    assert CLIPTokenizer(vocab_file=renamed).encode("hello world?") == [49406, 3306, 1002, 286, 49407]

    short = tmp_path / "short.txt.gz"
    short.write_bytes(gzip.compress(b"#version: 0.2\na b\n"))
    with pytest.raises(ValueError, match="48894"):
        CLIPTokenizer(vocab_file=short)


def test_modules_import_without_torch():
    # Data-pipeline workers import these modules: they must not pull the optional torch in. (mindspore is a
    # runtime dependency: importing any ms_clip module runs the package's __init__, which registers the one
    # loader with the models -- ms_clip.models.base.register_loader -- and the workers run inside MindSpore anyway.)
    code = (
        "import importlib.util, sys\n"
        "for name in ('tokenizer', 'processor'):\n"
        f"    spec = importlib.util.spec_from_file_location('standalone_' + name, r'{REPO}/ms_clip/' + name + '.py')\n"
        "    module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "module.preprocess\n"
        "heavy = sorted(m for m in ('torch', 'torchvision') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
