"""BERT WordPiece tokenizer, id-for-id identical to Chinese-CLIP's ``cn_clip.clip.tokenize``.

Two entry points, as for CLIP's BPE (``ms_clip.tokenizer``):

* ``tokenize(texts, context_length=52)`` -> ``np.ndarray[int32]`` ``[N, context_length]``:
  ``[CLS]`` (101) + WordPiece ids[:context_length - 2] + ``[SEP]`` (102), zero padded -- exactly
  ``cn_clip.clip.tokenize``.
* ``BertTokenizer`` with the MindFormers/HF interface: ``tok(texts, max_length=52,
  padding="max_length", return_tensors="ms")`` -> ``{"input_ids", "attention_mask"}``, plus
  ``from_pretrained`` / ``save_pretrained``, ``tokenize``, ``encode``, ``decode``.

How it works. The reference is Google BERT's ``BasicTokenizer`` + ``WordpieceTokenizer`` in Python
(``cn_clip/clip/bert_tokenizer.py``). The WordPiece model -- greedy longest match with ``##``
continuations, words over 200 characters become ``[UNK]`` -- runs in HF ``tokenizers`` (Rust). Its
``BertNormalizer``/``BertPreTokenizer`` were measured against the reference on every Unicode code point
(in context) and differ in four ways, so the basic tokenizer's text steps run here, in Python, as a
documented pre-step (``str.translate`` tables filled lazily from Python's own ``unicodedata``, which is
what the reference consults):

1. control characters: HF's ``clean_text`` also deletes unassigned (Cn) and private-use (Co)
   characters, which the reference keeps (they become ``[UNK]``);
2. lower-casing: HF lower-cases character by character, so a word-final capital sigma becomes 'σ'
   where Python's ``str.lower`` (the reference) gives 'ς';
3. accents and punctuation: HF's Unicode tables are older than Python's, so combining marks (Mn) and
   punctuation added since (e.g. U+2E44, U+1ACC) are not stripped / split;
4. CJK: HF's ideograph ranges end before CJK Extension E (U+2B820-U+2CEAF), which the reference spaces.

The pre-step applies the reference's steps in its order (clean -> space around CJK -> lower-case ->
NFD and drop Mn -> space around punctuation), after which a plain whitespace split and HF's WordPiece
give the reference's tokens. ``tests/test_chinese_clip.py`` checks 0 mismatches on a real-text corpus
and on every code point.

The vocabulary (21,128 tokens, Google's BERT-Chinese vocabulary as ``cn_clip`` ships it) is
``ms_clip/assets/chinese_clip_vocab.txt``; its licence notice is beside it.
"""
from __future__ import annotations

import functools
import os
import unicodedata
from typing import Dict, Iterable, List, Optional, Sequence, Union

import numpy as np

from ms_clip.errors import MsClipError

__all__ = ["BertTokenizer", "tokenize", "default_vocab_path", "BertTokenizerError", "VOCAB_FILE_NAME",
           "CHINESE_CLIP_VOCAB_SHA256"]

_ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
VOCAB_FILE_NAME = "vocab.txt"  # what HF's / MindFormers' BERT tokenizers read and write in a folder
CHINESE_CLIP_VOCAB_SHA256 = "45bbac6b341c319adc98a532532882e91a9cefc0329aa57bac9ae761c27b291c"
DEFAULT_CONTEXT_LENGTH = 52  # cn_clip.clip.tokenize's default; every released Chinese-CLIP model
MAX_INPUT_CHARS_PER_WORD = 200  # the reference's WordpieceTokenizer limit (HF's default is 100)

TextInput = Union[str, Sequence[str]]


class BertTokenizerError(MsClipError, ValueError):
    """A vocabulary is missing or invalid, or an argument is out of range; the message names it."""


def default_vocab_path() -> str:
    return os.path.join(_ASSETS, "chinese_clip_vocab.txt")


# ----------------------------------------------------------------------------- the pre-step


