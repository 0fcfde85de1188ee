"""Results that cross from a student's kernel to the grader: plain data, never objects.

A hidden test *records* what the student's code returned on the hidden inputs; the grader, in its
own process, decodes the record and judges it against the reference outputs. A record is JSON:
numbers, strings, booleans, ``None``, lists, tuples, string-keyed dicts, and arrays as
``{"dtype", "shape", "data"}`` with the raw little-endian bytes in base64. Decoding checks every
part (known dtypes only, the byte count matches the shape, bounded size and depth), so nothing a
kernel writes can become an object with behaviour of its own on the grader's side: a tensor
subclass whose comparisons always succeed arrives as its bytes, a plain tensor.

    >>> payload = encode({"maps": torch.ones(2, 3), "k": 3})
    >>> decode(json.loads(json.dumps(payload)))["maps"].shape
    torch.Size([2, 3])
"""
from __future__ import annotations

import base64
import math
import numbers

import numpy as np
import torch

__all__ = ["MIME", "RecordError", "encode", "decode", "MAX_BYTES"]

MIME = "application/vnd.xai-lab.record+json"  # the output type a record travels in
MAX_BYTES = 64 * 2**20  # the most array data one record may carry
_MAX_DEPTH = 32
_DTYPES = {"bool": np.bool_, "uint8": np.uint8, "int8": np.int8, "int16": np.int16, "int32": np.int32,
           "int64": np.int64, "float16": np.float16, "float32": np.float32, "float64": np.float64}


class RecordError(ValueError):
    """A record that is not plain data of the expected form."""


def encode(value, _depth: int = 0):
    """``value`` as JSON-able plain data (tensors and arrays by dtype, shape and bytes)."""
    if _depth > _MAX_DEPTH:
        raise RecordError("a record may nest at most 32 levels")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().contiguous().numpy()  # the data, whatever the tensor's class says
    if isinstance(value, np.ndarray):
        kind = str(value.dtype)
        if kind not in _DTYPES:
            raise RecordError(f"cannot record an array of dtype {kind}")
        data = np.ascontiguousarray(value, dtype=_DTYPES[kind]).astype(np.dtype(_DTYPES[kind]).newbyteorder("<"))
        return {"dtype": kind, "shape": list(value.shape), "data": base64.b64encode(data.tobytes()).decode()}
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        v = float(value)
        return v if math.isfinite(v) else {"float": repr(v)}  # JSON has no nan / inf
    if isinstance(value, tuple):
        return {"tuple": [encode(v, _depth + 1) for v in value]}
    if isinstance(value, list):
        return [encode(v, _depth + 1) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise RecordError("a recorded dict must have string keys")
        return {"dict": {k: encode(v, _depth + 1) for k, v in value.items()}}
    raise RecordError(f"cannot record a value of type {type(value).__name__}")


def decode(obj, _depth: int = 0, _budget: list | None = None):
    """The value of a record (arrays as torch tensors); :class:`RecordError` for anything else."""
    budget = [MAX_BYTES] if _budget is None else _budget
    if _depth > _MAX_DEPTH:
        raise RecordError("record nested too deeply")
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if type(obj) is int:
        return obj
    if type(obj) is float:
        return obj
    if type(obj) is list:
        return [decode(v, _depth + 1, budget) for v in obj]
    if type(obj) is not dict:
        raise RecordError(f"unexpected {type(obj).__name__} in a record")
    if set(obj) == {"tuple"} and type(obj["tuple"]) is list:
        return tuple(decode(v, _depth + 1, budget) for v in obj["tuple"])
    if set(obj) == {"dict"} and type(obj["dict"]) is dict:
        return {str(k): decode(v, _depth + 1, budget) for k, v in obj["dict"].items()}
    if set(obj) == {"float"} and obj["float"] in ("nan", "inf", "-inf"):
        return float(obj["float"])
    if set(obj) == {"dtype", "shape", "data"}:
        return _array(obj, budget)
    raise RecordError(f"unexpected keys {sorted(map(str, obj))} in a record")


def _array(obj, budget) -> torch.Tensor:
    kind, shape, data = obj["dtype"], obj["shape"], obj["data"]
    if kind not in _DTYPES:
        raise RecordError(f"unknown dtype {kind!r} in a record")
    if type(shape) is not list or not all(type(s) is int and s >= 0 for s in shape) or len(shape) > 8:
        raise RecordError(f"bad shape {shape!r} in a record")
    if type(data) is not str:
        raise RecordError("array data must be base64 text")
    dtype = np.dtype(_DTYPES[kind]).newbyteorder("<")
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size > budget[0]:
        raise RecordError(f"a record may carry at most {MAX_BYTES} bytes of arrays")
    budget[0] -= size
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError:
        raise RecordError("array data is not valid base64") from None
    if len(raw) != size:
        raise RecordError(f"array data has {len(raw)} bytes, shape {shape} of {kind} needs {size}")
    array = np.frombuffer(raw, dtype=dtype).astype(_DTYPES[kind]).reshape(shape)
    return torch.from_numpy(array.copy())
