"""The text tower's own tokenizer (BERT WordPiece or RoBERTa byte-level BPE), read from its HF folder.

A vision-text dual encoder (``VisionTextDualEncoderModel``, HF's contrastive-image-text example) tokenizes
with the tokenizer its text tower was pre-trained with, saved beside the weights. This module reads that
folder and runs the tokenizer in HF's ``tokenizers`` library (Rust), the engine behind HF's
``AutoTokenizer``, so ids and attention masks are HF's by construction; what is built here is only the
pipeline HF's tokenizer classes put around the files:

* ``tokenizer.json`` (the ``tokenizers`` serialisation: normalizer, pre-tokenizer, model, special tokens,
  post-processor) is used as it is;
* else ``vocab.json`` + ``merges.txt``: byte-level BPE as ``RobertaTokenizer`` builds it (ByteLevel
  pre-tokenizer with ``add_prefix_space`` from ``tokenizer_config.json``, default False; ``<s> ... </s>``);
* else ``vocab.txt``: WordPiece as ``BertTokenizer`` builds it (BERT normalizer with ``do_lower_case``
  (default True), ``strip_accents``, ``tokenize_chinese_chars``; ``[CLS] ... [SEP]``).

Special tokens (and so the pad id) come from ``tokenizer_config.json`` (named tokens and
``added_tokens_decoder``), else ``special_tokens_map.json``, else the class defaults, as HF reads them.

Call surface, HF's: ``tok(texts, max_length=None, padding="max_length", truncation=True)`` ->
``{"input_ids", "attention_mask"}`` int32 ``[N, L]``; the default length is the model's context length
(``HFTokenizer(model_max_length=...)``; 128, ``run_clip.py``'s ``max_seq_length``, for a bare folder).
``batch_ids(texts, context_length)`` gives the ids alone, as ``ms_clip.bert_tokenizer`` does, for the
data pipeline. ``tests/test_hf_tokenizer.py`` checks 0 mismatches against ``transformers.AutoTokenizer``
on the real-text corpus.

No torch or mindspore here (mindspore only lazily for ``return_tensors="ms"``): data workers import it.
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ms_clip.errors import MsClipError

__all__ = ["HFTokenizer", "HFTokenizerError", "has_tokenizer_files", "tokenizer_folder", "DEFAULT_MAX_LENGTH",
           "TOKENIZER_FILES"]

TOKENIZER_JSON = "tokenizer.json"
BPE_VOCAB, BPE_MERGES = "vocab.json", "merges.txt"
WORDPIECE_VOCAB = "vocab.txt"
TOKENIZER_CONFIG = "tokenizer_config.json"
SPECIAL_TOKENS_MAP = "special_tokens_map.json"
# What HF's tokenizers read from a folder (and so what save_pretrained copies).
TOKENIZER_FILES = (TOKENIZER_JSON, BPE_VOCAB, BPE_MERGES, WORDPIECE_VOCAB, TOKENIZER_CONFIG, SPECIAL_TOKENS_MAP)
DEFAULT_MAX_LENGTH = 128  # run_clip.py's --max_seq_length default

_SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
# The defaults of HF's RobertaTokenizer and BertTokenizer (used when the folder names no special token).
_DEFAULT_SPECIALS = {
    "bpe": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
            "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>"},
    "wordpiece": {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                  "mask_token": "[MASK]"},
}
_PADDING = ("max_length", "longest", "do_not_pad")

TextInput = Union[str, Sequence[str]]


class HFTokenizerError(MsClipError, ValueError):
    """A tokenizer folder or file is missing or malformed, or a call argument is invalid; the message names it."""


def has_tokenizer_files(folder: Union[str, os.PathLike]) -> bool:
    """Whether ``folder`` holds a tokenizer this module reads (tokenizer.json, vocab.json + merges.txt or vocab.txt)."""
    folder = os.fspath(folder)

    def has(name: str) -> bool:
        return os.path.isfile(os.path.join(folder, name))

    return os.path.isdir(folder) and (has(TOKENIZER_JSON) or (has(BPE_VOCAB) and has(BPE_MERGES)) or
                                      has(WORDPIECE_VOCAB))


def tokenizer_folder(path: Union[str, os.PathLike]) -> str:
    """The folder a tokenizer is read from: ``path`` itself if a directory, else the directory of the file
    (a ``.ckpt`` saved by ``save_pretrained`` has the tokenizer files beside it)."""
    path = os.fspath(path)
    return os.path.dirname(os.path.abspath(path)) if os.path.isfile(path) else path


def _read_json(path: str, what: str) -> Any:
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HFTokenizerError(f"{path}: cannot read the {what} ({type(exc).__name__}: {exc}); expected "
                               f"a UTF-8 JSON file as HF's save_pretrained writes it") from None


def _read_optional_json_dict(folder: str, name: str) -> Dict[str, Any]:
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        return {}
    data = _read_json(path, name)
    if not isinstance(data, dict):
        raise HFTokenizerError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _added_token(value: Any, where: str) -> Any:
    """A special token as HF stores it -- a string, or an AddedToken dict -> ``tokenizers.AddedToken``."""
    from tokenizers import AddedToken

    if isinstance(value, str):
        return AddedToken(value, special=True)
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        flags = {k: bool(value[k]) for k in ("single_word", "lstrip", "rstrip", "normalized") if k in value}
        return AddedToken(value["content"], special=bool(value.get("special", True)), **flags)
    raise HFTokenizerError(f"{where}: expected a token string or an AddedToken object with 'content', got {value!r}")


def _bool_setting(config: Dict[str, Any], key: str, default: Optional[bool], where: str) -> Optional[bool]:
    value = config.get(key, default)
    if value is not None and not isinstance(value, bool):
        raise HFTokenizerError(f"{where}: {key} must be true or false, got {value!r}")
    return value


class HFTokenizer:
    """A BERT / RoBERTa (or any ``tokenizer.json``) tokenizer from an HF folder, HF's call surface.

    Build with ``HFTokenizer.from_pretrained(folder, model_max_length=...)``.

    Example:
        >>> tok = HFTokenizer.from_pretrained("clip-roberta", model_max_length=128)  # doctest: +SKIP
        >>> enc = tok(["a cat on a mat", ""])                                          # doctest: +SKIP
        >>> enc["input_ids"].shape, enc["attention_mask"][1, :3].tolist()              # doctest: +SKIP
        ((2, 128), [1, 1, 0])
    """

    def __init__(self, backend: Any, specials: Dict[str, str], kind: str, folder: str,
                 model_max_length: int = DEFAULT_MAX_LENGTH, padding_side: str = "right"):
        self._backend = backend
        self.kind = kind  # "tokenizer.json", "bpe" or "wordpiece": which files it was read from
        self.folder = folder
        self.model_max_length = int(model_max_length)
        if self.model_max_length < 1:
            raise HFTokenizerError(f"model_max_length must be positive, got {model_max_length!r}")
        if padding_side not in ("right", "left"):
            raise HFTokenizerError(f"{folder}: padding_side must be 'right' or 'left', got {padding_side!r}")
        self.padding_side = padding_side
        self.special_tokens = dict(specials)
        for key, token in specials.items():
            setattr(self, key, token)
            setattr(self, key + "_id", backend.token_to_id(token))
        if getattr(self, "pad_token_id", None) is None:
            raise HFTokenizerError(f"{folder}: the pad token {specials.get('pad_token')!r} is not in the vocabulary "
                                   f"(padding to max_length needs one; set pad_token in {TOKENIZER_CONFIG})")
        self._num_special = backend.num_special_tokens_to_add(False)
        self._settings: Optional[Tuple[Any, ...]] = None

    # ------------------------------------------------------------------ reading a folder
    @classmethod
    def from_pretrained(cls, name_or_path: Union[str, os.PathLike],
                        model_max_length: Optional[int] = None) -> "HFTokenizer":
        """The tokenizer in ``name_or_path`` (a folder, or a file such as a ``.ckpt`` inside it).

        ``model_max_length``: the default call length (the model's context length); default 128.
        Raises HFTokenizerError naming the folder/file when no tokenizer files are there or one is malformed.
        """
        folder = tokenizer_folder(name_or_path)
        if not os.path.isdir(folder):
            raise HFTokenizerError(f"tokenizer folder not found: {folder}")
        config = _read_optional_json_dict(folder, TOKENIZER_CONFIG)
        special_map = _read_optional_json_dict(folder, SPECIAL_TOKENS_MAP)
        where = os.path.join(folder, TOKENIZER_CONFIG)

        def path(name: str) -> str:
            return os.path.join(folder, name)

        if os.path.isfile(path(TOKENIZER_JSON)):
            backend, kind = cls._from_tokenizer_json(path(TOKENIZER_JSON)), "tokenizer.json"
            model_type = type(backend.model).__name__
            defaults = _DEFAULT_SPECIALS["bpe" if model_type == "BPE" else "wordpiece" if model_type == "WordPiece"
                                         else "bpe"]
        elif os.path.isfile(path(BPE_VOCAB)) and os.path.isfile(path(BPE_MERGES)):
            backend, kind = cls._byte_level_bpe(path(BPE_VOCAB), path(BPE_MERGES), config, where), "bpe"
            defaults = _DEFAULT_SPECIALS["bpe"]
        elif os.path.isfile(path(WORDPIECE_VOCAB)):
            kind, defaults = "wordpiece", _DEFAULT_SPECIALS["wordpiece"]
            unk = config.get("unk_token", special_map.get("unk_token", defaults["unk_token"]))
            unk = unk["content"] if isinstance(unk, dict) else unk
            backend = cls._wordpiece(path(WORDPIECE_VOCAB), str(unk), config, where)
        else:
            present = sorted(n for n in TOKENIZER_FILES if os.path.isfile(path(n)))
            raise HFTokenizerError(
                f"{folder}: no tokenizer files (expected {TOKENIZER_JSON}, or {BPE_VOCAB} + {BPE_MERGES} for byte-level "
                f"BPE, or {WORDPIECE_VOCAB} for WordPiece; found {present or 'none of them'})")

        # Named special tokens: tokenizer_config.json, then special_tokens_map.json, then the class defaults.
        named: Dict[str, Any] = {}
        for key in _SPECIAL_KEYS:
            for source, source_name in ((config, TOKENIZER_CONFIG), (special_map, SPECIAL_TOKENS_MAP)):
                if source.get(key) is not None:
                    named[key] = _added_token(source[key], f"{os.path.join(folder, source_name)} {key}")
                    break
            else:
                if key in defaults:
                    named[key] = _added_token(defaults[key], key)
        # Tokens the folder declares (with their lstrip/rstrip/normalized flags), then the named special tokens
        # not yet among them -- the order and the AddedToken flags HF's tokenizer classes use.
        declared = config.get("added_tokens_decoder") or {}
        if not isinstance(declared, dict):
            raise HFTokenizerError(f"{where}: added_tokens_decoder must be an object {{id: token}}, got {declared!r}")
        to_add = []
        for key in sorted(declared, key=lambda k: int(k) if str(k).isdigit() else -1):
            if not str(key).isdigit():
                raise HFTokenizerError(f"{where}: added_tokens_decoder key {key!r} is not a token id")
            to_add.append(_added_token(declared[key], f"{where} added_tokens_decoder[{key}]"))
        have = {t.content for t in to_add} | {t.content for t in backend.get_added_tokens_decoder().values()}
        for token in named.values():  # bos and cls are one token in RoBERTa: add it once
            if token.content not in have:
                to_add.append(token)
                have.add(token.content)
        specials = [t for t in to_add if t.special]
        if specials:
            backend.add_special_tokens(specials)
        if len(specials) != len(to_add):
            backend.add_tokens([t for t in to_add if not t.special])
        backend.encode_special_tokens = bool(config.get("split_special_tokens", False))
        if backend.post_processor is None:  # what HF's RoBERTa/BERT classes put around a bare tokenizer.json
            cls._add_post_processor(backend, named, config, kind, folder)
        backend.no_truncation()
        backend.no_padding()
        return cls(backend, {k: t.content for k, t in named.items()}, kind, folder,
                   DEFAULT_MAX_LENGTH if model_max_length is None else model_max_length,
                   padding_side=config.get("padding_side", "right"))

    @staticmethod
    def _from_tokenizer_json(path: str) -> Any:
        from tokenizers import Tokenizer

        try:
            return Tokenizer.from_file(path)
        except Exception as exc:  # tokenizers raises a bare Exception with serde's message
            raise HFTokenizerError(f"{path}: not a valid tokenizer.json ({str(exc).splitlines()[0]}); expected the "
                                   f"file HF's tokenizers library / save_pretrained writes") from None

    @staticmethod
    def _byte_level_bpe(vocab_path: str, merges_path: str, config: Dict[str, Any], where: str) -> Any:
        """RobertaTokenizer's pipeline: byte-level BPE (no subword prefix/suffix, no unk fusing), ByteLevel
        pre-tokenizer and decoder, ``<s> A </s>``."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers

        vocab = _read_json(vocab_path, "BPE vocabulary (vocab.json)")
        if not isinstance(vocab, dict) or not vocab or not all(isinstance(v, int) for v in vocab.values()):
            raise HFTokenizerError(f"{vocab_path}: expected a JSON object {{token: id}} with integer ids (a byte-level "
                                   f"BPE vocab.json)")
        merges = []
        try:
            with open(merges_path, "r", encoding="utf-8") as f:
                lines = f.read().split("\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise HFTokenizerError(f"{merges_path}: cannot read the BPE merges ({exc})") from None
        for number, line in enumerate(lines, 1):
            if (number == 1 and line.startswith("#version")) or not line.strip():
                continue
            pair = line.split(" ")
            if len(pair) != 2:
                raise HFTokenizerError(f"{merges_path} line {number}: expected a merge rule 'left right', got {line!r}")
            merges.append((pair[0], pair[1]))
        add_prefix_space = _bool_setting(config, "add_prefix_space", False, where)
        try:
            backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, dropout=None, continuing_subword_prefix="",
                                           end_of_word_suffix="", fuse_unk=False))
        except Exception as exc:
            raise HFTokenizerError(f"{merges_path}: merges do not fit {vocab_path} ({exc})") from None
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
        backend.decoder = decoders.ByteLevel()
        return backend

    @staticmethod
    def _wordpiece(vocab_path: str, unk_token: str, config: Dict[str, Any], where: str) -> Any:
        """BertTokenizer's pipeline: BERT normalizer and pre-tokenizer, WordPiece, ``[CLS] A [SEP]``."""
        from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

        try:
            with open(vocab_path, "r", encoding="utf-8") as f:
                lines = f.readlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise HFTokenizerError(f"{vocab_path}: cannot read the WordPiece vocabulary ({exc}); expected "
                                   f"a UTF-8 vocab.txt, one token per line") from None
        # HF's load_vocab: one token per line, the newline stripped, id = line number (a later duplicate wins).
        vocab = {line.rstrip("\n"): index for index, line in enumerate(lines)}
        if not vocab:
            raise HFTokenizerError(f"{vocab_path}: empty WordPiece vocabulary (expected one token per line)")
        lower = _bool_setting(config, "do_lower_case", True, where)
        backend = Tokenizer(models.WordPiece(vocab, unk_token=unk_token))
        backend.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=_bool_setting(config, "tokenize_chinese_chars", True, where),
            strip_accents=_bool_setting(config, "strip_accents", None, where), lowercase=lower)
        backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        backend.decoder = decoders.WordPiece(prefix="##")
        return backend

    @staticmethod
    def _add_post_processor(backend: Any, named: Dict[str, Any], config: Dict[str, Any], kind: str,
                            folder: str) -> None:
        from tokenizers import processors

        cls_token, sep_token = named.get("cls_token"), named.get("sep_token")
        if cls_token is None or sep_token is None:
            raise HFTokenizerError(f"{folder}: no cls_token/sep_token to wrap each text with")
        ids = [backend.token_to_id(t.content) for t in (cls_token, sep_token)]
        if None in ids:
            raise HFTokenizerError(f"{folder}: cls_token {cls_token.content!r} / sep_token {sep_token.content!r} "
                                   f"not in the vocabulary")
        if kind == "bpe" or (kind == "tokenizer.json" and type(backend.model).__name__ == "BPE"):
            backend.post_processor = processors.RobertaProcessing(
                (sep_token.content, ids[1]), (cls_token.content, ids[0]),
                trim_offsets=bool(config.get("trim_offsets", True)),
                add_prefix_space=bool(config.get("add_prefix_space", False)))
        else:
            backend.post_processor = processors.TemplateProcessing(
                single=f"{cls_token.content}:0 $A:0 {sep_token.content}:0",
                pair=f"{cls_token.content}:0 $A:0 {sep_token.content}:0 $B:1 {sep_token.content}:1",
                special_tokens=[(cls_token.content, ids[0]), (sep_token.content, ids[1])])

    def save_pretrained(self, save_directory: Union[str, os.PathLike]) -> Tuple[str, ...]:
        """Copy the tokenizer files this tokenizer was read from into ``save_directory``; returns their paths."""
        from ms_clip.fileio import atomic_path

        target = os.fspath(save_directory)
        os.makedirs(target, exist_ok=True)
        written = []
        for name in TOKENIZER_FILES:
            source = os.path.join(self.folder, name)
            if not os.path.isfile(source):
                continue
            destination = os.path.join(target, name)
            if not (os.path.exists(destination) and os.path.samefile(source, destination)):
                with atomic_path(destination) as tmp:
                    shutil.copyfile(source, tmp)
            written.append(destination)
        return tuple(written)

    # ------------------------------------------------------------------ HF-style API
    @property
    def vocab_size(self) -> int:
        return self._backend.get_vocab_size(with_added_tokens=False)

    def __len__(self) -> int:
        return self._backend.get_vocab_size(with_added_tokens=True)

    def get_vocab(self) -> Dict[str, int]:
        return self._backend.get_vocab(with_added_tokens=True)

    @property
    def backend_tokenizer(self) -> Any:
        """The ``tokenizers.Tokenizer`` doing the work (HF's name)."""
        return self._backend

    def encode_text(self, text: str) -> List[int]:
        """Ids of ``text`` without special tokens (also marks this as a keyword-interface tokenizer for
        ``ms_clip.features.as_tokenizer``)."""
        return self._backend.encode(_as_text(text), add_special_tokens=False).ids

    def tokenize(self, text: str) -> List[str]:
        """Token strings of ``text`` (no special tokens), as HF's ``tokenize``."""
        return self._backend.encode(_as_text(text), add_special_tokens=False).tokens

    def encode(self, text: str, add_special_tokens: bool = True) -> List[int]:
        return self._backend.encode(_as_text(text), add_special_tokens=add_special_tokens).ids

    def convert_tokens_to_ids(self, tokens: Union[str, Sequence[str]]) -> Union[Optional[int], List[Optional[int]]]:
        if isinstance(tokens, str):
            found = self._backend.token_to_id(tokens)
            return self.unk_token_id if found is None else found
        return [self.convert_tokens_to_ids(t) for t in tokens]

    def convert_ids_to_tokens(self, ids: Union[int, Sequence[int]]) -> Union[Optional[str], List[Optional[str]]]:
        if isinstance(ids, (int, np.integer)):
            return self._backend.id_to_token(int(ids))
        return [self._backend.id_to_token(int(i)) for i in ids]

    def decode(self, ids: Union[Sequence[int], np.ndarray], skip_special_tokens: bool = False) -> str:
        return self._backend.decode([int(i) for i in np.asarray(ids).reshape(-1)],
                                    skip_special_tokens=skip_special_tokens)

    def _configure(self, length: int, padding: str, truncation: bool) -> None:
        settings = (length, padding, truncation)
        if settings == self._settings:
            return
        if truncation:
            self._backend.enable_truncation(max_length=length, stride=0, strategy="longest_first",
                                            direction="right")
        else:
            self._backend.no_truncation()
        if padding == "do_not_pad":
            self._backend.no_padding()
        else:
            self._backend.enable_padding(direction=self.padding_side, pad_id=self.pad_token_id, pad_type_id=0,
                                         pad_token=self.pad_token,
                                         length=length if padding == "max_length" else None)
        self._settings = settings

    def __call__(self, text: TextInput, max_length: Optional[int] = None,
                 padding: Union[bool, str] = "max_length", truncation: Union[bool, str] = True,
                 return_tensors: Optional[str] = "np", add_special_tokens: bool = True) -> Dict[str, Any]:
        """Tokenize one text or a batch into ``{"input_ids", "attention_mask"}``, as HF's tokenizer does.

        Args:
            text: a string or a sequence of strings.
            max_length: pad/truncate length (default ``model_max_length``: the model's context length).
            padding: "max_length" (run_clip.py's), "longest" / True, or False / "do_not_pad".
            truncation: True / "longest_first" keeps the first ``max_length`` ids special tokens included.
            return_tensors: "np" (int32 arrays ``[N, L]``), "ms" (mindspore int32 Tensors) or None (lists).
        """
        single = isinstance(text, str)
        texts = [text] if single else [_as_text(t) for t in text]
        length = int(self.model_max_length if max_length is None else max_length)
        padding = {True: "longest", False: "do_not_pad"}.get(padding, padding) if isinstance(padding, bool) else padding
        if padding not in _PADDING:
            raise HFTokenizerError(f"padding must be 'max_length', 'longest' (True) or False, got {padding!r}")
        if truncation not in (True, False, "longest_first", "do_not_truncate"):
            raise HFTokenizerError(f"truncation must be True ('longest_first') or False, got {truncation!r}")
        truncate = truncation in (True, "longest_first")
        if return_tensors not in ("np", "ms", None):
            raise HFTokenizerError(f"return_tensors must be 'np', 'ms' or None, got {return_tensors!r}")
        needed = self._num_special if add_special_tokens else 0
        if length < 1 or (truncate and length < needed):
            raise HFTokenizerError(f"max_length must be at least {max(needed, 1)} (the special tokens each text gets), "
                                   f"got {length}")
        self._configure(length, padding, truncate)
        try:
            encodings = self._backend.encode_batch(texts, add_special_tokens=add_special_tokens)
        except TypeError:
            raise HFTokenizerError(_unencodable(texts)) from None
        ids = [e.ids for e in encodings]
        masks = [e.attention_mask for e in encodings]
        if return_tensors is None:
            return {"input_ids": ids[0], "attention_mask": masks[0]} if single else \
                {"input_ids": ids, "attention_mask": masks}
        if len({len(r) for r in ids}) > 1:
            raise HFTokenizerError(f"return_tensors={return_tensors!r} needs rows of one length, got lengths "
                                   f"{sorted({len(r) for r in ids})}; pad ('max_length' or 'longest') and truncate")
        out = {"input_ids": np.array(ids, dtype=np.int32).reshape(len(ids), -1),
               "attention_mask": np.array(masks, dtype=np.int32).reshape(len(ids), -1)}
        if return_tensors == "np":
            return out
        import mindspore as ms  # lazy: data workers stay free of mindspore unless asked

        return {k: ms.Tensor(v) for k, v in out.items()}

    def batch_ids(self, texts: TextInput, context_length: Optional[int] = None) -> np.ndarray:
        """int32 ``[N, context_length]`` ids, padded and truncated as ``run_clip.py`` tokenizes captions
        (``padding="max_length", truncation=True``): ``ms_clip.bert_tokenizer``'s ``batch_ids`` contract."""
        return self(texts, max_length=context_length, padding="max_length", truncation=True,
                    return_tensors="np")["input_ids"]

    def __repr__(self) -> str:
        return (f"HFTokenizer(folder={self.folder!r}, kind={self.kind!r}, vocab_size={len(self)}, "
                f"model_max_length={self.model_max_length}, pad_token={self.pad_token!r})")


def _unencodable(texts: Sequence[str]) -> str:
    # tokenizers takes UTF-8; a str holding lone surrogates (e.g. from a bad decode) has none. HF's tokenizer
    # refuses it with a bare TypeError; say which text it is.
    for index, text in enumerate(texts):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            return (f"text {index} ({text[:40]!r}...) is not valid Unicode: {exc.reason} at position {exc.start}; "
                    f"decode the source with errors='replace'")
    return "tokenizers could not encode these texts"


def _as_text(text: Any) -> str:
    if not isinstance(text, str):
        raise HFTokenizerError(f"expected a text (str), got {type(text).__name__}: {text!r}")
    return text
