"""Pretrained weights through a real HTTP server on 127.0.0.1: verified download, conversion, cache, errors."""
from __future__ import annotations

import functools
import hashlib
import http.server
import os
import threading

import numpy as np
import pytest

import _helpers_parity as H
from ms_clip import hub
from ms_clip.models import CLIPModel
from ms_clip.registry import load_config

torch = pytest.importorskip("torch")
NAME = "clip_tiny"


class _Server:
    """http.server serving a directory from a background thread; ``stop`` closes the port."""

    def __init__(self, directory: str):
        self.root = directory
        handler = functools.partial(_QuietHandler, directory=directory)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.requests = 0
        self.httpd.owner = self
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.owner.requests += 1
        super().do_GET()


@pytest.fixture(scope="module")
def tiny_archive(tmp_path_factory):
    """An OpenAI-style TorchScript archive with clip_tiny's shapes; returns (path, sha256, state dict)."""
    cfg = load_config(NAME)
    t, v = cfg.text_config, cfg.vision_config
    arch = H.Arch("clip_tiny", cfg.projection_dim, v.image_size, v.patch_size, v.hidden_size, v.num_hidden_layers,
                  t.hidden_size, t.num_attention_heads, t.num_hidden_layers, t.max_position_embeddings, t.vocab_size)
    model = H.build_openai(arch, 21)
    path = str(tmp_path_factory.mktemp("archive") / "ViT-T.pt")
    H.save_torchscript(model, arch, path)
    state = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    return path, hashlib.sha256(open(path, "rb").read()).hexdigest(), state


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MS_CLIP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MS_CLIP_DOWNLOAD_BASE", raising=False)
    return tmp_path / "home"


@pytest.fixture
def served(tmp_path, tiny_archive):
    """The archive at <base>/<sha256>/ViT-T.pt, OpenAI's URL layout."""
    path, sha, _ = tiny_archive
    root = tmp_path / "www"
    (root / sha).mkdir(parents=True)
    (root / sha / "ViT-T.pt").write_bytes(open(path, "rb").read())
    server = _Server(str(root))
    yield server
    server.stop()


def _register(monkeypatch, **entry):
    monkeypatch.setitem(hub.PRETRAINED, NAME, entry)


def _files(directory):
    """Files under ``directory``, without the per-entry ``.lock`` (an empty flock file that stays by design)."""
    return sorted(os.path.relpath(os.path.join(d, f), directory) for d, _, fs in os.walk(directory) for f in fs
                  if f != ".lock")


def test_download_verify_convert_cache(home, served, tiny_archive, monkeypatch):
    _, sha, state = tiny_archive
    _register(monkeypatch, sha256=sha, filename="ViT-T.pt")
    monkeypatch.setenv("MS_CLIP_DOWNLOAD_BASE", served.base)

    model = CLIPModel.from_pretrained(NAME)
    assert served.requests == 1
    # only the converted pair is left in the cache (no partial download, no staging dir, no source)
    assert _files(home) == [f"{NAME}/{NAME}.ckpt", f"{NAME}/{NAME}.yaml"]
    for name, param in model.parameters_and_names():
        np.testing.assert_array_equal(param.asnumpy(), state[name], err_msg=name)

    served.stop()  # the second call must not need the network
    again = hub.get_pretrained_checkpoint(NAME)
    assert again == str(home / NAME / f"{NAME}.ckpt")
    CLIPModel.from_pretrained(NAME)
    CLIPModel.from_pretrained(again)  # the yaml beside the cached ckpt makes the path loadable on its own
    assert served.requests == 1


def test_wrong_hash_leaves_nothing(home, served, tiny_archive, monkeypatch):
    _, sha, _ = tiny_archive
    wrong = "0" * 64
    # the file is served under the wrong hash's path, so only the content check can catch it
    os.rename(os.path.join(served.root, sha),
              os.path.join(served.root, wrong))
    _register(monkeypatch, sha256=wrong, filename="ViT-T.pt")
    with pytest.raises(hub.HubError, match=f"sha256 mismatch .*expected {wrong}, got {sha}"):
        hub.get_pretrained_checkpoint(NAME, base_url=served.base)
    assert _files(home) == []


def test_registry_name_with_wrong_file_fails_before_conversion(home, served, monkeypatch):
    """CLIPModel.from_pretrained('clip_vit_b_32') against a mirror serving something else: hash error, no cache."""
    entry = hub.PRETRAINED["clip_vit_b_32"]
    root = served.root
    os.makedirs(os.path.join(root, entry["sha256"]))
    with open(os.path.join(root, entry["sha256"], entry["filename"]), "wb") as f:
        f.write(b"not the real ViT-B-32.pt")
    monkeypatch.setenv("MS_CLIP_DOWNLOAD_BASE", served.base)
    with pytest.raises(hub.HubError, match=f"expected {entry['sha256']}"):
        CLIPModel.from_pretrained("clip_vit_b_32")
    assert _files(home) == []


def test_offline_error_says_what_to_do(home, monkeypatch, tiny_archive):
    _, sha, _ = tiny_archive
    server = _Server(str(home.parent))
    base = server.base
    server.stop()  # nothing listens on this port any more
    _register(monkeypatch, sha256=sha, filename="ViT-T.pt")
    with pytest.raises(hub.HubError) as info:
        hub.get_pretrained_checkpoint(NAME, base_url=base)
    message = str(info.value)
    url = f"{base}/{sha}/ViT-T.pt"
    assert url in message and "no connection" in message
    assert str(home / NAME / "ViT-T.pt") in message  # where to put the file
    assert (f"python convert/convert_weight.py --torch_path ViT-T.pt --mindspore_path "
            f"{home / NAME / (NAME + '.ckpt')}") in message
    assert _files(home) == []


