"""Read PyTorch checkpoints into numpy without torch and without running anything from the file.

``torch.jit.load`` compiles an archive's TorchScript and runs its classes' ``__setstate__`` methods
(a crafted ``.pt`` can create files that way), and ``pickle``/``torch.load(weights_only=False)`` run
any ``__reduce__`` payload. This module reads the two zip layouts PyTorch writes instead:

* ``torch.save`` files (open_clip ``.pt``, HF ``pytorch_model.bin``, ``.pth``)::

      <root>/data.pkl        the pickled object (a state dict, possibly wrapped)
      <root>/data/<key>      raw bytes of each storage, little-endian unless <root>/byteorder says "big"

* TorchScript archives (``torch.jit.save``; OpenAI's released ``ViT-*.pt``): the same ``data.pkl``
  + ``data/<key>`` pair, whose top-level object is the root module, plus ``code/`` (the compiled
  classes as Python-like source) and ``constants.pkl`` (traced constants, not part of the state dict).

``data.pkl`` is unpickled by :class:`ms_clip.safe_pickle.RestrictedUnpickler` with a table that
maps PyTorch's rebuild functions to our own numpy builders and refuses every other global:

* ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` (and ``_v3`` with an
  explicit dtype, ``_rebuild_parameter``, ``torch._tensor._rebuild_from_type_v2``) -> a view of the
  storage, bounds-checked and copied;
* persistent ids ``('storage', <torch.FloatStorage ...>, key, location, numel)`` -> the bytes of
  ``<root>/data/<key>`` in that dtype, read once per key, so tensors sharing a storage (views,
  tied weights) share it here too;
* TorchScript's ``__torch__.*`` classes -> inert holder objects that only collect their attribute
  dict. A class whose code defines ``__setstate__`` (the hook ``torch.jit.load`` would run) or whose
  pickled state is not a plain attribute dict is refused.

The state-dict names of a TorchScript archive are those of ``torch.jit.load(path).state_dict()``:
each module's parameters, then its buffers (which attributes are which is declared in the class
source as ``__parameters__ = [...]`` / ``__buffers__ = [...]``, read with ``ast`` - parsed, never
executed), then its sub-modules, depth first.

Only the legacy non-zip format (``torch.save(..., _use_new_zipfile_serialization=False)``, PyTorch
< 1.6) still needs torch: it falls back to ``torch.load(weights_only=True)``.

Example:
    >>> tensors, dtypes, fmt = read_torch_checkpoint("ViT-B-32.pt")
    >>> fmt, tensors["visual.conv1.weight"].dtype, dtypes["visual.conv1.weight"]
    ('openai-torchscript', dtype('float32'), 'float16')
"""
from __future__ import annotations

import ast
import io
import math
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np

from ms_clip.errors import MsClipError
from ms_clip.safe_pickle import RestrictedUnpickler, UnsafePickleError, container_globals

__all__ = ["TorchFileError", "read_torch_checkpoint", "FMT_TORCHSCRIPT", "FMT_STATE_DICT"]

FMT_TORCHSCRIPT = "openai-torchscript"
FMT_STATE_DICT = "state-dict"

# A deflated zip entry may expand this much before we call it a decompression bomb (PyTorch stores
# storages uncompressed, so real files have a ratio of 1).
_MAX_COMPRESSION_RATIO = 64
_MAX_EXPANDED_NUMEL = 1 << 26  # an expanded (stride-0) tensor may hold this many elements beyond its storage
_MAX_MODULE_DEPTH = 256  # CLIP is 5 deep; a deeper (or cyclic) module tree is not a real checkpoint


class TorchFileError(MsClipError, ValueError):
    """A PyTorch checkpoint is unreadable, inconsistent or not a state dict; the message names the file."""


# ----------------------------------------------------------------------------- dtypes


