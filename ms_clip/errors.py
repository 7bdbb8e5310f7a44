"""The one base class of ms_clip's user-facing errors.

A ``MsClipError`` means the user's input (a file, a key, a value, a name) is wrong or missing and
its message says, in one line, which one and what was expected. ``run_mindformer.py`` prints such
errors as one line and exits 1; any other exception is a bug in ms_clip and keeps its traceback.
Each concern subclasses it (``ConfigError``, ``WeightsError``, ``ConvertError``, ``HubError``,
``DataError``, ...); the subclasses also derive from ``ValueError`` or ``RuntimeError`` where
earlier releases raised those, so existing ``except ValueError`` code keeps working.
"""
from __future__ import annotations

__all__ = ["MsClipError"]


class MsClipError(Exception):
    """A user error: bad input named in a one-line message (see the module docstring)."""
