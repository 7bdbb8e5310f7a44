"""A large, varied, deterministic corpus of real text taken from the installed Python packages.

Used by tests/test_tokenizer.py (token-for-token equality with the reference tokenizers) and by
benchmarks/bench_tokenizer.py. Sources: docstrings and non-ASCII string literals (parsed with
``ast``) of the .py files in site-packages and the long descriptions in ``*.dist-info/METADATA`` (package READMEs), split into
lines, sentences and whole paragraphs so the corpus has short captions as well as long texts with
odd whitespace. Packages, files and strings are visited in sorted order, so the same environment
always yields the same corpus.
"""

from __future__ import annotations

import ast
import re
import sysconfig
import warnings
from pathlib import Path
from typing import Iterator, List

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# Per-package limits keep one huge package (torch, transformers) from being the whole corpus and
# bound the time spent parsing; 2,000 strings from up to 80 files each.
_FILES_PER_PACKAGE = 80
_STRINGS_PER_PACKAGE = 2000
_MAX_FILE_BYTES = 400_000


def site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def _pieces(text: str) -> Iterator[str]:
    """The text itself, its paragraphs, lines and sentences (raw: whitespace oddities kept)."""
    if not text.strip():
        return
    yield text
    for para in text.split("\n\n"):
        if para.strip():
            yield para
            for sentence in _SENTENCE_END.split(para):
                yield sentence
    for line in text.splitlines():
        if line.strip():
            yield line


def _module_texts(path: Path) -> Iterator[str]:
    """Docstrings, plus non-ASCII string literals (unicode tables, i18n messages, mojibake examples)
    so that the slow ftfy path of the tokenizer gets thousands of real non-ASCII strings too."""
    try:
        source = path.read_bytes()
        if len(source) > _MAX_FILE_BYTES:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences in old docstrings
            tree = ast.parse(source)
    except (SyntaxError, ValueError, OSError, UnicodeDecodeError):
        return
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield doc
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and not node.value.isascii():
            yield node.value


def _metadata_texts(root: Path) -> Iterator[str]:
    for meta in sorted(root.glob("*.dist-info/METADATA")):
        text = meta.read_text(encoding="utf-8", errors="replace")
        # Headers end at the first blank line; the rest is the README (long description).
        _, _, body = text.partition("\n\n")
        yield body


def collect_corpus(minimum: int = 50_000, limit: int = 60_000) -> List[str]:
    """Unique strings from installed packages, in a fixed order; raises if fewer than ``minimum``.

    Beyond ``limit`` strings, every non-ASCII string is kept (they are the rarer, harder cases) and
    the ASCII ones are thinned evenly, which keeps the corpus varied while bounding test time.
    """
    root = site_packages()
    seen: dict = {}

    def add_from(texts: Iterator[str], cap: int) -> None:
        added = 0
        for text in texts:
            for piece in _pieces(text):
                if piece not in seen:
                    seen[piece] = None
                    added += 1
                    if added >= cap:
                        return

    add_from(_metadata_texts(root), cap=20_000)
    packages = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.endswith(("-info", "__pycache__")))
    for package in packages:
        files = sorted(package.rglob("*.py"))[:_FILES_PER_PACKAGE]
        add_from((doc for f in files for doc in _module_texts(f)), cap=_STRINGS_PER_PACKAGE)
    corpus = list(seen)
    if len(corpus) > limit:
        non_ascii = sum(not t.isascii() for t in corpus)
        ascii_wanted = max(limit - non_ascii, 0)
        ascii_total = len(corpus) - non_ascii
        kept, ascii_seen = [], 0
        for text in corpus:
            if not text.isascii():
                kept.append(text)
                continue
            # keep the ascii_seen-th ASCII string when it crosses the next evenly spaced mark
            if ascii_seen * ascii_wanted // ascii_total != (ascii_seen + 1) * ascii_wanted // ascii_total:
                kept.append(text)
            ascii_seen += 1
        corpus = kept
    if len(corpus) < minimum:
        raise RuntimeError(f"only {len(corpus)} strings found under {root}, expected at least {minimum}")
    return corpus