# The reference's _is_chinese_char ranges (CJK Unified Ideographs, Extensions A-E, Compatibility
# Ideographs and their Supplement) -- fixed code point ranges, not a Unicode property.
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
               (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def _is_cjk(cp: int) -> bool:
    return any(a <= cp <= b for a, b in _CJK_RANGES)


def _is_punctuation(cp: int) -> bool:
    # The reference's _is_punctuation: ASCII non-alphanumerics count even where Unicode says S* ($, +, ^).
    return 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126 or \
        unicodedata.category(chr(cp)).startswith("P")


def _clean_and_space_cjk(cp: int) -> Optional[str]:
    """_clean_text then _tokenize_chinese_chars for one code point (None = delete)."""
    ch = chr(cp)
    cat = unicodedata.category(ch)
    if ch in " \t\n\r" or cat == "Zs":  # _is_whitespace
        return " "
    if cp == 0 or cp == 0xFFFD or cat in ("Cc", "Cf"):  # _is_control (tab/newline/CR were whitespace above)
        return None
    return f" {ch} " if _is_cjk(cp) else ch


class _LazyTable(dict):
    """A ``str.translate`` table filled on first sight of each code point: C-speed lookups for the
    characters a corpus actually uses, and no scan of all 1.1 M code points at start-up."""

    def __init__(self, rule):
        super().__init__()
        self.rule = rule

    def __missing__(self, cp: int) -> Optional[str]:
        value = self.rule(cp)
        self[cp] = value
        return value


_CLEAN = _LazyTable(_clean_and_space_cjk)
_DROP_MARKS = _LazyTable(lambda cp: None if unicodedata.category(chr(cp)) == "Mn" else chr(cp))  # strip accents
_SPACE_PUNCT = _LazyTable(lambda cp: f" {chr(cp)} " if _is_punctuation(cp) else chr(cp))


def basic_normalize(text: str, do_lower_case: bool = True) -> str:
    """The reference BasicTokenizer's text steps; the result split on whitespace is its token list.

    Order as in the reference: delete NUL, U+FFFD and control/format characters, whitespace -> ' ';
    spaces around CJK ideographs; then (``do_lower_case``) ``str.lower`` and NFD with combining marks
    dropped; finally spaces around punctuation.
    """
    text = text.translate(_CLEAN)
    if do_lower_case:
        # The reference lower-cases each whitespace token; whole-string str.lower is the same because the
        # final-sigma rule never looks across whitespace or the (uncased) ideographs spaced out above.
        text = unicodedata.normalize("NFD", text.lower()).translate(_DROP_MARKS)
    return text.translate(_SPACE_PUNCT)


# ----------------------------------------------------------------------------- vocabulary


def _read_vocab(path: str) -> Dict[str, int]:
    """One token per line, id = line number (the reference's load_vocab: lines stripped; a later duplicate wins)."""
    if not os.path.isfile(path):
        raise BertTokenizerError(f"vocabulary file not found: {path} (expected a BERT vocab.txt, one token per line)")
    vocab: Dict[str, int] = {}
    with open(path, "r", encoding="utf-8") as f:
        for index, line in enumerate(f):
            vocab[line.strip()] = index
    if not vocab:
        raise BertTokenizerError(f"{path}: empty vocabulary")
    return vocab


class BertTokenizer:
    """Chinese-CLIP's WordPiece tokenizer (BERT's basic tokenizer + WordPiece), MindFormers/HF style.

    Args:
        vocab_file: a BERT ``vocab.txt``; default: Chinese-CLIP's, shipped in ``ms_clip/assets``.
        do_lower_case: lower-case and strip accents (Chinese-CLIP: True).
        model_max_length: the default ``max_length`` (Chinese-CLIP's context length, 52).

    Example:
        >>> tok = BertTokenizer()
        >>> tok.tokenize("一只猫 on the mat!")
        ['一', '只', '猫', 'on', 'the', 'mat', '!']
        >>> tok(["一只猫"], return_tensors="np")["input_ids"][0, :5].tolist()
        [101, 671, 1372, 4344, 102]
    """

    vocab_files_names = {"vocab_file": VOCAB_FILE_NAME}

    def __init__(self, vocab_file: Optional[str] = None, do_lower_case: bool = True,
                 model_max_length: int = DEFAULT_CONTEXT_LENGTH, unk_token: str = "[UNK]", cls_token: str = "[CLS]",
                 sep_token: str = "[SEP]", pad_token: str = "[PAD]", mask_token: str = "[MASK]",
                 max_input_chars_per_word: int = MAX_INPUT_CHARS_PER_WORD):
        from tokenizers import Tokenizer, models, pre_tokenizers

        self.vocab_file = os.fspath(vocab_file) if vocab_file else default_vocab_path()
        self.vocab = _read_vocab(self.vocab_file)
        self.ids_to_tokens = {i: t for t, i in self.vocab.items()}
        self.do_lower_case = do_lower_case
        self.model_max_length = model_max_length
        self.unk_token, self.cls_token, self.sep_token = unk_token, cls_token, sep_token
        self.pad_token, self.mask_token = pad_token, mask_token
        for name in ("unk_token", "cls_token", "sep_token", "pad_token"):
            if getattr(self, name) not in self.vocab:
                raise BertTokenizerError(f"{self.vocab_file}: {name} {getattr(self, name)!r} is not in the vocabulary")
        self.unk_token_id = self.vocab[unk_token]
        self.cls_token_id = self.vocab[cls_token]
        self.sep_token_id = self.vocab[sep_token]
        self.pad_token_id = self.vocab[pad_token]
        # Text steps run in basic_normalize (see the module docstring); tokenizers splits on whitespace
        # and runs WordPiece, which is all of the work per word.
        self._wordpiece = Tokenizer(models.WordPiece(self.vocab, unk_token=unk_token,
                                                     max_input_chars_per_word=max_input_chars_per_word))
        self._wordpiece.pre_tokenizer = pre_tokenizers.WhitespaceSplit()

    # ------------------------------------------------------------------ MindFormers / HF-style API
    @classmethod
    def from_pretrained(cls, name_or_path: Optional[str] = None, **kwargs) -> "BertTokenizer":
        """A tokenizer from a folder holding ``vocab.txt`` (HF / save_pretrained), a vocab file, or a
        Chinese-CLIP model name / checkpoint / config (all use the shipped vocabulary)."""
        path = os.fspath(name_or_path) if name_or_path else ""
        if path and os.path.isdir(path):
            vocab = os.path.join(path, VOCAB_FILE_NAME)
            if os.path.isfile(vocab):
                return cls(vocab, **kwargs)
            if not any(os.path.isfile(os.path.join(path, f)) for f in ("config.yaml", "config.json")):
                raise BertTokenizerError(f"{path}: no {VOCAB_FILE_NAME} in this directory (expected a BERT "
                                         f"tokenizer folder or a Chinese-CLIP model folder)")
        elif path.endswith(".txt"):
            return cls(path, **kwargs)
        return cls(**kwargs)

    def save_pretrained(self, save_directory: str) -> str:
        """Write ``vocab.txt`` (one token per line, in id order) into ``save_directory``; returns its path."""
        from ms_clip.fileio import atomic_write

        os.makedirs(save_directory, exist_ok=True)
        path = os.path.join(save_directory, VOCAB_FILE_NAME)
        with atomic_write(path) as f:
            f.write("".join(self.ids_to_tokens[i] + "\n" for i in range(len(self.ids_to_tokens))))
        return path

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def get_vocab(self) -> Dict[str, int]:
        return dict(self.vocab)

    def encode_text(self, text: str) -> List[int]:
        """WordPiece ids of ``text`` without special tokens (the reference's convert_tokens_to_ids(tokenize(text)))."""
        return self._wordpiece.encode(basic_normalize(_as_text(text), self.do_lower_case),
                                      add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> List[List[int]]:
        normalized = [basic_normalize(_as_text(t), self.do_lower_case) for t in texts]
        return [e.ids for e in self._wordpiece.encode_batch(normalized, add_special_tokens=False)]

    def tokenize(self, text: str) -> List[str]:
        """WordPiece token strings (no special tokens)."""
        return [self.ids_to_tokens[i] for i in self.encode_text(text)]

    def convert_tokens_to_ids(self, tokens: Union[str, Iterable[str]]) -> Union[int, List[int]]:
        if isinstance(tokens, str):
            return self.vocab.get(tokens, self.unk_token_id)
        return [self.vocab.get(t, self.unk_token_id) for t in tokens]

    def convert_ids_to_tokens(self, ids: Union[int, Iterable[int]]) -> Union[str, List[str]]:
        if isinstance(ids, (int, np.integer)):
            return self.ids_to_tokens[int(ids)]
        return [self.ids_to_tokens[int(i)] for i in ids]

    def encode(self, text: str, add_special_tokens: bool = True) -> List[int]:
        ids = self.encode_text(text)
        return [self.cls_token_id] + ids + [self.sep_token_id] if add_special_tokens else ids

    def decode(self, ids: Union[Sequence[int], np.ndarray], skip_special_tokens: bool = False) -> str:
        """Tokens joined by spaces with ``##`` continuations glued on (padding is always dropped)."""
        specials = {self.cls_token_id, self.sep_token_id, self.pad_token_id}
        tokens = []
        for i in np.asarray(ids).reshape(-1).tolist():
            if i == self.pad_token_id or (skip_special_tokens and i in specials):
                continue
            tokens.append(self.ids_to_tokens[int(i)])
        return " ".join(tokens).replace(" ##", "").strip()

    def batch_ids(self, texts: TextInput, context_length: Optional[int] = None) -> np.ndarray:
        """int32 ``[N, context_length]``: [CLS] + ids[:context_length - 2] + [SEP], then ``pad_token_id``."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        length = int(context_length or self.model_max_length)
        if length < 2:
            raise BertTokenizerError(f"context_length must be at least 2 (room for [CLS] and [SEP]), got {length}")
        out = np.full((len(texts), length), self.pad_token_id, dtype=np.int32)
        for row, ids in zip(out, self.encode_batch(texts)):
            ids = ids[: length - 2]
            row[0] = self.cls_token_id
            row[1: len(ids) + 1] = ids
            row[len(ids) + 1] = self.sep_token_id
        return out

    def __call__(self, text: TextInput, max_length: Optional[int] = None,
                 padding: Union[bool, str] = "max_length", truncation: bool = True,
                 return_tensors: Optional[str] = "ms", **kwargs: object) -> Dict[str, object]:
        """Tokenize one text or a batch into ``{"input_ids", "attention_mask"}`` (CLIPTokenizer's contract).

        Args:
            text: a string or a sequence of strings.
            max_length: length to pad/truncate to (default ``model_max_length``, 52).
            padding: "max_length", "longest" (True) or False / "do_not_pad".
            truncation: keep [CLS] + the first max_length - 2 ids + [SEP] (the reference's cut).
            return_tensors: "ms" (mindspore.Tensor int32), "np" (numpy int32) or None (lists).
        """
        single = isinstance(text, str)
        texts = [text] if single else list(text)
        max_length = int(max_length or self.model_max_length)
        if padding is True:
            padding = "longest"
        if padding not in ("max_length", "longest", False, "do_not_pad"):
            raise BertTokenizerError(f"padding must be 'max_length', 'longest' or False, got {padding!r}")
        if return_tensors not in ("ms", "np", None):
            raise BertTokenizerError(f"return_tensors must be 'ms', 'np' or None, got {return_tensors!r}")
        rows = []
        for ids in self.encode_batch(texts):
            if truncation:
                ids = ids[: max_length - 2]
            rows.append([self.cls_token_id] + ids + [self.sep_token_id])
        width = {"max_length": max_length, "longest": max((len(r) for r in rows), default=0)}.get(padding)
        masks = [[1] * len(r) + [0] * ((width or len(r)) - len(r)) for r in rows]
        if width is not None:
            rows = [r + [self.pad_token_id] * (width - len(r)) for r in rows]
        if return_tensors is None:
            return {"input_ids": rows[0], "attention_mask": masks[0]} if single else \
                {"input_ids": rows, "attention_mask": masks}
        if len({len(r) for r in rows}) > 1:
            raise BertTokenizerError(f"return_tensors={return_tensors!r} needs rows of equal length, got lengths "
                                     f"{sorted({len(r) for r in rows})}; use padding='max_length' or 'longest'")
        out = {"input_ids": np.array(rows, dtype=np.int32).reshape(len(rows), -1),
               "attention_mask": np.array(masks, dtype=np.int32).reshape(len(rows), -1)}
        if return_tensors == "np":
            return out
        import mindspore as ms  # lazy: data workers stay free of mindspore unless asked

        return {k: ms.Tensor(v) for k, v in out.items()}


def _as_text(text: Union[str, bytes]) -> str:
    # The reference's convert_to_unicode: bytes are UTF-8 with bad sequences ignored; anything else is an error.
    if isinstance(text, bytes):
        return text.decode("utf-8", "ignore")
    if not isinstance(text, str):
        raise BertTokenizerError(f"expected a text (str), got {type(text).__name__}: {text!r}")
    return text


@functools.lru_cache(maxsize=1)
def _default_tokenizer() -> BertTokenizer:
    return BertTokenizer()


def tokenize(texts: TextInput, context_length: int = DEFAULT_CONTEXT_LENGTH,
             tokenizer: Optional[BertTokenizer] = None) -> np.ndarray:
    """``cn_clip.clip.tokenize``: int32 ``[N, context_length]`` = [CLS] + ids[:context_length - 2] + [SEP], 0-padded.

    Example:
        >>> tokenize(["一只猫", ""])[:, :5].tolist()
        [[101, 671, 1372, 4344, 102], [101, 102, 0, 0, 0]]
    """
    return (tokenizer or _default_tokenizer()).batch_ids(texts, context_length)
