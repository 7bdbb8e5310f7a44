"""Model weights on disk: atomic .ckpt writes and strict loads with errors that name keys."""
from __future__ import annotations

import os
from typing import Dict, Mapping, Union

import numpy as np

import mindspore as ms
from mindspore import Parameter, Tensor, nn

from ms_clip.errors import MsClipError
from ms_clip.fileio import atomic_path

__all__ = ["WeightsError", "save_weights", "load_weights", "read_checkpoint", "assign_weights"]

ArrayLike = Union[np.ndarray, Tensor, Parameter]
# Parameter dtype -> numpy dtype (ms.dtype_to_nptype is deprecated since MindSpore 2.7 and warns per call).
_NP_DTYPES = {ms.float32: np.float32, ms.float16: np.float16, ms.float64: np.float64, ms.int32: np.int32,
              ms.int64: np.int64}


class WeightsError(MsClipError, ValueError):
    """A checkpoint cannot be read or does not fit the model; the message names file and keys."""


def _as_numpy(value: ArrayLike) -> np.ndarray:
    if isinstance(value, (Tensor, Parameter)):
        return value.asnumpy()
    return np.asarray(value)


def save_weights(weights: Union[nn.Cell, Mapping[str, ArrayLike]], path: str) -> str:
    """Write a MindSpore .ckpt atomically (temp file in the same directory, then rename).

    A crash mid-write leaves the previous file intact instead of a truncated checkpoint.
    """
    path = os.fspath(path)
    if not path.endswith(".ckpt"):
        raise WeightsError(f"checkpoint path must end with .ckpt, got {path!r}")
    if isinstance(weights, nn.Cell):
        items = [(p.name, p.value()) for p in weights.get_parameters()]
    else:
        items = list(weights.items())
    save_list = [{"name": name, "data": value if isinstance(value, Tensor) else Tensor(_as_numpy(value))}
                 for name, value in items]
    with atomic_path(path) as tmp:
        ms.save_checkpoint(save_list, tmp)
    return path


def read_checkpoint(path: str) -> Dict[str, np.ndarray]:
    """Read a .ckpt into name -> numpy array, with a clear error for missing or corrupt files."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsError(f"checkpoint file not found: {path}")
    try:
        params = ms.load_checkpoint(path)
    except Exception as err:  # MindSpore raises ValueError/RuntimeError from deep inside for bad files
        # MindSpore also refuses files larger than the currently free memory (seen with ViT-L/14), so
        # the message keeps its reason instead of guessing "corrupt".
        raise WeightsError(f"cannot read MindSpore checkpoint {path} (a corrupt or non-.ckpt file, or not enough "
                           f"free memory to load it): {err}") from None
    if not params:
        raise WeightsError(f"checkpoint {path} holds no parameters")
    return {name: p.asnumpy() for name, p in params.items()}


def assign_weights(model: nn.Cell, weights: Mapping[str, ArrayLike], source: str = "weights",
                   allow_extra: bool = False) -> None:
    """Copy ``weights`` into ``model``'s parameters; every parameter must be filled with the right shape.

    Fails (naming the keys) on missing parameters, shape mismatches and, unless ``allow_extra``,
    on unused source keys, so a wrong checkpoint can never leave random weights behind.
    """
    own = {p.name: p for p in model.get_parameters()}
    missing = sorted(set(own) - set(weights))
    extra = sorted(set(weights) - set(own))
    problems = []
    if missing:
        problems.append(f"{len(missing)} model parameters not in {source}: {missing[:10]}{' ...' if len(missing) > 10 else ''}")
    if extra and not allow_extra:
        problems.append(f"{len(extra)} keys in {source} not used by the model: {extra[:10]}{' ...' if len(extra) > 10 else ''}")
    shapes = []
    for name in sorted(set(own) & set(weights)):
        arr = _as_numpy(weights[name])
        if tuple(arr.shape) != tuple(own[name].shape):
            shapes.append(f"{name}: {source} has {tuple(arr.shape)}, model expects {tuple(own[name].shape)}")
    if shapes:
        problems.append("shape mismatches: " + "; ".join(shapes[:10]))
    if problems:
        raise WeightsError(f"{source} does not fit the model: " + " | ".join(problems))
    for name, param in own.items():
        arr = _as_numpy(weights[name])
        param.set_data(Tensor(arr.astype(_NP_DTYPES.get(param.dtype, np.float32), copy=False)))


def load_weights(model: nn.Cell, path: str) -> nn.Cell:
    """Strictly load a .ckpt into ``model`` (see ``assign_weights``). Returns the model."""
    assign_weights(model, read_checkpoint(path), source=f"checkpoint {path}")
    return model