@dataclass(frozen=True)
class _DType:
    name: str  # torch's name without "torch." ("float16", "bfloat16", ...): what callers report
    storage: np.dtype  # how the bytes are read; bfloat16 has no numpy dtype and is read as uint16 bits

    @property
    def is_float(self) -> bool:
        return self.name in ("float16", "bfloat16", "float32", "float64")


def _dt(name: str, storage: str) -> _DType:
    return _DType(name, np.dtype(storage).newbyteorder("<"))


_FLOAT32, _BYTE = _dt("float32", "f4"), _dt("uint8", "u1")
# Legacy typed-storage class names that data.pkl files reference as globals (torch.<Name>).
_STORAGE_DTYPES: Dict[str, _DType] = {
    "FloatStorage": _FLOAT32, "DoubleStorage": _dt("float64", "f8"), "HalfStorage": _dt("float16", "f2"),
    "BFloat16Storage": _dt("bfloat16", "u2"), "LongStorage": _dt("int64", "i8"), "IntStorage": _dt("int32", "i4"),
    "ShortStorage": _dt("int16", "i2"), "CharStorage": _dt("int8", "i1"), "ByteStorage": _BYTE,
    "BoolStorage": _dt("bool", "?"), "ComplexFloatStorage": _dt("complex64", "c8"),
    "ComplexDoubleStorage": _dt("complex128", "c16"),
}
# torch.<dtype> globals (``_rebuild_tensor_v3`` passes one for dtypes without a legacy storage class,
# e.g. uint16, whose bytes then sit in a torch.storage.UntypedStorage).
_TORCH_DTYPES: Dict[str, _DType] = {d.name: d for d in _STORAGE_DTYPES.values()}
_TORCH_DTYPES.update({"uint16": _dt("uint16", "u2"), "uint32": _dt("uint32", "u4"), "uint64": _dt("uint64", "u8"),
                      "float": _FLOAT32, "double": _TORCH_DTYPES["float64"], "half": _TORCH_DTYPES["float16"],
                      "long": _TORCH_DTYPES["int64"], "int": _TORCH_DTYPES["int32"], "short": _TORCH_DTYPES["int16"]})


@dataclass(frozen=True)
class _StorageType:
    """Stands in for ``torch.FloatStorage`` & co. inside a persistent id."""

    dtype: _DType


class _Tensor:
    """A rebuilt tensor: ``array`` (a read-only view of its storage, in the storage dtype; bfloat16 as
    uint16 bits) and torch's dtype name."""

    __slots__ = ("array", "dtype")

    def __init__(self, array: np.ndarray, dtype: _DType):
        self.array, self.dtype = array, dtype

    def to_numpy(self) -> np.ndarray:
        """float16/bfloat16/float64 -> float32 (as ``tensor.float()``; exact for fp16/bf16), others as stored."""
        # ``array`` may be a view of a storage other tensors share; astype always returns a new array,
        # so every result owns its memory (this is the one copy per tensor).
        if self.dtype.name == "bfloat16":  # a bf16 value is the upper half of a float32
            return (self.array.astype(np.uint32) << 16).view(np.float32)
        return self.array.astype(np.float32 if self.dtype.is_float else self.array.dtype.newbyteorder("="))


# ----------------------------------------------------------------------------- TorchScript class source


@dataclass
class _ScriptClass:
    """What ``code/`` declares about one ``__torch__`` class (from the source text, never executed)."""

    is_module: bool
    parameters: Optional[List[str]] = None  # None: not declared (very old archives)
    buffers: Optional[List[str]] = None
    methods: List[str] = field(default_factory=list)


def _literal_names(node: ast.AST) -> Optional[List[str]]:
    try:
        value = ast.literal_eval(node)
    except ValueError:
        return None
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else None


