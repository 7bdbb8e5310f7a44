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


# ----------------------------------------------------------------------------- Chinese + mixed-script text

# gettext catalogs of the system's programs (libc, apt, glib, coreutils, ISO code names, ...): real UI text
# with format specifiers, paths and Latin words inside Chinese sentences. Chinese first; the other scripts
# make the mixed-script part (Greek final sigma, accents, Cyrillic, Arabic, Japanese kana, Korean, Thai).
_LOCALE_DIR = Path("/usr/share/locale")
_CHINESE_LOCALES = ("zh_CN", "zh_TW", "zh_HK", "zh_Hans", "zh_Hant")
_OTHER_LOCALES = ("ja", "ko", "el", "ru", "uk", "ar", "he", "fa", "hi", "th", "vi", "de", "fr", "es", "pt_BR",
                  "pl", "tr", "cs")
# Other UTF-8 Chinese documents that Debian packages install (tutorials, help texts, catalogs).
_CHINESE_DOCS = ("/usr/share/vim/vim90/tutor/tutor.zh_cn.utf-8", "/usr/share/gnupg/help.zh_CN.txt",
                 "/usr/lib/systemd/catalog/systemd.zh_CN.catalog", "/usr/share/gnupg/help.zh_TW.txt")


def _has_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" for ch in text)


def _catalog_texts(locale: str, per_catalog: int) -> Iterator[str]:
    import gettext

    for mo in sorted((_LOCALE_DIR / locale / "LC_MESSAGES").glob("*.mo")):
        try:
            with open(mo, "rb") as f:
                catalog = gettext.GNUTranslations(f)._catalog
        except (OSError, UnicodeDecodeError, Exception):  # a damaged or non-UTF-8 catalog: skip it
            continue
        count = 0
        for key in sorted(catalog, key=str):
            source = key[0] if isinstance(key, tuple) else key
            target = catalog[key]
            if not source or not isinstance(target, str) or not target.strip():
                continue
            yield target
            yield f"{source} {target}"  # the English original beside its translation: mixed script
            count += 1
            if count >= per_catalog:
                break


def collect_chinese_corpus(minimum: int = 2_000, per_catalog: int = 150) -> List[str]:
    """Unique real Chinese and mixed-script strings, in a fixed order; raises if fewer than ``minimum``.

    Sources: every non-ASCII string literal of Chinese-CLIP's own package (``cn_clip``: zero-shot
    templates and class names of ImageNet and the ELEVATER datasets, in Chinese), the system's gettext
    catalogs (Chinese locales in full up to ``per_catalog`` messages per catalog, other scripts too) and
    Chinese documents that Debian packages install; texts are split into paragraphs, lines and sentences.
    """
    root = site_packages()
    seen: dict = {}

    def add(texts: Iterator[str]) -> None:
        for text in texts:
            for piece in _pieces(text):
                seen.setdefault(piece, None)
                for sentence in re.split(r"(?<=[。！？；])", piece):
                    if sentence.strip():
                        seen.setdefault(sentence, None)

    cn_clip = root / "cn_clip"
    if cn_clip.is_dir():
        add(t for f in sorted(cn_clip.rglob("*.py")) for t in _module_texts(f))
    for locale in _CHINESE_LOCALES:
        add(_catalog_texts(locale, per_catalog))
    for doc in _CHINESE_DOCS:
        try:
            add([Path(doc).read_text(encoding="utf-8")])
        except (OSError, UnicodeDecodeError):
            continue
    for locale in _OTHER_LOCALES:
        add(_catalog_texts(locale, per_catalog // 5))
    corpus = list(seen)
    chinese = sum(_has_cjk(t) for t in corpus)
    if chinese < minimum:
        raise RuntimeError(f"only {chinese} Chinese strings found (cn_clip under {root}, gettext catalogs under "
                           f"{_LOCALE_DIR}), expected at least {minimum}")
    return corpus
