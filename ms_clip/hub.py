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
           "download_url", "OPENAI_BASE_URL", "check_size", "zoo_tags", "default_tag", "has_pretrained",
           "get_zoo_checkpoint", "get_open_clip_hub_checkpoint", "get_hf_repo_checkpoint", "hub_file_metadata",
           "download_hub_file", "hf_endpoint", "HUB_WEIGHT_FILES"]

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


# ============================================================================= the model zoo (issue 17)
# Architecture x tag (ms_clip.pretrained_table, generated from open_clip's tables): OpenAI's files from OpenAI's
# URLs (sha256 in the URL), every other tag from its Hugging Face Hub repository, verified against the LFS
# sha256 and size the Hub reports for the file. Cache: <home>/<name>.<tag>/<name>.<tag>.{ckpt,yaml}; the YAML
# carries the tag's preprocessing. Also open_clip's "hf-hub:<repo>" form and plain HF CLIPModel repositories.

HUB_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")  # open_clip's preference order
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_SMALL_FILE_MAX_BYTES = 4 << 20  # config JSON files


def zoo_tags(name: str) -> Dict[str, Dict[str, object]]:
    """Pretrained tags of a registry name ({} if none): tag -> source + preprocessing."""
    from ms_clip.pretrained_table import ZOO

    return ZOO.get(canonical_name(name), {})


def default_tag(name: str) -> Optional[str]:
    """The tag a bare name loads: OpenAI's weights where they exist, else the first open_clip lists."""
    from ms_clip.pretrained_table import DEFAULT_TAG

    return DEFAULT_TAG.get(canonical_name(name))


def has_pretrained(name: str) -> bool:
    """Whether a bare registry name has weights (OpenAI's table, a bundled file, or a zoo default tag)."""
    name = canonical_name(name)
    return name in PRETRAINED or default_tag(name) is not None


