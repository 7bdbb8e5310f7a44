"""CLIP byte-level BPE tokenizer, token-for-token identical to OpenAI's / open_clip's.

Two entry points:

* ``tokenize(texts, context_length=77, truncate=True)`` -> ``np.ndarray[int32]`` of shape
  ``[N, context_length]``, like ``clip.tokenize`` / ``open_clip.tokenize`` (zero padded).
* ``CLIPTokenizer`` with MindFormers' / HF's interface: ``tok(text, max_length=77, padding="max_length")``
  -> a ``BatchEncoding`` (a dict with attribute access: ``enc.input_ids``, ``enc["attention_mask"]``) of
  Python lists, or of tensors with ``return_tensors="ms"`` / ``"np"``; unknown keywords are errors.

The algorithm follows OpenAI's ``clip/simple_tokenizer.py`` (open_clip's ``tokenizer.py`` is the same):
ftfy -> html-unescape twice -> whitespace clean -> lower-case -> split with the CLIP regex ->
UTF-8 bytes mapped to printable characters -> BPE with the first 48,894 merges of
``bpe_simple_vocab_16e6.txt.gz``. This module deliberately imports neither torch nor mindspore
(mindspore only lazily for ``return_tensors="ms"``) so that data-pipeline workers stay light.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import html
import logging
import re as std_re
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import ftfy
import numpy as np
import regex

from ms_clip.errors import MsClipError

logger = logging.getLogger(__name__)

__all__ = ["CLIPTokenizer", "BatchEncoding", "TokenizerError", "UnknownTokenizerArgument", "tokenize", "default_bpe_path", "DEFAULT_BPE_SHA256",
           "register_model_catalog", "resolve_model_config", "supported_models"]

DEFAULT_BPE_NAME = "bpe_simple_vocab_16e6.txt.gz"
DEFAULT_BPE_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
# The reference keeps merges[1 : 49152 - 256 - 2 + 1]: the vocabulary is 49,152 entries minus the
# 256 byte tokens (counted twice: plain and "</w>") and the two special tokens -> 48,894 merges.
NUM_MERGES = 49152 - 256 - 2
VOCAB_SIZE = 2 * 256 + NUM_MERGES + 2  # 49,408
END_OF_WORD = "</w>"

# Text that is pure ASCII and holds none of these characters is left unchanged by ftfy.fix_text
# and by html.unescape ("&" starts every entity; ftfy deletes the listed control characters),
# so cleaning it reduces to whitespace folding + lower(). ftfy is by far the slowest step, and
# most captions/prompts are plain ASCII, so this fast path is where most of our speed comes from.
# Its exactness is checked by tests/test_tokenizer.py on the 50k-string corpus.
_NEEDS_FTFY = std_re.compile(r"[&\x00-\x08\x0b\x0e-\x1f\x7f]")

# Drop cached words once the cache holds this many (~100-200 MB), so that a long training run over
# an open vocabulary cannot grow memory without bound (the reference cache is unbounded).
DEFAULT_MAX_CACHED_WORDS = 1 << 20

TextInput = Union[str, Sequence[str]]

TOKENIZER_CONFIG_FILE = "tokenizer_config.json"  # what save_pretrained writes (with the merges file beside it)


class TokenizerError(MsClipError, ValueError):
    """A tokenizer argument is invalid (bad padding, ragged rows for tensors, ...); the message names it."""


class UnknownTokenizerArgument(TokenizerError, TypeError):
    """An unknown keyword argument (a TypeError too, as a Python function would raise)."""


class BatchEncoding(dict):
    """The tokenizer's result: ``{"input_ids": ..., "attention_mask": ...}`` with attribute access
    (``enc.input_ids``), as MindFormers' / HF's ``BatchEncoding``. Equal to the plain dict it holds."""

    def __getattr__(self, name: str) -> object:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"BatchEncoding has no field {name!r}; fields: {sorted(self)}") from None


# The tokenizer and the processors sit below the loader (the data pipeline imports them), so their
# ``from_pretrained(name)`` reaches the model configs through a catalog that ``ms_clip.auto`` registers at
# package import (as the models reach the loader through ``ms_clip.models.base.register_loader``).
_CONFIG_RESOLVER: Optional[Callable[[str], object]] = None
_MODEL_LISTER: Optional[Callable[[], List[str]]] = None


def register_model_catalog(resolver: Callable[[str], object], lister: Callable[[], List[str]]) -> None:
    """Called once by ``ms_clip.auto``: ``resolver(spec)`` -> that model's config; ``lister()`` -> model names."""
    global _CONFIG_RESOLVER, _MODEL_LISTER
    _CONFIG_RESOLVER, _MODEL_LISTER = resolver, lister