def _parse_code(archive: zipfile.ZipFile, root: str) -> Dict[str, _ScriptClass]:
    """``__torch__.a.b.Cls`` -> its declarations, from every ``<root>/code/**.py`` file.

    A class ``Cls`` in ``code/__torch__/a/b.py`` is ``__torch__.a.b.Cls``. ``ast.parse`` only builds a
    syntax tree; files that do not parse are skipped (their classes fall back to "every tensor
    attribute is state").
    """
    classes: Dict[str, _ScriptClass] = {}
    prefix = f"{root}/code/"
    for name in archive.namelist():
        if not (name.startswith(prefix) and name.endswith(".py")):
            continue
        module = name[len(prefix):-len(".py")].replace("/", ".")
        try:
            tree = ast.parse(_read_entry(archive, name, "code").decode("utf-8"))
        except (SyntaxError, ValueError, UnicodeDecodeError, RecursionError, MemoryError):
            continue
        for node in tree.body:
            if not isinstance(node, ast.ClassDef):
                continue
            info = _ScriptClass(is_module=any(isinstance(b, ast.Name) and b.id == "Module" for b in node.bases))
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    info.methods.append(item.name)
                elif isinstance(item, ast.Assign) and len(item.targets) == 1 and isinstance(item.targets[0], ast.Name):
                    target = item.targets[0].id
                    if target == "__parameters__":
                        info.parameters = _literal_names(item.value)
                    elif target == "__buffers__":
                        info.buffers = _literal_names(item.value)
            classes[f"{module}.{node.name}"] = info
    return classes


class _ScriptObject:
    """An inert stand-in for a ``__torch__.*`` object: its qualified class name and attribute dict."""

    qualified_name = ""
    _on_bad_state: Callable[[str, Any], Exception]

    def __setstate__(self, state: Any) -> None:
        # torch.jit.save writes a module as NEWOBJ + {attribute: value} + BUILD; anything else is the
        # result of a TorchScript __getstate__, meaningful only to the class's own __setstate__ code.
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise self._on_bad_state(self.qualified_name, state)
        self.__dict__["attrs"] = state

    @property
    def attributes(self) -> Dict[str, Any]:
        return self.__dict__.get("attrs", {})


# ----------------------------------------------------------------------------- the unpickler


def _read_entry(archive: zipfile.ZipFile, name: str, what: str, expected: Optional[int] = None) -> bytes:
    info = archive.getinfo(name)
    if expected is not None and info.file_size != expected:
        raise TorchFileError(f"{archive.filename}: {what} {name} holds {info.file_size} bytes, the pickle says "
                             f"{expected}; the file is truncated or inconsistent")
    if info.compress_type != zipfile.ZIP_STORED and info.file_size > _MAX_COMPRESSION_RATIO * info.compress_size \
            + (1 << 20):
        raise TorchFileError(f"{archive.filename}: {name} expands {info.compress_size} -> {info.file_size} bytes, "
                             f"a decompression bomb rather than a PyTorch storage")
    return archive.read(name)


def _shape(values: Any, what: str) -> Tuple[int, ...]:
    if not isinstance(values, (tuple, list)) or not all(isinstance(v, int) and v >= 0 for v in values):
        raise _pickle_error(f"tensor {what} must be a tuple of non-negative ints, got {str(values)[:60]}")
    return tuple(int(v) for v in values)


def _pickle_error(message: str) -> Exception:
    # raised inside unpickling; read_torch_checkpoint turns it into a one-line TorchFileError naming the file
    return pickle.UnpicklingError(message)