def hf_endpoint() -> str:
    """The Hub's base URL: ``HF_ENDPOINT`` (huggingface_hub's variable: mirrors, tests) or huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def hub_file_url(repo: str, filename: str, revision: str = "main") -> str:
    return f"{hf_endpoint()}/{repo}/resolve/{revision}/{filename}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # the Hub's metadata sits on the redirect itself
        return None


def hub_file_metadata(url: str, timeout: float = 30.0) -> Tuple[str, int]:
    """(sha256, size) of a Hub LFS file from a HEAD request, as huggingface_hub verifies downloads.

    The Hub answers ``/resolve/`` with a redirect to its CDN whose headers carry the LFS object's sha256
    (``X-Linked-ETag``, quoted) and byte size (``X-Linked-Size``); the redirect is not followed (the CDN's
    response does not have them), except a relative one (a renamed repository) on the Hub itself.
    urllib.error.HTTPError (e.g. 404) is raised as is; a response without the headers is a HubError.
    """
    opener = urllib.request.build_opener(_NoRedirect)
    for _ in range(3):
        request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "ms_clip"})
        try:
            response = opener.open(request, timeout=timeout)
            headers, location = response.headers, None
            response.close()
        except urllib.error.HTTPError as err:
            if err.code not in (301, 302, 303, 307, 308):
                raise
            headers, location = err.headers, err.headers.get("Location")
        etag, size = headers.get("X-Linked-ETag"), headers.get("X-Linked-Size")
        if etag and size:
            digest = etag.strip().removeprefix("W/").strip('"').lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or not size.isdigit():
                raise HubError(f"{url}: the Hub reported X-Linked-ETag {etag!r} / X-Linked-Size {size!r}, not an LFS "
                               f"sha256 and byte size; cannot verify the file")
            return digest, int(size)
        if location and location.startswith("/"):
            url = url.split("/", 3)[0] + "//" + url.split("/", 3)[2] + location
            continue
        break
    raise HubError(f"{url}: the server did not report the file's sha256 and size (X-Linked-ETag / X-Linked-Size "
                   f"headers, which huggingface.co sends for weights files), so the download cannot be verified; "
                   f"download the file yourself and pass its path to from_pretrained / convert_weight.py")


def download_hub_file(repo: str, filenames, dest_dir: str, timeout: float = 30.0) -> str:
    """Download the first of ``filenames`` that the repository has, verified by the Hub's LFS sha256 and size.

    Returns the local path. HubError when none exists (404 on all) or verification fails (the partial file
    is deleted: see ``download_url``).
    """
    missing = []
    for filename in filenames:
        url = hub_file_url(repo, filename)
        try:
            sha256, size = hub_file_metadata(url, timeout)
        except urllib.error.HTTPError as err:
            if err.code in (404, 401):  # 401: the Hub's answer for a missing file in a gated/absent repository
                missing.append(filename)
                continue
            raise HubError(f"{url}: HTTP {err.code} {err.reason}") from None
        dest = os.path.join(dest_dir, filename)
        if os.path.isfile(dest) and os.path.getsize(dest) == size and sha256_file(dest) == sha256:
            return dest  # put there by hand, or left by an interrupted conversion
        logger.info("downloading %s (%d bytes, sha256 %s) into %s", url, size, sha256, dest)
        # Transfer bounded by the reported size (a longer body is cut there), then checked here with messages of
        # our own: a short file (dropped connection, truncating proxy) and a changed one are different problems.
        download_url(url, dest, None, timeout=timeout, max_bytes=size, size_range=(0, size))
        got_size = os.path.getsize(dest)
        got = sha256_file(dest) if got_size == size else None
        if got != sha256:
            os.remove(dest)
            if got is None:
                raise HubError(f"{url}: received {got_size:,} of {size:,} bytes (the size the Hub reports); the "
                               f"transfer was cut short and the partial file was deleted: call again")
            raise HubError(f"sha256 mismatch for {url}: the Hub reports {sha256}, the download has {got}; the file "
                           f"was deleted (corrupt transfer or a proxy that changed it)")
        return dest
    raise HubError(f"the Hugging Face repository {repo} at {hf_endpoint()} has none of {list(filenames)} "
                   f"(HTTP 404 on each)")


def _fetch_small(url: str, timeout: float) -> bytes:
    from ms_clip.net import fetch

    return fetch(url, None, max_bytes=_SMALL_FILE_MAX_BYTES, deadline_s=max(timeout * 4, 60.0), timeout_s=timeout,
                 what="config file")


def _convert_with_config(config, source: str, ckpt: str) -> None:
    """Convert ``source`` strictly against ``config`` (which may carry preprocessing); move ckpt + yaml into place."""
    directory = os.path.dirname(ckpt)
    stem = os.path.splitext(os.path.basename(ckpt))[0]
    staging = tempfile.mkdtemp(prefix=".convert-", dir=directory)
    try:
        result = convert_weight(source, os.path.join(staging, stem + ".ckpt"), config=config)
        os.replace(result.config_path, os.path.splitext(ckpt)[0] + ".yaml")  # yaml first: the ckpt marks completion
        os.replace(result.path, ckpt)
        logger.info("cached %s (sha256 %s)", ckpt, result.sha256)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def get_zoo_checkpoint(name: str, tag: str, timeout: float = 30.0) -> str:
    """Path of the converted ``.ckpt`` of architecture ``name`` with weights ``tag`` (its ``.yaml`` beside it).

    OpenAI's tags of the four original ViT names share their cache entry with the bare name.
    """
    name = canonical_name(name)
    tags = zoo_tags(name)
    if tag not in tags:
        from ms_clip.pretrained_table import ZOO

        elsewhere = sorted(n for n, t in ZOO.items() if tag in t)
        hint = f" '{tag}' exists for {elsewhere} (its weights need that architecture)." if elsewhere else ""
        raise HubError(f"unknown pretrained tag '{tag}' for '{name}'.{hint} Tags of '{name}': {sorted(tags) or 'none'}")
    entry = tags[tag]
    if tag == default_tag(name) and name in PRETRAINED:
        return get_pretrained_checkpoint(name, timeout=timeout)
    key = f"{name}.{tag}"
    ckpt = os.path.join(cache_home(), key, key + ".ckpt")
    if _cached(ckpt):
        return ckpt
    config = load_config(name)
    config.preprocessing = dict(entry["preprocess"])
    with _entry_lock(os.path.dirname(ckpt)):
        if _cached(ckpt):
            return ckpt
        directory = os.path.dirname(ckpt)
        try:
            if "sha256" in entry:  # OpenAI's file
                url = str(entry["url"])
                source = os.path.join(directory, os.path.basename(url))
                if not (os.path.isfile(source) and sha256_file(source) == entry["sha256"]):
                    download_url(url, source, str(entry["sha256"]), timeout=timeout)
            else:
                files = (entry["filename"],) if entry.get("filename") else HUB_WEIGHT_FILES
                source = download_hub_file(str(entry["hf_hub"]), files, directory, timeout)
        except urllib.error.HTTPError as err:
            raise HubError(f"cannot download the weights of {key} ({entry.get('url') or entry.get('hf_hub')}): "
                           f"HTTP {err.code} {err.reason}") from None
        except (urllib.error.URLError, socket.timeout, ConnectionError) as err:
            where = entry.get("url") or hub_file_url(str(entry["hf_hub"]), HUB_WEIGHT_FILES[0])
            raise HubError(f"cannot download the weights of {key} from {where} (no connection: "
                           f"{getattr(err, 'reason', None) or err}); download it elsewhere, then "
                           f"python {_CONVERT_SCRIPT} --torch_path <file> --mindspore_path {ckpt} "
                           f"(and add the tag's preprocessing with from_pretrained(..., pretrained='{tag}') "
                           f"once the file is in {directory})") from None
        _convert_with_config(config, source, ckpt)
        os.remove(source)
    return ckpt


def _repo_dir(kind: str, repo: str) -> str:
    return os.path.join(cache_home(), kind, repo.replace("/", "--"))


def get_open_clip_hub_checkpoint(repo: str, timeout: float = 30.0) -> str:
    """open_clip's ``hf-hub:<repo>``: the repository's open_clip_config.json (model_cfg + preprocess_cfg) and
    its verified weights, converted and cached under <home>/hf-hub/<org>--<name>/model.ckpt."""
    import json

    from ms_clip.convert import config_from_open_clip

    ckpt = os.path.join(_repo_dir("hf-hub", repo), "model.ckpt")
    if _cached(ckpt):
        return ckpt
    with _entry_lock(os.path.dirname(ckpt)):
        if _cached(ckpt):
            return ckpt
        url = hub_file_url(repo, "open_clip_config.json")
        try:
            cfg = json.loads(_fetch_small(url, timeout))
            source = download_hub_file(repo, HUB_WEIGHT_FILES, os.path.dirname(ckpt), timeout)
        except urllib.error.HTTPError as err:
            raise HubError(f"hf-hub:{repo}: {url}: HTTP {err.code} {err.reason} (an open_clip repository has "
                           f"open_clip_config.json and {HUB_WEIGHT_FILES[0]} or {HUB_WEIGHT_FILES[1]})") from None
        except (urllib.error.URLError, socket.timeout, ConnectionError) as err:
            raise HubError(f"hf-hub:{repo}: cannot reach {url} ({getattr(err, 'reason', None) or err})") from None
        except ValueError as err:
            raise HubError(f"hf-hub:{repo}: open_clip_config.json is not valid JSON ({err})") from None
        if not isinstance(cfg, dict) or not isinstance(cfg.get("model_cfg"), dict):
            raise HubError(f"hf-hub:{repo}: open_clip_config.json has no 'model_cfg' mapping")
        config = config_from_open_clip(cfg["model_cfg"], where=f"hf-hub:{repo} open_clip_config.json")
        pre = cfg.get("preprocess_cfg") or {}
        mode = {"shortest": "crop", "squash": "squash"}.get(pre.get("resize_mode", "shortest"))
        if mode is None or pre.get("interpolation", "bicubic") != "bicubic":
            raise HubError(f"hf-hub:{repo}: preprocessing {pre.get('interpolation')}/{pre.get('resize_mode')} is not "
                           f"supported (bicubic with resize_mode shortest or squash)")
        from ms_clip.constants import CLIP_MEAN, CLIP_STD

        config.preprocessing = {"mean": list(pre.get("mean", CLIP_MEAN)), "std": list(pre.get("std", CLIP_STD)),
                                "interpolation": "bicubic", "resize_mode": mode}
        _convert_with_config(config, source, ckpt)
        os.remove(source)
    return ckpt


def get_hf_repo_checkpoint(repo: str, timeout: float = 30.0) -> str:
    """A Hugging Face ``CLIPModel`` repository (config.json + model.safetensors / pytorch_model.bin, verified):
    converted (architecture from config.json and the tensors) and cached under <home>/hf/<org>--<name>/model.ckpt.
    The repository's preprocessor_config.json, if any, gives mean/std."""
    import json

    from ms_clip.convert import infer_config, read_source

    ckpt = os.path.join(_repo_dir("hf", repo), "model.ckpt")
    if _cached(ckpt):
        return ckpt
    directory = os.path.dirname(ckpt)
    with _entry_lock(directory):
        if _cached(ckpt):
            return ckpt
        folder = tempfile.mkdtemp(prefix=".hf-", dir=directory)
        try:
            try:
                with open(os.path.join(folder, "config.json"), "wb") as f:
                    f.write(_fetch_small(hub_file_url(repo, "config.json"), timeout))
                download_hub_file(repo, HF_WEIGHT_FILES, folder, timeout)
                try:
                    pre = json.loads(_fetch_small(hub_file_url(repo, "preprocessor_config.json"), timeout))
                except urllib.error.HTTPError:
                    pre = {}
            except urllib.error.HTTPError as err:
                raise HubError(f"{repo}: not a Hugging Face CLIPModel repository at {hf_endpoint()} (HTTP {err.code} "
                               f"for {err.url}); expected config.json and {HF_WEIGHT_FILES[0]}") from None
            except (urllib.error.URLError, socket.timeout, ConnectionError) as err:
                raise HubError(f"{repo}: cannot reach {hf_endpoint()} ({getattr(err, 'reason', None) or err})") from None
            config = infer_config(read_source(folder), folder)
            if pre.get("image_mean") and pre.get("image_std"):
                config.preprocessing = {"mean": list(pre["image_mean"]), "std": list(pre["image_std"]),
                                        "interpolation": "bicubic", "resize_mode": "crop"}
            _convert_with_config(config, folder, ckpt)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return ckpt
