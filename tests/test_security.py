"""Security and resource limits (issue 12, items 1-3): no code runs from a data or weight file, and
downloads are bounded in size and total time.

Every malicious file here carries a real payload (it writes a marker file when unpickled the
ordinary way, which the tests show first); our readers must refuse it with a one-line error that
names the file and the refused global, and the marker must not appear.
"""
from __future__ import annotations

import builtins
import contextlib
import http.server
import os
import pickle
import threading
import time

import numpy as np
import pytest

from ms_clip.data.classification import DatasetError, load_cifar100, read_classnames, write_cifar100


class _WritesMarker:
    """Unpickling this runs ``builtins.exec`` (the classic ``__reduce__`` payload)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return builtins.exec, (f"open({self.marker!r}, 'w').write('pwned')",)


def _assert_payload_is_live(blob: bytes, marker: str) -> None:
    """The ordinary pickle.loads really runs the payload (so a passing test proves a refusal)."""
    pickle.loads(blob)
    assert os.path.exists(marker)
    os.remove(marker)


def _one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text, text
    return text


# ----------------------------------------------------------------------------- 1. CIFAR pickles


@pytest.fixture
def cifar_root(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    write_cifar100(tmp_path, images, [0, 1, 0, 1], [0, 0, 0, 0], ["apple", "aquarium_fish"], ["fruit"], "test")
    return tmp_path / "cifar-100-python"


@pytest.mark.parametrize("member", ["meta", "test"])
def test_crafted_cifar_pickle_is_refused_without_running_code(cifar_root, tmp_path, member):
    marker = str(tmp_path / "marker")
    if member == "meta":
        obj = {b"fine_label_names": [b"apple", _WritesMarker(marker)], b"coarse_label_names": [b"fruit"]}
    else:
        with open(cifar_root / "test", "rb") as f:
            obj = pickle.load(f, encoding="bytes")
        obj[b"filenames"] = _WritesMarker(marker)
    blob = pickle.dumps(obj, protocol=2)
    _assert_payload_is_live(blob, marker)
    (cifar_root / member).write_bytes(blob)

    with pytest.raises(DatasetError) as info:
        load_cifar100(cifar_root, "test")
    message = _one_line(info.value)
    assert str(cifar_root / member) in message and "builtins.exec" in message
    assert not os.path.exists(marker)


def test_crafted_cifar_pickle_protocol_4_is_refused(cifar_root, tmp_path):
    marker = str(tmp_path / "marker")
    blob = pickle.dumps({b"fine_label_names": [_WritesMarker(marker)]}, protocol=4)  # STACK_GLOBAL
    _assert_payload_is_live(blob, marker)
    (cifar_root / "meta").write_bytes(blob)
    with pytest.raises(DatasetError, match="builtins.exec"):
        read_classnames(cifar_root, "cifar100")
    assert not os.path.exists(marker)


def test_cifar_codecs_encode_is_only_the_latin1_bytes_encoding(cifar_root):
    # _codecs.encode is admitted (protocol-2 bytes need it) but not as a general codec call.
    blob = (b"\x80\x02}q\x00X\x10\x00\x00\x00fine_label_namesq\x01]q\x02c_codecs\nencode\nq\x03X\x03\x00\x00\x00"
            b"abcq\x04X\x06\x00\x00\x00rot_13q\x05\x86q\x06Rq\x07as.")
    (cifar_root / "meta").write_bytes(blob)
    with pytest.raises(DatasetError, match="latin-1"):
        read_classnames(cifar_root, "cifar100")


# Real pickles written by numpy 2.4 (python3 -c "pickle.dumps(d, protocol=5 / 2)") for
# d = {b'fine_label_names': [b'apple', b'aquarium_fish'], b'coarse_label_names': [b'fruit'],
#      b'arr': np.arange(6, dtype=np.uint8).reshape(2, 3), b's': np.int64(7)}:
# numpy 2 names its helpers numpy._core.* (numpy 1.x: numpy.core.*), and protocol 5 uses _frombuffer.
NUMPY2_PROTOCOL5 = (
    b'\x80\x05\x952\x01\x00\x00\x00\x00\x00\x00}\x94(C\x10fine_label_names\x94]\x94(C\x05apple\x94C\raquarium_fish'
    b'\x94eC\x12coarse_label_names\x94]\x94C\x05fruit\x94aC\x03arr\x94\x8c\x13numpy._core.numeric\x94\x8c\x0b'
    b'_frombuffer\x94\x93\x94(\x96\x06\x00\x00\x00\x00\x00\x00\x00\x00\x01\x02\x03\x04\x05\x94\x8c\x05numpy\x94'
    b'\x8c\x05dtype\x94\x93\x94\x8c\x02u1\x94\x89\x88\x87\x94R\x94(K\x03\x8c\x01|\x94NNNJ\xff\xff\xff\xffJ\xff\xff'
    b'\xff\xffK\x00t\x94bK\x02K\x03\x86\x94\x8c\x01C\x94t\x94R\x94C\x01s\x94\x8c\x16numpy._core.multiarray\x94'
    b'\x8c\x06scalar\x94\x93\x94h\x0f\x8c\x02i8\x94\x89\x88\x87\x94R\x94(K\x03\x8c\x01<\x94NNNJ\xff\xff\xff\xffJ'
    b'\xff\xff\xff\xffK\x00t\x94bC\x08\x07\x00\x00\x00\x00\x00\x00\x00\x94\x86\x94R\x94u.')
NUMPY2_PROTOCOL2 = (
    b'\x80\x02}q\x00(c_codecs\nencode\nq\x01X\x10\x00\x00\x00fine_label_namesq\x02X\x06\x00\x00\x00latin1q\x03\x86'
    b'q\x04Rq\x05]q\x06(h\x01X\x05\x00\x00\x00appleq\x07h\x03\x86q\x08Rq\th\x01X\r\x00\x00\x00aquarium_fishq\nh'
    b'\x03\x86q\x0bRq\x0ceh\x01X\x12\x00\x00\x00coarse_label_namesq\rh\x03\x86q\x0eRq\x0f]q\x10h\x01X\x05\x00\x00'
    b'\x00fruitq\x11h\x03\x86q\x12Rq\x13ah\x01X\x03\x00\x00\x00arrq\x14h\x03\x86q\x15Rq\x16cnumpy._core.multiarray'
    b'\n_reconstruct\nq\x17cnumpy\nndarray\nq\x18K\x00\x85q\x19h\x01X\x01\x00\x00\x00bq\x1ah\x03\x86q\x1bRq\x1c'
    b'\x87q\x1dRq\x1e(K\x01K\x02K\x03\x86q\x1fcnumpy\ndtype\nq X\x02\x00\x00\x00u1q!\x89\x88\x87q"Rq#(K\x03X\x01'
    b'\x00\x00\x00|q$NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tq%b\x89h\x01X\x06\x00\x00\x00\x00\x01\x02\x03\x04'
    b'\x05q&h\x03\x86q\'Rq(tq)bh\x01X\x01\x00\x00\x00sq*h\x03\x86q+Rq,cnumpy._core.multiarray\nscalar\nq-h X\x02'
    b'\x00\x00\x00i8q.\x89\x88\x87q/Rq0(K\x03X\x01\x00\x00\x00<q1NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tq2bh'
    b'\x01X\x08\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00q3h\x03\x86q4Rq5\x86q6Rq7u.')


@pytest.mark.parametrize("blob", [NUMPY2_PROTOCOL5, NUMPY2_PROTOCOL2], ids=["numpy2-p5", "numpy2-p2"])
def test_numpy2_pickles_load(blob, tmp_path):
    from ms_clip.safe_pickle import safe_loads

    obj = safe_loads(blob, "x", encoding="bytes")
    assert obj[b"fine_label_names"] == [b"apple", b"aquarium_fish"]
    np.testing.assert_array_equal(obj[b"arr"], np.arange(6, dtype=np.uint8).reshape(2, 3))
    assert obj[b"s"] == 7
    (tmp_path / "meta").write_bytes(blob)
    assert read_classnames(tmp_path, "cifar100") == ["apple", "aquarium fish"]


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy1_pickles_load(protocol):
    from ms_clip.safe_pickle import safe_loads

    obj = {b"data": np.arange(3072 * 2, dtype=np.int64).astype(np.uint8).reshape(2, 3072), b"labels": [1, 2],
           b"f": np.float32(1.5), "fnames": ["a.png"], b"t": (1, 2.5, None, True)}
    back = safe_loads(pickle.dumps(obj, protocol=protocol), "x", encoding="bytes")
    np.testing.assert_array_equal(back[b"data"], obj[b"data"])
    assert back[b"labels"] == [1, 2] and back[b"f"] == np.float32(1.5) and back["fnames"] == ["a.png"]
    assert back[b"t"] == (1, 2.5, None, True)


def test_real_layout_cifar_still_loads(cifar_root):
    data = load_cifar100(cifar_root, "test")
    assert data.classnames == ["apple", "aquarium fish"] and data.images.shape == (4, 32, 32, 3)


# ----------------------------------------------------------------------------- 2. PyTorch checkpoints


def _torch():
    return pytest.importorskip("torch")


def _convert_error(path: str):
    from ms_clip.convert import ConvertError, read_source

    with pytest.raises(ConvertError) as info:
        read_source(path)
    return _one_line(info.value)


def _jit_state(path: str):
    import warnings

    torch = _torch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(path, map_location="cpu").state_dict()


def _assert_bit_identical(ours, dtypes, reference) -> None:
    """Same names in the same order, same dtype names, and the exact bytes of tensor.float() (ints as stored)."""
    assert list(ours) == list(reference)
    for name, ref in reference.items():
        ref = ref.detach()
        expected = ref.float().numpy() if ref.is_floating_point() else ref.numpy()
        got = ours[name]
        assert got.dtype == expected.dtype and got.shape == expected.shape, name
        assert got.tobytes() == expected.tobytes(), name
        assert dtypes[name] == str(ref.dtype).replace("torch.", ""), name


@pytest.fixture(scope="module")
def openai_archives(tmp_path_factory):
    """OpenAI-architecture CLIPs traced and saved by torch.jit (fp32 and OpenAI's fp16 release form)."""
    _torch()
    import _helpers_parity as H

    directory = tmp_path_factory.mktemp("openai")
    paths = {}
    for seed, half in ((1, False), (2, True)):
        paths[half] = str(directory / f"ViT-{'fp16' if half else 'fp32'}.pt")
        H.save_torchscript(H.build_openai(H.TINY, seed), H.TINY, paths[half], half=half)
    return paths


@pytest.mark.parametrize("half", [False, True], ids=["fp32", "fp16"])
def test_torchscript_archive_reads_bit_identical_to_jit_load(openai_archives, half):
    from ms_clip.torchfile import read_torch_checkpoint

    path = openai_archives[half]
    tensors, dtypes, fmt = read_torch_checkpoint(path)
    assert fmt == "openai-torchscript"
    reference = _jit_state(path)
    _assert_bit_identical(tensors, dtypes, reference)
    assert {"visual.conv1.weight", "transformer.resblocks.0.attn.in_proj_weight", "input_resolution",
            "context_length", "vocab_size"} <= set(tensors)
    assert (dtypes["visual.conv1.weight"] == "float16") == half and dtypes["logit_scale"] == "float32"
    assert int(tensors["input_resolution"]) == 32 and tensors["vocab_size"].dtype == np.int64


def test_torch_files_read_without_torch(openai_archives, tmp_path):
    """Neither a TorchScript archive nor a torch.save zip needs torch (a subprocess where import torch fails)."""
    import subprocess
    import sys

    torch = _torch()
    state_path = str(tmp_path / "open_clip.pt")
    torch.save({"w": torch.arange(6.0).reshape(2, 3).t(), "h": torch.ones(3).half()}, state_path)
    code = ("import sys; sys.modules['torch'] = None\n"
            "import numpy as np\n"
            "from ms_clip.torchfile import read_torch_checkpoint\n"
            f"t, d, f = read_torch_checkpoint({openai_archives[True]!r})\n"
            "print(f, len(t), d['visual.conv1.weight'])\n"
            f"t, d, f = read_torch_checkpoint({state_path!r})\n"
            "print(f, t['w'].tolist(), d['h'])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == f"openai-torchscript {len(_jit_state(openai_archives[True]))} float16"
    assert lines[1] == "state-dict [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]] float16"


def test_views_offsets_shared_storages_and_16_bit_floats(tmp_path):
    from ms_clip.torchfile import read_torch_checkpoint

    torch = _torch()
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(6, 8, generator=gen)
    bf16 = torch.randn(4, 5, generator=gen).to(torch.bfloat16)
    tagged = torch.randn(3, generator=gen)
    tagged.note = "python attribute"  # torch.save wraps such tensors in _rebuild_from_type_v2
    state = {
        "base": base,
        "rows": base[2:5],  # offset into the shared storage
        "cols": base[:, 1:7:2],  # strided
        "t": base.t(),  # transposed
        "expanded": torch.randn(1, 4, generator=gen).expand(3, 4),  # stride 0
        "bf16": bf16, "bf16_view": bf16[1:, ::2],
        "fp16": torch.randn(7, generator=gen).half(), "fp64": torch.randn(2, 2, generator=gen).double(),
        "int64": torch.arange(5), "int32": torch.arange(4, dtype=torch.int32), "bool": torch.tensor([True, False]),
        "uint8": torch.arange(3, dtype=torch.uint8), "uint16": torch.tensor([1, 65535]).to(torch.uint16),
        "scalar": torch.tensor(2.5), "empty": torch.empty(0, 3),
        "param": torch.nn.Parameter(torch.randn(2, 2, generator=gen)), "tagged": tagged,
    }
    path = str(tmp_path / "views.pt")
    torch.save(state, path)
    tensors, dtypes, fmt = read_torch_checkpoint(path)
    assert fmt == "state-dict"
    _assert_bit_identical(tensors, dtypes, torch.load(path, weights_only=True))
    np.testing.assert_array_equal(tensors["rows"], tensors["base"][2:5])
    np.testing.assert_array_equal(tensors["t"], tensors["base"].T)
    assert dtypes["bf16"] == "bfloat16" and tensors["bf16"].dtype == np.float32
    assert dtypes["uint16"] == "uint16" and tensors["uint16"].tolist() == [1, 65535]


def test_module_state_dict_with_metadata(tmp_path):
    """nn.Module.state_dict() is an OrderedDict carrying a _metadata attribute (HF pytorch_model.bin)."""
    from ms_clip.torchfile import read_torch_checkpoint

    torch = _torch()
    module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
    path = str(tmp_path / "pytorch_model.bin")
    torch.save(module.state_dict(), path)
    tensors, dtypes, _ = read_torch_checkpoint(path)
    _assert_bit_identical(tensors, dtypes, torch.load(path, weights_only=True))


def test_legacy_non_zip_format_falls_back_to_weights_only_torch_load(tmp_path):
    from ms_clip.torchfile import read_torch_checkpoint

    torch = _torch()
    path = str(tmp_path / "old.pt")
    state = {"w": torch.arange(6.0).reshape(2, 3).half(), "b": torch.ones(2, dtype=torch.bfloat16)}
    torch.save(state, path, _use_new_zipfile_serialization=False)
    tensors, dtypes, fmt = read_torch_checkpoint(path)
    assert fmt == "state-dict" and dtypes == {"w": "float16", "b": "bfloat16"}
    _assert_bit_identical(tensors, dtypes, state)
    marker = str(tmp_path / "marker")
    torch.save({"x": _WritesMarker(marker)}, str(tmp_path / "evil_old.pt"), _use_new_zipfile_serialization=False)
    assert "weights_only=True" in _convert_error(str(tmp_path / "evil_old.pt"))
    assert not os.path.exists(marker)


def test_training_checkpoint_wrappers_are_removed(tmp_path):
    from ms_clip.torchfile import read_torch_checkpoint

    torch = _torch()
    path = str(tmp_path / "epoch_3.pt")
    torch.save({"epoch": 3, "name": "run", "state_dict": {"module.a": torch.ones(2), "module.b": torch.zeros(1)}},
               path)
    tensors, _, _ = read_torch_checkpoint(path)
    assert sorted(tensors) == ["a", "b"]


def _zip_with(src: str, dst: str, replace) -> None:
    """Copy a PyTorch zip, passing each entry's bytes through replace(name, data)."""
    import zipfile

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            zout.writestr(info, replace(info.filename, zin.read(info.filename)))


def test_torch_save_reduce_payload_is_refused(tmp_path):
    torch = _torch()
    marker = str(tmp_path / "marker")
    path = str(tmp_path / "evil.pt")
    torch.save({"visual.conv1.weight": torch.zeros(1), "x": _WritesMarker(marker)}, path)
    message = _convert_error(path)
    assert path in message and "'builtins.exec'" in message
    assert not os.path.exists(marker)


def test_torchscript_data_pkl_reduce_payload_is_refused(openai_archives, tmp_path):
    marker = str(tmp_path / "marker")
    blob = pickle.dumps(_WritesMarker(marker), protocol=2)
    _assert_payload_is_live(blob, marker)
    path = str(tmp_path / "ViT-evil.pt")
    _zip_with(openai_archives[False], path, lambda name, data: blob if name.endswith("/data.pkl") else data)
    message = _convert_error(path)
    assert path in message and "'builtins.exec'" in message
    assert not os.path.exists(marker)


_EVIL_SCRIPT = r'''
import sys, warnings
from typing import Tuple
import torch
warnings.simplefilter("ignore")

class Evil(torch.nn.Module):
    """Its TorchScript __setstate__ creates a file (torch.from_file(..., shared=True)) on torch.jit.load."""

    def __init__(self, marker: str):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(2))
        self.path = marker

    @torch.jit.export
    def __getstate__(self) -> Tuple[torch.Tensor, str, bool]:
        return (self.weight, self.path, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[torch.Tensor, str, bool]) -> None:
        self.weight = state[0]
        self.path = state[1]
        created = torch.from_file(state[1], shared=True, size=16, dtype=torch.uint8)
        self.training = state[2] and created.numel() > 0

    def forward(self, x):
        return x * self.weight

class Root(torch.nn.Module):
    def __init__(self, marker: str):
        super().__init__()
        self.evil = Evil(marker)
        self.proj = torch.nn.Linear(2, 2)

    def forward(self, x):
        return self.proj(self.evil(x))

if sys.argv[1] == "save":
    torch.jit.save(torch.jit.script(Root(sys.argv[3])), sys.argv[2])
else:
    torch.jit.load(sys.argv[2])
'''


def test_torchscript_setstate_payload_is_refused(tmp_path):
    import subprocess
    import sys

    _torch()
    marker = str(tmp_path / "marker")
    path = str(tmp_path / "evil_script.pt")
    script = tmp_path / "evil.py"
    script.write_text(_EVIL_SCRIPT)
    subprocess.run([sys.executable, str(script), "save", path, marker], check=True, timeout=300)
    assert not os.path.exists(marker)
    # what the converter did before: torch.jit.load runs the archive's __setstate__, which creates the marker
    subprocess.run([sys.executable, str(script), "load", path], check=True, timeout=300)
    assert os.path.exists(marker)
    os.remove(marker)

    message = _convert_error(path)
    assert path in message and "'__torch__.Evil'" in message and "__setstate__" in message
    assert not os.path.exists(marker)


def _fake_torchscript_pickle(state) -> bytes:
    """data.pkl for a __torch__ object whose pickled state is not an attribute dict (what a TorchScript
    __getstate__ returns), written with pickle's own NEWOBJ + BUILD opcodes."""
    import copyreg
    import sys
    import types

    module = types.ModuleType("__torch__")
    cls = type("Fake", (), {"__module__": "__torch__",
                            "__reduce_ex__": lambda self, proto: (copyreg.__newobj__, (type(self),), state)})
    module.Fake = cls
    sys.modules["__torch__"] = module
    try:
        return pickle.dumps(cls(), protocol=2)
    finally:
        del sys.modules["__torch__"]


def test_torchscript_object_with_opaque_state_is_refused(openai_archives, tmp_path):
    blob = _fake_torchscript_pickle(("opaque", 1))
    path = str(tmp_path / "ViT-opaque.pt")
    _zip_with(openai_archives[False], path, lambda name, data: blob if name.endswith("/data.pkl") else data)
    message = _convert_error(path)
    assert path in message and "'__torch__.Fake'" in message and "tuple" in message


def test_torch_save_file_may_not_hold_torchscript_objects(tmp_path):
    torch = _torch()
    path = str(tmp_path / "state.pt")
    torch.save({"a": torch.ones(1)}, path)
    blob = _fake_torchscript_pickle({"a": 1})
    _zip_with(path, str(tmp_path / "odd.pt"), lambda name, data: blob if name.endswith("/data.pkl") else data)
    assert "'__torch__.Fake'" in _convert_error(str(tmp_path / "odd.pt"))


def test_out_of_bounds_view_and_truncated_storage_are_refused(tmp_path):
    torch = _torch()
    path = str(tmp_path / "state.pt")
    torch.save({"w": torch.zeros(77)}, path)
    # size (77,) -> (99,): a view past the end of its 77-element storage must not read foreign memory
    def grow(name, data):
        if not name.endswith("/data.pkl"):
            return data
        at = data.rindex(b"K\x4d")
        return data[:at] + b"K\x63" + data[at + 2:]

    _zip_with(path, str(tmp_path / "oob.pt"), grow)
    assert "reaches element 98 of a storage of 77" in _convert_error(str(tmp_path / "oob.pt"))
    _zip_with(path, str(tmp_path / "short.pt"), lambda name, data: data[:-4] if "/data/" in name else data)
    assert "truncated" in _convert_error(str(tmp_path / "short.pt"))
    # a stride-0 (expanded) view of 2**40 elements: torch stores it in 4 bytes; copying it would take 4 TiB
    torch.save({"w": torch.zeros(1).expand(1 << 20, 1 << 20)}, str(tmp_path / "expand.pt"))
    assert "expands a storage of 1" in _convert_error(str(tmp_path / "expand.pt"))


# ----------------------------------------------------------------------------- 3. bounded downloads


class _Hostile(http.server.BaseHTTPRequestHandler):
    """/endless: a body without Content-Length that never ends (the server gives up at SERVER_CAP bytes);
    /drip: headers, then one body byte every DRIP_S s; /drip-headers: the status line itself dripped;
    /huge: claims a 10 GB Content-Length."""

    SERVER_CAP = 48 << 20  # so that code without a cap ends (and fails the test) instead of filling memory
    DRIP_S = 0.25
    DRIP_FOR_S = 8.0  # so that code without a total deadline ends (late) instead of hanging
    sent = {}

    def log_message(self, *args) -> None:
        pass

    def _count(self, n: int) -> None:
        _Hostile.sent[self.path] = _Hostile.sent.get(self.path, 0) + n

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        try:
            if self.path == "/drip-headers":
                for byte in b"HTTP/1.0 200 OK\r\nX-Slow: " + b"a" * 200:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(self.DRIP_S)
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            if self.path == "/huge":
                self.send_header("Content-Length", str(10 << 30))
            self.end_headers()
            if self.path == "/endless":
                chunk = b"\x89PNG" + b"\0" * ((1 << 16) - 4)
                while _Hostile.sent.get(self.path, 0) < self.SERVER_CAP:
                    self.wfile.write(chunk)
                    self._count(len(chunk))
            elif self.path == "/drip":
                stop = time.monotonic() + self.DRIP_FOR_S
                while time.monotonic() < stop:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    self._count(1)
                    time.sleep(self.DRIP_S)
            elif self.path == "/huge":
                self.wfile.write(b"\0" * (1 << 16))
        except (BrokenPipeError, ConnectionResetError):
            pass


@contextlib.contextmanager
def _hostile_server():
    _Hostile.sent = {}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_predict_url_with_endless_body_stops_at_the_cap(monkeypatch):
    from ms_clip.processor import ImageLoadError, load_image

    monkeypatch.setenv("MS_CLIP_IMAGE_URL_MAX_BYTES", str(1 << 20))
    with _hostile_server() as base:
        start = time.monotonic()
        with pytest.raises(ImageLoadError) as info:
            load_image(f"{base}/endless")
        elapsed = time.monotonic() - start
        sent = _Hostile.sent.get("/endless", 0)
    message = _one_line(info.value)
    assert f"{base}/endless" in message and "1.0 MiB limit" in message and "MS_CLIP_IMAGE_URL_MAX_BYTES" in message
    assert elapsed < 5 and sent < 8 << 20, (elapsed, sent)  # the server got no further than a few buffers


def test_predict_url_that_drips_fails_within_the_deadline(monkeypatch):
    from ms_clip.processor import ImageLoadError, load_image

    monkeypatch.setenv("MS_CLIP_IMAGE_URL_DEADLINE_S", "2")
    with _hostile_server() as base:
        for path in ("/drip", "/drip-headers"):
            start = time.monotonic()
            with pytest.raises(ImageLoadError) as info:
                load_image(f"{base}{path}", timeout=1.0)  # per read: never trips, a byte comes every 0.25 s
            elapsed = time.monotonic() - start
            message = _one_line(info.value)
            assert f"{base}{path}" in message and "2 s total deadline" in message, message
            assert "MS_CLIP_IMAGE_URL_DEADLINE_S" in message
            assert 1.9 < elapsed < 2.6, (path, elapsed)


def test_fetch_memory_is_bounded_and_content_length_is_checked_first():
    import tracemalloc

    from ms_clip.net import DownloadLimitError, fetch

    with _hostile_server() as base:
        tracemalloc.start()
        with pytest.raises(DownloadLimitError, match="4.0 MiB limit"):
            fetch(f"{base}/endless", max_bytes=4 << 20, deadline_s=30)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 6 << 20, peak
        start = time.monotonic()
        with pytest.raises(DownloadLimitError, match=r"Content-Length 10240.0 MiB"):
            fetch(f"{base}/huge", max_bytes=4 << 20, deadline_s=30)
        assert time.monotonic() - start < 2


def test_weights_download_is_bounded(tmp_path):
    from ms_clip.hub import HubError, download_url

    with _hostile_server() as base:
        dest = tmp_path / "ViT.pt"
        with pytest.raises(HubError, match="2.0 MiB limit"):
            download_url(f"{base}/endless", str(dest), "0" * 64, max_bytes=2 << 20)
        start = time.monotonic()
        with pytest.raises(HubError, match="1.5 s total deadline"):
            download_url(f"{base}/drip", str(dest), "0" * 64, timeout=1.0, deadline_s=1.5)
        assert time.monotonic() - start < 2.1
    assert os.listdir(tmp_path) == []  # no partial file left behind


def test_normal_downloads_are_unchanged(tmp_path):
    import hashlib

    from PIL import Image

    from _helpers_http import serve_directory
    from ms_clip.hub import download_url
    from ms_clip.processor import load_image

    Image.new("RGB", (7, 5), (10, 200, 30)).save(tmp_path / "a.png")
    payload = os.urandom(300_000)
    (tmp_path / "w.pt").write_bytes(payload)
    out = tmp_path / "out"
    out.mkdir()
    with serve_directory(str(tmp_path)) as base:
        image = load_image(f"{base}/a.png")
        assert image.size == (7, 5) and image.getpixel((0, 0)) == (10, 200, 30)
        dest = download_url(f"{base}/w.pt", str(out / "w.pt"), hashlib.sha256(payload).hexdigest())
    assert (out / "w.pt").read_bytes() == payload and dest == str(out / "w.pt")