def _view(storage: "_Storage", offset: Any, size: Any, stride: Any, dtype: Optional[_DType] = None) -> _Tensor:
    """The tensor ``storage[offset]`` with ``size``/``stride`` (in elements), bounds-checked, as its own array."""
    size, stride = _shape(size, "size"), _shape(stride, "stride")
    if not isinstance(offset, int) or offset < 0 or len(size) != len(stride):
        raise _pickle_error(f"bad tensor layout: offset {offset!r}, size {size}, stride {stride}")
    data, dtype = storage.typed(dtype)
    numel = math.prod(size)  # Python ints: exact, no int64 wrap-around for absurd sizes
    if numel == 0:
        return _Tensor(np.empty(size, data.dtype), dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= data.size:  # as_strided would read past the buffer
        raise _pickle_error(f"tensor of size {size}, stride {stride} at offset {offset} reaches element {last} "
                           f"of a storage of {data.size}")
    if numel > max(data.size, _MAX_EXPANDED_NUMEL):
        # only zero strides (expand) give more elements than the storage holds; the copy made later
        # would allocate them all, so a tiny file could ask for terabytes
        raise _pickle_error(f"tensor of size {size} ({numel} elements) expands a storage of {data.size}")
    contiguous = [math.prod(size[i + 1:]) for i in range(len(size))]
    if all(s == c or n == 1 for n, s, c in zip(size, stride, contiguous)):
        array = data[offset:offset + numel].reshape(size)
    else:  # a view saved with its base's storage (slices, transposes, expands)
        itemsize = data.dtype.itemsize
        array = np.lib.stride_tricks.as_strided(data[offset:], shape=size, strides=[s * itemsize for s in stride],
                                                writeable=False)
    return _Tensor(array, dtype)  # a view; _Tensor.to_numpy makes the copy


class _Storage:
    """One ``data/<key>`` entry: raw bytes, viewed in the dtype of the tensors built on it."""

    def __init__(self, raw: np.ndarray, dtype: _DType, big_endian: bool):
        self.raw, self.dtype, self.big_endian = raw, dtype, big_endian

    def typed(self, dtype: Optional[_DType]) -> Tuple[np.ndarray, _DType]:
        dtype = dtype or self.dtype
        np_dtype = dtype.storage.newbyteorder(">" if self.big_endian else "<")
        if self.raw.size % np_dtype.itemsize:
            raise _pickle_error(f"a storage of {self.raw.size} bytes cannot hold {dtype.name} elements")
        return self.raw.view(np_dtype), dtype


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *unused: Any) -> _Tensor:
    # torch._utils._rebuild_tensor / _rebuild_tensor_v2(storage, offset, size, stride, requires_grad,
    # backward_hooks[, metadata]): autograd flags and hooks do not matter for weights.
    if not isinstance(storage, _Storage):
        raise _pickle_error(f"a tensor's storage must be a persistent storage reference, got {type(storage).__name__}")
    return _view(storage, offset, size, stride)


def _rebuild_tensor_v3(storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any, hooks: Any,
                       dtype: Any, *unused: Any) -> _Tensor:
    if not isinstance(storage, _Storage) or not isinstance(dtype, _DType):
        raise _pickle_error("_rebuild_tensor_v3 needs a storage reference and a torch dtype")
    return _view(storage, offset, size, stride, dtype)


def _rebuild_parameter(data: Any, *unused: Any) -> Any:
    # _rebuild_parameter(data, requires_grad, backward_hooks[, state]): a Parameter is its data here.
    if not isinstance(data, _Tensor):
        raise _pickle_error(f"a Parameter must wrap a tensor, got {type(data).__name__}")
    return data


class _TensorType:
    """Stands in for ``torch.Tensor`` / ``torch.nn.Parameter`` as ``_rebuild_from_type_v2``'s new_type."""


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> Any:
    # Tensor.__reduce_ex__ wraps tensors that carry Python attributes (or subclasses) this way; only
    # plain Tensor/Parameter are admitted, and the attribute state is dropped.
    if new_type is not _TensorType or func not in (_rebuild_tensor, _rebuild_tensor_v3, _rebuild_parameter):
        raise _pickle_error("_rebuild_from_type_v2 is admitted only for plain torch.Tensor / nn.Parameter")
    return func(*args)


def _identity(value: Any, *unused: Any) -> Any:
    return value


