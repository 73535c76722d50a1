"""The attributes of each ONNX operator fastnet loads, opset by opset, and the rules that
depend on the opset a model imports.

ONNX gives an operator a new version whenever its attributes change (the changelog:
https://github.com/onnx/onnx/blob/main/docs/Changelog.md); a model names its opset in
``opset_import``, and each node means what its operator's newest version at or below that
opset says. ``ATTRIBUTES`` lists, per operator, the first and last opset that define each
attribute (``NOW``: the newest still does); ``tests/fastnet/test_onnx.py`` checks it against
the schemas of the installed ``onnx`` for every opset.

The loader accepts every attribute in the table, whatever the model's opset, and reads a
value with the one meaning ONNX gives it; the opset decides what an absent one means. (An
attribute outside the opsets that define it, such as the ``spatial=1`` some converters
still wrote at opset 9, loads the same way; onnxruntime and ``onnx.checker`` refuse it.)
The attributes of older opsets, and those whose values fastnet honours only in part:

- ``consumed_inputs`` (opsets 1-5: BatchNormalization, Dropout, Relu, Sigmoid): a hint for
  reusing memory, not a value: ignored.
- ``is_test`` (1-6: BatchNormalization, Dropout): 0 unless set, and 0 is training mode
  (batch statistics, random dropout): refused; 1 loads.
- ``spatial`` (1-8: BatchNormalization): 1 (statistics per channel) loads; 0 (per
  activation) is the same on (N, C) input and refused on 4-d input.
- ``broadcast`` (1-6: Gemm): 1, C broadcasts to the (M, N) output, as from opset 7 on; 0
  unless set, C is the whole (M, N) output: taken only with a fixed batch M and equal rows.
- ``storage_order`` (8 on: MaxPool): orders the indices output only, which a loaded chain
  never uses: ignored.
- ``ceil_mode`` (10 on: MaxPool, AveragePool): 1 loads where the strides are 1 (ceil and
  floor then agree).
- ``auto_pad`` (all: Conv, MaxPool, AveragePool): VALID; SAME_UPPER and SAME_LOWER where
  stride 1 and an odd kernel make the pads symmetric.
- ``dilations`` (Conv; 10 on: MaxPool; 19 on: AveragePool): 1, or any along a kernel of
  width 1 (which dilation leaves alone).
- ``group`` (Conv): 1 only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fastnet.errors import OnnxError
from fastnet.onnx.attributes import _int

NOW = None  # the newest opset still defines the attribute
_WINDOW = {"auto_pad": (1, NOW), "kernel_shape": (1, NOW), "pads": (1, NOW), "strides": (1, NOW)}
# operator -> attribute -> (first opset that defines it, last opset that does, or NOW)
ATTRIBUTES: dict[str, dict[str, tuple[int, int | None]]] = {
    "Conv": {**_WINDOW, "dilations": (1, NOW), "group": (1, NOW)},
    "BatchNormalization": {
        "consumed_inputs": (1, 5),
        "epsilon": (1, NOW),
        "is_test": (1, 6),
        "momentum": (1, NOW),
        "spatial": (1, 8),
        "training_mode": (14, NOW),
    },
    "Relu": {"consumed_inputs": (1, 5)},
    "Sigmoid": {"consumed_inputs": (1, 5)},
    "MaxPool": {
        **_WINDOW,
        "storage_order": (8, NOW),
        "ceil_mode": (10, NOW),
        "dilations": (10, NOW),
    },
    "AveragePool": {
        **_WINDOW,
        "count_include_pad": (7, NOW),
        "ceil_mode": (10, NOW),
        "dilations": (19, NOW),
    },
    "Flatten": {"axis": (1, NOW)},
    "Gemm": {
        "alpha": (1, NOW),
        "beta": (1, NOW),
        "broadcast": (1, 6),
        "transA": (1, NOW),
        "transB": (1, NOW),
    },
    "Dropout": {"consumed_inputs": (1, 5), "is_test": (1, 6), "ratio": (1, 11), "seed": (12, NOW)},
    "Identity": {},
    "Constant": {
        "value": (1, NOW),
        "sparse_value": (11, NOW),
        **dict.fromkeys(
            ("value_float", "value_floats", "value_int", "value_ints", "value_string"), (12, NOW)
        ),
        "value_strings": (12, NOW),
    },
}


def model_opset(proto: Any, path: Path) -> int:
    """The version of the ONNX operator set (domain ``""`` or ``"ai.onnx"``) that the model
    ``proto`` imports."""
    versions = sorted({o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")})
    if len(versions) != 1 or versions[0] < 1:
        raise OnnxError(
            f"{path}: the model must import one version of the ONNX operator set "
            f"(opset_import), got {versions}"
        )
    return versions[0]


def defined(op: str, attribute: str, opset: int) -> bool:
    """Whether ``op``'s version at ``opset`` has ``attribute``."""
    first, last = ATTRIBUTES[op][attribute]
    return first <= opset and (last is NOW or opset <= last)


