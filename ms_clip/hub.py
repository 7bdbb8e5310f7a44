"""Pretrained weights for registry names: local cache, else a verified download of OpenAI's file + conversion.

Cache layout (``MS_CLIP_HOME``, default ``~/.cache/ms_clip``)::

    <home>/<name>/<name>.ckpt   converted weights (what from_pretrained loads)
    <home>/<name>/<name>.yaml   their config

A missing cache entry is filled from the official file (OpenAI's ``.pt``, sha256-verified; Chinese-CLIP's
``.pt``, size-checked because it publishes no hashes), then converted with ``ms_clip.convert``. Nothing here ever falls back to random weights: every failure raises a
``HubError`` saying what to download, where to put it, or which command to run.

The download base can be redirected (mirrors, tests) with ``MS_CLIP_DOWNLOAD_BASE`` or the
``base_url`` argument; ``register_pretrained`` adds or replaces table entries.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import tempfile
import urllib.error
import urllib.request
from typing import Dict, Iterator, Optional, Tuple

from ms_clip.errors import MsClipError
from ms_clip.convert import convert_weight
from ms_clip.fileio import sha256_file
from ms_clip.registry import canonical_name, load_config

logger = logging.getLogger(__name__)

__all__ = ["HubError", "PRETRAINED", "cache_home", "get_pretrained_checkpoint", "register_pretrained",
           "download_url", "OPENAI_BASE_URL", "check_size"]

OPENAI_BASE_URL = "https://openaipublic.azureedge.net/clip/models"
# OpenAI's files (openai/CLIP clip/clip.py `_MODELS`): the URL path component *is* the file's sha256,
# which is also how clip.py verifies the download. URL = <base>/<sha256>/<filename>.
PRETRAINED: Dict[str, Dict[str, str]] = {
    "clip_vit_b_32": {"sha256": "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
                      "filename": "ViT-B-32.pt"},
    "clip_vit_b_16": {"sha256": "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f",
                      "filename": "ViT-B-16.pt"},
    "clip_vit_l_14": {"sha256": "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
                      "filename": "ViT-L-14.pt"},
    "clip_vit_l_14_336": {"sha256": "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02",
                          "filename": "ViT-L-14-336px.pt"},
    # The offline demo model, trained by ms_clip itself (scripts/build_demo_model.py); ships in the package.
    "clip_tiny_shapes": {"package_file": "assets/clip_tiny_shapes.ckpt"},
}

# Chinese-CLIP (OFA-Sys): the files cn_clip 1.6.0 downloads (cn_clip/clip/utils.py `_MODELS`: Hugging Face repo
# OFA-Sys/<repo>, file <filename>; the project README also serves them from its OSS bucket, `mirror`). Chinese-CLIP
# publishes NO hashes and no byte sizes, so these entries carry no sha256: the download's size must lie between
# the architecture's tensor bytes in fp16 and in fp32 (+ 16 MiB for the zip/pickle framing), which rejects
# truncated transfers, error pages and another model's file; the sha256 of what was downloaded is logged,
# printed and recorded beside the cache entry (<name>/<name>.source.json) so that users can pin it.
_CN_BASE = "https://huggingface.co/OFA-Sys"
_CN_MIRROR = "https://clip-cn-beijing.oss-cn-beijing.aliyuncs.com/checkpoints"
_FRAMING_SLACK = 16 << 20


def _cn_entry(repo: str, filename: str, num_params: int) -> Dict[str, object]:
    # num_params: the released state dict's tensors (our model + the BERT pooler cn_clip drops on load); it
    # equals the parameter counts of Chinese-CLIP's README (188M, 406M, 407M, 958M).
    return {"url": f"{_CN_BASE}/{repo}/resolve/main/{filename}", "filename": filename,
            "mirror": f"{_CN_MIRROR}/{filename}", "min_size": 2 * num_params,
            "max_size": 4 * num_params + _FRAMING_SLACK}


PRETRAINED.update({
    "chinese_clip_vit_b_16": _cn_entry("chinese-clip-vit-base-patch16", "clip_cn_vit-b-16.pt", 188_853_505),
    "chinese_clip_vit_l_14": _cn_entry("chinese-clip-vit-large-patch14", "clip_cn_vit-l-14.pt", 406_823_681),
    "chinese_clip_vit_l_14_336": _cn_entry("chinese-clip-vit-large-patch14-336px", "clip_cn_vit-l-14-336.pt",
                                           407_151_361),
    "chinese_clip_vit_h_14": _cn_entry("chinese-clip-vit-huge-patch14", "clip_cn_vit-h-14.pt", 958_647_809),
})
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_CONVERT_SCRIPT = "convert/convert_weight.py"


class HubError(MsClipError, RuntimeError):
    """Pretrained weights are unavailable; the message says what to download or run."""


def cache_home() -> str:
    return os.path.expanduser(os.environ.get("MS_CLIP_HOME") or os.path.join("~", ".cache", "ms_clip"))


def register_pretrained(name: str, *, sha256: Optional[str] = None, filename: Optional[str] = None,
                        url: Optional[str] = None, package_file: Optional[str] = None,
                        min_size: Optional[int] = None, max_size: Optional[int] = None) -> None:
    """Add or replace the weights entry of an architecture name.

    Either a downloadable source (``url`` or ``<base>/<sha256>/<filename>``, verified by ``sha256`` and
    converted; a ``url`` of a publisher without hashes may give ``min_size``/``max_size`` in bytes
    instead), or ``package_file``: a converted .ckpt shipped inside ms_clip (path relative to the
    package, its ``.yaml`` beside it).
    """
    name = canonical_name(name)
    if package_file:
        PRETRAINED[name] = {"package_file": package_file}
        return
    if not sha256 and url and min_size is not None and max_size is not None:
        PRETRAINED[name] = {"url": url, "filename": filename or os.path.basename(url.split("?")[0]),
                            "min_size": int(min_size), "max_size": int(max_size)}
        return
    if not sha256 or not (url or filename):
        raise HubError(f"register_pretrained('{name}'): a download entry needs sha256 and a url or filename "
                       f"(or, for a publisher without hashes, a url with min_size and max_size)")
    entry = {"sha256": sha256.lower(), "filename": filename or os.path.basename(url.split("?")[0])}
    if url:
        entry["url"] = url
    PRETRAINED[name] = entry


def _source_url(entry: Dict[str, str], base_url: Optional[str]) -> str:
    if "url" in entry:
        return entry["url"]
    base = (base_url or os.environ.get("MS_CLIP_DOWNLOAD_BASE") or OPENAI_BASE_URL).rstrip("/")
    return f"{base}/{entry['sha256']}/{entry['filename']}"


def check_size(path: str, size: int, min_size: int, max_size: int, what: str) -> None:
    """HubError unless ``min_size <= size <= max_size`` (bytes); the message names the file and the range."""
    if not min_size <= size <= max_size:
        raise HubError(f"{what}: {path} has {size:,} bytes, expected {min_size:,}..{max_size:,} (the model's tensors "
                       f"in fp16..fp32); it is truncated, an error page or another model's file")


def download_url(url: str, dest: str, sha256: Optional[str], timeout: float = 30.0, *,
                 max_bytes: Optional[int] = None, deadline_s: Optional[float] = None,
                 size_range: Optional[Tuple[int, int]] = None) -> str:
    """Download ``url`` to ``dest`` via a temp file in the same directory; verify sha256; rename into place.

    ``sha256=None`` (publishers without hashes) needs ``size_range``: the size is checked instead.

    On a hash mismatch or any error the partial file is removed, so ``dest`` exists only when verified.
    The transfer is bounded (``ms_clip.net.fetch``): ``timeout`` per read, ``deadline_s`` in total
    (default ``MS_CLIP_DOWNLOAD_DEADLINE_S`` or 3600 s) and ``max_bytes`` (default
    ``MS_CLIP_DOWNLOAD_MAX_BYTES`` or 4 GiB; a response larger than its own Content-Length is cut there
    anyway); exceeding either raises HubError naming the URL and the limit. HTTP and connection errors
    are raised as urllib raises them.
    """
    from tqdm import tqdm

    from ms_clip.net import WEIGHTS_DEADLINE_S, WEIGHTS_MAX_BYTES, DownloadLimitError, fetch, limit_from_env

    directory = os.path.dirname(os.path.abspath(dest))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".download-", suffix=".part", dir=directory)
    os.close(fd)  # fetch writes the path itself
    bar = tqdm(total=None, unit="B", unit_scale=True, unit_divisor=1024, desc=os.path.basename(dest))

    def progress(received: int, total: Optional[int]) -> None:
        if bar.total != total:
            bar.total = total
        bar.update(received - bar.n)

    try:
        try:
            max_bytes = max_bytes or int(limit_from_env("MS_CLIP_DOWNLOAD_MAX_BYTES", WEIGHTS_MAX_BYTES))
            deadline_s = deadline_s or limit_from_env("MS_CLIP_DOWNLOAD_DEADLINE_S", WEIGHTS_DEADLINE_S)
            fetch(url, tmp, max_bytes=max_bytes, deadline_s=deadline_s, timeout_s=timeout, what="weights download",
                  hint=f"download it yourself and put it at {dest}, or raise MS_CLIP_DOWNLOAD_MAX_BYTES / "
                       f"MS_CLIP_DOWNLOAD_DEADLINE_S", progress=progress)
        except DownloadLimitError as err:
            raise HubError(str(err)) from None
        finally:
            bar.close()
        if size_range is not None:
            check_size(url, os.path.getsize(tmp), size_range[0], size_range[1], "download")
        if sha256 is None:
            if size_range is None:
                raise HubError(f"download_url({url!r}): no sha256 and no size range to verify the file against")
            os.replace(tmp, dest)
            return dest
        got = sha256_file(tmp)
        if got != sha256.lower():
            raise HubError(f"sha256 mismatch for {url}: expected {sha256.lower()}, got {got}; the download was "
                           f"deleted (corrupt transfer, wrong mirror or a changed file)")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest


def _offline_help(name: str, url: str, entry: Dict[str, str], reason: str) -> str:
    target_dir = os.path.join(cache_home(), name)
    if "sha256" in entry:
        check = f"sha256 {entry['sha256']}"
    else:  # Chinese-CLIP: no published hash
        check = (f"no published sha256; {int(entry['min_size']):,}..{int(entry['max_size']):,} bytes"
                 + (f"; also at {entry['mirror']}" if entry.get("mirror") else ""))
    return (f"cannot download the pretrained weights of '{name}' from {url} ({reason}). Either\n"
            f"  1. download {url} ({check}) elsewhere and put it at "
            f"{os.path.join(target_dir, entry['filename'])}, then call again (it is verified and converted), or\n"
            f"  2. convert a copy yourself: python {_CONVERT_SCRIPT} --torch_path {entry['filename']} "
            f"--mindspore_path {os.path.join(target_dir, name + '.ckpt')}")


def _package_checkpoint(name: str, entry: Dict[str, str]) -> str:
    path = os.path.join(_PACKAGE_DIR, entry["package_file"])
    yaml_path = os.path.splitext(path)[0] + ".yaml"
    missing = [p for p in (path, yaml_path) if not os.path.isfile(p)]
    if missing:
        raise HubError(f"the bundled weights of '{name}' are missing from the installed package: {missing}; "
                       f"reinstall ms_clip (pip install -e .)")
    return path


def _convert_into_cache(name: str, source: str, ckpt: str) -> None:
    """Convert ``source`` against the registry's architecture, then move ckpt + yaml into place."""
    directory = os.path.dirname(ckpt)
    staging = tempfile.mkdtemp(prefix=".convert-", dir=directory)
    try:
        # The registry config (not shape inference) so a file of another architecture fails loudly here.
        result = convert_weight(source, os.path.join(staging, name + ".ckpt"), config=load_config(name))
        # yaml first: the .ckpt is what marks the cache entry complete.
        os.replace(result.config_path, os.path.splitext(ckpt)[0] + ".yaml")
        os.replace(result.path, ckpt)
        logger.info("cached %s at %s (sha256 %s)", name, ckpt, result.sha256)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def _entry_lock(directory: str) -> Iterator[None]:
    """Exclusive lock on one cache entry, so concurrent processes (every rank of an msrun job calls
    from_pretrained) do not download or convert the same file at once; waiters then find it done.
    flock is released by the kernel when a holder dies, so a killed process leaves no stale lock."""
    try:
        os.makedirs(directory, exist_ok=True)
        handle = open(os.path.join(directory, ".lock"), "a+")
    except OSError as err:
        raise HubError(f"cannot write the cache entry {directory} ({err.strerror}); set MS_CLIP_HOME to a writable "
                       f"directory") from None
    with handle:
        try:
            import fcntl
        except ImportError:  # Windows: no flock; concurrent first downloads are then not coordinated
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _cached(ckpt: str) -> bool:
    return os.path.isfile(ckpt) and os.path.isfile(os.path.splitext(ckpt)[0] + ".yaml")