_TORCH_GLOBALS: Dict[Tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch._tensor", "Tensor"): _TensorType,
    ("torch", "Tensor"): _TensorType,
    ("torch.nn.parameter", "Parameter"): _TensorType,
    ("torch.storage", "UntypedStorage"): _StorageType(_BYTE),
    ("torch", "UntypedStorage"): _StorageType(_BYTE),
    ("torch", "Size"): tuple,
    ("torch", "device"): str,
    # TorchScript's pickler tags typed lists/dicts with these helpers; as data they are identities.
    ("torch.jit._pickle", "restore_type_tag"): _identity,
    ("torch.jit._pickle", "build_intlist"): _identity,
    ("torch.jit._pickle", "build_doublelist"): _identity,
    ("torch.jit._pickle", "build_boollist"): _identity,
    ("torch.jit._pickle", "build_tensorlist"): _identity,
}
_TORCH_GLOBALS.update({("torch", name): _StorageType(dt) for name, dt in _STORAGE_DTYPES.items()})
_TORCH_GLOBALS.update({("torch", name): dt for name, dt in _TORCH_DTYPES.items()})
_TORCH_GLOBALS.update(container_globals())  # OrderedDict, set, latin-1 bytes of protocol-2 pickles, ...

_WHAT = "a PyTorch checkpoint holds only tensors, containers, numbers and strings"


class _TorchUnpickler(RestrictedUnpickler):
    def __init__(self, file: io.BufferedIOBase, *, source: str, archive: zipfile.ZipFile, root: str,
                 script_classes: Optional[Dict[str, _ScriptClass]]):
        super().__init__(file, source=source, allowed=_TORCH_GLOBALS, what=_WHAT, encoding="utf-8")
        self.archive, self.root = archive, root
        self.script_classes = script_classes  # None: a torch.save file, where __torch__ classes are refused
        self.big_endian = _byteorder(archive, root) == "big"
        self.storages: Dict[str, _Storage] = {}
        self.holders: Dict[str, type] = {}

    def resolve_global(self, module: str, name: str) -> Optional[Any]:
        if module == "__torch__" or module.startswith("__torch__."):
            return self._holder_class(module, name)
        return super().resolve_global(module, name)

    def _holder_class(self, module: str, name: str) -> type:
        qualified = f"{module}.{name}"
        if self.script_classes is None:
            raise self.refuse(module, name, "a TorchScript class in a torch.save file, which holds only tensors "
                                            "and containers")
        info = self.script_classes.get(qualified)
        if info is not None and ("__setstate__" in info.methods or "__getstate__" in info.methods):
            raise self.refuse(module, name, "its TorchScript code defines __setstate__/__getstate__, which "
                                            "torch.jit.load would run; OpenAI's CLIP archives have none")
        if qualified not in self.holders:
            refuse = self.refuse

            def on_bad_state(qualname: str, state: Any) -> Exception:
                mod, _, cls = qualname.rpartition(".")
                return refuse(mod, cls, f"its pickled state is a {type(state).__name__}, not an attribute dict: "
                                        f"only its TorchScript __setstate__ code could interpret it")

            self.holders[qualified] = type(name, (_ScriptObject,), {"qualified_name": qualified,
                                                                    "_on_bad_state": staticmethod(on_bad_state)})
        return self.holders[qualified]

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise _pickle_error(f"unexpected persistent id {str(pid)[:80]!r}; expected ('storage', type, key, ...)")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or not isinstance(numel, int) \
                or numel < 0:
            raise _pickle_error(f"bad storage reference {str(pid)[:80]!r}")
        if key not in self.storages:
            nbytes = numel * storage_type.dtype.storage.itemsize
            entry = f"{self.root}/data/{key}"
            if entry not in self.archive.NameToInfo:
                raise TorchFileError(f"{self.source}: storage {entry} is missing from the archive (truncated?)")
            raw = np.frombuffer(_read_entry(self.archive, entry, "storage", expected=nbytes), np.uint8)
            self.storages[key] = _Storage(raw, storage_type.dtype, self.big_endian)
        storage = self.storages[key]
        if storage.dtype != storage_type.dtype and storage_type.dtype is not _BYTE:
            # one storage is one dtype in torch; a second type for the same key is not a real file
            raise _pickle_error(f"storage {key} referenced as {storage.dtype.name} and {storage_type.dtype.name}")
        return storage


