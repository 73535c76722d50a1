"""The ONNX loader: a chain of ONNX nodes as a ``Sequential`` of fastnet layers.

``_GraphReader`` follows the data tensor from the graph input to the graph output and asks
the handler of each node's operator (``HANDLERS``, one function per ONNX operator) for its
layer. Identity nodes are skipped and Constant nodes (and Identity nodes of constants) give
constants. Every opset loads, from 1 to the newest: a node's attributes are those any opset
gave its operator, read as :mod:`fastnet.onnx.opsets` says. Anything else (another
operator, an attribute value fastnet's layer cannot honour, such as dilation, groups or
training mode, a graph that is not one chain of layers) is an
:class:`~fastnet.errors.OnnxError` naming the file, the node and its operator. A malformed
file is an ``OnnxError`` too: the loader parses the protobuf itself, never reads external
data files, and checks every tensor's size against its data before using it.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np

from fastnet import layers
from fastnet.errors import OnnxError
from fastnet.module import Module, Sequential
from fastnet.onnx.attributes import (
    _DTYPES,
    _attributes,
    _float,
    _float32,
    _int,
    _ints,
    _only_value,
    _tensor_values,
    _text,
    _window,
)
from fastnet.onnx.extra import _require_onnx
from fastnet.onnx.opsets import check_known, gemm_bias, inference_mode, model_opset


def load(path: str | os.PathLike) -> Sequential:
    """Read an ONNX model (the operators in :mod:`fastnet.onnx`'s table) as a fastnet model.

    Parameters
    ----------
    path : path-like
        An ``.onnx`` file: one graph input (N, ...), one output, a chain of nodes.

    Returns
    -------
    Sequential
        In eval mode (what an ONNX graph computes), in the dtype of the graph's input
        (float32 or float64); ``.train()`` it to fine-tune.

    Raises
    ------
    OnnxError
        The file is unreadable, not an ONNX model, or uses an operator, attribute or graph
        shape fastnet cannot represent (the message names the node and its operator).
    MissingExtra
        The ``onnx`` package is not installed.
    """
    onnx = _require_onnx()
    from google.protobuf.message import DecodeError

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise OnnxError(f"{path}: cannot read the file ({e.strerror or e})") from None
    try:
        proto = onnx.ModelProto.FromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise OnnxError(f"{path}: not an ONNX model ({e})") from None
    return _GraphReader(path, proto).model()


class _GraphReader:
    """Turns the nodes of a parsed ONNX graph into fastnet layers, one by one, following the
    data tensor (``current``) from the graph input to the graph output."""

    def __init__(self, path: Path, proto: Any) -> None:
        self.path, self.graph = path, proto.graph
        self.opset = model_opset(proto, path)
        self.consts: dict[str, np.ndarray] = {}
        self.defined: set[str] = set()
        for t in self.graph.initializer:
            where = f"{path}: initializer {t.name!r}"
            self._define(t.name, where)
            self.consts[t.name] = _tensor_values(t, where)
        inputs = [v for v in self.graph.input if v.name not in self.consts]
        if len(inputs) != 1 or len(self.graph.output) != 1:
            raise OnnxError(
                f"{path}: not a model fastnet can load (it needs one graph input "
                f"and one output, got {len(inputs)} and {len(self.graph.output)})"
            )
        tensor = inputs[0].type.tensor_type
        if tensor.elem_type not in (1, 11) or not tensor.HasField("shape"):
            raise OnnxError(
                f"{path}: the graph input must be a float or double tensor of known rank"
            )
        self.dtype = np.dtype(_DTYPES[tensor.elem_type])
        self.rank = len(tensor.shape.dim)
        # the batch size where the graph input fixes it (the layers keep axis 0)
        self.batch = (tensor.shape.dim[0].dim_value or None) if self.rank else None
        self._define(inputs[0].name, f"{path}: the graph input")
        self.current = inputs[0].name
        self.used = Counter(name for n in self.graph.node for name in n.input)
        self.used.update(v.name for v in self.graph.output)

    def _define(self, name: str, where: str) -> None:
        if not name or name in self.defined:
            raise OnnxError(f"{where}: tensor name {name!r} is empty or defined twice")
        self.defined.add(name)

    def model(self) -> Sequential:
        chain: list[Module] = []
        for i, node in enumerate(self.graph.node):
            where = (
                f"{self.path}: node {_text(node.name) or '#' + str(i)!r} ({_text(node.op_type)})"
            )
            try:
                layer = self._node(node, where)
            except ValueError as e:  # an OnnxError, or a layer refusing a value
                raise OnnxError(f"{where}: {e}") from None
            if layer is not None:
                chain.append(layer)
        if self.graph.output[0].name != self.current:
            raise OnnxError(
                f"{self.path}: the graph output {self.graph.output[0].name!r} is not "
                "the last layer's output (fastnet loads a chain of layers)"
            )
        return Sequential(*chain).eval()

    # -- one node ----------------------------------------------------------------------
    def _node(self, node: Any, where: str) -> Module | None:
        """The layer for ``node`` (None for a node that adds no layer)."""
        op = node.op_type
        if node.domain not in ("", "ai.onnx") or op not in SUPPORTED:
            raise OnnxError(
                f"operator {op!r} is not supported; fastnet loads {', '.join(SUPPORTED)}"
            )
        attrs = _attributes(node)
        check_known(op, attrs)
        if len(node.output) < 1 or not all(node.output):
            raise OnnxError("it needs named outputs")
        if op == "Constant" or (op == "Identity" and node.input and node.input[0] in self.consts):
            self._constant(node, attrs)
            return None
        if not node.input or node.input[0] != self.current:
            first = node.input[0] if node.input else None
            raise OnnxError(
                f"its data input {first!r} is not the previous layer's output "
                f"{self.current!r} (fastnet loads a chain of layers)"
            )
        unused = {"Dropout": 1, "MaxPool": 1, "BatchNormalization": 4}.get(op, 0)
        if len(node.output) > 1 + unused or any(self.used[o] for o in node.output[1:]):
            raise OnnxError("only its first output may be used")
        layer = HANDLERS[op](self, node, attrs)
        for o in node.output:
            self._define(o, "its output")
        self.current = node.output[0]
        return layer

    def _constant(self, node: Any, attrs: dict) -> None:
        if len(node.output) != 1:
            raise OnnxError("a constant node must have one output")
        if node.op_type == "Constant":
            value = _constant_value(attrs)
        else:
            if len(node.input) != 1:
                raise OnnxError("an Identity node must have one input")
            value = self.consts[node.input[0]]
        self._define(node.output[0], "its output")
        self.consts[node.output[0]] = value

    def inputs(self, node: Any, count: int, required: int, weights: bool = True) -> list:
        """The constant inputs 1 .. ``count`` of ``node`` (None where an optional one is
        absent); ``weights``: finite arrays in the model's dtype."""
        names = list(node.input[1:])
        if len(names) > count or len([n for n in names[:required] if n]) < required:
            raise OnnxError(f"it must have {1 + required} to {1 + count} inputs")
        out: list[np.ndarray | None] = []
        for name in names + [""] * (count - len(names)):
            if not name:
                out.append(None)
                continue
            if name not in self.consts:
                raise OnnxError(f"input {name!r} must be a constant (an initializer)")
            value = self.consts[name]
            if weights and (value.dtype != self.dtype or not np.all(np.isfinite(value))):
                raise OnnxError(
                    f"input {name!r} must hold finite {self.dtype} values (the graph "
                    f"input's type), got {value.dtype}"
                )
            out.append(value)
        return out

    def needs_rank(self, *ranks: int) -> None:
        """Raise unless the data input's rank is one of ``ranks``."""
        if self.rank not in ranks:
            raise OnnxError(
                f"its input must have rank {' or '.join(map(str, ranks))}, got {self.rank}"
            )


# -- one handler per ONNX operator: (reader, node, attributes) -> the layer, or None --------
def _conv(reader: _GraphReader, node: Any, attrs: dict) -> layers.Conv2d:
    w, b = reader.inputs(node, 2, 1)
    reader.needs_rank(4)
    if w.ndim != 4 or (b is not None and b.shape != (w.shape[0],)):
        raise OnnxError(
            f"the weight must be (OC, C, KH, KW) and the bias (OC,), got "
            f"{w.shape} and {None if b is None else b.shape}"
        )
    _only_value(attrs, "group", 1, "fastnet's Conv2d has no groups")
    strides, pads = _window(attrs, w.shape[2:])
    layer = layers.Conv2d(
        w.shape[1],
        w.shape[0],
        (w.shape[2], w.shape[3]),
        cast(tuple[int, int], strides),
        pads,
        bias=b is not None,
        dtype=reader.dtype,
        rng=np.random.default_rng(0),
    )
    return _filled(layer, w, b)


def _gemm(reader: _GraphReader, node: Any, attrs: dict) -> layers.Affine:
    w, c = reader.inputs(node, 2, 1)
    reader.needs_rank(2)
    _only_value(attrs, "transA", 0, "the data input must not be transposed")
    if w.ndim != 2:
        raise OnnxError(f"B must be 2-d, got shape {w.shape}")
    w = (w.T if _int(attrs, "transB", 0) else w) * _float(attrs, "alpha", 1.0)
    c = gemm_bias(c, w.shape[1], attrs, reader.opset, reader.batch)
    if c is not None:
        c = c * _float(attrs, "beta", 1.0)
    layer = layers.Affine(
        w.shape[0], w.shape[1], bias=c is not None, dtype=reader.dtype, rng=np.random.default_rng(0)
    )
    return _filled(layer, w, c)


def _plain(
    kind: type[layers.ReLU | layers.Sigmoid] | None, reader: _GraphReader, node: Any, attrs: dict
) -> layers.ReLU | layers.Sigmoid | None:
    """Relu, Sigmoid, and Identity (``kind`` None: no layer): one input, and no attribute
    but opsets 1-5's ``consumed_inputs``, a memory hint."""
    reader.inputs(node, 0, 0)
    return None if kind is None else kind()


def _maxpool(reader: _GraphReader, node: Any, attrs: dict) -> layers.MaxPool2d:
    _int(attrs, "storage_order", 0)  # the order of the indices output, which is never used
    return _pool(reader, node, attrs, layers.MaxPool2d)


def _averagepool(reader: _GraphReader, node: Any, attrs: dict) -> layers.AvgPool2d:
    pool = _pool(reader, node, attrs, layers.AvgPool2d)
    if any(pool.padding) and not _int(attrs, "count_include_pad", 0):
        raise OnnxError(
            "count_include_pad=0 with padding is not supported (fastnet's "
            "AvgPool2d counts the padding in the divisor)"
        )
    return pool


Pool = TypeVar("Pool", layers.MaxPool2d, layers.AvgPool2d)
Layer = TypeVar("Layer", bound=Module)


def _pool(reader: _GraphReader, node: Any, attrs: dict, kind: type[Pool]) -> Pool:
    """What MaxPool and AveragePool share: the window, floor mode, pads up to half the kernel."""
    reader.inputs(node, 0, 0)
    reader.needs_rank(4)
    if "kernel_shape" not in attrs:
        raise OnnxError("kernel_shape is missing")
    kernel = _ints(attrs, "kernel_shape", None)
    strides, pads = _window(attrs, kernel)
    if _int(attrs, "ceil_mode", 0) and strides != (1, 1):
        raise OnnxError(
            f"ceil_mode={attrs['ceil_mode']} with strides {strides} is not supported "
            "(fastnet pools in floor mode, which stride 1 makes the same)"
        )
    if any(2 * p > k for p, k in zip(pads, kernel, strict=True)):
        raise OnnxError(f"pads {pads} larger than half the kernel {kernel} are not supported")
    pair = tuple[int, int]  # both 2-d: _ints and _window check the counts
    return kind(cast(pair, kernel), cast(pair, strides), pads)


def _batchnormalization(
    reader: _GraphReader, node: Any, attrs: dict
) -> layers.BatchNorm1d | layers.BatchNorm2d:
    inference_mode("BatchNormalization", attrs, reader.opset)
    _only_value(attrs, "training_mode", 0, "fastnet loads inference graphs")
    gamma, beta, mean, var = reader.inputs(node, 4, 4)
    reader.needs_rank(2, 4)
    if reader.rank == 4:  # on (N, C) input, per activation (spatial=0) is per channel
        _only_value(attrs, "spatial", 1, "on 4-d input it is per activation, not per channel")
    if any(v.shape != gamma.shape or v.ndim != 1 for v in (beta, mean, var)):
        raise OnnxError("scale, B, mean and var must all have shape (C,)")
    if np.any(var < 0):
        raise OnnxError("the variance must not be negative")
    kind = layers.BatchNorm2d if reader.rank == 4 else layers.BatchNorm1d
    momentum = _float32(1 - _float(attrs, "momentum", 0.9))
    layer = kind(gamma.size, _float(attrs, "epsilon", 1e-5), momentum, dtype=reader.dtype)
    layer.running_mean[...], layer.running_var[...] = mean, var
    return _filled(layer, gamma, beta)


def _flatten(reader: _GraphReader, node: Any, attrs: dict) -> layers.Flatten:
    reader.inputs(node, 0, 0)
    axis = _int(attrs, "axis", 1)
    if axis not in (1, 1 - reader.rank):
        raise OnnxError(f"axis {axis} is not supported (fastnet's Flatten keeps axis 0 only)")
    reader.rank = 2
    return layers.Flatten()


def _dropout(reader: _GraphReader, node: Any, attrs: dict) -> layers.Dropout:
    inference_mode("Dropout", attrs, reader.opset)
    ratio, training = reader.inputs(node, 2, 0, weights=False)
    if any(v is not None and v.size != 1 for v in (ratio, training)):
        raise OnnxError("ratio and training_mode must be scalars")
    if training is not None and bool(training.reshape(-1)[0]):
        raise OnnxError("training_mode=True is not supported (fastnet loads inference graphs)")
    return layers.Dropout(
        _float(attrs, "ratio", 0.5) if ratio is None else _float32(ratio.reshape(-1)[0])
    )


# Constant's attributes that give a number or a list, and the dtype of the tensor made of it
_CONSTANT_DTYPES = {
    "value_float": np.float32,
    "value_floats": np.float32,
    "value_int": np.int64,
    "value_ints": np.int64,
}


def _constant_value(attrs: dict) -> np.ndarray:
    """The tensor a Constant node gives: its one attribute ``value`` (a tensor), or a
    number or list of numbers in ``value_float(s)`` or ``value_int(s)``."""
    if len(attrs) != 1:
        raise OnnxError(f"a Constant must have one attribute, got {sorted(attrs)}")
    ((name, value),) = attrs.items()
    if name == "value" and hasattr(value, "data_type"):
        return _tensor_values(value, "its value")
    if name not in _CONSTANT_DTYPES or not isinstance(value, int | float | list):
        raise OnnxError(
            f"a Constant's {name!r} is not supported (fastnet reads a tensor 'value', "
            "value_float(s) and value_int(s))"
        )
    return np.array(value, _CONSTANT_DTYPES[name])


def _filled(layer: Layer, weight: np.ndarray, bias: np.ndarray | None) -> Layer:
    """``layer`` (a Conv2d, Affine or BatchNorm) with its weight and bias (if any) set."""
    params = cast(Any, layer)
    params.weight.data[...] = weight
    if bias is not None:
        params.bias.data[...] = bias
    return layer


# ONNX operator -> its handler; Constant nodes (and Identity nodes of constants) give
# constants, read by _GraphReader._constant, not layers
HANDLERS: dict[str, Callable[[_GraphReader, Any, dict], Module | None]] = {
    "Conv": _conv,
    "BatchNormalization": _batchnormalization,
    "Relu": partial(_plain, layers.ReLU),
    "Sigmoid": partial(_plain, layers.Sigmoid),
    "MaxPool": _maxpool,
    "AveragePool": _averagepool,
    "Flatten": _flatten,
    "Gemm": _gemm,
    "Dropout": _dropout,
    "Identity": partial(_plain, None),
}
SUPPORTED = (*HANDLERS, "Constant")