def get_pretrained_checkpoint(name: str, base_url: Optional[str] = None, timeout: float = 30.0) -> str:
    """Path of the converted ``.ckpt`` for a registry name (its ``.yaml`` beside it).

    Order: the cache; a bundled package file; an already downloaded source in the cache directory
    (verified); a download from the table (verified, converted, cached). Raises HubError otherwise.
    """
    name = canonical_name(name)
    entry = PRETRAINED.get(name)
    if entry and "package_file" in entry:
        return _package_checkpoint(name, entry)
    ckpt = os.path.join(cache_home(), name, name + ".ckpt")
    if _cached(ckpt):
        return ckpt
    if entry is None:
        raise HubError(f"there are no pretrained weights for '{name}' (pretrained: {sorted(PRETRAINED)}). "
                       f"For a randomly initialised model use ms_clip.create_model('{name}'); to load your own "
                       f"weights pass a .ckpt or a save_pretrained directory to from_pretrained")
    with _entry_lock(os.path.dirname(ckpt)):
        if not _cached(ckpt):  # else another process finished it while we waited for the lock
            _fetch_and_convert(name, entry, ckpt, base_url, timeout)
    return ckpt


def _fetch_and_convert(name: str, entry: Dict[str, str], ckpt: str, base_url: Optional[str], timeout: float) -> None:
    source = os.path.join(cache_home(), name, entry["filename"])
    url = _source_url(entry, base_url)
    size_range = (int(entry["min_size"]), int(entry["max_size"])) if "sha256" not in entry else None
    if os.path.isfile(source):  # put there by hand (see the offline instructions) or left by a failed convert
        if size_range is not None:
            check_size(source, os.path.getsize(source), size_range[0], size_range[1], f"the weights of '{name}'")
        else:
            got = sha256_file(source)
            if got != entry["sha256"]:
                raise HubError(f"{source}: sha256 is {got}, expected {entry['sha256']} (the file from {url}); "
                               f"delete or replace it")
    else:
        logger.info("downloading %s for '%s' into %s", url, name, source)
        try:
            download_url(url, source, entry.get("sha256"), timeout=timeout, size_range=size_range)
        except urllib.error.HTTPError as err:
            raise HubError(_offline_help(name, url, entry, f"HTTP {err.code} {err.reason}")) from None
        except (urllib.error.URLError, socket.timeout, ConnectionError) as err:
            reason = getattr(err, "reason", None) or err
            raise HubError(_offline_help(name, url, entry, f"no connection: {reason}")) from None
    if size_range is not None:
        _record_unhashed_source(name, url, source, ckpt)
    _convert_into_cache(name, source, ckpt)
    os.remove(source)  # the converted .ckpt is what is used; the source can be downloaded again


def _record_unhashed_source(name: str, url: str, source: str, ckpt: str) -> None:
    """A publisher without hashes: log, print and record the sha256 of the file we got, beside the cache entry."""
    from ms_clip.fileio import write_json

    digest, size = sha256_file(source), os.path.getsize(source)
    record = os.path.splitext(ckpt)[0] + ".source.json"
    write_json(record, {"name": name, "url": url, "filename": os.path.basename(source), "size": size,
                        "sha256": digest, "note": "the publisher gives no hash; this is what was downloaded"})
    message = (f"'{name}': {os.path.basename(source)} ({size:,} bytes) has sha256 {digest} - the publisher gives no "
               f"hash to check it against; recorded in {record}")
    logger.warning(message)
    print(message)