def resolve_model_config(spec: str) -> object:
    """The model config of a registry name / YAML / checkpoint (via the registered catalog)."""
    if _CONFIG_RESOLVER is None:
        raise TokenizerError("no model catalog registered: import ms_clip (which registers ms_clip.auto)")
    return _CONFIG_RESOLVER(spec)


def supported_models() -> List[str]:
    """The registry's model names (MindFormers' ``get_support_list``)."""
    if _MODEL_LISTER is None:
        raise TokenizerError("no model catalog registered: import ms_clip (which registers ms_clip.auto)")
    return list(_MODEL_LISTER())


def default_bpe_path() -> Path:
    """Path of the BPE merges file shipped inside the ms_clip package."""
    return Path(__file__).resolve().parent / "assets" / DEFAULT_BPE_NAME


@functools.lru_cache(maxsize=None)
def bytes_to_unicode() -> Dict[int, str]:
    """Map every byte to a printable unicode character (the reference's reversible byte alphabet).

    Printable Latin-1 bytes map to themselves; the 68 others (controls, space, soft hyphen, ...)
    map to chr(256 + n) in byte order, so no BPE symbol is whitespace or a control character.
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in set(keep)]
    # Insertion order (kept bytes, then the shifted ones) is the reference order: it defines ids 0..255.
    mapping = {b: chr(b) for b in keep}
    mapping.update({b: chr(256 + n) for n, b in enumerate(others)})
    return mapping


def _read_merges(path: Path, check_sha256: Optional[str]) -> List[Tuple[str, str]]:
    """Read the first NUM_MERGES merge rules from a gzipped merges file, with clear errors."""
    if not path.is_file():
        raise FileNotFoundError(f"BPE merges file not found: {path} (expected {DEFAULT_BPE_NAME} or a compatible file)")
    raw = path.read_bytes()
    if check_sha256 is not None:
        digest = hashlib.sha256(raw).hexdigest()
        if digest != check_sha256:
            raise ValueError(
                f"BPE merges file {path} has sha256 {digest}, expected {check_sha256}: the file is damaged "
                f"or not CLIP's {DEFAULT_BPE_NAME}; reinstall ms_clip"
            )
    try:
        lines = gzip.decompress(raw).decode("utf-8").split("\n")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise ValueError(f"BPE merges file {path} is not a gzipped UTF-8 text file: {exc}") from exc
    # Line 0 is the "#version: 0.2" header.
    rules = lines[1 : NUM_MERGES + 1]
    merges = [tuple(rule.split()) for rule in rules]
    if len(merges) < NUM_MERGES or any(len(m) != 2 for m in merges):
        raise ValueError(
            f"BPE merges file {path} must hold a header line and at least {NUM_MERGES} lines of two symbols; "
            f"got {len(merges)} usable lines"
        )
    return merges  # type: ignore[return-value]


class CLIPTokenizer:
    """CLIP's byte-level BPE tokenizer with MindFormers' ``CLIPTokenizer`` interface.

    Args:
        vocab_file: gzipped BPE merges file; ``None`` uses the copy shipped with ms_clip. A file
            named ``bpe_simple_vocab_16e6.txt.gz`` must have the known sha256.
        eos_token / bos_token: special tokens; they must be in the vocabulary. Written in the
            text, they are recognised as the special token (as in OpenAI's tokenizer).
        pad_token: token used for padding. MindFormers' default is ``<|endoftext|>``; the CLIP
            YAMLs set ``'!'`` (id 0), which reproduces OpenAI's zero padding.
        unk_token: accepted for interface compatibility; byte-level BPE never produces unknowns.
        add_bos_token / add_eos_token: whether ``__call__`` and ``encode`` add BOS / EOS.
        max_cached_words: bound of the word -> ids cache; it is emptied when full.

    Example:
        >>> tok = CLIPTokenizer(pad_token="!")
        >>> tok("hello world?", max_length=8).input_ids
        [49406, 3306, 1002, 286, 49407, 0, 0, 0]
    """

    def __init__(
        self,
        vocab_file: Optional[Union[str, Path]] = None,
        eos_token: str = "<|endoftext|>",
        bos_token: str = "<|startoftext|>",
        pad_token: str = "<|endoftext|>",
        unk_token: str = "<|endoftext|>",
        add_bos_token: bool = True,
        add_eos_token: bool = True,
        max_cached_words: int = DEFAULT_MAX_CACHED_WORDS,
        model_max_length: int = 77,
        **kwargs: object,
    ) -> None:
        # ``type`` is the YAML's class name (``tokenizer: {type: CLIPTokenizer, ...}``); anything else
        # unknown would be silently ignored by a lenient constructor, so it is an error.
        unknown = sorted(set(kwargs) - {"type"})
        if unknown:
            raise UnknownTokenizerArgument(f"CLIPTokenizer: unknown arguments {unknown}; accepted: vocab_file, eos_token, "
                                 f"bos_token, pad_token, unk_token, add_bos_token, add_eos_token, model_max_length")
        path = default_bpe_path() if vocab_file is None else Path(vocab_file)
        # A file carrying the CLIP merges' name must be the CLIP merges: a truncated download or a
        # damaged install would otherwise give silently wrong ids. Other names (custom vocabularies)
        # are only checked for format.
        expected_sha = DEFAULT_BPE_SHA256 if path.name == DEFAULT_BPE_NAME else None
        merges = _read_merges(path, expected_sha)
        self.vocab_file = str(path)

        byte_encoder = bytes_to_unicode()
        self._byte_decoder = {c: b for b, c in byte_encoder.items()}
        # str.translate over latin-1-decoded UTF-8 bytes replaces the reference's per-byte join.
        self._byte_table = str.maketrans({chr(b): c for b, c in byte_encoder.items()})

        base = list(byte_encoder.values())
        vocab = base + [c + END_OF_WORD for c in base] + ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self._id_to_token: List[str] = vocab
        self._token_to_id: Dict[str, int] = {t: i for i, t in enumerate(vocab)}
        self._bpe_ranks: Dict[Tuple[str, str], int] = {m: i for i, m in enumerate(merges)}

        self.bos_token, self.eos_token, self.pad_token, self.unk_token = bos_token, eos_token, pad_token, unk_token
        self.bos_token_id = self._special_id("bos_token", bos_token)
        self.eos_token_id = self._special_id("eos_token", eos_token)
        self.pad_token_id = self._special_id("pad_token", pad_token)
        self.unk_token_id = self._special_id("unk_token", unk_token)
        self.add_bos_token, self.add_eos_token = add_bos_token, add_eos_token

        self.model_max_length = int(model_max_length)
        self._init_kwargs: Dict[str, Any] = {"eos_token": eos_token, "bos_token": bos_token, "pad_token": pad_token,
                                             "unk_token": unk_token, "add_bos_token": add_bos_token,
                                             "add_eos_token": add_eos_token, "model_max_length": self.model_max_length}
        self._added_tokens: List[str] = []  # add_tokens(): whole-word tokens after the BPE vocabulary
        self._special_words = {bos_token.lower(): (self.bos_token_id,), eos_token.lower(): (self.eos_token_id,)}
        self._compile_pattern()
        # Cache: word as split from the cleaned text -> its ids. Caching the ids (not the BPE
        # string as the reference does) skips byte mapping, splitting and vocab look-ups on a hit.
        self._word_ids: Dict[str, Tuple[int, ...]] = dict(self._special_words)
        if max_cached_words < 1:
            raise ValueError(f"max_cached_words must be at least 1, got {max_cached_words}")
        self.max_cached_words = max_cached_words

    def _compile_pattern(self) -> None:
        # Text is lower-cased before splitting, so the specials (and added tokens) are matched in lower case,
        # longest first so that an added "<cat-token>" wins over its pieces.
        specials = sorted(self._special_words, key=len, reverse=True)
        self._pattern = regex.compile(
            "|".join(regex.escape(s) for s in specials)
            + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
            regex.IGNORECASE,
        )

    # ------------------------------------------------------------------ special and added tokens (HF API)
    @property
    def all_special_tokens(self) -> List[str]:
        """The special tokens, without duplicates (BOS, EOS, then PAD / UNK when they differ)."""
        out: List[str] = []
        for token in (self.bos_token, self.eos_token, self.unk_token, self.pad_token):
            if token not in out:
                out.append(token)
        return out

    @property
    def all_special_ids(self) -> List[int]:
        return [self._token_to_id[t] for t in self.all_special_tokens]

    def add_tokens(self, new_tokens: Union[str, Sequence[str]], special_tokens: bool = False) -> int:
        """Add whole-word tokens after the vocabulary (ids ``vocab_size``, ``vocab_size + 1``, ...); returns how
        many were new. Text is matched case-insensitively (CLIP lower-cases text before splitting), so an added
        token must be unique in lower case. A model using them needs a larger token embedding."""
        tokens = [new_tokens] if isinstance(new_tokens, str) else list(new_tokens)
        added = 0
        for token in tokens:
            if not isinstance(token, str) or not token.strip():
                raise TokenizerError(f"add_tokens: tokens must be non-empty strings, got {token!r}")
            key = token.lower()
            if token in self._token_to_id or key in self._special_words:
                continue
            self._token_to_id[token] = len(self._id_to_token)
            self._id_to_token.append(token)
            self._added_tokens.append(token)
            self._special_words[key] = (self._token_to_id[token],)
            added += 1
        if added:
            self._compile_pattern()
            self._word_ids.clear()  # cached splits may contain a newly added token
            self._word_ids.update(self._special_words)
        return added

    # ------------------------------------------------------------------ from_pretrained / save_pretrained
    @classmethod
    def get_support_list(cls) -> List[str]:
        return supported_models()

    @classmethod
    def show_support_list(cls) -> None:
        logger.info("support list of %s is:\n%s", cls.__name__, supported_models())

    @classmethod
    def from_pretrained(cls, name_or_path: Union[str, Path], **kwargs: Any) -> "CLIPTokenizer":
        """A tokenizer from a ``save_pretrained`` folder, a merges file, or a model spec (a CLIP registry name
        such as ``clip_vit_b_32``, a model/run YAML or a checkpoint): CLIP's BPE with MindFormers' YAML
        settings (``pad_token: '!'``, id 0, OpenAI's padding) at the model's context length."""
        path = Path(name_or_path)
        if path.is_dir() and (path / TOKENIZER_CONFIG_FILE).is_file():
            import json

            saved = json.loads((path / TOKENIZER_CONFIG_FILE).read_text(encoding="utf-8"))
            added = saved.pop("added_tokens", [])
            vocab = saved.pop("vocab_file", None)
            saved.pop("type", None)
            tok = cls(vocab_file=str(path / vocab) if vocab else None, **{**saved, **kwargs})
            tok.add_tokens(added)
            return tok
        if path.is_file() and str(path).endswith(".gz"):
            return cls(vocab_file=path, **{"pad_token": "!", **kwargs})
        config = resolve_model_config(str(name_or_path))
        if type(config).__name__ != "CLIPConfig":
            raise TokenizerError(f"{name_or_path} is a {type(config).__name__} model, whose tokenizer is not "
                                 f"CLIP's BPE; use ms_clip.AutoTokenizer.from_pretrained({str(name_or_path)!r})")
        length = getattr(config, "context_length", 77)
        return cls(**{"pad_token": "!", "model_max_length": length, **kwargs})

    def save_pretrained(self, save_directory: Union[str, Path], save_name: str = "") -> str:
        """Write ``tokenizer_config.json`` and the merges file into ``save_directory``; returns the folder.
        ``save_name`` is accepted for MindFormers' signature (the file names are fixed)."""
        import json
        import shutil

        from ms_clip.fileio import atomic_write

        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        vocab_name = Path(self.vocab_file).name
        if Path(self.vocab_file).resolve() != (folder / vocab_name).resolve():
            shutil.copyfile(self.vocab_file, folder / vocab_name)
        record = {"type": "CLIPTokenizer", "vocab_file": vocab_name, **self._init_kwargs,
                  "added_tokens": list(self._added_tokens)}
        with atomic_write(str(folder / TOKENIZER_CONFIG_FILE)) as f:
            f.write(json.dumps(record, indent=2) + "\n")
        return str(folder)

    def _special_id(self, name: str, token: str) -> int:
        if token not in self._token_to_id:
            raise ValueError(
                f"{name}={token!r} is not in the CLIP vocabulary of {self.vocab_file}; "
                f"use '<|startoftext|>', '<|endoftext|>' or a single printable character such as '!'"
            )
        return self._token_to_id[token]

    # ------------------------------------------------------------------ core algorithm
    @property
    def vocab_size(self) -> int:
        return len(self._id_to_token)

    def get_vocab(self) -> Dict[str, int]:
        return dict(self._token_to_id)

    @staticmethod
    def clean_text(text: str) -> str:
        """ftfy + html-unescape twice + whitespace folding + lower(), as the reference does."""
        if text.isascii() and _NEEDS_FTFY.search(text) is None:
            return " ".join(text.split()).lower()
        text = html.unescape(html.unescape(ftfy.fix_text(text)))
        # OpenAI folds with regex r"\s+" and open_clip with str.split(); they differ only on
        # characters that ftfy has already removed, so the faster str.split is used.
        return " ".join(text.split()).lower()

    def _bpe(self, word: str) -> List[str]:
        """Merge the characters of one byte-mapped word by rank until no known pair is left."""
        symbols = list(word[:-1])
        symbols.append(word[-1] + END_OF_WORD)
        ranks = self._bpe_ranks
        while len(symbols) > 1:
            best, best_rank = None, NUM_MERGES
            for pair in zip(symbols, symbols[1:]):
                rank = ranks.get(pair, NUM_MERGES)
                if rank < best_rank:
                    best, best_rank = pair, rank
            if best is None:
                break
            first, second = best
            merged: List[str] = []
            i, n = 0, len(symbols)
            while i < n:
                # Merge left to right without overlap, like the reference ("a a a" -> "aa a").
                if i + 1 < n and symbols[i] == first and symbols[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        return symbols

    def _word_to_ids(self, word: str) -> Tuple[int, ...]:
        mapped = word.encode("utf-8").decode("latin-1").translate(self._byte_table)
        ids = tuple(self._token_to_id[s] for s in self._bpe(mapped))
        cache = self._word_ids
        if len(cache) >= self.max_cached_words:
            cache.clear()  # in place: encode_text holds a reference to this dict
            cache.update(self._special_words)
        cache[word] = ids
        return ids

    def encode_text(self, text: str) -> List[int]:
        """Ids of ``text`` without BOS/EOS (the reference ``SimpleTokenizer.encode``)."""
        if not isinstance(text, str):
            raise TypeError(f"CLIPTokenizer expects str input, got {type(text).__name__}: {text!r:.80}")
        cache = self._word_ids
        ids: List[int] = []
        for word in self._pattern.findall(self.clean_text(text)):
            hit = cache.get(word)
            ids.extend(hit if hit is not None else self._word_to_ids(word))
        return ids

    # ------------------------------------------------------------------ MindFormers-style API
    def tokenize(self, text: str) -> List[str]:
        """BPE token strings of ``text`` (no special tokens)."""
        return [self._id_to_token[i] for i in self.encode_text(text)]

    def convert_tokens_to_ids(self, tokens: Union[str, Iterable[str]]) -> Union[int, List[int]]:
        if isinstance(tokens, str):
            return self._token_to_id[tokens]
        return [self._token_to_id[t] for t in tokens]

    def convert_ids_to_tokens(self, ids: Union[int, Iterable[int]]) -> Union[str, List[str]]:
        if isinstance(ids, (int, np.integer)):
            return self._id_to_token[int(ids)]
        return [self._id_to_token[int(i)] for i in ids]

    def encode(self, text: str, add_special_tokens: bool = True) -> List[int]:
        ids = self.encode_text(text)
        if add_special_tokens:
            ids = self._with_specials(ids)
        return ids

    def _with_specials(self, ids: List[int]) -> List[int]:
        head = [self.bos_token_id] if self.add_bos_token else []
        tail = [self.eos_token_id] if self.add_eos_token else []
        return head + ids + tail

    def decode(self, ids: Union[Sequence[int], np.ndarray], skip_special_tokens: bool = False) -> str:
        """Text of ``ids``; word ends become spaces, as in the reference (so text ends with ' ')."""
        ids = np.asarray(ids).reshape(-1).tolist()
        if skip_special_tokens:
            drop = {self.bos_token_id, self.eos_token_id}
            ids = [i for i in ids if i not in drop]
        added = set(range(VOCAB_SIZE, len(self._id_to_token)))
        pieces: List[str] = []
        run: List[int] = []
        for i in ids + [None]:
            if i is None or i in added:
                text = "".join(self._id_to_token[j] for j in run)
                # Like the reference: bytes -> UTF-8 (bad sequences replaced), then word ends -> spaces.
                raw = bytes(self._byte_decoder[c] for c in text)
                pieces.append(raw.decode("utf-8", errors="replace").replace(END_OF_WORD, " "))
                run = []
                if i is not None:
                    pieces.append(self._id_to_token[i] + " ")  # an add_tokens() word, kept as written
            else:
                run.append(i)
        return "".join(pieces)

    def __call__(
        self,
        text: TextInput,
        max_length: Optional[int] = None,
        padding: Union[bool, str] = "max_length",
        truncation: Optional[bool] = True,
        return_tensors: Optional[str] = None,
        add_special_tokens: bool = True,
        return_attention_mask: bool = True,
        **kwargs: object,
    ) -> BatchEncoding:
        """Tokenize one text or a batch into a ``BatchEncoding`` ``{"input_ids", "attention_mask"}``.

        As in MindFormers / HF: Python lists unless ``return_tensors`` is given (one text -> one list, a
        batch -> a list of lists); with tensors a single string still gives a batch of one.

        Args:
            text: a string or a sequence of strings.
            max_length: length to pad/truncate to (default ``model_max_length``: the context length, 77).
            padding: "max_length" (pad to ``max_length``), "longest" / True (to the longest in the batch),
                or False / "do_not_pad".
            truncation: cut to ``max_length`` keeping EOS as the last token (OpenAI's behaviour); None = True.
            return_tensors: None (lists), "ms" (mindspore.Tensor int32) or "np" (numpy int32).
            add_special_tokens: add BOS/EOS (per ``add_bos_token`` / ``add_eos_token``).
            return_attention_mask: include ``attention_mask``.

        Raises:
            UnknownTokenizerArgument: for an unknown keyword (a misspelt ``max_lenght`` would otherwise be ignored)
                or an invalid ``padding`` / ``return_tensors``.
        """
        if kwargs:
            raise UnknownTokenizerArgument(f"CLIPTokenizer(): unknown arguments {sorted(kwargs)}; accepted: max_length, padding, "
                                 f"truncation, return_tensors, add_special_tokens, return_attention_mask")
        max_length = self.model_max_length if max_length is None else int(max_length)
        single = isinstance(text, str)
        texts = [text] if single else list(text)
        if padding is True:
            padding = "longest"
        if padding not in ("max_length", "longest", False, "do_not_pad"):
            raise TokenizerError(f"padding must be 'max_length', 'longest' or False, got {padding!r}")
        if return_tensors not in ("ms", "np", None):
            raise TokenizerError(f"return_tensors must be 'ms', 'np' or None, got {return_tensors!r}")

        rows = [self.encode(t, add_special_tokens=add_special_tokens) for t in texts]
        if truncation or truncation is None:
            rows = [self._truncate(r, max_length, add_special_tokens) for r in rows]
        if padding == "max_length":
            width = max_length
        elif padding == "longest":
            width = max((len(r) for r in rows), default=0)
        else:
            width = None
        if width is not None:
            masks = [[1] * len(r) + [0] * (width - len(r)) for r in rows]
            rows = [r + [self.pad_token_id] * (width - len(r)) for r in rows]
        else:
            masks = [[1] * len(r) for r in rows]

        def result(ids: Any, mask: Any) -> BatchEncoding:
            return BatchEncoding(input_ids=ids, attention_mask=mask) if return_attention_mask \
                else BatchEncoding(input_ids=ids)

        if return_tensors is None:
            return result(rows[0], masks[0]) if single else result(rows, masks)
        if len({len(r) for r in rows}) > 1:
            raise TokenizerError(
                f"return_tensors={return_tensors!r} needs rows of equal length, got lengths "
                f"{sorted({len(r) for r in rows})}; use padding='max_length' or 'longest'"
            )
        arrays = _to_tensors({"input_ids": np.array(rows, dtype=np.int32).reshape(len(rows), -1),
                              "attention_mask": np.array(masks, dtype=np.int32).reshape(len(rows), -1)},
                             return_tensors)
        return result(arrays["input_ids"], arrays["attention_mask"])

    def _truncate(self, ids: List[int], max_length: int, with_specials: bool = True) -> List[int]:
        if len(ids) <= max_length:
            return ids
        if self.add_eos_token and with_specials:
            return ids[: max_length - 1] + [self.eos_token_id]
        return ids[:max_length]


def _to_tensors(arrays: Dict[str, np.ndarray], return_tensors: Optional[str]) -> Dict[str, object]:
    """Convert numpy outputs to the requested kind; mindspore is imported only when asked for."""
    if return_tensors == "np":
        return dict(arrays)
    import mindspore as ms  # lazy: keeps worker processes free of mindspore unless needed

    return {k: ms.Tensor(v) for k, v in arrays.items()}


@functools.lru_cache(maxsize=1)
def _default_tokenizer() -> CLIPTokenizer:
    """The shared tokenizer behind ``tokenize``: built once (vocab load ~0.1 s), then reused."""
    return CLIPTokenizer(pad_token="!")


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def tokenize(
    texts: TextInput,
    context_length: int = 77,
    truncate: bool = True,
    tokenizer: Optional[CLIPTokenizer] = None,
) -> np.ndarray:
    """Tokenize texts like ``clip.tokenize`` / ``open_clip.tokenize``.

    Args:
        texts: a string or a sequence of strings.
        context_length: row length; all CLIP models use 77.
        truncate: cut over-long texts to ``context_length`` with EOT as the last token; if False,
            an over-long text raises ValueError.
        tokenizer: the tokenizer to use (e.g. one with a custom vocabulary); by default one shared
            instance, built on first use.

    Returns:
        int32 array ``[N, context_length]``: SOT, ids, EOT, then zeros.

    Example:
        >>> tokenize("hello world")[0, :4].tolist()
        [49406, 3306, 1002, 49407]
    """
    if isinstance(texts, str):
        texts = [texts]
    if context_length < 2:
        raise ValueError(f"context_length must be at least 2 (room for SOT and EOT), got {context_length}")
    tok = tokenizer if tokenizer is not None else _default_tokenizer()
    sot, eot, room = tok.bos_token_id, tok.eos_token_id, context_length - 2
    result = np.zeros((len(texts), context_length), dtype=np.int32)
    for row, text in zip(result, texts):
        ids = tok.encode_text(text)
        if len(ids) > room:
            if not truncate:
                raise ValueError(
                    f"Input text {_shorten(text)!r} is too long for context length {context_length}: "
                    f"it has {len(ids) + 2} tokens including SOT/EOT; pass truncate=True to cut it"
                )
            ids = ids[:room]
        row[0] = sot
        row[1 : len(ids) + 1] = ids
        row[len(ids) + 1] = eot
    return result
