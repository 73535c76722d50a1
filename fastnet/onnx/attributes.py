"""Reading a node's attributes and a tensor's values out of the parsed protobuf, and the
checks of attribute values that the loader's handlers share.

Every failure is an :class:`~fastnet.errors.OnnxError` whose message the loader prefixes
with the file and the node.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnet.errors import OnnxError

# ONNX TensorProto data types the loader reads: FLOAT, DOUBLE, INT64, BOOL.
_DTYPES = {1: np.float32, 11: np.float64, 7: np.int64, 9: np.bool_}
_FIELDS = {1: "float_data", 11: "double_data", 7: "int64_data", 9: "int32_data"}


def _tensor_values(t: Any, where: str) -> np.ndarray:
    """The values of the TensorProto ``t``, checked against its shape and type first."""
    if t.data_location == 1 or len(t.external_data):
        raise OnnxError(
            f"{where}: external data is not supported (fastnet reads no file but the model)"
        )
    if t.HasField("segment") or t.data_type not in _DTYPES:
        raise OnnxError(f"{where}: tensors of data type {t.data_type} are not supported")
    dtype, dims = np.dtype(_DTYPES[t.data_type]), list(t.dims)
    if any(d < 0 for d in dims):
        raise OnnxError(f"{where}: negative dimension in {dims}")
    count = int(np.prod(dims, dtype=object))
    if t.HasField("raw_data"):
        if len(t.raw_data) != count * dtype.itemsize:
            raise OnnxError(f"{where}: {len(t.raw_data)} bytes of data for shape {dims}")
        return np.frombuffer(t.raw_data, dtype.newbyteorder("<")).astype(dtype).reshape(dims)
    values = getattr(t, _FIELDS[t.data_type])
    if len(values) != count:
        raise OnnxError(f"{where}: {len(values)} values for shape {dims}")
    return np.array(values, dtype=dtype).reshape(dims)


def _attributes(node: Any) -> dict:
    """``node``'s attributes as Python values. ONNX stores floats as float32: each comes
    back as the shortest decimal that rounds to it (``1e-05``, not ``9.99999974e-06``)."""
    out: dict[str, Any] = {}
    for a in node.attribute:
        if _text(a.name) in out or a.type not in (1, 2, 3, 4, 6, 7):
            raise OnnxError(f"attribute {_text(a.name)!r} has an unsupported type or appears twice")
        if a.type in (1, 6):  # FLOAT, FLOATS
            values = [_float32(v) for v in ([a.f] if a.type == 1 else a.floats)]
            out[_text(a.name)] = values[0] if a.type == 1 else values
        else:  # INT, STRING, TENSOR, INTS
            value = {2: a.i, 3: a.s, 4: a.t, 7: list(a.ints)}[a.type]
            out[_text(a.name)] = _text(value) if a.type == 3 else value
    return out


def _text(value: str | bytes) -> str:
    """A string from the file, printable on one line (protobuf gives bytes for a string
    field that is not UTF-8)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if value.isprintable() else repr(value)


def _float32(value: float) -> float:
    """The shortest decimal that rounds to the same float32 as ``value``."""
    return float(str(np.float32(value)))


def _int(attrs: dict, name: str, default: int) -> int:
    """Attribute ``name`` (``default`` if absent), which must be an int."""
    value = attrs.get(name, default)
    if not isinstance(value, int):
        raise OnnxError(f"attribute {name!r} must be an int")
    return value


def _float(attrs: dict, name: str, default: float) -> float:
    """Attribute ``name`` (``default`` if absent), which must be a finite float."""
    value = attrs.get(name, default)
    if not isinstance(value, float) or not np.isfinite(value):
        raise OnnxError(f"attribute {name!r} must be a finite float")
    return value


def _ints(attrs: dict, name: str, default: list[int] | None, count: int = 2) -> tuple[int, ...]:
    """Attribute ``name`` (``default`` if absent), which must be ``count`` ints."""
    value = attrs.get(name, default)
    if (
        not isinstance(value, list)
        or len(value) != count
        or not all(isinstance(v, int) for v in value)
    ):
        raise OnnxError(f"attribute {name!r} must be {count} ints, got {value!r}")
    return tuple(value)


def _only_value(attrs: dict, name: str, only: int, why: str) -> None:
    """Raise, saying ``why``, unless int attribute ``name`` is absent or ``only``."""
    if _int(attrs, name, only) != only:
        raise OnnxError(f"{name}={attrs[name]} is not supported ({why})")


def _pads(attrs: dict) -> tuple[int, int]:
    """ONNX's ``[top, left, bottom, right]`` as fastnet's symmetric ``(PH, PW)``."""
    top, left, bottom, right = _ints(attrs, "pads", [0, 0, 0, 0], 4)
    if (top, left) != (bottom, right) or min(top, left) < 0:
        raise OnnxError(
            f"pads {[top, left, bottom, right]} are not supported (fastnet pads symmetrically)"
        )
    return top, left


def _window(attrs: dict, kernel: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, int]]:
    """The strides and fastnet's symmetric ``(PH, PW)`` pads of Conv's or a pool's 2-d window
    ``kernel``, from its attributes: explicit pads, or ``auto_pad`` VALID (none) or SAME
    (with stride 1 and an odd kernel, half the kernel on each side); dilation only where it
    changes nothing (along a kernel of width 1)."""
    if len(kernel) != 2 or tuple(kernel) != _ints(attrs, "kernel_shape", list(kernel)):
        raise OnnxError(
            f"kernel_shape {attrs.get('kernel_shape')} does not match the 2-d "
            f"kernel {tuple(kernel)}"
        )
    dilations = _ints(attrs, "dilations", [1, 1])
    if any(d != 1 and k != 1 for d, k in zip(dilations, kernel, strict=True)):
        raise OnnxError(f"dilations {list(dilations)} are not supported (fastnet has no dilation)")
    strides, auto_pad = _ints(attrs, "strides", [1, 1]), attrs.get("auto_pad", "NOTSET")
    if auto_pad == "NOTSET":
        return strides, _pads(attrs)
    if auto_pad == "VALID":
        return strides, (0, 0)
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise OnnxError(
            f"auto_pad={auto_pad!r} is not supported (NOTSET, VALID, SAME_UPPER or SAME_LOWER)"
        )
    if strides != (1, 1) or any(k % 2 == 0 for k in kernel):
        raise OnnxError(
            f"auto_pad={auto_pad!r} with strides {strides} and kernel {tuple(kernel)} is not "
            "supported (fastnet pads symmetrically: it needs stride 1 and an odd kernel)"
        )
    return strides, (kernel[0] // 2, kernel[1] // 2)