def check_known(op: str, attrs: dict) -> None:
    """Raise on the first (sorted) attribute that no opset gives ``op``."""
    unknown = sorted(set(attrs) - set(ATTRIBUTES[op]))
    if unknown:
        raise OnnxError(
            f"attribute {unknown[0]!r} is not supported (no ONNX opset gives {op} such an "
            "attribute)"
        )


def _unset(op: str, attrs: dict, name: str) -> str:
    """What a message says of ``op``'s attribute ``name`` (0 unless set, in the opsets
    that define it) when the node leaves it out."""
    last = ATTRIBUTES[op][name][1]
    return "" if name in attrs or last is None else f" (the default before opset {last + 1})"


def inference_mode(op: str, attrs: dict, opset: int) -> None:
    """Before opset 7, BatchNormalization and Dropout run in training mode unless
    ``is_test=1``; raise unless the node runs in inference mode."""
    if _int(attrs, "is_test", 0 if defined(op, "is_test", opset) else 1) == 0:
        raise OnnxError(
            f"is_test=0{_unset(op, attrs, 'is_test')} is not supported (training mode: "
            "fastnet loads inference graphs; set is_test=1)"
        )


def gemm_bias(
    c: np.ndarray | None, n: int, attrs: dict, opset: int, batch: int | None
) -> np.ndarray | None:
    """Gemm's C as the bias that fastnet adds to every sample.

    From opset 7 on, and with ``broadcast=1`` before, C broadcasts to the (M, N) output;
    before opset 7 without it (``broadcast=0``, the default), C is the whole (M, N) output,
    which fastnet takes only where the graph input fixes the batch M and C's rows are equal.

    Parameters
    ----------
    c : ndarray or None
        Gemm's input C, if the node has one.
    n : int
        N, the number of output features.
    attrs : dict
        The node's attributes.
    opset : int
        The model's opset.
    batch : int or None
        The batch size M where the graph input fixes it.

    Returns
    -------
    ndarray or None
        The bias, shape (N,), in C's dtype; None where C is absent.

    Raises
    ------
    OnnxError
        C's shape gives some sample another bias.
    """
    if c is None:
        return None
    if _int(attrs, "broadcast", 0 if defined("Gemm", "broadcast", opset) else 1) == 0:
        if c.shape != (batch, n) or np.any(c != c[:1]):
            raise OnnxError(
                f"broadcast=0{_unset('Gemm', attrs, 'broadcast')} with C of shape {c.shape} "
                f"is not supported (C must then be the whole ({batch or 'M'}, {n}) output, "
                "with a fixed batch size and equal rows: fastnet adds one bias to every sample)"
            )
        c = c[:1]
    if c.shape not in ((n,), (1, n), (1,), (), (1, 1)):
        raise OnnxError(
            f"C must have shape (N,), (1, N), (1,) or () with N = {n}, got {c.shape} "
            "(fastnet adds the same bias to every sample)"
        )
    return np.broadcast_to(c.reshape(-1), (n,))
