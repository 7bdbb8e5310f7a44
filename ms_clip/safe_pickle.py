"""Restricted unpickling: the one place where ms_clip reads pickles from files a user downloaded.

A pickle is a program: its ``GLOBAL``/``STACK_GLOBAL``/``INST``/``OBJ``/``EXT`` opcodes import any
callable by name and ``REDUCE``/``BUILD`` call it, so ``pickle.load`` on a crafted file runs
whatever its author wants (``os.system``, ``builtins.exec``, ...). Every one of those imports goes
through ``Unpickler.find_class`` (the standard library's documented hook, "Restricting Globals"),
so an unpickler whose ``find_class`` answers from a fixed table of harmless objects and refuses
every other name cannot be made to run code: the refused name is reported and nothing from the
file has been executed.

Users of this module:

* CIFAR's python-version pickles (``ms_clip.data.classification``): :class:`NumpyUnpickler` admits
  dicts, lists, tuples, str/bytes, numbers and numpy arrays/dtypes/scalars, as numpy 1.x and 2.x
  write them;
* PyTorch checkpoints (``ms_clip.torchfile``): a subclass maps ``torch._utils._rebuild_tensor_v2``
  and friends to functions of ours that build numpy arrays, and TorchScript's ``__torch__.*``
  classes to inert holder objects.
"""
from __future__ import annotations

import _compat_pickle
import codecs
import io
import pickle
from typing import Any, BinaryIO, Callable, Dict, Mapping, Optional, Tuple

import numpy as np

from ms_clip.errors import MsClipError

__all__ = ["UnsafePickleError", "RestrictedUnpickler", "NumpyUnpickler", "numpy_globals", "safe_load", "safe_loads",
           "container_globals"]


class UnsafePickleError(MsClipError, ValueError):
    """A pickle asked for a global outside the allowed table; nothing from it was executed.

    Attributes ``source`` (the file), ``module`` and ``name`` (the refused global) let callers
    re-raise it as their own error type with the same one-line message.
    """

    def __init__(self, message: str, source: str = "", module: str = "", name: str = ""):
        super().__init__(message)
        self.source, self.module, self.name = source, module, name