def _byteorder(archive: zipfile.ZipFile, root: str) -> str:
    name = f"{root}/byteorder"
    if name not in archive.NameToInfo:
        return "little"  # files from before PyTorch recorded it were written on little-endian machines
    return _read_entry(archive, name, "byteorder").decode("ascii", "replace").strip()


# ----------------------------------------------------------------------------- flattening


def _module_state(obj: "_ScriptObject", classes: Mapping[str, _ScriptClass], path: str, prefix: str = "",
                  out: Optional[Dict[str, _Tensor]] = None, depth: int = 0) -> Dict[str, _Tensor]:
    """``torch.jit.load(path).state_dict()``'s entries: parameters, then buffers, then sub-modules."""
    out = {} if out is None else out
    if depth > _MAX_MODULE_DEPTH:
        raise TorchFileError(f"{path}: module tree deeper than {_MAX_MODULE_DEPTH} at '{prefix}' (cyclic?); "
                             f"not a real TorchScript checkpoint")
    attrs = obj.attributes
    info = classes.get(obj.qualified_name)
    if info is not None and info.parameters is not None:
        params = [n for n in attrs if n in info.parameters]
        if info.buffers is not None:
            buffers = [n for n in attrs if n in info.buffers]
        else:  # archives from before __buffers__ was recorded: every other tensor attribute was a buffer
            buffers = [n for n, v in attrs.items() if isinstance(v, _Tensor) and n not in info.parameters]
    else:
        params, buffers = [n for n, v in attrs.items() if isinstance(v, _Tensor)], []
    for name in params + buffers:
        value = attrs[name]
        if value is None:  # an Optional parameter left unset (e.g. bias=False): not in state_dict()
            continue
        if not isinstance(value, _Tensor):
            raise TorchFileError(f"{path}: {obj.qualified_name}.{name} is declared a parameter/buffer but holds a "
                                 f"{type(value).__name__}")
        out[prefix + name] = value
    for name, value in attrs.items():
        if isinstance(value, _ScriptObject):
            child = classes.get(value.qualified_name)
            if child is None or child.is_module:
                _module_state(value, classes, path, f"{prefix}{name}.", out, depth + 1)
    return out


