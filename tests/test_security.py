"""Security and resource limits (issue 12, items 1-3): no code runs from a data or weight file, and
downloads are bounded in size and total time.

Every malicious file here carries a real payload (it writes a marker file when unpickled the
ordinary way, which the tests show first); our readers must refuse it with a one-line error that
names the file and the refused global, and the marker must not appear.
"""
from __future__ import annotations

import builtins
import os
import pickle

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