def _latin1_encode(text: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    # Python 3 writes ``bytes`` into protocol-2 pickles as ``_codecs.encode(<str>, 'latin1')``. The
    # general ``codecs.encode`` can look up (and so import) any registered codec, so only the
    # latin-1 round trip that pickle itself emits is admitted.
    if not isinstance(text, str) or codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(f"_codecs.encode is admitted only as pickle's latin-1 bytes encoding, "
                                     f"got encoding {encoding!r}")
    return text.encode("latin-1", errors)


def numpy_globals() -> Dict[Tuple[str, str], Any]:
    """The globals numpy arrays, dtypes and scalars need when unpickled, under numpy 1.x and 2.x names.

    numpy 1.x pickles name ``numpy.core.multiarray._reconstruct`` / ``.scalar`` (and, at protocol 5,
    ``numpy.core.numeric._frombuffer``); numpy 2.x moved them to ``numpy._core``. The objects are
    taken from the installed numpy's own ``__reduce__`` results rather than imported by name, so
    neither numpy's deprecated ``numpy.core`` shim nor a module missing from this numpy version is
    touched, and a file written by either major version loads under either.
    """
    reconstruct = np.ndarray((0,)).__reduce__()[0]
    frombuffer = np.zeros(1).__reduce_ex__(5)[0]  # contiguous arrays at protocol >= 5
    scalar = np.int64(0).__reduce__()[0]
    table: Dict[Tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for core in ("numpy.core", "numpy._core"):
        table[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        table[(f"{core}.multiarray", "scalar")] = scalar
        table[(f"{core}.numeric", "_frombuffer")] = frombuffer
    return table


class PickledOrderedDict(dict):
    """Stands in for ``collections.OrderedDict`` (dicts keep order). A subclass rather than ``dict``
    because pickled OrderedDicts may carry instance attributes, e.g. the ``_metadata`` that
    ``nn.Module.state_dict()`` attaches, which BUILD restores into ``__dict__``."""


# Plain containers that some writers pickle by reference (protocol-2 OrderedDict, sets, ...).
_BUILTIN_GLOBALS: Dict[Tuple[str, str], Any] = {
    ("collections", "OrderedDict"): PickledOrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "complex"): complex,
    ("_codecs", "encode"): _latin1_encode,
}


def container_globals() -> Dict[Tuple[str, str], Any]:
    """Globals of plain containers and bytes that any data pickle may reference (a copy, to extend)."""
    return dict(_BUILTIN_GLOBALS)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves globals only from ``allowed``; anything else raises :class:`UnsafePickleError`.

    Args:
        file: the binary stream to read.
        source: the file's name, for messages.
        allowed: ``(module, name) -> object`` returned for that global (often a safe stand-in).
        what: what such files legitimately contain, for the message ("a CIFAR pickle holds ...").
        encoding: as ``pickle.load``'s (``"bytes"`` keeps Python 2 str as bytes).

    Subclasses may override :meth:`resolve_global` for name families (e.g. ``__torch__.*``).
    Persistent ids are refused unless a subclass overrides ``persistent_load``.
    """

    def __init__(self, file: BinaryIO, *, source: str, allowed: Mapping[Tuple[str, str], Any], what: str,
                 encoding: str = "ASCII"):
        super().__init__(file, encoding=encoding)
        self.source = source
        self.allowed = dict(allowed)
        self.what = what

    def resolve_global(self, module: str, name: str) -> Optional[Any]:
        """The object for an admitted global, or None to refuse it."""
        return self.allowed.get((module, name))

    def refuse(self, module: str, name: str, why: str = "") -> UnsafePickleError:
        """The one-line error for a refused global (``why`` overrides the default reason)."""
        reason = why or f"{self.what}, and a pickle that imports anything else may be crafted to run code"
        return UnsafePickleError(f"{self.source}: refused to unpickle the global '{module}.{name}' ({reason}); "
                                 f"nothing in the file was executed. Use an original, unmodified file",
                                 source=self.source, module=module, name=name)

    def find_class(self, module: str, name: str) -> Any:  # noqa: D401 - pickle's hook
        # Protocol-2 pickles written by Python 3 (and Python 2 ones) use Python 2 module names
        # ("__builtin__.exec", "copy_reg._reconstructor"); pickle's own find_class renames them the
        # same way before importing, so the table and the messages only ever see Python 3 names.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        obj = self.resolve_global(module, name)
        if obj is None:
            raise self.refuse(module, name)
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError(f"unexpected persistent id {str(pid)[:80]!r}")


class NumpyUnpickler(RestrictedUnpickler):
    """Data pickles: dicts, lists, tuples, sets, str/bytes, numbers, numpy arrays, dtypes and scalars."""

    def __init__(self, file: BinaryIO, *, source: str, what: str, encoding: str = "ASCII"):
        allowed = container_globals()
        allowed.update(numpy_globals())
        super().__init__(file, source=source, allowed=allowed, what=what, encoding=encoding)


def safe_load(file: BinaryIO, source: str, what: str = "a data pickle holds only dicts, lists, str/bytes, "
              "numbers and numpy arrays", encoding: str = "ASCII",
              unpickler: Callable[..., RestrictedUnpickler] = NumpyUnpickler) -> Any:
    """``pickle.load`` with the :class:`NumpyUnpickler` table (or another restricted unpickler class)."""
    return unpickler(file, source=source, what=what, encoding=encoding).load()


def safe_loads(data: bytes, source: str, **kwargs: Any) -> Any:
    """:func:`safe_load` on bytes."""
    return safe_load(io.BytesIO(data), source, **kwargs)