def _unwrap_state_dict(obj: Any, path: str) -> Dict[str, Any]:
    """Training checkpoints wrap the weights ({'state_dict': ...}, 'module.' prefixes from DDP)."""
    for key in ("state_dict", "model", "module"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise TorchFileError(f"{path}: expected a state dict (mapping of name -> tensor), got {type(obj).__name__}")
    if obj and all(isinstance(k, str) and k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    for name, value in obj.items():
        if not isinstance(value, _Tensor):
            raise TorchFileError(f"{path}: entry '{name}' is a {type(value).__name__}, not a tensor; "
                                 f"expected a flat state dict of tensors")
    return obj


def _to_numpy(state: Mapping[str, _Tensor]) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    return {k: v.to_numpy() for k, v in state.items()}, {k: v.dtype.name for k, v in state.items()}


# ----------------------------------------------------------------------------- entry points


def _archive_root(archive: zipfile.ZipFile, path: str) -> str:
    roots = sorted({n.split("/")[0] for n in archive.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")})
    if len(roots) != 1:
        raise TorchFileError(f"{path}: a zip file but not a PyTorch checkpoint (expected one <name>/data.pkl, found "
                             f"{len(roots)})")
    return roots[0]


def _read_zip(path: str) -> Tuple[Dict[str, np.ndarray], Dict[str, str], str]:
    with zipfile.ZipFile(path) as archive:
        root = _archive_root(archive, path)
        names = archive.namelist()
        is_script = any(n.startswith(f"{root}/code/") for n in names) or f"{root}/constants.pkl" in names
        classes = _parse_code(archive, root) if is_script else None
        data = _read_entry(archive, f"{root}/data.pkl", "pickle")
        unpickler = _TorchUnpickler(io.BytesIO(data), source=path, archive=archive, root=root,
                                    script_classes=classes)
        obj = unpickler.load()
    if classes is not None:
        if not isinstance(obj, _ScriptObject):
            raise TorchFileError(f"{path}: a TorchScript archive whose data.pkl holds a {type(obj).__name__}, "
                                 f"not a module")
        return (*_to_numpy(_module_state(obj, classes, path)), FMT_TORCHSCRIPT)
    return (*_to_numpy(_unwrap_state_dict(obj, path)), FMT_STATE_DICT)


def _read_legacy(path: str) -> Tuple[Dict[str, np.ndarray], Dict[str, str], str]:
    """PyTorch < 1.6's non-zip format: only torch can read it (still with weights_only=True)."""
    try:
        import torch
    except ImportError:
        raise TorchFileError(f"{path}: not a zip-format PyTorch checkpoint; if it is a legacy (PyTorch < 1.6, "
                             f"non-zip) torch.save file, reading it needs torch (pip install 'ms_clip[convert]'), "
                             f"or re-save it with a current torch.save") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types; its UnpicklingError names the refused global
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TorchFileError(f"{path}: cannot read as a PyTorch checkpoint with weights_only=True ({first}); it is "
                             f"corrupt, truncated or holds pickled objects other than tensors") from None

    def wrap(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            name = str(value.dtype).replace("torch.", "")
            dtype = _TORCH_DTYPES.get(name)
            if dtype is None:
                raise TorchFileError(f"{path}: tensor dtype {name} is not supported")
            t = value.detach().cpu()
            array = t.view(torch.int16).numpy().view(np.uint16) if name == "bfloat16" else t.numpy()
            return _Tensor(array.copy(), dtype)
        if isinstance(value, Mapping):
            return {k: wrap(v) for k, v in value.items()}
        return value

    return (*_to_numpy(_unwrap_state_dict(wrap(obj), path)), FMT_STATE_DICT)


def read_torch_checkpoint(path: str) -> Tuple[Dict[str, np.ndarray], Dict[str, str], str]:
    """Tensors of a PyTorch ``.pt``/``.pth``/``.bin`` file, read without torch and without running its code.

    Args:
        path: an OpenAI TorchScript archive or a ``torch.save`` file of a state dict (``{'state_dict': ...}``
            / ``{'model': ...}`` wrappers and DDP ``module.`` prefixes are removed).

    Returns:
        ``(tensors, dtypes, fmt)``: numpy arrays by state-dict name (floating tensors as float32,
        which holds fp16/bf16 exactly; integer and bool tensors as stored), each tensor's source dtype
        name (``"float16"``, ``"bfloat16"``, ``"int64"``, ...), and ``"openai-torchscript"`` or
        ``"state-dict"``. For TorchScript the names are those of ``torch.jit.load(path).state_dict()``,
        including OpenAI's scalar buffers ``input_resolution``, ``context_length``, ``vocab_size``.

    Raises:
        TorchFileError: unreadable, truncated or inconsistent file, or not a state dict of tensors.
        UnsafePickleError: the pickle asks for a global outside the table (e.g. a ``__reduce__``
            payload) or a TorchScript class with a ``__setstate__``; nothing was executed.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise TorchFileError(f"PyTorch checkpoint not found: {path}")
    if not zipfile.is_zipfile(path):
        return _read_legacy(path)
    try:
        return _read_zip(path)
    except (TorchFileError, UnsafePickleError):
        raise
    except Exception as err:  # zipfile/pickle/numpy raise many types for damaged files
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise TorchFileError(f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {first[:200]}); "
                             f"it is corrupt or truncated") from None