def test_http_404(home, served, monkeypatch):
    _register(monkeypatch, sha256="1" * 64, filename="missing.pt")
    with pytest.raises(hub.HubError, match="HTTP 404"):
        hub.get_pretrained_checkpoint(NAME, base_url=served.base)


def test_manually_placed_source_is_verified_and_converted(home, tiny_archive, monkeypatch):
    """Step 1 of the offline instructions: put the file in the cache directory, no network needed."""
    path, sha, state = tiny_archive
    _register(monkeypatch, sha256=sha, filename="ViT-T.pt")
    (home / NAME).mkdir(parents=True)
    (home / NAME / "ViT-T.pt").write_bytes(open(path, "rb").read())
    ckpt = hub.get_pretrained_checkpoint(NAME, base_url="http://127.0.0.1:9")
    assert _files(home) == [f"{NAME}/{NAME}.ckpt", f"{NAME}/{NAME}.yaml"]
    (home / NAME / "ViT-T.pt").write_bytes(b"tampered")
    os.remove(ckpt)
    with pytest.raises(hub.HubError, match=f"expected {sha}"):
        hub.get_pretrained_checkpoint(NAME, base_url="http://127.0.0.1:9")


def test_name_without_weights(home, monkeypatch):
    monkeypatch.delitem(hub.PRETRAINED, NAME, raising=False)
    with pytest.raises(hub.HubError, match=r"no pretrained weights for 'clip_tiny'.*ms_clip.create_model\('clip_tiny'\)"):
        CLIPModel.from_pretrained(NAME)


def test_package_file_entry(home, tmp_path, monkeypatch):
    model = CLIPModel(load_config(NAME))
    model.save_pretrained(str(tmp_path / "pkg"), save_name="demo")
    os.rename(tmp_path / "pkg" / "config.yaml", tmp_path / "pkg" / "demo.yaml")
    # an absolute package_file stands in for a file under ms_clip/assets/ (os.path.join keeps it as is)
    monkeypatch.setattr(hub, "PRETRAINED", dict(hub.PRETRAINED))  # the table is restored afterwards
    hub.register_pretrained(NAME, package_file=str(tmp_path / "pkg" / "demo.ckpt"))
    assert hub.get_pretrained_checkpoint(NAME) == str(tmp_path / "pkg" / "demo.ckpt")
    loaded = CLIPModel.from_pretrained(NAME)
    np.testing.assert_array_equal(loaded.logit_scale.asnumpy(), model.logit_scale.asnumpy())
    os.remove(tmp_path / "pkg" / "demo.yaml")
    with pytest.raises(hub.HubError, match="missing from the installed package"):
        hub.get_pretrained_checkpoint(NAME)


def test_official_table():
    """The four OpenAI files; the URL path component is the sha256 (openai/CLIP clip/clip.py _MODELS)."""
    assert set(hub.PRETRAINED) >= {"clip_vit_b_16", "clip_vit_b_32", "clip_vit_l_14", "clip_vit_l_14_336"}
    url = hub._source_url(hub.PRETRAINED["clip_vit_b_32"], None)
    assert url == ("https://openaipublic.azureedge.net/clip/models/"
                   "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt")
    assert hub._source_url(hub.PRETRAINED["clip_vit_l_14_336"], None).endswith("/ViT-L-14-336px.pt")


def test_concurrent_from_pretrained_downloads_once(home, served, tiny_archive, monkeypatch, tmp_path):
    """Every rank of an msrun job calls from_pretrained at once: one process downloads and converts, the
    others wait on the cache entry's lock and reuse the finished file (issue: "corrupt, truncated" before)."""
    import subprocess
    import sys

    _, sha, _ = tiny_archive
    script = tmp_path / "load.py"
    script.write_text(
        "import sys\n"
        "from ms_clip import hub\n"
        "from ms_clip.models import CLIPModel\n"
        f"hub.register_pretrained({NAME!r}, sha256={sha!r}, filename='ViT-T.pt')\n"
        "model = CLIPModel.from_pretrained(" + repr(NAME) + ")\n"
        "print('OK', sum(p.size for p in model.get_parameters()))\n")
    env = {**os.environ, "MS_CLIP_HOME": str(home), "MS_CLIP_DOWNLOAD_BASE": served.base}
    procs = [subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-2000:]
        assert out.startswith("OK")
    assert served.requests == 1
    assert _files(home) == [f"{NAME}/{NAME}.ckpt", f"{NAME}/{NAME}.yaml"]


def test_unwritable_cache_names_the_directory(tmp_path, tiny_archive, monkeypatch):
    _, sha, _ = tiny_archive
    _register(monkeypatch, sha256=sha, filename="ViT-T.pt")
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the cache directory should be")  # unwritable even for root
    monkeypatch.setenv("MS_CLIP_HOME", str(blocker))
    with pytest.raises(hub.HubError, match=f"cannot write the cache entry .*{NAME}.*MS_CLIP_HOME"):
        CLIPModel.from_pretrained(NAME)
